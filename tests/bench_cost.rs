//! What `strand bench` itself needs from the host: clients spread over
//! several source addresses with `--local-ip`, and the pre-flight check
//! that stops a run whose clients the host cannot hold (before it opens
//! any) and warns about the limits it merely crosses.

use std::collections::BTreeSet;
use std::net::{IpAddr, TcpListener};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use tungstenite::Message;

/// A WebSocket echo server on port 0 that records its clients' source
/// addresses; its threads end with their connections.
fn recording_echo() -> (String, Arc<Mutex<BTreeSet<IpAddr>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let record = seen.clone();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            if let Ok(peer) = stream.peer_addr() {
                record.lock().unwrap().insert(peer.ip());
            }
            thread::spawn(move || {
                let Ok(mut ws) = tungstenite::accept(stream) else {
                    return;
                };
                while let Ok(m) = ws.read() {
                    if (m.is_text() || m.is_binary()) && ws.send(m).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, seen)
}

/// A WebSocket echo server on port 0 that pings each client every 100 ms
/// and counts the pongs; a connection's thread ends with it.
fn pinging_echo() -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let pongs = Arc::new(AtomicU64::new(0));
    let count = pongs.clone();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let count = count.clone();
            thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_millis(20)));
                let Ok(mut ws) = tungstenite::accept(stream) else {
                    return;
                };
                let mut pinged = Instant::now();
                loop {
                    if pinged.elapsed() >= Duration::from_millis(100) {
                        if ws.send(Message::Ping(Vec::new().into())).is_err() {
                            return;
                        }
                        pinged = Instant::now();
                    }
                    match ws.read() {
                        Ok(Message::Pong(_)) => {
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                            if ws.send(m).is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                        Err(tungstenite::Error::Io(e))
                            if e.kind() == std::io::ErrorKind::WouldBlock
                                || e.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(_) => return,
                    }
                }
            });
        }
    });
    (url, pongs)
}

#[test]
fn held_clients_answer_the_servers_pings_while_they_wait() {
    let (url, pongs) = pinging_echo();
    let out = Command::new(env!("CARGO_BIN_EXE_strand"))
        .args([
            "bench",
            "hold",
            "--url",
            &url,
            "--clients",
            "3",
            "--duration",
            "1",
        ])
        .args(["-q", "--json", "/dev/stdout"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("\"survivors\": 3"), "{stdout}");
    // About 10 pings each while held; a pong left unsent until the end
    // would count once per client at most.
    let n = pongs.load(Ordering::Relaxed);
    assert!(n >= 3 * 4, "only {n} pongs from 3 clients held 1 s");
}

#[test]
fn clients_connect_from_each_local_ip_in_turn() {
    let (url, seen) = recording_echo();
    let out = Command::new(env!("CARGO_BIN_EXE_strand"))
        .args([
            "bench",
            "hold",
            "--url",
            &url,
            "--clients",
            "6",
            "--duration",
            "0",
        ])
        .args(["--local-ip", "127.0.0.2", "--local-ip", "127.0.0.3", "-q"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("survivors            6"), "{stdout}");
    let seen: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|ip| ip.to_string())
        .collect();
    assert_eq!(seen, ["127.0.0.2", "127.0.0.3"]);
}

#[test]
fn preflight_stops_a_run_the_memory_maps_cannot_hold() {
    let maps: u64 = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // 4 maps per client thread: this many cannot fit, whatever the host.
    let clients = (maps / 4 + 100).to_string();
    let (url, seen) = recording_echo();
    let out = Command::new(env!("CARGO_BIN_EXE_strand"))
        .args(["bench", "hold", "--url", &url, "--clients", &clients, "-q"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("strand bench: error:") && stderr.contains("vm.max_map_count"),
        "{stderr}"
    );
    assert!(seen.lock().unwrap().is_empty(), "no client may connect");
}

//! The request-head door: a head must be complete within 10 s of accept
//! however it trickles in (else 408); thousands of silent sockets hold no
//! thread and do not keep a new client out; `--max-connections-per-ip`.
mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};
use support::{Server, WAIT};
use tungstenite::Message;

const UPGRADE: &str = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                       Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/// Reads what the server sends until it closes.
fn read_all(stream: &mut TcpStream) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn a_trickled_head_is_cut_ten_seconds_after_accept() {
    let server = Server::start(&[]);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    let accepted = Instant::now();
    // One byte every 300 ms: every read is short of the per-read timeout
    // a server might have; only a deadline from accept stops it.
    let mut writer = stream.try_clone().unwrap();
    let trickle = std::thread::spawn(move || {
        for byte in UPGRADE.bytes().take(UPGRADE.len() - 1) {
            if writer.write_all(&[byte]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    let answer = read_all(&mut stream);
    let cut = accepted.elapsed();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(answer.contains(r#"{"error":"#), "{answer:?}");
    assert!(
        cut >= Duration::from_millis(9500) && cut < Duration::from_millis(11500),
        "cut after {cut:?}"
    );
    trickle.join().unwrap();
    assert_eq!(server.metric("strand_heads_timed_out_total"), 1.0);
    assert_eq!(server.metric("strand_heads_pending"), 0.0);
}

#[test]
fn a_head_trickled_within_the_deadline_still_upgrades() {
    let server = Server::start(&[]);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    for chunk in UPGRADE.as_bytes().chunks(20) {
        stream.write_all(chunk).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut ws =
        tungstenite::WebSocket::from_raw_socket(stream, tungstenite::protocol::Role::Client, None);
    // The 101 comes first: read it by hand, then talk WebSocket.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        ws.get_mut().read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    ws.send(Message::text("slow but fine")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("slow but fine"));
}

#[test]
fn heavy_5000_silent_sockets_hold_no_thread_and_keep_no_one_out() {
    let server = Server::start(&[]);
    let threads = server.settled_threads();
    let silent: Vec<TcpStream> = (0..5000)
        .map(|i| TcpStream::connect(server.addr).unwrap_or_else(|e| panic!("socket {i}: {e}")))
        .collect();
    // Heads are cut 10 s after accept, so on a slow machine the first may
    // go before the last is accepted: most waiting is enough.
    server.wait_until("5000 heads pending", || {
        server.metric("strand_heads_pending") >= 4500.0
    });
    // No thread for any of them.
    assert!(
        server.live_threads() <= threads + 1,
        "{} threads with 5000 silent sockets (baseline {threads})",
        server.live_threads()
    );
    for _ in 0..3 {
        let started = Instant::now();
        let mut ws = server.ws("/ws");
        ws.send(Message::text("still here")).unwrap();
        assert_eq!(ws.read().unwrap(), Message::text("still here"));
        let upgraded = started.elapsed();
        let started = Instant::now();
        let (status, _) = server.get_json("/healthz");
        let answered = started.elapsed();
        assert_eq!(status, 200);
        assert!(
            upgraded < Duration::from_secs(1),
            "upgrade took {upgraded:?}"
        );
        assert!(
            answered < Duration::from_secs(1),
            "healthz took {answered:?}"
        );
    }
    for s in &silent {
        let _ = s.shutdown(Shutdown::Both);
    }
    drop(silent);
    server.wait_until("no head pending", || {
        server.metric("strand_heads_pending") == 0.0
    });
    server.wait_threads(threads);
}

#[test]
fn the_per_ip_limit_refuses_the_connection_over_it_with_503() {
    let server = Server::start(&["--max-connections-per-ip", "2"]);
    let mut first = server.ws("/ws");
    let second = server.ws("/ws");
    // Both slots taken: the third connection is answered 503 and closed.
    let mut third = TcpStream::connect(server.addr).unwrap();
    let answer = read_all(&mut third);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    assert!(server_metric_after_close(&server, &mut first) >= 1.0);
    drop(second);
    // Slots free again once connections end.
    server.wait_until("a slot to free", || {
        TcpStream::connect(server.addr)
            .map(|mut s| {
                s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    .unwrap();
                read_all(&mut s).starts_with("HTTP/1.1 200")
            })
            .unwrap_or(false)
    });
}

/// Closes `ws`, then reads the per-ip refusal counter (the /metrics request
/// needs the slot the close frees).
fn server_metric_after_close(server: &Server, ws: &mut tungstenite::WebSocket<TcpStream>) -> f64 {
    ws.close(None).unwrap();
    support::close_code(ws);
    let mut value = 0.0;
    server.wait_until("the refusal counted", || {
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let text = read_all(&mut s);
        value = text
            .lines()
            .find_map(|l| l.strip_prefix("strand_per_ip_refused_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0);
        value >= 1.0
    });
    value
}

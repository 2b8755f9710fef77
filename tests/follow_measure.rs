//! Measurements, not assertions (run them by hand, release build):
//! `cargo test --release --test follow_measure -- --ignored --nocapture`.
//! - append-to-delivery latency of 10 followers at 100 lines/s;
//! - CPU time of an idle server holding 100 idle followers for 60 s.
mod support;

use serde_json::json;
use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::{next_of_type, send_json, Server};

/// The next message that is not another client's presence news.
fn next_msg(ws: &mut tungstenite::WebSocket<std::net::TcpStream>) -> serde_json::Value {
    loop {
        let v = support::next_json(ws);
        if v["type"] != "user_joined" && v["type"] != "user_left" {
            return v;
        }
    }
}

fn tail_server() -> (Server, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let tail = dir.path().join("tail");
    std::fs::create_dir(&tail).unwrap();
    let server = Server::start_in(dir, &["--tail-dir", tail.to_str().unwrap()]);
    (server, tail)
}

fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `rest` starts at field 3.
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
#[ignore = "a measurement; run by hand in release"]
fn measure_latency_of_10_followers_at_100_lines_per_s() {
    let (server, tail) = tail_server();
    let log = tail.join("lat.log");
    std::fs::write(&log, "").unwrap();
    const LINES: usize = 1000;
    let readers: Vec<_> = (0..10)
        .map(|i| {
            let mut ws = server.ws(&format!("/ws/chat/lat{i}"));
            next_of_type(&mut ws, "welcome");
            send_json(&mut ws, json!({"type": "follow", "file": "lat.log"}));
            assert_eq!(next_msg(&mut ws)["type"], "following");
            std::thread::spawn(move || {
                let mut out = Vec::with_capacity(LINES);
                for _ in 0..LINES {
                    let d = next_of_type(&mut ws, "data");
                    let sent: u64 = d["payload"].as_str().unwrap().parse().unwrap();
                    out.push(unix_micros().saturating_sub(sent));
                }
                out
            })
        })
        .collect();
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    let start = Instant::now();
    for i in 0..LINES {
        let due = start + Duration::from_millis(10 * i as u64);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        writeln!(f, "{}", unix_micros()).unwrap();
    }
    let mut hist = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    for r in readers {
        for us in r.join().unwrap() {
            hist.record(us).unwrap();
        }
    }
    eprintln!(
        "append-to-delivery, 10 followers x {LINES} lines at 100/s: p50 {} us, p90 {} us, p99 {} us, max {} us",
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.9),
        hist.value_at_quantile(0.99),
        hist.max()
    );
}

fn idle_cpu(files: usize) {
    let (server, tail) = tail_server();
    for i in 0..files {
        std::fs::write(tail.join(format!("idle{i}.log")), "x\n").unwrap();
    }
    let mut clients = Vec::new();
    for i in 0..100 {
        let mut ws = server.ws(&format!("/ws/chat/idle{i}"));
        next_of_type(&mut ws, "welcome");
        let file = format!("idle{}.log", i % files);
        send_json(&mut ws, json!({"type": "follow", "file": file}));
        assert_eq!(next_msg(&mut ws)["type"], "following");
        clients.push(ws);
    }
    let before = cpu_ticks(server.pid());
    std::thread::sleep(Duration::from_secs(60));
    let used = cpu_ticks(server.pid()) - before;
    eprintln!(
        "idle server, 100 followers of {files} file(s), 60 s: {used} clock ticks \
         ({} ms of CPU), {} threads",
        used * 10,
        server.threads()
    );
    drop(clients);
}

#[test]
#[ignore = "a measurement; run by hand in release"]
fn measure_idle_cpu_of_100_followers_of_one_file() {
    idle_cpu(1);
}

#[test]
#[ignore = "a measurement; run by hand in release"]
fn measure_idle_cpu_of_100_followers_of_100_files() {
    idle_cpu(100);
}

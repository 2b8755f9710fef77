//! Measurements, not assertions (run them by hand, release build):
//! `cargo test --release --test follow_measure -- --ignored --nocapture`.
//! - append-to-delivery latency of 10 followers at 100 lines/s;
//! - CPU time of an idle server holding 100 idle followers for 60 s.
mod follow_util;
mod support;

use follow_util::{follow, hub, server_with_tail};
use serde_json::json;
use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::next_of_type;

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
    let (server, tail) = server_with_tail();
    let log = tail.join("lat.log");
    std::fs::write(&log, "").unwrap();
    const LINES: usize = 1000;
    let readers: Vec<_> = (0..10)
        .map(|i| {
            let mut ws = hub(&server, &format!("lat{i}"));
            follow(&mut ws, json!({"type": "follow", "file": "lat.log"}));
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
    let (server, tail) = server_with_tail();
    for i in 0..files {
        std::fs::write(tail.join(format!("idle{i}.log")), "x\n").unwrap();
    }
    let mut clients = Vec::new();
    for i in 0..100 {
        let mut ws = hub(&server, &format!("idle{i}"));
        let file = format!("idle{}.log", i % files);
        follow(&mut ws, json!({"type": "follow", "file": file}));
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

//! Measurements, not assertions (ignored: run by hand, in release mode):
//!
//! ```text
//! cargo test --release --test rooms_measure -- --ignored --nocapture --test-threads 1
//! ```
//!
//! - fan-out: 1,000 text-room subscribers, one publisher at a fixed rate;
//!   deliveries per second and publish-to-receive latency p50/p99/max.
//! - forming: how long a 4,000-member text room takes to form, every join
//!   announced to everyone already there (about 8 million notices).
mod support;

use hdrhistogram::Histogram;
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::Server;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

/// A client with a small read buffer (tungstenite's default is 128 KiB per
/// client, too much for thousands of them in one process).
fn connect(server: &Server, path: &str) -> WebSocket<TcpStream> {
    let stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    stream.set_nodelay(true).unwrap();
    let config = WebSocketConfig::default().read_buffer_size(4096);
    tungstenite::client::client_with_config(server.url(path), stream, Some(config))
        .map(|(ws, _)| ws)
        .unwrap_or_else(|e| panic!("connect {path}: {e}"))
}

fn spawn_small<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    std::thread::Builder::new()
        .stack_size(128 * 1024)
        .spawn(f)
        .expect("spawn a client thread")
}

fn fanout(subscribers: usize, rate: u64, seconds: u64) {
    let server = Server::start(&["--max-connections", "5000"]);
    let base = Instant::now();
    let total = (rate * seconds) as usize;
    let merged = Arc::new(Mutex::new(Histogram::<u64>::new(3).unwrap()));
    let received = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for i in 0..subscribers {
        let mut ws = connect(&server, &format!("/ws/fan/s{i}"));
        let merged = merged.clone();
        let received = received.clone();
        threads.push(spawn_small(move || {
            let mut hist = Histogram::<u64>::new(3).unwrap();
            let mut got = 0;
            while got < total {
                match ws.read() {
                    Ok(Message::Text(t)) => {
                        let Some(rest) = t.strip_prefix("pub: ") else {
                            continue;
                        };
                        let sent: u64 = rest.split(' ').next().unwrap().parse().unwrap();
                        let now = base.elapsed().as_micros() as u64;
                        hist.record(now.saturating_sub(sent).max(1)).unwrap();
                        got += 1;
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(e) => panic!("subscriber {i}: {e}"),
                }
            }
            merged.lock().unwrap().add(&hist).unwrap();
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while server.get_json("/rooms/fan/count").1["online"] != subscribers as u64 {
        assert!(Instant::now() < deadline, "subscribers did not all join");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The publisher is a member too; a thread drains its copies.
    let publisher = connect(&server, "/ws/fan/pub");
    let stream = publisher.get_ref().try_clone().unwrap();
    let mut writer =
        tungstenite::WebSocket::from_raw_socket(stream, tungstenite::protocol::Role::Client, None);
    let mut reader = publisher;
    spawn_small(move || while reader.read().is_ok() {});
    let cpu_before = cpu_ms(server.pid());
    let start = Instant::now();
    let period = Duration::from_nanos(1_000_000_000 / rate.max(1));
    for n in 0..total {
        if rate > 0 {
            let due = start + period * n as u32;
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        let sent = base.elapsed().as_micros();
        writer
            .send(Message::text(format!(
                "{sent} message {n} of the fan-out run"
            )))
            .unwrap();
    }
    for t in threads {
        t.join().unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_ms(server.pid()) - cpu_before;
    let h = merged.lock().unwrap();
    let deliveries = received.load(Ordering::Relaxed);
    eprintln!(
        "server CPU {cpu} ms for {deliveries} deliveries = {:.1} us per delivery",
        cpu as f64 * 1000.0 / deliveries as f64
    );
    eprintln!(
        "fan-out: {subscribers} subscribers, {total} messages at {} msg/s: {deliveries} deliveries in {elapsed:.2} s = {:.0} deliveries/s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; server RSS {} KiB, threads {}",
        if rate > 0 { rate.to_string() } else { "full speed".into() },
        deliveries as f64 / elapsed,
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.max() as f64 / 1000.0,
        server.rss_kib(),
        server.threads(),
    );
}

/// User plus system CPU time of process `pid`, in ms.
fn cpu_ms(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks * 10 // USER_HZ is 100 on Linux
}

#[test]
#[ignore]
fn heavy_measure_fanout_1000_subscribers_100_per_second() {
    fanout(1000, 100, 10);
}

#[test]
#[ignore]
fn heavy_measure_fanout_1000_subscribers_20_per_second() {
    fanout(1000, 20, 10);
}

#[test]
#[ignore]
fn heavy_measure_fanout_1000_subscribers_full_speed() {
    fanout(1000, 0, 5);
}

#[test]
#[ignore]
fn heavy_measure_forming_a_4000_member_text_room() {
    let n: u64 = std::env::var("STRAND_FORM_MEMBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    let server = Server::start(&["--max-connections", "5000", "--idle-timeout", "3600"]);
    let notices = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let mut threads = Vec::new();
    for i in 0..n {
        let mut ws = connect(&server, &format!("/ws/big/u{i}"));
        let notices = notices.clone();
        let errors = errors.clone();
        threads.push(spawn_small(move || loop {
            match ws.read() {
                Ok(Message::Text(t)) if t.ends_with(" joined big") => {
                    notices.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(e) => {
                    errors.lock().unwrap().push(format!("u{i}: {e}"));
                    return;
                }
            }
        }));
    }
    let connected = start.elapsed();
    let expected = n * (n - 1) / 2;
    let deadline = Instant::now() + Duration::from_secs(600);
    while notices.load(Ordering::Relaxed) < expected {
        let errors = errors.lock().unwrap();
        assert!(
            Instant::now() < deadline && errors.is_empty(),
            "{} of {expected} notices; {} clients failed: {:?}",
            notices.load(Ordering::Relaxed),
            errors.len(),
            &errors[..errors.len().min(5)]
        );
        drop(errors);
        std::thread::sleep(Duration::from_millis(5));
    }
    let formed = start.elapsed();
    eprintln!(
        "forming: {n} members connected in {:.2} s; all {expected} join notices delivered after {:.2} s; server RSS {} KiB, threads {}",
        connected.as_secs_f64(),
        formed.as_secs_f64(),
        server.rss_kib(),
        server.threads(),
    );
    drop(server);
    for t in threads {
        let _ = t.join();
    }
}

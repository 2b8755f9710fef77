//! `strand bench` end to end: each scenario at a tiny size against a real
//! strand (and echo against a minimal echo server), read back from `--json`.
mod redis_util;
mod support;

use serde_json::Value;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use support::Server;

/// Runs `strand bench ARGS --json FILE -q`, which must exit with `code`
/// (1: no client connected), and returns the JSON.
fn bench_exit(args: &[&str], code: i32) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("out.json");
    let out = Command::new(env!("CARGO_BIN_EXE_strand"))
        .arg("bench")
        .args(args)
        .arg("--json")
        .arg(&json)
        .arg("-q")
        .output()
        .expect("run strand bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(code),
        "strand bench {args:?}: {}{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("strand bench "), "no table: {stdout}");
    let text = std::fs::read_to_string(&json).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Runs `strand bench SCENARIO --url URL ARGS` (see [`bench`]).
fn bench_at(scenario: &str, url: &str, args: &[&str]) -> Value {
    bench_at_exit(scenario, url, args, 0)
}

/// [`bench_at`] with the exit code expected.
fn bench_at_exit(scenario: &str, url: &str, args: &[&str], code: i32) -> Value {
    let mut all = vec![scenario, "--url", url];
    all.extend_from_slice(args);
    bench_exit(&all, code)
}

/// Runs `strand bench SCENARIO ARGS` against a fresh strand, at `path` on
/// it, expecting exit `code`.
fn bench_strand_exit(scenario: &str, path: &str, args: &[&str], code: i32) -> Value {
    let server = Server::start(&[]);
    bench_at_exit(scenario, &server.url(path), args, code)
}

/// Runs `strand bench SCENARIO ARGS` against a fresh strand, at `path` on it.
fn bench_strand(scenario: &str, path: &str, args: &[&str]) -> Value {
    bench_strand_exit(scenario, path, args, 0)
}

/// Runs `strand bench tail` of `file` on `server` with 2 followers,
/// expecting exit `code`.
fn bench_tail(server: &Server, file: &Path, args: &[&str], code: i32) -> Value {
    let file = file.to_str().unwrap();
    let mut all = vec!["--file", file, "--clients", "2"];
    all.extend_from_slice(args);
    bench_at_exit("tail", &server.url(""), &all, code)
}

/// Every one of `n` deliveries was made, none lost or made twice, and
/// there was no error.
fn assert_all_delivered(j: &Value, n: u64) {
    assert_eq!(j["delivery"]["delivered"], n, "{j}");
    assert_eq!(j["delivery"]["lost"], 0, "{j}");
    assert_eq!(j["delivery"]["duplicates"], 0, "{j}");
    assert_eq!(j["errors"]["total"], 0, "{j}");
}

#[test]
fn echo_against_strand_counts_every_round_trip() {
    let j = bench_strand("echo", "/ws", &["--clients", "3", "--messages", "20"]);
    assert_eq!(j["connected"], 3);
    assert_eq!(j["messages"], 60);
    assert_eq!(j["rtt_us"]["count"], 60);
    assert!(j["rtt_us"]["p50"].as_u64().unwrap() > 0);
    assert!(j["msgs_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(j["errors"]["total"], 0, "{j}");
}

#[test]
fn echo_binary_with_a_duration_bound() {
    let j = bench_strand(
        "echo",
        "/ws",
        &[
            "--clients",
            "2",
            "--duration",
            "0.2",
            "--size",
            "300",
            "--binary",
        ],
    );
    assert!(j["messages"].as_u64().unwrap() > 0, "{j}");
    assert_eq!(j["errors"]["total"], 0, "{j}");
}

/// A minimal RFC 6455 echo server (like examples/floor_echo.rs), on a
/// thread per connection; the test process ends them.
fn tiny_echo_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let Ok(mut ws) = tungstenite::accept(stream) else {
                    return;
                };
                while let Ok(msg) = ws.read() {
                    if (msg.is_text() || msg.is_binary()) && ws.send(msg).is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("ws://{addr}")
}

#[test]
fn echo_works_against_any_echo_server() {
    let url = tiny_echo_server();
    let j = bench_at("echo", &url, &["--clients", "2", "--messages", "10"]);
    assert_eq!(j["messages"], 20);
    assert_eq!(j["errors"]["total"], 0, "{j}");
}

#[test]
fn a_refused_server_is_counted_not_a_crash() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("ws://127.0.0.1:{port}/ws");
    let j = bench_at_exit("echo", &url, &["--clients", "3", "--messages", "5"], 1);
    assert_eq!(j["connected"], 0);
    assert_eq!(j["messages"], 0);
    assert_eq!(j["errors"]["kinds"]["refused"], 3, "{j}");
}

#[test]
fn an_http_error_on_upgrade_is_counted() {
    let j = bench_strand_exit(
        "echo",
        "/nowhere",
        &["--clients", "2", "--messages", "5"],
        1,
    );
    assert_eq!(j["errors"]["kinds"]["http 404"], 2, "{j}");
}

#[test]
fn hold_keeps_idle_connections_and_they_survive() {
    let j = bench_strand("hold", "", &["--clients", "5", "--duration", "0.3"]);
    assert_eq!(j["connected"], 5);
    assert_eq!(j["survivors"], 5);
    assert_eq!(j["connect_us"]["count"], 5);
    assert_eq!(j["errors"]["total"], 0, "{j}");
}

#[test]
fn connect_counts_handshakes() {
    let j = bench_strand("connect", "", &["--threads", "2", "--duration", "0.3"]);
    let n = j["handshakes"].as_u64().unwrap();
    assert!(n > 0, "{j}");
    assert_eq!(j["connect_us"]["count"].as_u64(), Some(n));
    assert_eq!(j["errors"]["total"], 0, "{j}");
}

#[test]
fn fanout_delivers_every_message_to_every_subscriber() {
    let j = bench_strand(
        "fanout",
        "",
        &[
            "--subscribers",
            "4",
            "--messages",
            "20",
            "--rate",
            "1000",
            "--room",
            "benchtest",
        ],
    );
    assert_eq!(j["connected"], 4);
    assert_eq!(j["join_notices"]["received"], 6, "{j}");
    assert_eq!(j["sent"], 20);
    assert_eq!(j["latency_us"]["count"], 80);
    assert_all_delivered(&j, 80);
}

#[test]
fn fanout_spreads_subscribers_over_instances_sharing_one_redis() {
    let redis = redis_util::Redis::start();
    let one = redis_util::instance(&redis, &[]);
    let two = redis_util::instance(&redis, &[]);
    let spread = two.url("");
    let j = bench_at(
        "fanout",
        &one.url(""),
        &[
            "--subscribers",
            "6",
            "--messages",
            "20",
            "--rate",
            "1000",
            "--spread-url",
            &spread,
        ],
    );
    assert_eq!(j["servers"], 2);
    assert_eq!(j["connected"], 6);
    assert_eq!(j["join_notices"]["received"], 15, "{j}");
    assert_all_delivered(&j, 120);
    one.wait_until("every subscriber gone from the room", || {
        two.get_json("/rooms").1["rooms"] == serde_json::json!([])
    });
}

#[test]
fn tail_delivers_every_appended_line_to_every_follower() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bench.log");
    std::fs::write(&file, "an old line\n").unwrap();
    let server = Server::start(&["--tail-dir", dir.path().to_str().unwrap()]);
    let j = bench_tail(&server, &file, &["--lines", "20", "--rate", "1000"], 0);
    assert_eq!(j["following"], 2, "{j}");
    assert_eq!(j["appended"], 20);
    assert_all_delivered(&j, 40);
}

#[test]
fn tail_of_a_file_outside_the_tail_dir_is_an_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bench.log");
    let server = Server::start(&[]);
    let j = bench_tail(&server, &file, &["--lines", "3"], 1);
    assert_eq!(j["following"], 0);
    assert_eq!(j["errors"]["total"], 2, "{j}");
}

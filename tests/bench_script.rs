//! `strand bench run FILE`: scripted scenarios end to end, against a JSON
//! pub/sub server that is not strand (tests/bench_script_util), against
//! strand's hub, and against a server that never answers; the shipped
//! examples run as they are, with `--url` pointing at the test's server.
mod bench_script_util;
mod bench_util;
mod support;

use bench_script_util::{silent_server, PubSub};
use bench_util::{EchoOptions, EchoServer, TestCa, UNAUTHORIZED_BODY};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use support::Server;

/// What a run of `strand bench run` left.
struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
    json: Option<Value>,
}

/// Runs `strand bench run FILE ARGS --json OUT -q`.
fn run(file: &Path, args: &[&str]) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("out.json");
    let out = Command::new(env!("CARGO_BIN_EXE_strand"))
        .args(["bench", "run"])
        .arg(file)
        .args(args)
        .arg("--json")
        .arg(&json)
        .arg("-q")
        .output()
        .expect("run strand bench");
    let json = std::fs::read_to_string(&json)
        .ok()
        .map(|t| serde_json::from_str(&t).unwrap_or_else(|e| panic!("{e}: {t}")));
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        json,
    }
}

/// Writes `text` as a scenario file in `dir`.
fn scenario(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("scenario.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn example(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/bench")
        .join(name)
}

/// Whether a threshold bounds a latency: on a loaded machine one may be
/// crossed, and tests never assert speed.
fn is_latency(verdict: &Value) -> bool {
    verdict["expr"].as_str().is_some_and(|e| e.contains("p("))
}

/// The run's `n` thresholds were evaluated and every one that is not a
/// latency's held.
fn assert_counts_held(j: &Value, n: usize) {
    let verdicts = j["thresholds"].as_array().expect("thresholds");
    assert_eq!(verdicts.len(), n, "{j}");
    assert!(
        verdicts.iter().all(|v| v["ok"] == true || is_latency(v)),
        "{j}"
    );
}

/// A run that completed (exit 0, or 99 for a crossed latency threshold
/// only) and its JSON.
fn completed(o: Outcome) -> Value {
    assert!(
        [0, 99].contains(&o.code),
        "exit {}:\n{}{}",
        o.code,
        o.stdout,
        o.stderr
    );
    assert!(o.stdout.starts_with("strand bench run "), "{}", o.stdout);
    let j = o.json.expect("the JSON file");
    let verdicts = j["thresholds"].as_array().cloned().unwrap_or_default();
    let crossed = verdicts.iter().any(|v| v["ok"] == false);
    assert_eq!(o.code == 99, crossed, "{j}");
    assert!(
        verdicts.iter().all(|v| v["ok"] == true || is_latency(v)),
        "{j}"
    );
    j
}

#[test]
fn the_pubsub_example_runs_against_a_json_pubsub_server() {
    let server = PubSub::start();
    let j = completed(run(&example("pubsub.toml"), &["--url", &server.ws_url]));
    // 8 clients, 2 iterations, 5 publishes each.
    assert_eq!(j["iterations"], 16, "{j}");
    assert_eq!(j["failed_iterations"], 0, "{j}");
    assert_eq!(j["sent"], 16 * 6, "{j}");
    assert_eq!(j["errors"]["total"], 0, "{j}");
    assert_eq!(j["publish_us"]["count"], 80, "{j}");
    assert_eq!(j["publish_errors"], 0, "{j}");
    assert_eq!(j["subscribe_us"]["count"], 16, "{j}");
    assert_eq!(j["hello_us"]["count"], 16, "{j}");
    assert_eq!(j["connect_us"]["count"], 16, "{j}");
    assert!(j["publish_us"]["p50"].as_u64().unwrap() > 0, "{j}");
    // The run's format: its HDR buckets, label, start, series.
    let buckets: u64 = j["publish_us"]["histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b[1].as_u64().unwrap())
        .sum();
    assert_eq!(buckets, 80, "{j}");
    assert_eq!(
        j["label"],
        "JSON pub/sub: subscribe, publish, receive your own"
    );
    assert!(
        j["started_at_ms"].as_u64().unwrap() > 1_600_000_000_000,
        "{j}"
    );
    assert!(j["series"].is_array(), "{j}");
    assert_counts_held(&j, 2);
    assert_eq!(
        server.published.load(std::sync::atomic::Ordering::SeqCst),
        80
    );
    // The CSV feeder's users went out as a header, row I to client I.
    let mut users = server.users.lock().unwrap().clone();
    users.sort();
    users.dedup();
    assert_eq!(users, ["ada", "bob", "cyd", "dee"]);
}

#[test]
fn the_hub_example_runs_against_strand() {
    let server = Server::start(&[]);
    let o = run(&example("strand-hub.toml"), &["--url", &server.url("")]);
    let j = completed(o);
    assert_eq!(j["iterations"], 20, "{j}");
    assert_eq!(j["errors"]["total"], 0, "{j}");
    assert_counts_held(&j, 3);
    for (name, n) in [
        ("welcome", 20),
        ("join", 20),
        ("chat", 200),
        ("direct", 20),
        ("presence", 20),
        ("leave", 20),
    ] {
        assert_eq!(j[format!("{name}_us")]["count"], n, "{name}: {j}");
        assert_eq!(j[format!("{name}_errors")], 0, "{name}: {j}");
    }
    server.wait_until("every client gone", || {
        server.get_json("/healthz").1["connections"] == 0
    });
}

#[test]
fn an_expect_that_times_out_is_an_error_of_its_step_and_crosses_thresholds() {
    let url = silent_server();
    let dir = tempfile::tempdir().unwrap();
    let file = scenario(
        &dir,
        &format!(
            r#"
url = "{url}"
clients = 2
thresholds = ["errors==0", "pong:p(99)<1s", "connect:count==2"]
[[step]]
connect = "/"
[[step]]
send = "ping"
[[step]]
expect = "*"
timeout = "200ms"
metric = "pong"
"#
        ),
    );
    let o = run(&file, &["--threshold", "pong_errors<1"]);
    assert_eq!(o.code, 99, "{}{}", o.stdout, o.stderr);
    assert!(o.stdout.contains("(pong: timeout 2)"), "{}", o.stdout);
    assert!(o.stdout.contains("threshold errors==0"), "{}", o.stdout);
    assert!(
        o.stderr.contains("threshold crossed: errors==0"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("threshold crossed: pong_errors<1"),
        "{}",
        o.stderr
    );
    let j = o.json.expect("the JSON file");
    assert_eq!(j["failed_iterations"], 2, "{j}");
    assert_eq!(j["pong_errors"], 2, "{j}");
    assert_eq!(j["pong_us"]["count"], 0, "{j}");
    assert_eq!(j["errors"]["kinds"]["pong: timeout"], 2, "{j}");
    let ok: Vec<bool> = j["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["ok"] == true)
        .collect();
    // errors==0 and pong's percentile (no samples) fail; both connects counted.
    assert_eq!(ok, [false, false, true, false], "{j}");
}

#[test]
fn a_malformed_file_is_refused_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = scenario(
        &dir,
        "url = \"ws://127.0.0.1:9\"\n[[step]]\nconnect = \"/\"\n\n[[step]]\nsend = \"{{who}}\"\n",
    );
    let o = run(&file, &[]);
    assert_eq!(o.code, 1, "{}{}", o.stdout, o.stderr);
    assert!(o.stdout.is_empty(), "no run: {}", o.stdout);
    assert!(o.json.is_none());
    assert!(
        o.stderr.contains("scenario.toml: line 5: {{who}} is not"),
        "{}",
        o.stderr
    );
    let missing = run(&dir.path().join("nope.toml"), &[]);
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("cannot read it"),
        "{}",
        missing.stderr
    );
}

#[test]
fn stages_ramp_clients_up_and_down() {
    let server = PubSub::start();
    let dir = tempfile::tempdir().unwrap();
    let file = scenario(
        &dir,
        &format!(
            r#"
url = "{}"
stages = [{{ target = 4, duration = "400ms" }}, {{ target = 4, duration = "400ms" }}, {{ target = 0, duration = "200ms" }}]
graceful_ramp_down = "2s"
[[step]]
connect = "/"
[[step]]
expect = '$.type == "hello"'
[[step]]
send = '{{"type":"subscribe","topic":"t{{{{client}}}}"}}'
[[step]]
expect = '$.type == "subscribed"'
metric = "subscribe"
[[step]]
think = "50ms..100ms"
"#,
            server.ws_url
        ),
    );
    let j = completed(run(&file, &[]));
    assert_eq!(j["clients"], 4, "{j}");
    let iterations = j["iterations"].as_u64().unwrap();
    // Each client iterates (connect, exchange, think) until stopped.
    assert!(iterations > 4, "{j}");
    assert_eq!(j["subscribe_us"]["count"], iterations, "{j}");
    assert_eq!(j["failed_iterations"], 0, "{j}");
    assert_eq!(j["errors"]["total"], 0, "{j}");
    let elapsed = j["elapsed_s"].as_f64().unwrap();
    assert!(elapsed >= 1.0, "the stages last 1 s: {j}");
}

#[test]
fn wss_with_a_header_from_the_csv_feeder_and_a_subprotocol() {
    let ca = TestCa::new();
    let server = EchoServer::start(
        EchoOptions::default()
            .tls(&ca)
            .header("X-Token", "t")
            .subprotocol("chat"),
    );
    let dir = tempfile::tempdir().unwrap();
    // Client 0 has the right token, client 1 a wrong one.
    std::fs::write(dir.path().join("tokens.csv"), "token\nt\nwrong\n").unwrap();
    let file = scenario(
        &dir,
        r#"
csv = "tokens.csv"
clients = 2
[[step]]
connect = "/echo"
headers = { X-Token = "{{csv.token}}" }
subprotocols = ["chat"]
[[step]]
send = "hello {{client}}"
[[step]]
expect = "*"
regex = '^hello \d$'
metric = "echo"
"#,
    );
    let cacert = ca.pem_path();
    let o = run(
        &file,
        &["--url", &server.url, "--cacert", cacert.to_str().unwrap()],
    );
    let j = o.json.expect("the JSON file");
    assert_eq!(j["iterations"], 1, "{j}");
    assert_eq!(j["echo_us"]["count"], 1, "{j}");
    assert_eq!(j["errors"]["kinds"]["line 4 connect: http 401"], 1, "{j}");
    assert_eq!(
        j["errors"]["samples"]["line 4 connect: http 401"], UNAUTHORIZED_BODY,
        "{j}"
    );
    assert_eq!(j["connect_errors"], 1, "{j}");
}

#[test]
fn two_segments_run_their_share_and_merge_into_the_whole() {
    let server = PubSub::start();
    let dir = tempfile::tempdir().unwrap();
    let start_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        + 1.0;
    let start_at = format!("{start_at:.3}");
    let file = example("pubsub.toml");
    let files: Vec<String> = std::thread::scope(|s| {
        let runs: Vec<_> = ["1/2", "2/2"]
            .into_iter()
            .map(|segment| {
                let (file, url, start_at) = (&file, &server.ws_url, &start_at);
                s.spawn(move || {
                    let args = ["--url", url, "--segment", segment, "--start-at", start_at];
                    completed(run(file, &args))
                })
            })
            .collect();
        runs.into_iter()
            .enumerate()
            .map(|(i, r)| {
                let j = r.join().unwrap();
                // 4 of the 8 clients, 2 iterations, 5 publishes each.
                assert_eq!(j["iterations"], 8, "{j}");
                assert_eq!(j["publish_us"]["count"], 40, "{j}");
                assert_eq!(j["segment"], ["1/2", "2/2"][i], "{j}");
                let path = dir.path().join(format!("segment-{i}.json"));
                std::fs::write(&path, j.to_string()).unwrap();
                path.to_str().unwrap().to_string()
            })
            .collect()
    });
    // Clients 0-3 and 4-7: every CSV row was used by each segment's share.
    let mut users = server.users.lock().unwrap().clone();
    users.sort();
    assert_eq!(users.len(), 16);
    users.dedup();
    assert_eq!(users, ["ada", "bob", "cyd", "dee"]);
    let html = dir.path().join("merged.html");
    let merged = bench_util::bench_in(
        dir.path(),
        &[
            "merge",
            &files[0],
            &files[1],
            "--threshold",
            "publish:count==80",
            "--html",
            html.to_str().unwrap(),
        ],
    );
    assert_eq!(merged.code, 0, "{}{}", merged.stdout, merged.stderr);
    let m = merged.json();
    assert_eq!(m["iterations"], 16, "{m}");
    assert_eq!(m["publish_us"]["count"], 80, "{m}");
    assert_eq!(m["errors"]["total"], 0, "{m}");
    // The merged result's report: its figures and charts, as for a run.
    let page = std::fs::read_to_string(&html).expect("the merged report");
    assert!(page.contains("<svg") && page.contains("publish"), "{page}");
}

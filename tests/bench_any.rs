//! `strand bench` against servers that are not strand, written here: TLS
//! with a private CA, a required header, a required subprotocol; refused
//! upgrades and untrusted certificates counted by cause, and the exit
//! status a CI job reads.
mod bench_util;

use bench_util::{bench, bench_in, EchoOptions, EchoServer, TestCa, UNAUTHORIZED_BODY};
use std::time::Duration;

/// A TLS echo server that wants `X-Token: t` and the subprotocol `chat`.
fn guarded(ca: &TestCa) -> EchoServer {
    EchoServer::start(
        EchoOptions::default()
            .tls(ca)
            .header("X-Token", "t")
            .subprotocol("chat"),
    )
}

#[test]
fn wss_with_a_ca_a_header_and_a_subprotocol_succeeds() {
    let ca = TestCa::new();
    let server = guarded(&ca);
    let url = format!("{}/echo", server.url);
    let cacert = ca.pem_path();
    let out = bench(&[
        "echo",
        "--url",
        &url,
        "--cacert",
        cacert.to_str().unwrap(),
        "-H",
        "X-Token: t",
        "--subprotocol",
        "v0.other",
        "--subprotocol",
        "chat",
        "--origin",
        "https://example.org",
        "--clients",
        "3",
        "--messages",
        "20",
    ]);
    assert_eq!(out.code, 0, "{out}");
    let j = out.json();
    assert_eq!(j["url"], url.as_str());
    assert_eq!(j["connected"], 3, "{j}");
    assert_eq!(j["messages"], 60, "{j}");
    assert_eq!(j["errors"]["total"], 0, "{j}");
    assert_eq!(j["subprotocol"], "chat", "{j}");
    assert_eq!(j["subprotocols"]["chat"], 3, "{j}");
    // What runs over several machines and reports are drawn from.
    assert_eq!(j["label"], format!("echo {url}"));
    assert!(
        j["started_at_ms"].as_u64().unwrap() > 1_600_000_000_000,
        "{j}"
    );
    assert!(j["duration_s"].as_f64().unwrap() > 0.0, "{j}");
    let series = j["series"].as_array().unwrap();
    let sent: u64 = series.iter().map(|s| s["messages"].as_u64().unwrap()).sum();
    assert_eq!(sent, 60, "{j}");
    for key in ["t", "errors", "connections", "p99_us"] {
        assert!(series[0].get(key).is_some(), "{key}: {j}");
    }
    assert!(out.stdout.contains("subprotocol") && out.stdout.contains("chat (3)"));
    // Key exchange as browsers do it, not ring's default P-384 first.
    assert_eq!(*server.kx_groups.lock().unwrap(), ["X25519"; 3]);
}

#[test]
fn an_untrusted_certificate_is_counted_by_cause_and_exits_1() {
    let ca = TestCa::new();
    let server = guarded(&ca);
    let out = bench(&[
        "hold",
        "--url",
        &server.url,
        "-H",
        "X-Token: t",
        "--subprotocol",
        "chat",
        "--clients",
        "2",
        "--duration",
        "0.1",
    ]);
    assert_eq!(out.code, 1, "{out}");
    let j = out.json();
    assert_eq!(j["connected"], 0, "{j}");
    let kinds = j["errors"]["kinds"].as_object().unwrap();
    let (kind, n) = kinds.iter().next().unwrap();
    assert!(
        kind.starts_with("tls: ") && kind.contains("certificate"),
        "{j}"
    );
    assert_eq!(n, 2, "{j}");
    assert!(out.stderr.contains("no client connected"), "{out}");
}

#[test]
fn insecure_skips_the_certificate_check_with_a_warning() {
    let ca = TestCa::new();
    let server = guarded(&ca);
    let out = bench(&[
        "echo",
        "--url",
        &server.url,
        "--insecure",
        "-H",
        "X-Token: t",
        "--subprotocol",
        "chat",
        "--clients",
        "1",
        "--messages",
        "5",
    ]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(out.json()["messages"], 5);
    assert!(out.stderr.contains("--insecure"), "{out}");
}

#[test]
fn a_refused_upgrade_shows_its_status_and_body() {
    let ca = TestCa::new();
    let server = guarded(&ca);
    let cacert = ca.pem_path();
    let out = bench(&[
        "echo",
        "--url",
        &server.url,
        "--cacert",
        cacert.to_str().unwrap(),
        "--subprotocol",
        "chat",
        "--clients",
        "2",
        "--messages",
        "5",
    ]);
    assert_eq!(out.code, 1, "{out}");
    let j = out.json();
    assert_eq!(j["errors"]["kinds"]["http 401"], 2, "{j}");
    assert_eq!(j["errors"]["samples"]["http 401"], UNAUTHORIZED_BODY, "{j}");
    assert!(out.stdout.contains(UNAUTHORIZED_BODY), "{out}");
}

#[test]
fn a_required_subprotocol_not_offered_is_refused_and_counted() {
    let server = EchoServer::start(EchoOptions::default().subprotocol("chat"));
    let out = bench(&[
        "connect",
        "--url",
        &server.url,
        "--threads",
        "1",
        "--duration",
        "0.2",
    ]);
    assert_eq!(out.code, 1, "{out}");
    let j = out.json();
    assert!(
        j["errors"]["kinds"]["http 400"].as_u64().unwrap() > 0,
        "{j}"
    );
}

#[test]
fn a_bad_header_or_cacert_stops_the_run_before_it_starts() {
    let server = EchoServer::start(EchoOptions::default());
    let out = bench(&["echo", "--url", &server.url, "-H", "no colon"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.json.is_none());
    assert!(out.stderr.contains("Name: value"), "{out}");
    let tls_url = server.url.replace("ws://", "wss://");
    let out = bench(&["echo", "--url", &tls_url, "--cacert", "/nonexistent.pem"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("--cacert"), "{out}");
}

#[test]
fn thresholds_gate_the_exit_status() {
    let server = EchoServer::start(EchoOptions::default());
    let run = |thresholds: &[&str]| {
        let mut args = vec![
            "echo",
            "--url",
            &server.url,
            "--clients",
            "2",
            "--messages",
            "20",
        ];
        for t in thresholds {
            args.extend_from_slice(&["--threshold", t]);
        }
        bench(&args)
    };
    let held = run(&["errors==0", "p(99)<10s", "rate>0", "connected==2"]);
    assert_eq!(held.code, 0, "{held}");
    let verdicts = held.json()["thresholds"].as_array().unwrap().clone();
    assert_eq!(verdicts.len(), 4);
    assert!(verdicts.iter().all(|v| v["ok"] == true), "{held}");
    assert_eq!(verdicts[1]["metric"], "rtt");
    assert!(held.stdout.contains("threshold p(99)<10s"), "{held}");

    // No round trip takes under a microsecond; the other one holds.
    let crossed = run(&["p(99)<1us", "errors==0"]);
    assert_eq!(crossed.code, 99, "{crossed}");
    let j = crossed.json();
    assert_eq!(j["thresholds"][0]["ok"], false, "{j}");
    assert!(j["thresholds"][0]["actual"].as_f64().unwrap() >= 1.0, "{j}");
    assert_eq!(j["thresholds"][1]["ok"], true, "{j}");
    assert!(
        crossed.stderr.contains("threshold crossed: p(99)<1us"),
        "{crossed}"
    );
    assert!(!crossed.stderr.contains("errors==0"), "{crossed}");
    assert!(crossed.stdout.contains("CROSSED"), "{crossed}");

    let bad = run(&["p(99)<soon"]);
    assert_eq!(bad.code, 1, "{bad}");
    assert!(bad.json.is_none());
    assert!(bad.stderr.contains("not a duration"), "{bad}");
}

/// The share of a latency's samples at or above `us`, from its JSON buckets.
fn share_at_least(latency: &serde_json::Value, us: u64) -> f64 {
    let buckets = latency["histogram"].as_array().unwrap();
    let (mut slow, mut all) = (0, 0);
    for b in buckets {
        let (v, n) = (b[0].as_u64().unwrap(), b[1].as_u64().unwrap());
        all += n;
        if v >= us {
            slow += n;
        }
    }
    slow as f64 / all.max(1) as f64
}

#[test]
fn open_loop_shows_a_stall_that_the_closed_loop_hides() {
    // The server holds every reply for the first 200 ms of each second.
    let server = EchoServer::start(
        EchoOptions::default().stall(Duration::from_secs(1), Duration::from_millis(200)),
    );
    let run = |extra: &[&str]| {
        let mut args = vec![
            "echo",
            "--url",
            &server.url,
            "--clients",
            "2",
            "--duration",
            "2.5",
        ];
        args.extend_from_slice(extra);
        let out = bench(&args);
        assert_eq!(out.code, 0, "{out}");
        out.json().clone()
    };
    let open = run(&["--rate", "200"]);
    let closed = run(&[]);
    assert_eq!(open["offered_rate"], 200.0);
    assert_eq!(open["errors"]["total"], 0, "{open}");
    // Open loop: every message due during a stall waits for its end.
    let open_p99 = open["rtt_us"]["p99"].as_u64().unwrap();
    assert!(
        open_p99 >= 150_000,
        "open-loop p99 {open_p99} µs hides the stall"
    );
    // Closed loop: one slow round trip per stall and client, so a smaller
    // share of its samples sees the stall.
    let (open_slow, closed_slow) = (
        share_at_least(&open["rtt_us"], 100_000),
        share_at_least(&closed["rtt_us"], 100_000),
    );
    println!(
        "open loop: p99 {open_p99} µs, {open_slow:.3} of samples >= 100 ms; \
         closed loop: p99 {} µs, {closed_slow:.4}",
        closed["rtt_us"]["p99"]
    );
    assert!(
        open_slow >= 0.05,
        "open loop: {open_slow} of samples >= 100 ms"
    );
    assert!(
        closed_slow < open_slow,
        "closed loop {closed_slow} vs open loop {open_slow} of samples >= 100 ms"
    );
}

#[test]
fn three_segments_merged_equal_one_run() {
    let server = EchoServer::start(EchoOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "echo",
        "--url",
        &server.url,
        "--clients",
        "7",
        "--messages",
        "10",
    ];
    let whole = bench(&args);
    assert_eq!(whole.code, 0, "{whole}");
    let whole = whole.json().clone();

    // Three machines' shares, started together.
    let start_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        + 0.5;
    let start_at = format!("{start_at:.3}");
    let segments: Vec<serde_json::Value> = std::thread::scope(|s| {
        let runs: Vec<_> = ["1/3", "2/3", "3/3"]
            .iter()
            .map(|segment| {
                let mut a = args.to_vec();
                a.extend_from_slice(&["--segment", segment, "--start-at", &start_at]);
                let dir = dir.path();
                s.spawn(move || bench_in(dir, &a))
            })
            .collect();
        runs.into_iter()
            .map(|r| {
                let out = r.join().unwrap();
                assert_eq!(out.code, 0, "{out}");
                out.json().clone()
            })
            .collect()
    });
    let clients: Vec<_> = segments
        .iter()
        .map(|j| j["clients"].as_u64().unwrap())
        .collect();
    assert_eq!(clients, vec![2, 2, 3]);
    assert_eq!(segments[1]["segment"], "2/3");

    let files: Vec<String> = segments
        .iter()
        .enumerate()
        .map(|(i, j)| {
            let path = dir.path().join(format!("segment-{i}.json"));
            std::fs::write(&path, j.to_string()).unwrap();
            path.to_str().unwrap().to_string()
        })
        .collect();
    let mut merge_args = vec!["merge"];
    merge_args.extend(files.iter().map(String::as_str));
    merge_args.extend_from_slice(&["--threshold", "messages==70", "--threshold", "errors==0"]);
    let merged = bench_in(dir.path(), &merge_args);
    assert_eq!(merged.code, 0, "{merged}");
    assert!(merged.stdout.starts_with("strand bench echo "), "{merged}");
    let m = merged.json();
    for key in [
        "clients",
        "connected",
        "messages",
        "clients_connected",
        "size",
    ] {
        assert_eq!(m[key], whole[key], "{key}: {m}");
    }
    assert_eq!(m["rtt_us"]["count"], whole["rtt_us"]["count"]);
    assert_eq!(m["errors"]["total"], 0);
    assert_eq!(m["merged"], serde_json::json!(["1/3", "2/3", "3/3"]));
    let recorded: u64 = m["rtt_us"]["histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b[1].as_u64().unwrap())
        .sum();
    assert_eq!(recorded, 70);
    let series: u64 = m["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["messages"].as_u64().unwrap())
        .sum();
    assert_eq!(series, 70, "{m}");
    assert!(m["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["ok"] == true));

    // A threshold crossed on the merged figures exits 99.
    merge_args.extend_from_slice(&["--threshold", "connected>=8"]);
    let crossed = bench_in(dir.path(), &merge_args);
    assert_eq!(crossed.code, 99, "{crossed}");
}

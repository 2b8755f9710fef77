//! `strand bench` against servers that are not strand, written here: TLS
//! with a private CA, a required header, a required subprotocol; refused
//! upgrades and untrusted certificates counted by cause, and the exit
//! status a CI job reads.
mod bench_util;

use bench_util::{bench, EchoOptions, EchoServer, TestCa, UNAUTHORIZED_BODY};

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
    assert!(out.stdout.contains("subprotocol") && out.stdout.contains("chat (3)"));
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

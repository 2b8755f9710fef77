//! TLS on the serving port (`--tls-cert`/`--tls-key`): every endpoint over
//! `wss://` and `https://`, TLS 1.2 and 1.3, plain HTTP sent to the TLS
//! port, the head deadline covering the handshake, silent handshakes
//! holding no thread, handshake failures by reason, the expiry gauge, and
//! start refused for a bad pair. Clients trust a CA made for each test.
mod support;
mod tls_util;

use serde_json::json;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};
use support::Server;
use tls_util::{https, metric_in, wss, TestCa};
use tungstenite::Message;

/// A server on port 0 serving a fresh leaf of `ca`, with `args`.
fn tls_server(ca: &TestCa, args: &[&str]) -> (Server, tls_util::Leaf) {
    let dir = tempfile::tempdir().unwrap();
    let leaf = ca.leaf();
    let (cert, key) = leaf.write(dir.path());
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let mut all = vec!["--tls-cert", &cert, "--tls-key", &key];
    all.extend_from_slice(args);
    (Server::start_in(dir, &all), leaf)
}

fn metrics(server: &Server, ca: &TestCa) -> String {
    let (status, text) = https(server.addr, ca.client(&[]), "GET", "/metrics", &[], "");
    assert_eq!(status, 200);
    text
}

fn read_text(ws: &mut tungstenite::WebSocket<impl Read + Write>) -> String {
    loop {
        match ws.read().expect("read") {
            Message::Text(t) => return t.to_string(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected text, got {other:?}"),
        }
    }
}

#[test]
fn echo_rooms_and_the_hub_work_over_wss() {
    let ca = TestCa::new();
    let (server, _) = tls_server(&ca, &[]);
    let config = ca.client(&[]);

    let mut echo = wss(server.addr, config.clone(), "/ws");
    echo.send(Message::text("over TLS")).unwrap();
    assert_eq!(echo.read().unwrap(), Message::text("over TLS"));
    // A message larger than one TLS record (16 KiB) in both directions.
    let big = vec![7u8; 300 * 1024];
    echo.send(Message::binary(big.clone())).unwrap();
    assert_eq!(echo.read().unwrap(), Message::binary(big));

    let mut alice = wss(server.addr, config.clone(), "/ws/lobby/alice");
    let mut bob = wss(server.addr, config.clone(), "/ws/lobby/bob");
    assert_eq!(read_text(&mut alice), "system: bob joined lobby");
    bob.send(Message::text("hello over tls")).unwrap();
    assert_eq!(read_text(&mut alice), "bob: hello over tls");

    let mut hub = wss(server.addr, config, "/ws/chat/ann");
    let welcome: serde_json::Value = serde_json::from_str(&read_text(&mut hub)).unwrap();
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    hub.send(Message::text(
        json!({"type": "join_room", "room_name": "lobby"}).to_string(),
    ))
    .unwrap();
    assert_eq!(read_text(&mut alice), "system: ann joined lobby");

    echo.close(None).unwrap();
    loop {
        match echo.read() {
            Ok(Message::Close(_)) | Err(tungstenite::Error::ConnectionClosed) => break,
            Ok(_) => continue,
            Err(e) => panic!("close: {e}"),
        }
    }
}

#[test]
fn http_endpoints_answer_over_https_with_the_expiry_gauge() {
    let ca = TestCa::new();
    let (server, leaf) = tls_server(&ca, &[]);
    let config = ca.client(&[]);
    let (status, body) = https(server.addr, config.clone(), "GET", "/healthz", &[], "");
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["status"],
        "ok"
    );
    let (status, page) = https(server.addr, config.clone(), "GET", "/", &[], "");
    assert_eq!(status, 200);
    assert!(page.contains("<html"), "the page, whole");

    let mut alice = wss(server.addr, config.clone(), "/ws/news/alice");
    let (status, body) = https(
        server.addr,
        config.clone(),
        "POST",
        "/broadcast",
        &[],
        r#"{"room":"news","message":"extra"}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(read_text(&mut alice), "[broadcast] extra");

    let (status, body) = https(server.addr, config.clone(), "GET", "/nope", &[], "");
    assert_eq!(status, 404);
    support::assert_json_error(&body);

    let text = metrics(&server, &ca);
    let expiry = metric_in(&text, "strand_tls_certificate_expiry_timestamp_seconds");
    // The leaf is valid until 2040-01-01T00:00:00Z.
    assert_eq!(expiry, Some(2_208_988_800.0), "{text}");
    assert_eq!(
        strand::tls::validity::not_after(&leaf.der),
        Some(2_208_988_800)
    );
    assert!(text.contains("strand_tls_handshake_failures_total{reason=\"not_tls\"} 0"));
}

#[test]
fn tls_1_2_and_1_3_both_handshake() {
    let ca = TestCa::new();
    let (server, leaf) = tls_server(&ca, &[]);
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let config = ca.client(&[version]);
        let stream = tls_util::connect(server.addr, config.clone()).expect("handshake");
        assert_eq!(stream.conn.protocol_version(), Some(version.version));
        assert_eq!(stream.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
        assert_eq!(tls_util::peer_leaf(&stream), leaf.der);
        let mut ws = wss(server.addr, config, "/ws");
        ws.send(Message::text(format!("{:?}", version.version)))
            .unwrap();
        assert_eq!(
            ws.read().unwrap(),
            Message::text(format!("{:?}", version.version))
        );
    }
}

#[test]
fn plain_http_to_the_tls_port_is_told_to_use_tls() {
    let ca = TestCa::new();
    let (server, _) = tls_server(&ca, &[]);
    let (status, _, body) = server.http_raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 400);
    assert!(body.contains("https://"), "{body}");
    support::assert_json_error(&body);
    let text = metrics(&server, &ca);
    assert_eq!(
        metric_in(
            &text,
            "strand_tls_handshake_failures_total{reason=\"not_tls\"}"
        ),
        Some(1.0)
    );
}

#[test]
fn a_client_that_does_not_trust_the_certificate_is_counted() {
    let ca = TestCa::new();
    let (server, _) = tls_server(&ca, &[]);
    let stranger = TestCa::new();
    let refused = tls_util::connect(server.addr, stranger.client(&[]));
    assert!(refused.is_err(), "an unknown CA is refused by the client");
    // The server learns it from the client's alert; the count follows.
    let deadline = Instant::now() + support::WAIT;
    loop {
        let text = metrics(&server, &ca);
        let n = metric_in(
            &text,
            "strand_tls_handshake_failures_total{reason=\"bad_certificate\"}",
        );
        if n == Some(1.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not counted: {text}\nlog:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_silent_tls_socket_is_cut_at_the_head_deadline() {
    let ca = TestCa::new();
    let (server, _) = tls_server(&ca, &[]);
    // A ClientHello, then nothing: the handshake never completes.
    let mut stream = TcpStream::connect(server.addr).unwrap();
    let accepted = Instant::now();
    let mut hello =
        rustls::ClientConnection::new(ca.client(&[]), "localhost".try_into().unwrap()).unwrap();
    let mut bytes = Vec::new();
    hello.write_tls(&mut bytes).unwrap();
    stream.write_all(&bytes).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut sink = Vec::new();
    let _ = stream.read_to_end(&mut sink);
    let cut = accepted.elapsed();
    assert!(
        cut >= Duration::from_millis(9500) && cut < Duration::from_millis(11500),
        "cut after {cut:?}"
    );
    let text = metrics(&server, &ca);
    assert_eq!(
        metric_in(
            &text,
            "strand_tls_handshake_failures_total{reason=\"timeout\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(metric_in(&text, "strand_heads_timed_out_total"), Some(1.0));
}

#[test]
fn heavy_5000_silent_sockets_and_half_done_handshakes_hold_no_thread() {
    let ca = TestCa::new();
    let (server, _) = tls_server(&ca, &[]);
    let threads = server.settled_threads();
    let config = ca.client(&[]);
    // 5,000 send nothing; 300 send their ClientHello, so the server has
    // answered and waits for the client's Finished, which never comes (a
    // handshake costs the server a few ms of the readiness thread in a
    // debug build, so not thousands of them within the 10 s deadline).
    let mut silent: Vec<TcpStream> = (0..5000)
        .map(|i| TcpStream::connect(server.addr).unwrap_or_else(|e| panic!("socket {i}: {e}")))
        .collect();
    let half_done = (0..300).map(|i| {
        let mut s = TcpStream::connect(server.addr).unwrap_or_else(|e| panic!("socket {i}: {e}"));
        let mut hello =
            rustls::ClientConnection::new(config.clone(), "localhost".try_into().unwrap()).unwrap();
        let mut bytes = Vec::new();
        hello.write_tls(&mut bytes).unwrap();
        s.write_all(&bytes).unwrap();
        s
    });
    silent.extend(half_done);
    let pending = || {
        let (_, text) = https(server.addr, ca.client(&[]), "GET", "/metrics", &[], "");
        metric_in(&text, "strand_heads_pending").unwrap_or(0.0)
    };
    // Heads are cut 10 s after accept: most waiting is enough.
    server.wait_until("the sockets to wait", || pending() >= 4800.0);
    assert!(
        server.live_threads() <= threads + 1,
        "{} threads with 5300 sockets in the door (baseline {threads})",
        server.live_threads()
    );
    let mut ws = wss(server.addr, config, "/ws");
    ws.send(Message::text("still here")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("still here"));
    drop(ws);
    for s in &silent {
        let _ = s.shutdown(Shutdown::Both);
    }
    drop(silent);
    server.wait_until("no head pending", || pending() == 0.0);
}

/// Runs `strand serve` with `args` (port 0, a fresh data dir) and returns
/// its exit status and log; it must refuse to start.
fn refused(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strand"))
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "it started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn start_is_refused_with_the_reason_for_a_bad_pair() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ca.leaf().write(dir.path());
    let other = dir.path().join("other-key.pem");
    std::fs::write(&other, ca.leaf().key_pem).unwrap();
    let (cert, key, other) = (
        cert.display().to_string(),
        key.display().to_string(),
        other.display().to_string(),
    );
    let missing = dir.path().join("missing.pem").display().to_string();

    let log = refused(&["--tls-cert", &missing, "--tls-key", &key]);
    assert!(log.contains("missing.pem"), "{log}");
    let log = refused(&["--tls-cert", &cert, "--tls-key", &other]);
    assert!(log.contains("does not match"), "{log}");
    let log = refused(&["--tls-cert", &cert]);
    assert!(log.contains("--tls-key"), "{log}");
    let log = refused(&["--tls-key", &key]);
    assert!(log.contains("--tls-cert"), "{log}");
    let log = refused(&["--tls-cert", &key, "--tls-key", &key]);
    assert!(log.contains("certificate"), "{log}");
}

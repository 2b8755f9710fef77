//! The HTTP answers of the front door: health, metrics, and every error
//! status of the contract, each with a JSON error body.
mod support;

use support::{assert_json_error, Server};

#[test]
fn healthz_reports_status_connections_uptime_and_broker() {
    let server = Server::start(&[]);
    let _ws = server.ws("/ws");
    let (status, v) = server.get_json("/healthz");
    assert_eq!(status, 200);
    assert_eq!(v["status"], "ok");
    assert_eq!(v["broker"], "local");
    assert_eq!(v["connections"], 1);
    assert!(v["uptime_s"].is_u64());
}

#[test]
fn metrics_are_prometheus_text() {
    let server = Server::start(&[]);
    let mut ws = server.ws("/ws");
    ws.send(tungstenite::Message::text("hi")).unwrap();
    ws.read().unwrap();
    let (status, head, body) = server.http_raw(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 200);
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    for family in [
        "strand_connections_current 1",
        "strand_connections_total 1",
        "strand_messages_in_total 1",
        "strand_messages_out_total",
        "strand_bytes_in_total 2",
        "strand_bytes_out_total",
        "strand_threads",
        "strand_heap_in_use_bytes",
        "strand_heap_free_bytes",
        "strand_close_codes_sent_total{code=\"1001\"}",
    ] {
        assert!(body.contains(family), "missing {family} in:\n{body}");
    }
}

#[test]
fn unknown_paths_are_404() {
    let server = Server::start(&[]);
    for path in ["/nope", "/ws/chat", "/ws/a/b/c", "/rooms/a/b"] {
        let (status, body) = server.http("GET", path, &[], "");
        assert_eq!(status, 404, "{path}");
        assert_json_error(&body);
    }
}

#[test]
fn wrong_methods_are_405_with_allow() {
    let server = Server::start(&[]);
    let (status, head, body) =
        server.http_raw(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(status, 405);
    assert!(head.contains("Allow: GET"));
    assert_json_error(&body);
    let (status, _) = server.http("GET", "/broadcast", &[], "");
    assert_eq!(status, 405);
    let (status, _) = server.http("DELETE", "/ws", &[], "");
    assert_eq!(status, 405);
}

#[test]
fn plain_get_on_ws_paths_is_426() {
    let server = Server::start(&[]);
    for path in ["/ws", "/ws/general/bob", "/ws/chat/alice"] {
        let (status, body) = server.http("GET", path, &[], "");
        assert_eq!(status, 426, "{path}");
        assert_json_error(&body);
    }
}

#[test]
fn bad_names_in_paths_are_400_before_any_upgrade() {
    let server = Server::start(&[]);
    let long = format!("/ws/chat/{}", "x".repeat(65));
    for path in [
        "/ws/chat/.dot",
        "/ws/room%20x/bob",
        "/ws/general/b@d",
        long.as_str(),
        "/rooms/$/count",
    ] {
        let (status, body) = server.http("GET", path, &[], "");
        assert_eq!(status, 400, "{path}");
        assert_json_error(&body);
    }
    match server.try_ws("/ws/chat/.dot") {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 400),
        other => panic!("expected 400, got {other:?}"),
    }
}

#[test]
fn heads_over_8_kib_are_431() {
    let server = Server::start(&[]);
    let big = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(9000)
    );
    let (status, _, body) = server.http_raw(big.as_bytes());
    assert_eq!(status, 431);
    assert_json_error(&body);
    // Just under the limit passes.
    let ok = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(7000)
    );
    assert_eq!(server.http_raw(ok.as_bytes()).0, 200);
}

#[test]
fn garbage_requests_are_400_and_the_server_keeps_serving() {
    let server = Server::start(&[]);
    let (status, _, body) = server.http_raw(b"\x16\x03\x01\x02\x00 not http\r\n\r\n");
    assert_eq!(status, 400);
    assert_json_error(&body);
    assert_eq!(server.get_json("/healthz").0, 200);
}

#[test]
fn upgrades_missing_a_key_or_with_another_version_are_refused() {
    let server = Server::start(&[]);
    let (status, _, _) = server.http_raw(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert_eq!(status, 400);
    let (status, head, _) = server.http_raw(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    );
    assert_eq!(status, 426);
    assert!(head.contains("Sec-WebSocket-Version: 13"));
}

#[test]
fn upgrades_over_max_connections_get_503_and_capacity_returns() {
    let server = Server::start(&["--max-connections", "2"]);
    let mut a = server.ws("/ws");
    let _b = server.ws("/ws");
    match server.try_ws("/ws") {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
            let body = String::from_utf8(response.body().clone().unwrap_or_default()).unwrap();
            assert_json_error(&body);
        }
        other => panic!("expected 503, got {other:?}"),
    }
    // Plain HTTP still works at capacity.
    assert_eq!(server.get_json("/healthz").1["connections"], 2);
    a.close(None).unwrap();
    support::close_code(&mut a);
    server.wait_until("a free slot", || {
        server.get_json("/healthz").1["connections"] == 1
    });
    let mut c = server.ws("/ws");
    c.send(tungstenite::Message::text("in")).unwrap();
    assert_eq!(c.read().unwrap(), tungstenite::Message::text("in"));
    assert!(server.metric("strand_connections_rejected_total") >= 1.0);
}

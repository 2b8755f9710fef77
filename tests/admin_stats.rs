//! `GET /admin/stats`, the operator view's JSON, over real sockets: the
//! contract's fields and shapes; connections, rooms and the per-second
//! series move when clients connect and send; a slow consumer, a
//! rate-limited client, a replaced one and a 503 over the limit are named
//! in `recent` (by id, else by address) within seconds.
mod hub_util;
mod support;

use hub_util::{hub, join};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::{send_json, RawClient, Server, WAIT};

/// Polls `/admin/stats` until `f` holds, failing with the last body after
/// [`WAIT`].
fn wait_stats(server: &Server, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, stats) = server.get_json("/admin/stats");
        assert_eq!(status, 200, "{stats}");
        if f(&stats) {
            return stats;
        }
        assert!(Instant::now() < deadline, "never {what}: {stats:#}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The events of `kind` in `recent`.
fn events<'a>(stats: &'a Value, kind: &str) -> Vec<&'a Value> {
    stats["recent"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .collect()
}

#[test]
fn the_contract_fields_with_their_shapes() {
    let server = Server::start(&["--max-connections", "50"]);
    let (status, s) = server.get_json("/admin/stats");
    assert_eq!(status, 200);
    for field in [
        "uptime_s",
        "connections",
        "threads",
        "rss_bytes",
        "messages_in_total",
        "messages_out_total",
        "open_fds",
        "max_connections",
    ] {
        assert!(s[field].is_u64(), "{field}: {s}");
    }
    assert_eq!(s["max_connections"], 50);
    assert!(s["threads"].as_u64().unwrap() >= 3, "{s}");
    assert!(s["rss_bytes"].as_u64().unwrap() > 1 << 20, "{s}");
    assert_eq!(s["broker"], "local");
    assert_eq!(s["broker_state"]["name"], "local");
    assert!(s["version"].is_string());
    assert_eq!(s["rooms"], json!([]));
    assert_eq!(s["recent"], json!([]));
    let series = s["series"].as_array().unwrap();
    assert_eq!(series.len(), 300);
    let now_s = s["now"].as_u64().unwrap() / 1000;
    let last_t = series[299]["t"].as_u64().unwrap();
    assert!(
        last_t + 1 >= now_s && last_t <= now_s,
        "last t {last_t}, now {now_s}"
    );
    for (i, e) in series.iter().enumerate() {
        assert_eq!(e["t"], last_t - 299 + i as u64, "consecutive seconds");
        for f in ["connections", "messages_in", "messages_out"] {
            assert!(e[f].is_u64(), "{e}");
        }
    }
}

#[test]
fn connections_rooms_and_the_series_move_with_traffic() {
    let server = Server::start(&[]);
    let mut busy: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|id| {
            let mut ws = hub(&server, id);
            join(&mut ws, id, "busy");
            ws
        })
        .collect();
    let mut quiet = hub(&server, "q");
    join(&mut quiet, "q", "quiet");
    let s = wait_stats(&server, "4 connections", |s| s["connections"] == 4);
    assert_eq!(s["rooms"][0]["room"], "busy", "largest first: {s}");
    assert_eq!(s["rooms"][0]["online"], 3);
    assert_eq!(s["rooms"][1]["room"], "quiet");
    assert_eq!(s["rooms"][1]["online"], 1);
    // "a" sends 10 messages a second; the series and busy's rate see it.
    let sent_before = s["messages_in_total"].as_u64().unwrap();
    let deadline = Instant::now() + WAIT;
    let mut n = 0;
    let stats = loop {
        send_json(
            &mut busy[0],
            json!({"type": "message", "room_name": "busy", "content": format!("m{n}")}),
        );
        n += 1;
        std::thread::sleep(Duration::from_millis(100));
        let (_, s) = server.get_json("/admin/stats");
        let series = s["series"].as_array().unwrap();
        let in_series: u64 = series
            .iter()
            .map(|e| e["messages_in"].as_u64().unwrap())
            .sum();
        let rate = s["rooms"][0]["messages_per_second"].as_f64().unwrap();
        if in_series > 0
            && series.iter().any(|e| e["connections"] == 4)
            && rate > 0.0
            && s["messages_in_total"].as_u64().unwrap() > sent_before
        {
            break s;
        }
        assert!(Instant::now() < deadline, "the series never moved: {s:#}");
    };
    let out: u64 = stats["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["messages_out"].as_u64().unwrap())
        .sum();
    assert!(out > 0, "messages out: {stats}");
    assert!(stats["rooms"][0]["messages_total"].as_u64().unwrap() >= 1);
    for ws in busy.iter_mut() {
        let _ = ws.close(None);
    }
    wait_stats(&server, "1 connection", |s| s["connections"] == 1);
}

#[test]
fn a_rate_limited_client_is_named_by_id_and_an_echo_client_by_address() {
    let server = Server::start(&["--max-messages-per-second", "5"]);
    let mut flood = RawClient::connect(&server, "/ws/chat/speedy");
    let frames = RawClient::frame(true, 0, 1, br#"{"type":"echo"}"#).repeat(8);
    flood.send_bytes(&frames);
    let s = wait_stats(&server, "speedy rate-limited", |s| {
        events(s, "rate_limited")
            .iter()
            .any(|e| e["client"] == "speedy")
    });
    let e = events(&s, "rate_limited")[0];
    assert!(e["at"].as_u64().unwrap() > 1_600_000_000_000);
    assert!(e["detail"].as_str().unwrap().contains("127.0.0.1:"), "{e}");
    // An echo client has no name: its address is.
    let mut echo = RawClient::connect(&server, "/ws");
    let port = echo.stream.local_addr().unwrap().port();
    echo.send_bytes(&RawClient::frame(true, 0, 1, b"x").repeat(8));
    wait_stats(&server, "the echo client named by address", |s| {
        events(s, "rate_limited")
            .iter()
            .any(|e| e["client"] == format!("127.0.0.1:{port}"))
    });
}

#[test]
fn a_slow_consumer_is_named_by_id() {
    let server = Server::start(&["--max-queue-bytes", "65536", "--ping-interval", "600"]);
    // "sloth" joins a room and never reads again.
    let mut sloth = hub(&server, "sloth");
    join(&mut sloth, "sloth", "flood");
    let message = "x".repeat(32 * 1024);
    let body = json!({"room": "flood", "message": message}).to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = server.http("POST", "/broadcast", &[], &body);
        assert_eq!(status, 200);
        let (_, s) = server.get_json("/admin/stats");
        if let Some(e) = events(&s, "slow_consumer").first() {
            assert_eq!(e["client"], "sloth", "{e}");
            assert!(e["detail"].as_str().unwrap().contains("1008"), "{e}");
            break;
        }
        assert!(Instant::now() < deadline, "sloth never cut: {s}");
    }
    drop(sloth);
}

#[test]
fn replaced_and_refused_clients_are_named() {
    let server = Server::start(&["--max-connections", "2"]);
    let _first = hub(&server, "twin");
    let _second = hub(&server, "twin");
    let s = wait_stats(&server, "twin replaced", |s| {
        !events(s, "replaced").is_empty()
    });
    assert_eq!(events(&s, "replaced")[0]["client"], "twin");
    // Two connections held: a third upgrade gets 503, named by its id.
    wait_stats(&server, "2 connections", |s| s["connections"] == 2);
    let refused = server.try_ws("/ws/chat/late");
    assert!(refused.is_err());
    let s = wait_stats(&server, "late refused", |s| {
        !events(s, "refused").is_empty()
    });
    let e = events(&s, "refused")[0];
    assert_eq!(e["client"], "late", "{e}");
    assert!(e["detail"].as_str().unwrap().contains("503"), "{e}");
    // Newest first.
    let at: Vec<u64> = s["recent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["at"].as_u64().unwrap())
        .collect();
    assert!(at.windows(2).all(|w| w[0] >= w[1]), "{at:?}");
}

#[test]
fn a_connection_over_its_address_share_is_named_by_address() {
    let server = Server::start(&["--max-connections-per-ip", "1"]);
    let held = server.ws("/ws");
    let (status, _, _) = server.http_raw(b"GET /healthz HTTP/1.1\r\n\r\n");
    assert_eq!(status, 503, "over its share");
    drop(held);
    // Once the held connection is gone, this address may ask again.
    let deadline = Instant::now() + WAIT;
    let s = loop {
        let (status, _, body) = server.http_raw(b"GET /admin/stats HTTP/1.1\r\n\r\n");
        if status == 200 {
            break serde_json::from_str::<Value>(&body).unwrap();
        }
        assert!(Instant::now() < deadline, "never 200 again: {status}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let e = events(&s, "refused")[0];
    assert!(
        e["client"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{e}"
    );
    assert!(e["detail"].as_str().unwrap().contains("per-ip"), "{e}");
}

#[test]
fn a_head_that_never_completes_is_named_by_address() {
    let server = Server::start(&[]);
    let mut slow = std::net::TcpStream::connect(server.addr).unwrap();
    let port = slow.local_addr().unwrap().port();
    std::io::Write::write_all(&mut slow, b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    // The door answers 408 10 s after accept; wait for the event a little longer.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, s) = server.get_json("/admin/stats");
        if let Some(e) = events(&s, "head_timeout").first() {
            assert_eq!(e["client"], format!("127.0.0.1:{port}"), "{e}");
            assert!(e["detail"].as_str().unwrap().contains("408"), "{e}");
            break;
        }
        assert!(Instant::now() < deadline, "no head_timeout: {s}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

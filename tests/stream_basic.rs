//! `start` / `stop` of the per-client stream over real sockets: the line
//! format and interval, offsets, the epoch, stop promptness and the errors.
mod follow_util;
mod support;

use follow_util::{error_code, hub, next_msg};
use serde_json::json;
use std::time::{Duration, Instant};
use support::{next_of_type, send_json, Server};

/// Parses `[<secs>.<ms>] data_<n>` into (millis, n).
fn parse_line(payload: &str) -> (u64, u64) {
    let rest = payload.strip_prefix('[').expect("starts with [");
    let (stamp, rest) = rest.split_once("] data_").expect("has ] data_");
    let (secs, ms) = stamp.split_once('.').expect("seconds.millis");
    assert_eq!(ms.len(), 3, "three digits of milliseconds in {payload:?}");
    let millis = secs.parse::<u64>().unwrap() * 1000 + ms.parse::<u64>().unwrap();
    (millis, rest.parse().expect("a number after data_"))
}

#[test]
fn lines_have_the_format_offsets_and_interval() {
    let server = Server::start(&[]);
    let mut ws = hub(&server, "alice");
    send_json(&mut ws, json!({"type": "start", "interval_ms": 50}));
    let started = next_msg(&mut ws);
    assert_eq!(started["type"], "started");
    assert_eq!(started["interval_ms"], 50);
    let epoch = started["epoch"]
        .as_str()
        .expect("started carries epoch")
        .to_string();
    let mut last_offset = 0;
    let mut stamps = Vec::new();
    for i in 1..=8u64 {
        let data = next_msg(&mut ws);
        assert_eq!(data["type"], "data", "{data}");
        assert_eq!(data["epoch"], epoch.as_str());
        let payload = data["payload"].as_str().unwrap();
        let (millis, n) = parse_line(payload);
        assert_eq!(n, i);
        let offset = data["offset"].as_u64().unwrap();
        // The offset is just past the line and its newline.
        assert_eq!(offset, last_offset + payload.len() as u64 + 1);
        last_offset = offset;
        stamps.push(millis);
    }
    assert_eq!(server.metric("strand_streams_running"), 1.0);
    let spread = stamps[7] - stamps[0];
    assert!(
        (300..5000).contains(&spread),
        "7 intervals of 50 ms took {spread} ms"
    );
    send_json(&mut ws, json!({"type": "stop"}));
    let stopped = next_of_type(&mut ws, "stopped");
    let lines = stopped["lines"].as_u64().unwrap();
    assert!(lines >= 8, "{stopped}");
    assert_eq!(server.metric("strand_streams_running"), 0.0);
    // The spool holds what was sent, and at most the one line the writer
    // appended as the stop came.
    let spool = std::fs::read_to_string(server.dir.path().join("data/alice.spool")).unwrap();
    let spooled = spool.lines().count() as u64;
    assert!(
        spooled == lines || spooled == lines + 1,
        "{spooled} spooled, {lines} sent"
    );
}

#[test]
fn stop_is_prompt_and_waits_for_nothing() {
    let server = Server::start(&[]);
    let mut ws = hub(&server, "bob");
    send_json(&mut ws, json!({"type": "start", "interval_ms": 10_000}));
    assert_eq!(next_msg(&mut ws)["type"], "started");
    // The first line is written at once.
    assert_eq!(next_msg(&mut ws)["type"], "data");
    let t = Instant::now();
    send_json(&mut ws, json!({"type": "stop"}));
    let stopped = next_msg(&mut ws);
    let took = t.elapsed();
    assert_eq!(stopped, json!({"type": "stopped", "lines": 1}));
    eprintln!("stop took {took:?} with a 10 s interval");
    assert!(took < Duration::from_secs(5), "stop took {took:?}");
}

#[test]
fn errors_leave_the_connection_open() {
    let server = Server::start(&[]);
    let mut ws = hub(&server, "carol");
    assert_eq!(error_code(&mut ws, json!({"type": "stop"})), "not_running");
    assert_eq!(
        error_code(&mut ws, json!({"type": "start", "producer": "nope"})),
        "unknown_producer"
    );
    assert_eq!(
        error_code(&mut ws, json!({"type": "start", "producer": "../x"})),
        "bad_name"
    );
    for producer in [json!(1), json!(["tick"])] {
        assert_eq!(
            error_code(&mut ws, json!({"type": "start", "producer": producer})),
            "bad_name"
        );
    }
    assert_eq!(
        error_code(&mut ws, json!({"type": "start", "interval_ms": 0})),
        "missing_field"
    );
    assert_eq!(
        error_code(&mut ws, json!({"type": "start", "interval_ms": "fast"})),
        "missing_field"
    );
    send_json(&mut ws, json!({"type": "start", "interval_ms": 60_000}));
    assert_eq!(next_msg(&mut ws)["type"], "started");
    assert_eq!(next_msg(&mut ws)["type"], "data");
    assert_eq!(
        error_code(&mut ws, json!({"type": "start"})),
        "already_running"
    );
    send_json(&mut ws, json!({"type": "stop"}));
    assert_eq!(next_msg(&mut ws)["type"], "stopped");
    assert_eq!(error_code(&mut ws, json!({"type": "stop"})), "not_running");
    // And it can start again.
    send_json(&mut ws, json!({"type": "start", "interval_ms": 60_000}));
    assert_eq!(next_msg(&mut ws)["type"], "started");
    assert_eq!(next_msg(&mut ws)["type"], "data");
    send_json(&mut ws, json!({"type": "stop"}));
    assert_eq!(next_msg(&mut ws), json!({"type": "stopped", "lines": 1}));
}

#[test]
fn disconnect_stops_the_stream_threads() {
    let server = Server::start(&[]);
    let before = server.live_threads();
    let mut ws = hub(&server, "dave");
    send_json(&mut ws, json!({"type": "start", "interval_ms": 5}));
    assert_eq!(next_msg(&mut ws)["type"], "started");
    assert_eq!(next_msg(&mut ws)["type"], "data");
    drop(ws);
    server.wait_until("stream threads to end", || server.live_threads() == before);
    let size = || {
        std::fs::metadata(server.dir.path().join("data/dave.spool"))
            .unwrap()
            .len()
    };
    let a = size();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(a, size(), "the writer still appends after the disconnect");
}

//! `strand bench pubsub`: fan-out through a pub/sub server that is not
//! strand (tests/bench_script_util's JSON pub/sub server), published over
//! a WebSocket and over HTTP POST; delivery latency, loss, duplicates and
//! reordering read back from `--json`.
mod bench_script_util;
mod bench_util;

use bench_script_util::PubSub;
use bench_util::bench;
use serde_json::Value;

/// `strand bench pubsub` of `messages` to `subscribers` on `topic` of
/// `server`, with `extra` flags; returns the exit code and JSON.
fn pubsub(server: &PubSub, topic: &str, subscribers: &str, extra: &[&str]) -> (i32, Value) {
    let subscribe = format!(r#"{{"type":"subscribe","topic":"{topic}"}}"#);
    let publish = format!(
        r#"{{"type":"publish","topic":"{topic}","data":{{"id":{{{{id}}}},"at":{{{{now_us}}}}}}}}"#
    );
    let mut args = vec![
        "pubsub",
        "--url",
        &server.ws_url,
        "--subscribers",
        subscribers,
        "--subscribe",
        &subscribe,
        "--ack",
        r#"$.type == "subscribed""#,
        "--publish",
        &publish,
        "--id",
        "$.data.id",
        "--sent",
        "$.data.at",
        "--messages",
        "50",
        "--rate",
        "1000",
        "--grace",
        "2",
    ];
    args.extend_from_slice(extra);
    let out = bench(&args);
    let code = out.code;
    (code, out.json().clone())
}

#[test]
fn every_subscriber_gets_every_message_published_over_a_websocket() {
    let server = PubSub::start();
    let (code, j) = pubsub(&server, "t", "5", &["--threshold", "lost==0"]);
    assert_eq!(code, 0, "{j}");
    assert_eq!(j["connected"], 5, "{j}");
    assert_eq!(j["sent"], 50, "{j}");
    assert_eq!(j["delivery"]["delivered"], 250, "{j}");
    assert_eq!(j["delivery"]["lost"], 0, "{j}");
    assert_eq!(j["delivery"]["duplicates"], 0, "{j}");
    assert_eq!(j["latency_us"]["count"], 250, "{j}");
    assert!(j["latency_us"]["p50"].as_u64().unwrap() > 0, "{j}");
    assert_eq!(j["errors"]["total"], 0, "{j}");
}

#[test]
fn messages_published_by_http_post_with_a_regex_to_find_the_stamp() {
    let server = PubSub::start();
    let publish = r#"{"topic":"t","data":{"id":{{id}},"at":{{now_us}}}}"#;
    let out = bench(&[
        "pubsub",
        "--url",
        &server.ws_url,
        "--subscribers",
        "3",
        "--subscribe",
        r#"{"type":"subscribe","topic":"t"}"#,
        "--ack",
        r#"$.type == "subscribed" && $.topic == "t""#,
        "--publish-url",
        &server.post_url,
        "--publish-header",
        "X-Api-Key: k",
        "--publish",
        publish,
        "--id",
        r#""id":(\d+)"#,
        "--sent",
        r#""at":(\d+)"#,
        "--messages",
        "40",
        "--rate",
        "1000",
    ]);
    let j = out.json();
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(j["sent"], 40, "{j}");
    assert_eq!(j["delivery"]["delivered"], 120, "{j}");
    assert_eq!(j["delivery"]["lost"], 0, "{j}");
    assert_eq!(j["latency_us"]["count"], 120, "{j}");
}

#[test]
fn loss_and_duplicates_of_a_misbehaving_server_are_counted() {
    let server = PubSub::start();
    let (code, j) = pubsub(&server, "lossy", "2", &["--threshold", "lost==0"]);
    assert_eq!(code, 99, "the lost==0 threshold is crossed: {j}");
    // Ids 3, 13, 23, 33, 43 never arrive, at either subscriber.
    assert_eq!(j["delivery"]["lost"], 10, "{j}");
    assert_eq!(j["delivery"]["receivers_with_loss"], 2, "{j}");
    assert_eq!(j["delivery"]["max_lost"], 5, "{j}");
    let (code, j) = pubsub(&server, "twice", "2", &[]);
    assert_eq!(code, 0, "{j}");
    assert_eq!(j["delivery"]["delivered"], 100, "{j}");
    // Each copy follows its first at once, but a subscriber stops reading
    // once it has every id: the last message's copy may go unread.
    let duplicates = j["delivery"]["duplicates"].as_u64().unwrap();
    assert!((98..=100).contains(&duplicates), "{j}");
}

#[test]
fn a_refused_post_is_counted_by_status() {
    let server = PubSub::start();
    let nowhere = server.post_url.replace("/publish", "/nowhere");
    let out = bench(&[
        "pubsub",
        "--url",
        &server.ws_url,
        "--subscribers",
        "1",
        "--publish-url",
        &nowhere,
        "--publish",
        "{}",
        "--id",
        "$.id",
        "--sent",
        "$.at",
        "--messages",
        "3",
        "--grace",
        "0.2",
    ]);
    let j = out.json();
    assert_eq!(j["sent"], 0, "{j}");
    assert_eq!(j["errors"]["kinds"]["publisher: http 400"], 3, "{j}");
    assert_eq!(j["delivery"]["lost"], 3, "{j}");
}

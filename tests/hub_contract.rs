//! The JSON hub's contract rows over real sockets: welcome, user_joined and
//! user_left, rooms, room and global messages, direct messages, presence
//! and echo.
mod hub_util;
mod support;

use hub_util::{drain, expect_error, hub, join, text_member};
use serde_json::json;
use support::{next_json, next_of_type, send_json, Server};

#[test]
fn welcome_then_user_joined_and_user_left_reach_the_others() {
    let server = Server::start(&["--ping-interval", "7"]);
    let mut a = server.ws("/ws/chat/a");
    let welcome = next_json(&mut a);
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["client_id"], "a");
    assert!(welcome["server"].as_str().unwrap().starts_with("strand/"));
    assert_eq!(welcome["heartbeat_s"], 7);
    assert!(welcome["heartbeat_s"].is_u64(), "an integer: {welcome}");

    let mut b = hub(&server, "b");
    assert_eq!(
        next_json(&mut a),
        json!({"type": "user_joined", "client_id": "b"})
    );
    assert!(drain(&mut b, "b").is_empty(), "b is not told about itself");
    b.close(None).unwrap();
    assert_eq!(
        next_json(&mut a),
        json!({"type": "user_left", "client_id": "b"})
    );
}

#[test]
fn join_message_and_leave_in_a_room() {
    let server = Server::start(&[]);
    let mut a = hub(&server, "a");
    let mut b = hub(&server, "b");
    join(&mut a, "a", "r");
    send_json(&mut b, json!({"type": "join_room", "room_name": "r"}));
    let expect = json!({"type": "room_join", "client_id": "b", "room_name": "r"});
    assert_eq!(next_of_type(&mut b, "room_join"), expect);
    assert_eq!(next_of_type(&mut a, "room_join"), expect);

    send_json(
        &mut a,
        json!({"type": "message", "content": "hi", "room_name": "r", "timestamp": 42}),
    );
    let mut epochs = Vec::new();
    for ws in [&mut a, &mut b] {
        let m1 = next_of_type(ws, "message");
        assert_eq!(m1["client_id"], "a");
        assert_eq!(m1["content"], "hi");
        assert_eq!(m1["room_name"], "r");
        assert_eq!(m1["seq"], 1);
        assert_eq!(m1["timestamp"], 42, "the client's timestamp is kept");
        epochs.push(m1["epoch"].as_str().unwrap().to_string());
    }
    send_json(
        &mut b,
        json!({"type": "message", "content": "yo", "room_name": "r"}),
    );
    for ws in [&mut a, &mut b] {
        let m2 = next_of_type(ws, "message");
        assert_eq!(
            (m2["client_id"].clone(), m2["seq"].clone()),
            (json!("b"), json!(2))
        );
        assert_eq!(m2["epoch"], epochs[0].as_str());
        let now = support_now();
        let t = m2["timestamp"].as_u64().unwrap();
        assert!(t <= now && now - t < 60_000, "server time in ms: {t}");
    }
    assert!(!epochs[0].is_empty() && epochs[0] == epochs[1]);

    send_json(&mut b, json!({"type": "leave_room", "room_name": "r"}));
    let left = json!({"type": "room_leave", "client_id": "b", "room_name": "r"});
    assert_eq!(next_json(&mut b), left, "the leaver is told");
    assert_eq!(next_json(&mut a), left);
    send_json(
        &mut a,
        json!({"type": "message", "content": "after", "room_name": "r"}),
    );
    assert_eq!(next_of_type(&mut a, "message")["seq"], 3);
    assert!(drain(&mut b, "b").is_empty(), "b no longer hears r");
}

#[test]
fn global_messages_reach_every_hub_client() {
    let server = Server::start(&[]);
    let mut a = hub(&server, "a");
    let mut b = hub(&server, "b");
    next_of_type(&mut a, "user_joined");
    send_json(&mut a, json!({"type": "message", "content": "all"}));
    for ws in [&mut a, &mut b] {
        let m = next_of_type(ws, "message");
        assert_eq!(m["client_id"], "a");
        assert_eq!(m["content"], "all");
        assert!(m["room_name"].is_null());
        assert!(m["timestamp"].as_u64().is_some());
        assert!(m.get("seq").is_none(), "global messages are not numbered");
    }
}

#[test]
fn direct_messages_reach_only_their_recipient() {
    let server = Server::start(&[]);
    let mut a = hub(&server, "a");
    let mut b = hub(&server, "b");
    let mut c = hub(&server, "c");
    send_json(
        &mut a,
        json!({"type": "direct", "to": "b", "content": "psst"}),
    );
    assert_eq!(
        next_of_type(&mut b, "direct"),
        json!({"type": "direct", "from": "a", "content": "psst"})
    );
    let c_got = drain(&mut c, "c");
    assert!(c_got.iter().all(|v| v["type"] != "direct"), "{c_got:?}");
    send_json(
        &mut a,
        json!({"type": "direct", "to": "nobody", "content": "x"}),
    );
    let e = next_of_type(&mut a, "error");
    assert_eq!(e["code"], "unknown_client");
}

#[test]
fn presence_lists_members_sorted() {
    let server = Server::start(&[]);
    let mut clients: Vec<_> = ["zed", "amy", "kim"]
        .iter()
        .map(|id| {
            let mut ws = hub(&server, id);
            join(&mut ws, id, "r");
            ws
        })
        .collect();
    let mut text = text_member(&server, "r", "bob", 4);
    let asker = &mut clients[0];
    send_json(asker, json!({"type": "presence", "room_name": "r"}));
    assert_eq!(
        next_of_type(asker, "presence"),
        json!({"type": "presence", "room_name": "r", "members": ["amy", "bob", "kim", "zed"]})
    );
    send_json(asker, json!({"type": "presence", "room_name": "empty"}));
    assert_eq!(next_of_type(asker, "presence")["members"], json!([]));
    text.close(None).unwrap();
}

#[test]
fn echo_returns_the_whole_message() {
    let server = Server::start(&[]);
    let mut a = hub(&server, "a");
    let original = json!({"type": "echo", "x": [1, 2], "timestamp": 7});
    send_json(&mut a, original.clone());
    assert_eq!(
        next_json(&mut a),
        json!({"type": "echo", "original": original, "timestamp": 7})
    );
    send_json(&mut a, json!({"type": "echo"}));
    assert!(next_json(&mut a)["timestamp"].as_u64().unwrap() > 1_600_000_000_000);
}

#[test]
fn heartbeat_s_is_whole_seconds_rounded_up() {
    let server = Server::start(&["--ping-interval", "0.25"]);
    let mut a = server.ws("/ws/chat/a");
    let welcome = next_json(&mut a);
    assert_eq!(welcome["heartbeat_s"], 1, "{welcome}");
    assert!(welcome["heartbeat_s"].is_u64(), "{welcome}");
}

#[test]
fn every_error_code_keeps_the_connection_open() {
    let server = Server::start(&[]);
    let mut a = hub(&server, "a");
    use tungstenite::Message;
    let cases: Vec<(&str, String)> = vec![
        ("invalid_json", "{nope".into()),
        ("invalid_json", "[1,2]".into()),
        ("missing_field", json!({"no": "type"}).to_string()),
        ("unknown_type", json!({"type": "dance"}).to_string()),
        ("missing_field", json!({"type": "join_room"}).to_string()),
        (
            "bad_name",
            json!({"type": "join_room", "room_name": 5}).to_string(),
        ),
        (
            "bad_name",
            json!({"type": "join_room", "room_name": ["r"]}).to_string(),
        ),
        (
            "bad_name",
            json!({"type": "join_room", "room_name": {"r": 1}}).to_string(),
        ),
        (
            "missing_field",
            json!({"type": "join_room", "room_name": null}).to_string(),
        ),
        (
            "bad_name",
            json!({"type": "leave_room", "room_name": 5}).to_string(),
        ),
        (
            "bad_name",
            json!({"type": "message", "content": "x", "room_name": ["r"]}).to_string(),
        ),
        (
            "bad_name",
            json!({"type": "direct", "to": 7, "content": "x"}).to_string(),
        ),
        (
            "bad_name",
            json!({"type": "presence", "room_name": true}).to_string(),
        ),
        (
            "bad_name",
            json!({"type": "join_room", "room_name": "a b"}).to_string(),
        ),
        (
            "bad_name",
            json!({"type": "join_room", "room_name": ".x"}).to_string(),
        ),
        (
            "missing_field",
            json!({"type": "join_room", "room_name": "r", "since": "x"}).to_string(),
        ),
        ("missing_field", json!({"type": "leave_room"}).to_string()),
        (
            "not_in_room",
            json!({"type": "leave_room", "room_name": "r"}).to_string(),
        ),
        ("missing_field", json!({"type": "message"}).to_string()),
        (
            "not_in_room",
            json!({"type": "message", "content": "x", "room_name": "r"}).to_string(),
        ),
        (
            "bad_name",
            json!({"type": "message", "content": "x", "room_name": "../x"}).to_string(),
        ),
        (
            "missing_field",
            json!({"type": "direct", "content": "x"}).to_string(),
        ),
        (
            "missing_field",
            json!({"type": "direct", "to": "b"}).to_string(),
        ),
        (
            "bad_name",
            json!({"type": "direct", "to": "", "content": "x"}).to_string(),
        ),
        (
            "unknown_client",
            json!({"type": "direct", "to": "b", "content": "x"}).to_string(),
        ),
        ("missing_field", json!({"type": "presence"}).to_string()),
        (
            "bad_name",
            json!({"type": "presence", "room_name": "é"}).to_string(),
        ),
    ];
    for (code, text) in cases {
        a.send(Message::text(text.clone())).unwrap();
        let v = next_json(&mut a);
        assert_eq!(v["type"], "error", "{text} -> {v}");
        assert_eq!(v["code"], code, "{text} -> {v}");
    }
    // Still open and working.
    join(&mut a, "a", "r");
    send_json(
        &mut a,
        json!({"type": "message", "content": "ok", "room_name": "r"}),
    );
    assert_eq!(next_of_type(&mut a, "message")["content"], "ok");
    expect_error_after_join(&mut a);
}

fn expect_error_after_join(a: &mut hub_util::Ws) {
    send_json(a, json!({"type": "leave_room", "room_name": "other"}));
    expect_error(a, "not_in_room");
}

fn support_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

//! Several instances on one Redis: everything a client sees is what it
//! would see if every client were on one instance (the contract's section
//! "Several instances on one Redis"). Each test starts its own
//! redis-server and two strand instances.
mod hub_util;
mod redis_util;
mod support;

use hub_util::{drain, expect_error, hub, join, text_member};
use redis_util::{instance, Redis};
use serde_json::json;
use support::{next_json, next_of_type, next_text, send_json};
use tungstenite::Message;

#[test]
fn hub_clients_on_two_instances_share_rooms_messages_and_presence() {
    let redis = Redis::start();
    let (one, two) = (instance(&redis, &[]), instance(&redis, &[]));
    let mut a = hub(&one, "a");
    let mut b = hub(&two, "b");
    assert_eq!(
        next_json(&mut a),
        json!({"type": "user_joined", "client_id": "b"})
    );
    join(&mut a, "a", "r");
    join(&mut b, "b", "r");
    let v = next_of_type(&mut a, "room_join");
    assert_eq!(v["client_id"], "b");

    send_json(&mut a, json!({"type": "presence", "room_name": "r"}));
    assert_eq!(next_json(&mut a)["members"], json!(["a", "b"]));
    for server in [&one, &two] {
        let (_, rooms) = server.get_json("/rooms");
        assert_eq!(rooms, json!({"rooms": [{"room": "r", "online": 2}]}));
        let (_, count) = server.get_json("/rooms/r/count");
        assert_eq!(count["online"], 2);
    }

    // One seq order, whoever sends, heard once by everyone.
    send_json(
        &mut a,
        json!({"type": "message", "room_name": "r", "content": "one", "timestamp": 5}),
    );
    let first = next_of_type(&mut b, "message");
    assert_eq!(first["seq"], 1);
    assert_eq!(first["timestamp"], 5);
    assert_eq!(next_of_type(&mut a, "message"), first);
    send_json(
        &mut b,
        json!({"type": "message", "room_name": "r", "content": "two"}),
    );
    for ws in [&mut a, &mut b] {
        let v = next_of_type(ws, "message");
        assert_eq!(
            (v["seq"].as_u64(), v["content"].as_str()),
            (Some(2), Some("two"))
        );
        assert_eq!(v["epoch"], first["epoch"]);
    }

    // Global messages and direct messages cross instances.
    send_json(&mut b, json!({"type": "message", "content": "to all"}));
    for ws in [&mut a, &mut b] {
        let v = next_of_type(ws, "message");
        assert!(v["room_name"].is_null() && v["content"] == "to all", "{v}");
    }
    send_json(
        &mut a,
        json!({"type": "direct", "to": "b", "content": "psst"}),
    );
    assert_eq!(
        next_of_type(&mut b, "direct"),
        json!({"type": "direct", "from": "a", "content": "psst"})
    );
    send_json(
        &mut a,
        json!({"type": "direct", "to": "nobody", "content": "x"}),
    );
    expect_error(&mut a, "unknown_client");

    // Leaving and disconnecting are announced across.
    send_json(&mut b, json!({"type": "leave_room", "room_name": "r"}));
    assert_eq!(next_json(&mut b)["type"], "room_leave");
    let v = next_of_type(&mut a, "room_leave");
    assert_eq!(v["client_id"], "b");
    b.close(None).unwrap();
    assert_eq!(
        next_json(&mut a),
        json!({"type": "user_left", "client_id": "b"})
    );
    assert!(drain(&mut a, "a").is_empty(), "nothing twice");
}

#[test]
fn text_and_hub_members_on_two_instances_share_a_room_and_broadcasts() {
    let redis = Redis::start();
    let (one, two) = (instance(&redis, &[]), instance(&redis, &[]));
    let mut a = hub(&one, "a");
    join(&mut a, "a", "r");
    let mut t = text_member(&two, "r", "tom", 2);
    let v = next_of_type(&mut a, "room_join");
    assert_eq!(v["client_id"], "tom");

    send_json(
        &mut a,
        json!({"type": "message", "room_name": "r", "content": "hi"}),
    );
    assert_eq!(next_text(&mut t), "a: hi");
    assert_eq!(next_of_type(&mut a, "message")["seq"], 1);
    t.send(Message::text("yo")).unwrap();
    let v = next_of_type(&mut a, "message");
    assert_eq!(
        (v["client_id"].as_str(), v["content"].as_str()),
        (Some("tom"), Some("yo"))
    );
    assert_eq!(v["seq"], 2);
    assert_eq!(next_text(&mut t), "tom: yo", "the sender hears itself");

    let (status, body) = one.http(
        "POST",
        "/broadcast",
        &[],
        r#"{"room":"r","message":"news"}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["online"],
        2
    );
    assert_eq!(next_text(&mut t), "[broadcast] news");
    assert_eq!(next_of_type(&mut a, "broadcast")["room_name"], "r");

    // To everyone: each hub client once, text members too; `online`
    // counts every instance.
    let mut c = hub(&two, "c");
    assert_eq!(next_of_type(&mut a, "user_joined")["client_id"], "c");
    let (status, body) = two.http("POST", "/broadcast", &[], r#"{"message":"all"}"#);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v, json!({"sent_to": "*", "online": 3}));
    for ws in [&mut a, &mut c] {
        let v = next_of_type(ws, "broadcast");
        assert!(v["room_name"].is_null() && v["message"] == "all", "{v}");
    }
    assert_eq!(next_text(&mut t), "[broadcast] all");

    drop(t);
    assert_eq!(next_of_type(&mut a, "room_leave")["client_id"], "tom");
    assert!(drain(&mut a, "a").is_empty());
    assert!(drain(&mut c, "c").is_empty());
}

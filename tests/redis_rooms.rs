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

/// Sends `n` room messages from `ws` (in `room`) and reads them back.
fn say(ws: &mut hub_util::Ws, room: &str, n: usize) -> Vec<serde_json::Value> {
    for i in 0..n {
        send_json(
            ws,
            json!({"type": "message", "room_name": room, "content": format!("m{i}")}),
        );
    }
    (0..n).map(|_| next_of_type(ws, "message")).collect()
}

#[test]
fn a_client_resumes_on_another_instance_from_the_shared_history() {
    let redis = Redis::start();
    let (one, two) = (
        instance(&redis, &["--room-history", "4"]),
        instance(&redis, &["--room-history", "4"]),
    );
    let mut a = hub(&one, "a");
    join(&mut a, "a", "r");
    let sent = say(&mut a, "r", 6);
    let epoch = sent[0]["epoch"].as_str().unwrap().to_string();
    let seqs: Vec<u64> = sent.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);

    // Within the history (which holds 3..6): everything after `since`,
    // then the room_join, then live messages.
    let mut b = hub(&two, "b");
    send_json(
        &mut b,
        json!({"type": "join_room", "room_name": "r", "since": 3, "epoch": epoch}),
    );
    assert_eq!(
        next_json(&mut b),
        json!({"type": "recovery", "room_name": "r", "epoch": epoch, "recovered": true})
    );
    for (seq, expected) in (4..=6).zip(&sent[3..]) {
        let v = next_json(&mut b);
        assert_eq!(v["seq"], seq);
        assert_eq!(&v, expected, "the replay is the message as first sent");
    }
    let v = next_json(&mut b);
    assert_eq!(
        (v["type"].as_str(), v["client_id"].as_str()),
        (Some("room_join"), Some("b"))
    );
    send_json(
        &mut a,
        json!({"type": "message", "room_name": "r", "content": "live"}),
    );
    assert_eq!(next_of_type(&mut b, "message")["seq"], 7);

    // Honest recovery: gone from the history, another epoch, the future.
    for (since, epoch, recovered, replayed) in [
        (1, Some(epoch.as_str()), false, 4),
        (5, Some("other"), false, 2),
        (99, None, false, 0),
        (7, None, true, 0),
    ] {
        let mut c = hub(&two, "c");
        let mut ask = json!({"type": "join_room", "room_name": "r", "since": since});
        if let Some(e) = epoch {
            ask["epoch"] = json!(e);
        }
        send_json(&mut c, ask);
        let v = next_json(&mut c);
        assert_eq!(v["type"], "recovery", "{v}");
        assert_eq!(v["recovered"], recovered, "since {since}: {v}");
        for _ in 0..replayed {
            assert_eq!(next_json(&mut c)["type"], "message");
        }
        assert_eq!(next_json(&mut c)["type"], "room_join");
        c.close(None).unwrap();
        while c.read().is_ok() {}
    }
}

#[test]
fn a_client_id_connected_to_another_instance_is_replaced_with_4001() {
    let redis = Redis::start();
    let (one, two) = (instance(&redis, &[]), instance(&redis, &[]));
    let mut watcher = hub(&two, "w");
    join(&mut watcher, "w", "r");
    let mut old = hub(&one, "a");
    join(&mut old, "a", "r");
    assert_eq!(next_of_type(&mut watcher, "user_joined")["client_id"], "a");
    assert_eq!(next_of_type(&mut watcher, "room_join")["client_id"], "a");

    let mut new = hub(&two, "a");
    assert_eq!(support::close_code(&mut old), 4001);
    let _ = old.flush(); // the close reply, so the server ends it now
                         // The id never went away: a second user_joined, no user_left; the
                         // replaced connection's room membership ends with a room_leave.
    assert_eq!(
        next_json(&mut watcher),
        json!({"type": "user_joined", "client_id": "a"})
    );
    let v = next_json(&mut watcher);
    assert_eq!(
        (v["type"].as_str(), v["client_id"].as_str()),
        (Some("room_leave"), Some("a"))
    );
    send_json(
        &mut watcher,
        json!({"type": "direct", "to": "a", "content": "hello"}),
    );
    assert_eq!(next_of_type(&mut new, "direct")["content"], "hello");
    assert!(drain(&mut watcher, "w").is_empty());
    assert_eq!(one.metric("strand_hub_replacements_total"), 1.0);
}

#[test]
fn system_notifications_come_from_the_clients_own_instance() {
    let redis = Redis::start();
    let noisy = instance(&redis, &["--notify-interval", "0.2"]);
    let quiet = instance(&redis, &[]);
    let mut a = hub(&noisy, "a");
    let mut b = hub(&quiet, "b");
    assert_eq!(
        next_of_type(&mut a, "system_notification")["priority"],
        "info"
    );
    let ticks = noisy.metric("strand_notifications_total");
    // Wait for two more ticks: `b` hears none of them, `a` hears each once.
    noisy.wait_until("two more ticks", || {
        noisy.metric("strand_notifications_total") >= ticks + 2.0
    });
    assert!(drain(&mut b, "b")
        .iter()
        .all(|v| v["type"] != "system_notification"));
    let heard = drain(&mut a, "a")
        .iter()
        .filter(|v| v["type"] == "system_notification")
        .count();
    assert!((2..=3).contains(&heard), "{heard} notifications");
}

#[test]
fn a_text_member_that_talks_at_once_is_heard() {
    let redis = Redis::start();
    let (one, two) = (instance(&redis, &[]), instance(&redis, &[]));
    let mut a = hub(&one, "a");
    join(&mut a, "a", "r");
    // No waiting for the join to be announced: the lines follow the
    // handshake at once.
    let mut t = two.ws("/ws/r/tom");
    for i in 0..20 {
        t.send(Message::text(format!("line {i}"))).unwrap();
    }
    for i in 0..20 {
        let v = next_of_type(&mut a, "message");
        assert_eq!(v["content"], format!("line {i}"));
    }
    for i in 0..20 {
        assert_eq!(
            next_text(&mut t),
            format!("tom: line {i}"),
            "no `not delivered`"
        );
    }
}

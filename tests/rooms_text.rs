//! Plain-text rooms over real sockets, and one room namespace shared with
//! hub clients, each member served in its own dialect.
mod hub_util;
mod support;

use hub_util::{drain, hub, join, text_member};
use serde_json::json;
use support::{next_json, next_of_type, next_text, send_json, Server};
use tungstenite::Message;

#[test]
fn joins_messages_and_leaves_as_plain_lines() {
    let server = Server::start(&[]);
    let mut alice = text_member(&server, "lobby", "alice", 1);
    let mut bob = text_member(&server, "lobby", "bob", 2);
    assert_eq!(next_text(&mut alice), "system: bob joined lobby");
    bob.send(Message::text("__pong__")).unwrap();
    bob.send(Message::text("hello there")).unwrap();
    assert_eq!(next_text(&mut alice), "bob: hello there");
    assert_eq!(
        next_text(&mut bob),
        "bob: hello there",
        "the sender hears itself, and not its own join nor the ignored __pong__"
    );
    bob.close(None).unwrap();
    assert_eq!(next_text(&mut alice), "system: bob left lobby");
}

#[test]
fn rooms_are_separate() {
    let server = Server::start(&[]);
    let mut a = server.ws("/ws/one/a");
    let mut b = server.ws("/ws/two/b");
    b.send(Message::text("in two")).unwrap();
    assert_eq!(next_text(&mut b), "b: in two");
    a.send(Message::text("in one")).unwrap();
    assert_eq!(
        next_text(&mut a),
        "a: in one",
        "nothing from room two came first"
    );
}

#[test]
fn text_and_hub_members_hear_each_other_in_their_own_dialect() {
    let server = Server::start(&[]);
    let mut h = hub(&server, "ann");
    join(&mut h, "ann", "mixed");
    let mut t = server.ws("/ws/mixed/bob");
    assert_eq!(
        next_json(&mut h),
        json!({"type": "room_join", "client_id": "bob", "room_name": "mixed"})
    );
    t.send(Message::text("hi from text")).unwrap();
    let m = next_json(&mut h);
    assert_eq!(m["type"], "message");
    assert_eq!(m["client_id"], "bob");
    assert_eq!(m["content"], "hi from text");
    assert_eq!(m["room_name"], "mixed");
    assert_eq!(m["seq"], 1);
    assert!(m["epoch"].is_string() && m["timestamp"].is_u64());
    assert_eq!(next_text(&mut t), "bob: hi from text");

    send_json(
        &mut h,
        json!({"type": "message", "content": "hi from hub", "room_name": "mixed"}),
    );
    assert_eq!(next_text(&mut t), "ann: hi from hub");
    assert_eq!(next_of_type(&mut h, "message")["seq"], 2);

    let (_, rooms) = server.get_json("/rooms");
    assert_eq!(rooms, json!({"rooms": [{"room": "mixed", "online": 2}]}));

    // A hub member joining and leaving is announced to text members.
    let mut c = hub(&server, "cy");
    join(&mut c, "cy", "mixed");
    assert_eq!(next_text(&mut t), "system: cy joined mixed");
    send_json(&mut c, json!({"type": "leave_room", "room_name": "mixed"}));
    assert_eq!(next_text(&mut t), "system: cy left mixed");
    assert_eq!(next_json(&mut c)["type"], "room_leave");
    t.close(None).unwrap();
    assert_eq!(next_of_type(&mut h, "room_leave")["client_id"], "cy");
    assert_eq!(next_of_type(&mut h, "room_leave")["client_id"], "bob");
    // The text member's lines are history for hub clients resuming.
    send_json(
        &mut c,
        json!({"type": "join_room", "room_name": "mixed", "since": 0}),
    );
    assert_eq!(next_json(&mut c)["type"], "recovery");
    assert_eq!(next_json(&mut c)["content"], "hi from text");
    assert_eq!(next_json(&mut c)["content"], "hi from hub");
    assert_eq!(next_json(&mut c)["type"], "room_join");
    assert!(drain(&mut c, "cy").is_empty());
}

#[test]
fn global_hub_messages_do_not_reach_text_rooms() {
    let server = Server::start(&[]);
    let mut t = text_member(&server, "r", "bob", 1);
    let mut h = hub(&server, "ann");
    send_json(&mut h, json!({"type": "message", "content": "global"}));
    assert_eq!(next_of_type(&mut h, "message")["content"], "global");
    t.send(Message::text("mine")).unwrap();
    assert_eq!(next_text(&mut t), "bob: mine");
}

//! Helpers for the rooms and hub tests: connect a hub client past its
//! welcome, and a barrier that proves nothing else was queued for a client.
#![allow(dead_code)]

use crate::support::{next_json, next_of_type, send_json, Server};
use serde_json::{json, Value};
use std::net::TcpStream;
use tungstenite::WebSocket;

/// A WebSocket client.
pub type Ws = WebSocket<TcpStream>;

/// Connects hub client `id` and reads its welcome.
pub fn hub(server: &Server, id: &str) -> Ws {
    let mut ws = server.ws(&format!("/ws/chat/{id}"));
    let welcome = next_json(&mut ws);
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(welcome["client_id"], id);
    ws
}

/// Sends `join_room` and reads up to this client's own `room_join`.
pub fn join(ws: &mut Ws, id: &str, room: &str) {
    send_json(ws, json!({"type": "join_room", "room_name": room}));
    loop {
        let v = next_of_type(ws, "room_join");
        if v["client_id"] == id && v["room_name"] == room {
            return;
        }
    }
}

/// Reads everything queued for hub client `id` so far: it sends itself a
/// direct message (queued behind everything already queued for it) and
/// returns what arrived before it.
pub fn drain(ws: &mut Ws, id: &str) -> Vec<Value> {
    let marker = format!("barrier-{}", rand_tag());
    send_json(ws, json!({"type": "direct", "to": id, "content": marker}));
    let mut got = Vec::new();
    loop {
        let v = next_json(ws);
        if v["type"] == "direct" && v["content"] == marker.as_str() {
            return got;
        }
        got.push(v);
    }
}

/// Expects the next message to be an `error` with `code`.
/// Hub clients `a` on `one` and `b` on `two`, both in room `r`; `a` sends
/// `content`, which must reach `b` as the room's first message. Returns
/// both sockets and that message as `b` got it.
pub fn first_message_across(one: &Server, two: &Server, content: &str) -> (Ws, Ws, Value) {
    let mut a = hub(one, "a");
    join(&mut a, "a", "r");
    let mut b = hub(two, "b");
    join(&mut b, "b", "r");
    send_json(
        &mut a,
        json!({"type": "message", "room_name": "r", "content": content}),
    );
    let m = next_of_type(&mut b, "message");
    assert_eq!(
        (m["content"].as_str(), m["seq"].as_u64()),
        (Some(content), Some(1))
    );
    (a, b, m)
}

pub fn expect_error(ws: &mut Ws, code: &str) {
    let v = next_json(ws);
    assert_eq!(v["type"], "error", "expected error {code}, got {v}");
    assert_eq!(v["code"], code, "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
}

fn rand_tag() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Connects text member `user` of `room` and waits until the room counts
/// `online` connections: the handshake completes before the server has
/// registered the member, and a text member gets no welcome to wait on.
pub fn text_member(server: &Server, room: &str, user: &str, online: u64) -> Ws {
    let ws = server.ws(&format!("/ws/{room}/{user}"));
    server.wait_until(&format!("{user} in {room}"), || {
        server.get_json(&format!("/rooms/{room}/count")).1["online"] == online
    });
    ws
}

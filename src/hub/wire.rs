//! The messages the hub sends, in both dialects: JSON objects for hub
//! clients and the plain lines of text rooms. Pure functions, no I/O, so the
//! shapes are unit-tested without a socket; [`frame`] encodes one of them
//! once for every recipient.

use crate::hub::audience::Frames;
use crate::ws::frame;
use serde_json::{json, Value};
use std::sync::Arc;

/// One text message encoded as a frame, shareable between recipients.
pub fn frame(text: &str) -> Arc<[u8]> {
    frame::text(text).into()
}

/// Both dialects' notice that `name` joined `room`.
pub fn join_notice(name: &str, room: &str) -> Frames {
    Frames {
        json: Some(frame(&room_join(name, room))),
        text: Some(frame(&text_joined(name, room))),
    }
}

/// Both dialects' notice that `name` left `room`.
pub fn leave_notice(name: &str, room: &str) -> Frames {
    Frames {
        json: Some(frame(&room_leave(name, room))),
        text: Some(frame(&text_left(name, room))),
    }
}

/// A `POST /broadcast` as a room's members see it: hub members only when
/// it was sent to the room (`!everyone`: to everyone, hub clients get it
/// through the client registry instead), text members when there are some.
pub fn broadcast_frames(room: &str, message: &str, everyone: bool, text: bool) -> Frames {
    Frames {
        json: (!everyone).then(|| frame(&broadcast(Some(room), message))),
        text: text.then(|| frame(&text_broadcast(message))),
    }
}

/// `{"type":"room_join",...}`: `client_id` joined `room`.
pub fn room_join(client_id: &str, room: &str) -> String {
    json!({"type": "room_join", "client_id": client_id, "room_name": room}).to_string()
}

/// `{"type":"room_leave",...}`: `client_id` left `room`.
pub fn room_leave(client_id: &str, room: &str) -> String {
    json!({"type": "room_leave", "client_id": client_id, "room_name": room}).to_string()
}

/// `{"type":"user_joined",...}`: a hub client connected.
pub fn user_joined(client_id: &str) -> String {
    json!({"type": "user_joined", "client_id": client_id}).to_string()
}

/// `{"type":"user_left",...}`: a hub client disconnected.
pub fn user_left(client_id: &str) -> String {
    json!({"type": "user_left", "client_id": client_id}).to_string()
}

/// A room message, numbered `seq` within `epoch`.
pub fn room_message(
    client_id: &str,
    content: &str,
    room: &str,
    seq: u64,
    epoch: &str,
    timestamp: &Value,
) -> String {
    json!({
        "type": "message",
        "client_id": client_id,
        "content": content,
        "room_name": room,
        "seq": seq,
        "epoch": epoch,
        "timestamp": timestamp,
    })
    .to_string()
}

/// A global message (`room_name` null) to every hub client.
pub fn global_message(client_id: &str, content: &str, timestamp: &Value) -> String {
    json!({
        "type": "message",
        "client_id": client_id,
        "content": content,
        "room_name": null,
        "timestamp": timestamp,
    })
    .to_string()
}

/// A direct message from `from`.
pub fn direct(from: &str, content: &str) -> String {
    json!({"type": "direct", "from": from, "content": content}).to_string()
}

/// A `POST /broadcast` as hub clients see it (`room` None: to everyone).
pub fn broadcast(room: Option<&str>, message: &str) -> String {
    json!({"type": "broadcast", "room_name": room, "message": message}).to_string()
}

/// A `system_notification`.
pub fn notification(message: &str, timestamp: u64) -> String {
    json!({
        "type": "system_notification",
        "message": message,
        "timestamp": timestamp,
        "priority": "info",
    })
    .to_string()
}

/// The `recovery` answer that precedes a `since` replay.
pub fn recovery(room: &str, epoch: &str, recovered: bool) -> String {
    json!({"type": "recovery", "room_name": room, "epoch": epoch, "recovered": recovered})
        .to_string()
}

/// The `presence` answer; `members` must already be sorted.
pub fn presence(room: &str, members: &[String]) -> String {
    json!({"type": "presence", "room_name": room, "members": members}).to_string()
}

/// Text rooms: `system: {user} joined {room}`.
pub fn text_joined(user: &str, room: &str) -> String {
    format!("system: {user} joined {room}")
}

/// Text rooms: `system: {user} left {room}`.
pub fn text_left(user: &str, room: &str) -> String {
    format!("system: {user} left {room}")
}

/// Text rooms: a message `T` from `user` is `{user}: T`.
pub fn text_said(user: &str, content: &str) -> String {
    format!("{user}: {content}")
}

/// Text rooms: what a member hears when its line could not be sent to the
/// room (Redis cannot be reached).
pub fn text_not_delivered() -> String {
    "system: not delivered: the room is unavailable (Redis cannot be reached)".to_string()
}

/// Text rooms: what a member hears when it joined while Redis cannot be
/// reached; it is in the room, and announced when Redis is back.
pub fn text_unavailable(room: &str) -> String {
    format!("system: {room} is unavailable (Redis cannot be reached); it will resume by itself")
}

/// Text rooms: what members hear when messages of the room were lost for
/// them (they left the history before this server could fetch them).
pub fn text_lost(room: &str) -> String {
    format!("system: some messages of {room} could not be recovered")
}

/// Text rooms: a broadcast is `[broadcast] {message}`.
pub fn text_broadcast(message: &str) -> String {
    format!("[broadcast] {message}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn room_messages_carry_seq_epoch_and_timestamp() {
        let v = parse(&room_message("a", "hi", "r", 7, "E", &json!(12)));
        assert_eq!(v["type"], "message");
        assert_eq!(v["client_id"], "a");
        assert_eq!(v["content"], "hi");
        assert_eq!(v["room_name"], "r");
        assert_eq!(v["seq"], 7);
        assert_eq!(v["epoch"], "E");
        assert_eq!(v["timestamp"], 12);
    }

    #[test]
    fn global_and_everyone_broadcasts_have_a_null_room() {
        assert!(parse(&global_message("a", "x", &json!(1)))["room_name"].is_null());
        assert!(parse(&broadcast(None, "x"))["room_name"].is_null());
        assert_eq!(parse(&broadcast(Some("r"), "x"))["room_name"], "r");
    }

    #[test]
    fn text_lines_match_the_contract() {
        assert_eq!(text_joined("bob", "r"), "system: bob joined r");
        assert_eq!(text_left("bob", "r"), "system: bob left r");
        assert_eq!(text_said("bob", "hi"), "bob: hi");
        assert_eq!(text_broadcast("hi"), "[broadcast] hi");
    }

    #[test]
    fn frames_are_encoded_text_frames() {
        assert_eq!(&*frame("hi"), &[0x81, 2, b'h', b'i']);
    }
}

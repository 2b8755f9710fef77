//! Decoding one JSON hub message into what it asks for: pure (text in, a
//! [`Request`] or the `error` to reply out), no I/O, no hub, so it can be
//! tested and fuzzed alone. Acting on the request is
//! [`super::hub::HubSession`]'s job; `start`, `stop`, `follow` and
//! `unfollow` are passed on whole to the stream layer, which checks their
//! fields with the same [`crate::wire::name_field`].

use crate::hub::room::Since;
use crate::wire::{name_field, unix_millis, ErrorCode, WireError};
use serde_json::{json, Value};

/// What a hub message asks for, its fields checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Request<'m> {
    /// `echo`: the whole message comes back, with this timestamp.
    Echo {
        /// The client's `timestamp` if it is a number, else the server's.
        timestamp: Value,
    },
    /// `join_room`, with `since` (and `epoch`) when resuming.
    JoinRoom {
        /// The room.
        room: &'m str,
        /// Where a resume starts.
        since: Option<Since>,
    },
    /// `leave_room`.
    LeaveRoom {
        /// The room.
        room: &'m str,
    },
    /// `message`, to a room or (without `room_name`, or null) to everyone.
    Message {
        /// The text.
        content: &'m str,
        /// The room; `None` for a global message.
        room: Option<&'m str>,
        /// The client's `timestamp` if it is a number, else the server's.
        timestamp: Value,
    },
    /// `direct` to one client.
    Direct {
        /// The addressee's `client_id`.
        to: &'m str,
        /// The text.
        content: &'m str,
    },
    /// `presence` of a room.
    Presence {
        /// The room.
        room: &'m str,
    },
    /// Any other type, for the stream layer (`start`, `stop`, `follow`,
    /// `unfollow`) or else `unknown_type`.
    Other(&'m str),
}

/// Parses `text` as a JSON object: `invalid_json` otherwise.
pub fn parse(text: &str) -> Result<Value, WireError> {
    match serde_json::from_str::<Value>(text) {
        Ok(message) if message.is_object() => Ok(message),
        Ok(_) => Err(WireError::new(
            ErrorCode::InvalidJson,
            "a message must be a JSON object",
        )),
        Err(e) => Err(WireError::new(
            ErrorCode::InvalidJson,
            format!("invalid JSON: {e}"),
        )),
    }
}

/// Decodes a parsed message: its `type` and that type's fields.
pub fn decode(message: &Value) -> Result<Request<'_>, WireError> {
    let ty = message["type"].as_str().ok_or_else(|| {
        WireError::new(
            ErrorCode::MissingField,
            "every message needs a string `type`",
        )
    })?;
    Ok(match ty {
        "echo" => Request::Echo {
            timestamp: timestamp_of(message),
        },
        "join_room" => Request::JoinRoom {
            room: name_field(message, "room_name")?,
            since: since_of(message)?,
        },
        "leave_room" => Request::LeaveRoom {
            room: name_field(message, "room_name")?,
        },
        "message" => Request::Message {
            content: content_of(message)?,
            room: match message.get("room_name") {
                None | Some(Value::Null) => None,
                Some(_) => Some(name_field(message, "room_name")?),
            },
            timestamp: timestamp_of(message),
        },
        "direct" => Request::Direct {
            to: name_field(message, "to")?,
            content: content_of(message)?,
        },
        "presence" => Request::Presence {
            room: name_field(message, "room_name")?,
        },
        other => Request::Other(other),
    })
}

/// The client's `timestamp` if it sent a number, else the server's time.
fn timestamp_of(message: &Value) -> Value {
    match message.get("timestamp") {
        Some(t) if t.is_number() => t.clone(),
        _ => json!(unix_millis()),
    }
}

fn content_of(message: &Value) -> Result<&str, WireError> {
    message
        .get("content")
        .and_then(Value::as_str)
        .ok_or_else(|| WireError::new(ErrorCode::MissingField, "`content` (a string) is required"))
}

/// The `since` (a non-negative integer) and optional `epoch` (a string)
/// of a `join_room`.
fn since_of(message: &Value) -> Result<Option<Since>, WireError> {
    let seq = match message.get("since") {
        None | Some(Value::Null) => return Ok(None),
        Some(v) => v.as_u64().ok_or_else(|| {
            WireError::new(
                ErrorCode::MissingField,
                "`since` must be a non-negative integer",
            )
        })?,
    };
    let epoch = match message.get("epoch") {
        None | Some(Value::Null) => None,
        Some(Value::String(e)) => Some(e.clone()),
        Some(_) => {
            return Err(WireError::new(
                ErrorCode::MissingField,
                "`epoch` must be a string",
            ))
        }
    };
    Ok(Some(Since { seq, epoch }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> &'static str {
        let message = match parse(text) {
            Ok(m) => m,
            Err(e) => return e.code.as_str(),
        };
        decode(&message).map_or_else(|e| e.code.as_str(), |_| "ok")
    }

    #[test]
    fn a_name_field_that_is_not_a_string_is_a_bad_name() {
        for room in ["5", "[\"r\"]", "{}", "true", "\"a b\""] {
            for ty in ["join_room", "leave_room", "presence"] {
                let text = format!(r#"{{"type":"{ty}","room_name":{room}}}"#);
                assert_eq!(code(&text), "bad_name", "{text}");
            }
            let text = format!(r#"{{"type":"message","content":"x","room_name":{room}}}"#);
            assert_eq!(code(&text), "bad_name", "{text}");
            let text = format!(r#"{{"type":"direct","content":"x","to":{room}}}"#);
            assert_eq!(code(&text), "bad_name", "{text}");
        }
        assert_eq!(code(r#"{"type":"join_room"}"#), "missing_field");
        assert_eq!(
            code(r#"{"type":"join_room","room_name":null}"#),
            "missing_field"
        );
    }

    #[test]
    fn a_null_room_name_makes_a_global_message() {
        let m = parse(r#"{"type":"message","content":"hi","room_name":null,"timestamp":5}"#);
        let m = m.unwrap();
        assert_eq!(
            decode(&m).unwrap(),
            Request::Message {
                content: "hi",
                room: None,
                timestamp: json!(5)
            }
        );
    }

    #[test]
    fn other_types_are_passed_on() {
        let m = parse(r#"{"type":"start"}"#).unwrap();
        assert_eq!(decode(&m).unwrap(), Request::Other("start"));
        assert_eq!(code("[1]"), "invalid_json");
        assert_eq!(code(r#"{"type":7}"#), "missing_field");
    }
}

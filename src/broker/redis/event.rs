//! What travels over Redis pub/sub and in the history streams, encoded and
//! decoded. Pure: no I/O, unit-tested.
//!
//! A room channel carries a room's events in the one order every instance
//! sees. A message is `SEQ EPOCH BODY`, where BODY is the JSON of a
//! [`Said`] (the same text the history stream keeps under `d`, with the
//! entry ID `SEQ-0`); every other room event is a JSON [`Notice`]. The
//! channel for every hub client and each instance's control channel carry
//! JSON [`Event`]s, each after the ID it has in that channel's capped log
//! stream (`ID JSON`; a [`Event::Wake`] is not logged and has no ID). Names are validated before they get here and hold only
//! `A-Z a-z 0-9 _ . -`, so the Lua scripts may build notices by
//! concatenation.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A message someone said: in a room, or to every hub client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Said {
    /// Who said it (`client_id` or text `user`).
    #[serde(rename = "n")]
    pub name: String,
    /// What.
    #[serde(rename = "c")]
    pub content: String,
    /// The `timestamp` members see.
    #[serde(rename = "t")]
    pub timestamp: Value,
}

/// A room event that is not a numbered message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "k")]
pub enum Notice {
    /// `name` joined; `who` is its `INSTANCE:CONN`.
    #[serde(rename = "j")]
    Joined {
        /// The member's name.
        #[serde(rename = "n")]
        name: String,
        /// Which connection joined.
        #[serde(rename = "w")]
        who: String,
    },
    /// `name` left; `who` is its `INSTANCE:CONN`.
    #[serde(rename = "l")]
    Left {
        /// The member's name.
        #[serde(rename = "n")]
        name: String,
        /// Which connection left.
        #[serde(rename = "w")]
        who: String,
    },
    /// A `POST /broadcast` to the room.
    #[serde(rename = "b")]
    Broadcast {
        /// The message.
        #[serde(rename = "m")]
        message: String,
    },
}

/// One event on a room channel.
#[derive(Debug, Clone, PartialEq)]
pub enum RoomEvent {
    /// A numbered message.
    Message {
        /// Its `seq`.
        seq: u64,
        /// The epoch of that `seq`.
        epoch: String,
        /// Who said what.
        said: Said,
    },
    /// A join, leave or broadcast.
    Notice(Notice),
}

/// An event for every hub client, or for one instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "k")]
pub enum Event {
    /// A hub client connected.
    #[serde(rename = "uj")]
    UserJoined {
        /// Its `client_id`.
        id: String,
    },
    /// A hub client disconnected.
    #[serde(rename = "ul")]
    UserLeft {
        /// Its `client_id`.
        id: String,
    },
    /// A global hub message.
    #[serde(rename = "g")]
    Global(Said),
    /// A `POST /broadcast` to everyone.
    #[serde(rename = "b")]
    BroadcastAll {
        /// The message.
        #[serde(rename = "m")]
        message: String,
    },
    /// A direct message for `to`, held by the instance it is sent to.
    #[serde(rename = "d")]
    Direct {
        /// The recipient.
        to: String,
        /// The sender.
        #[serde(rename = "n")]
        from: String,
        /// What.
        #[serde(rename = "c")]
        content: String,
    },
    /// `id` connected elsewhere: its connection `conn` here closes with 4001.
    #[serde(rename = "r")]
    Replace {
        /// The `client_id`.
        id: String,
        /// The replaced connection.
        conn: u64,
    },
    /// Wakes the subscriber thread (it has requests waiting), or answers
    /// its probe: nothing to deliver.
    #[serde(rename = "w")]
    Wake,
}

impl Event {
    /// The JSON text.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses an event; `None` for anything else.
    pub fn decode(payload: &[u8]) -> Option<Event> {
        serde_json::from_slice(payload).ok()
    }
}

/// The ID of an entry in a log stream (`MS-SEQ`), in order.
pub type LogId = (u64, u64);

/// Parses a stream entry ID.
pub fn log_id(id: &str) -> Option<LogId> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// Parses an event from the channel for every hub client or a control
/// channel: its log ID (none for a [`Event::Wake`]) and the event.
pub fn decode_logged(payload: &[u8]) -> Option<(Option<LogId>, Event)> {
    if payload.first() == Some(&b'{') {
        return Event::decode(payload).map(|e| (None, e));
    }
    let space = payload.iter().position(|b| *b == b' ')?;
    let id = log_id(std::str::from_utf8(&payload[..space]).ok()?)?;
    Some((Some(id), Event::decode(&payload[space + 1..])?))
}

/// The events of an `XRANGE` answer on a log stream, in order.
pub fn logged_entries(value: &redis::Value) -> Vec<(LogId, Event)> {
    fields_of(value, b"e")
        .into_iter()
        .filter_map(|(id, body)| Some((log_id(&id)?, Event::decode(&body)?)))
        .collect()
}

/// (entry ID, value of `field`) of each entry of an `XRANGE` answer.
fn fields_of(value: &redis::Value, field: &[u8]) -> Vec<(String, Vec<u8>)> {
    let redis::Value::Array(items) = value else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let redis::Value::Array(pair) = item else {
                return None;
            };
            let id: String = redis::from_redis_value(pair.first()?).ok()?;
            let fields: Vec<Vec<u8>> = redis::from_redis_value(pair.get(1)?).ok()?;
            let at = fields.iter().position(|f| f == field)?;
            Some((id, fields.get(at + 1)?.clone()))
        })
        .collect()
}

impl Notice {
    /// The JSON text.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl Said {
    /// The JSON text (a message's BODY).
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a BODY.
    pub fn decode(body: &[u8]) -> Option<Said> {
        serde_json::from_slice(body).ok()
    }
}

impl RoomEvent {
    /// Parses a room channel's payload; `None` for anything else.
    pub fn decode(payload: &[u8]) -> Option<RoomEvent> {
        if payload.first() == Some(&b'{') {
            return serde_json::from_slice(payload).ok().map(RoomEvent::Notice);
        }
        let mut parts = payload.splitn(3, |b| *b == b' ');
        let seq = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
        let epoch = std::str::from_utf8(parts.next()?).ok()?.to_string();
        let said = Said::decode(parts.next()?)?;
        Some(RoomEvent::Message { seq, epoch, said })
    }
}

/// The messages of an `XRANGE` answer on a history stream, in order, as
/// (`seq`, what was said); entries that do not parse are skipped.
pub fn entries(value: &redis::Value) -> Vec<(u64, Said)> {
    fields_of(value, b"d")
        .into_iter()
        .filter_map(|(id, body)| Some((seq_of_entry_id(&id)?, Said::decode(&body)?)))
        .collect()
}

/// The `seq` of a history stream entry ID (`SEQ-0`).
pub fn seq_of_entry_id(id: &str) -> Option<u64> {
    id.split('-').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn room_events_round_trip() {
        let said = Said {
            name: "a".into(),
            content: "hi there {\"x\"}".into(),
            timestamp: json!(1.5),
        };
        let payload = format!("7 E-1 {}", said.encode());
        assert_eq!(
            RoomEvent::decode(payload.as_bytes()),
            Some(RoomEvent::Message {
                seq: 7,
                epoch: "E-1".into(),
                said
            })
        );
        let joined = Notice::Joined {
            name: "b".into(),
            who: "i:3".into(),
        };
        assert_eq!(joined.encode(), r#"{"k":"j","n":"b","w":"i:3"}"#);
        assert_eq!(
            RoomEvent::decode(joined.encode().as_bytes()),
            Some(RoomEvent::Notice(joined))
        );
        // What the Lua scripts write by hand.
        assert_eq!(
            RoomEvent::decode(br#"{"k":"l","n":"b","w":"i:4"}"#),
            Some(RoomEvent::Notice(Notice::Left {
                name: "b".into(),
                who: "i:4".into()
            }))
        );
        assert_eq!(RoomEvent::decode(b"x y"), None);
        assert_eq!(RoomEvent::decode(b"1 E not-json"), None);
    }

    #[test]
    fn events_round_trip() {
        for e in [
            Event::UserJoined { id: "a".into() },
            Event::Replace {
                id: "a".into(),
                conn: 9,
            },
            Event::Wake,
            Event::Global(Said {
                name: "a".into(),
                content: "c".into(),
                timestamp: json!(3),
            }),
        ] {
            assert_eq!(Event::decode(e.encode().as_bytes()), Some(e));
        }
        assert_eq!(
            Event::decode(br#"{"k":"ul","id":"z"}"#),
            Some(Event::UserLeft { id: "z".into() })
        );
        assert_eq!(seq_of_entry_id("12-0"), Some(12));
        assert_eq!(
            decode_logged(br#"17-2 {"k":"uj","id":"a"}"#),
            Some((Some((17, 2)), Event::UserJoined { id: "a".into() }))
        );
        assert_eq!(decode_logged(br#"{"k":"w"}"#), Some((None, Event::Wake)));
        assert!(log_id("3-1") < log_id("10-0"));
    }
}

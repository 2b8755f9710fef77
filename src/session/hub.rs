//! `/ws/chat/{client_id}`: the JSON hub dialect. Parses each message,
//! dispatches on its `type`, and answers every bad input with an `error`
//! reply while the connection stays open.
//!
//! Room traffic goes through the hub's [`crate::broker::Broker`]; this
//! module only validates fields and sends the joiner its own answers
//! (`recovery`, the replay, `presence`) directly, which puts them ahead of
//! anything queued on the outbox afterwards. Streams and follows are
//! delegated to [`Streams`].

use crate::broker::Refusal;
use crate::hub::room::{Dialect, Member, Since};
use crate::hub::wire as hub_wire;
use crate::names;
use crate::shared::Shared;
use crate::stream::Streams;
use crate::wire::{unix_millis, ErrorCode, WireError};
use crate::ws::{Conn, Handler};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;

/// A JSON hub client.
pub struct HubSession {
    shared: Arc<Shared>,
    client_id: String,
    streams: Option<Streams>,
    /// The connection id once registered with the hub.
    conn: Option<u64>,
    /// The rooms this connection is in, to leave them when it ends.
    rooms: BTreeSet<String>,
}

impl HubSession {
    /// The client `client_id`.
    pub fn new(shared: Arc<Shared>, client_id: String) -> Self {
        HubSession {
            shared,
            client_id,
            streams: None,
            conn: None,
            rooms: BTreeSet::new(),
        }
    }

    fn dispatch(&mut self, conn: &mut Conn<'_>, message: &Value) -> Result<(), WireError> {
        let ty = message["type"].as_str().ok_or_else(|| {
            WireError::new(
                ErrorCode::MissingField,
                "every message needs a string `type`",
            )
        })?;
        match ty {
            "echo" => {
                let timestamp = timestamp_of(message);
                conn.send_text(
                    &json!({"type": "echo", "original": message, "timestamp": timestamp})
                        .to_string(),
                );
                Ok(())
            }
            "join_room" => self.join_room(conn, message),
            "leave_room" => self.leave_room(message),
            "message" => self.message(message),
            "direct" => self.direct(message),
            "presence" => {
                let room = room_name(message)?;
                let members = self
                    .shared
                    .broker
                    .presence(room)
                    .map_err(|r| refused(r, room))?;
                conn.send_text(&hub_wire::presence(room, &members));
                Ok(())
            }
            _ => {
                if let Some(streams) = self.streams.as_mut() {
                    if let Some(result) = streams.handle(ty, message) {
                        return result;
                    }
                }
                Err(WireError::new(
                    ErrorCode::UnknownType,
                    format!("unknown message type {ty:?}"),
                ))
            }
        }
    }
}

impl HubSession {
    fn join_room(&mut self, conn: &mut Conn<'_>, message: &Value) -> Result<(), WireError> {
        let room = room_name(message)?;
        let since = since_of(message)?;
        let member = Member {
            conn: conn.id(),
            name: self.client_id.as_str().into(),
            dialect: Dialect::Json,
            outbox: conn.outbox().clone(),
        };
        let broker = &self.shared.broker;
        let joined = broker
            .join(room, member, since.as_ref())
            .map_err(|r| refused(r, room))?;
        // Sent directly: ahead of the `room_join` and every live message,
        // which the join queued on the outbox.
        if let Some(recovered) = joined.recovered {
            conn.send_text(&hub_wire::recovery(room, &joined.epoch, recovered));
        }
        for held in &joined.replay {
            conn.send_text(held);
        }
        if joined.already {
            conn.send_text(&hub_wire::room_join(&self.client_id, room));
        }
        self.rooms.insert(room.to_string());
        Ok(())
    }

    fn leave_room(&mut self, message: &Value) -> Result<(), WireError> {
        let room = room_name(message)?;
        let left = self
            .conn
            .is_some_and(|id| self.shared.broker.leave(room, id, true));
        self.rooms.remove(room);
        if left {
            Ok(())
        } else {
            Err(not_in_room(room))
        }
    }

    fn message(&mut self, message: &Value) -> Result<(), WireError> {
        let content = content_of(message)?;
        let timestamp = timestamp_of(message);
        let broker = &self.shared.broker;
        match message.get("room_name") {
            None | Some(Value::Null) => broker
                .global(&self.client_id, content, &timestamp)
                .map_err(|r| refused(r, "")),
            Some(_) => {
                let room = room_name(message)?;
                let id = self.conn.ok_or_else(|| not_in_room(room))?;
                broker
                    .publish(room, id, content, &timestamp)
                    .map_err(|r| refused(r, room))
            }
        }
    }

    fn direct(&mut self, message: &Value) -> Result<(), WireError> {
        let to = name_field(message, "to")?;
        let content = content_of(message)?;
        self.shared
            .broker
            .direct(to, &self.client_id, content)
            .map_err(|r| refused(r, to))
    }
}

/// The client's `timestamp` if it sent a number, else the server's time.
fn timestamp_of(message: &Value) -> Value {
    match message.get("timestamp") {
        Some(t) if t.is_number() => t.clone(),
        _ => json!(unix_millis()),
    }
}

/// A required name field: `missing_field` if absent or not a string,
/// `bad_name` if it breaks the naming rules.
fn name_field<'m>(message: &'m Value, field: &str) -> Result<&'m str, WireError> {
    let name = message.get(field).and_then(Value::as_str).ok_or_else(|| {
        WireError::new(
            ErrorCode::MissingField,
            format!("`{field}` (a string) is required"),
        )
    })?;
    if names::is_valid(name) {
        Ok(name)
    } else {
        Err(WireError::new(
            ErrorCode::BadName,
            format!("bad {field} {name:?}: use 1-64 of A-Z a-z 0-9 _ . - (not starting with .)"),
        ))
    }
}

fn room_name(message: &Value) -> Result<&str, WireError> {
    name_field(message, "room_name")
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

/// The error reply for a broker's refusal; `what` names the room (or the
/// client, for `direct`).
fn refused(refusal: Refusal, what: &str) -> WireError {
    match refusal {
        Refusal::NotInRoom => not_in_room(what),
        Refusal::UnknownClient => WireError::new(
            ErrorCode::UnknownClient,
            format!("no client {what:?} is connected"),
        ),
        Refusal::Unavailable => WireError::new(ErrorCode::Unavailable, UNAVAILABLE),
    }
}

/// What `unavailable` says.
pub const UNAVAILABLE: &str = "rooms are unavailable: Redis cannot be reached; try again later";

fn not_in_room(room: &str) -> WireError {
    WireError::new(
        ErrorCode::NotInRoom,
        format!("not in room {room:?}: join_room first"),
    )
}

impl Handler for HubSession {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        self.streams = Some(Streams::new(
            &self.shared.spools,
            &self.shared.tails,
            &self.client_id,
            conn.outbox().clone(),
        ));
        let welcome = json!({
            "type": "welcome",
            "client_id": self.client_id,
            "server": crate::SERVER_NAME,
            "heartbeat_s": self.shared.config.ping_interval.as_secs_f64(),
        });
        conn.send_text(&welcome.to_string());
        // Registered after the welcome went out, so nothing precedes it.
        self.shared
            .broker
            .connect(&self.client_id, conn.id(), conn.outbox().clone());
        self.conn = Some(conn.id());
    }

    fn on_text(&mut self, conn: &mut Conn<'_>, text: &str) {
        let result = match serde_json::from_str::<Value>(text) {
            Ok(message) if message.is_object() => self.dispatch(conn, &message),
            Ok(_) => Err(WireError::new(
                ErrorCode::InvalidJson,
                "a message must be a JSON object",
            )),
            Err(e) => Err(WireError::new(
                ErrorCode::InvalidJson,
                format!("invalid JSON: {e}"),
            )),
        };
        if let Err(error) = result {
            conn.send_text(&error.to_json());
        }
    }

    fn on_close(&mut self) {
        if let Some(mut streams) = self.streams.take() {
            streams.close();
        }
        if let Some(id) = self.conn.take() {
            let broker = &self.shared.broker;
            for room in std::mem::take(&mut self.rooms) {
                broker.leave(&room, id, false);
            }
            broker.disconnect(&self.client_id, id);
        }
    }
}

//! `/ws/chat/{client_id}`: the JSON hub dialect. Decodes each message
//! ([`super::request`]), acts on it, and answers every bad input with an
//! `error` reply while the connection stays open.
//!
//! Room traffic goes through the hub's [`crate::broker::Broker`]; this
//! module only validates fields and sends the joiner its own answers
//! (`recovery`, the replay, `presence`) directly, which puts them ahead of
//! anything queued on the outbox afterwards. Streams and follows are
//! delegated to [`Streams`].

use crate::broker::Refusal;
use crate::hub::deferred;
use crate::hub::room::{Dialect, Member, Since};
use crate::hub::wire as hub_wire;
use crate::session::rate::{self, Throttle};
use crate::session::request::{self, Request};
use crate::shared::Shared;
use crate::stream::Streams;
use crate::wire::{ErrorCode, WireError};
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
    throttle: Throttle,
}

impl HubSession {
    /// The client `client_id`.
    pub fn new(shared: Arc<Shared>, client_id: String) -> Self {
        let throttle = Throttle::new(
            shared.config.max_messages_per_second,
            rate::Dialect::Hub,
            shared.metrics.clone(),
        )
        .for_client(&client_id);
        HubSession {
            shared,
            client_id,
            streams: None,
            conn: None,
            rooms: BTreeSet::new(),
            throttle,
        }
    }

    fn dispatch(&mut self, conn: &mut Conn<'_>, message: &Value) -> Result<(), WireError> {
        let request = request::decode(message)?;
        // A batch's room messages go out together at its end; anything else
        // lets out what was held first, so that it overtakes none of them.
        if matches!(request, Request::Message { room: Some(_), .. }) {
            deferred::hold();
        } else {
            deferred::release();
        }
        match request {
            Request::Echo { timestamp } => {
                conn.send_text(
                    &json!({"type": "echo", "original": message, "timestamp": timestamp})
                        .to_string(),
                );
                Ok(())
            }
            Request::JoinRoom { room, since } => self.join_room(conn, room, since),
            Request::LeaveRoom { room } => self.leave_room(room),
            Request::Message {
                content,
                room,
                timestamp,
            } => self.message(content, room, &timestamp),
            Request::Direct { to, content } => self.direct(to, content),
            Request::Presence { room } => {
                let members = self
                    .shared
                    .broker
                    .presence(room)
                    .map_err(|r| refused(r, room))?;
                conn.send_text(&hub_wire::presence(room, &members));
                Ok(())
            }
            Request::Other(ty) => {
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
    fn join_room(
        &mut self,
        conn: &mut Conn<'_>,
        room: &str,
        since: Option<Since>,
    ) -> Result<(), WireError> {
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

    fn leave_room(&mut self, room: &str) -> Result<(), WireError> {
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

    fn message(
        &mut self,
        content: &str,
        room: Option<&str>,
        timestamp: &Value,
    ) -> Result<(), WireError> {
        let broker = &self.shared.broker;
        match room {
            None => broker
                .global(&self.client_id, content, timestamp)
                .map_err(|r| refused(r, "")),
            Some(room) => {
                let id = self.conn.ok_or_else(|| not_in_room(room))?;
                broker
                    .publish(room, id, content, timestamp)
                    .map_err(|r| refused(r, room))
            }
        }
    }

    fn direct(&mut self, to: &str, content: &str) -> Result<(), WireError> {
        self.shared
            .broker
            .direct(to, &self.client_id, content)
            .map_err(|r| refused(r, to))
    }
}

/// `welcome`'s `heartbeat_s`: the ping interval in whole seconds, rounded
/// up so that a sub-second interval says 1, never 0 (which a client could
/// read as "no heartbeat").
fn heartbeat_s(ping_interval: std::time::Duration) -> u64 {
    ping_interval.as_secs_f64().ceil().max(1.0) as u64
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
            "heartbeat_s": heartbeat_s(self.shared.config.ping_interval),
        });
        conn.send_text(&welcome.to_string());
        // Registered after the welcome went out, so nothing precedes it.
        self.shared
            .broker
            .connect(&self.client_id, conn.id(), conn.outbox().clone());
        self.conn = Some(conn.id());
    }

    fn on_text(&mut self, conn: &mut Conn<'_>, text: &str) {
        if !self.throttle.admit(conn) {
            return;
        }
        let result = request::parse(text).and_then(|message| self.dispatch(conn, &message));
        if let Err(error) = result {
            conn.send_text(&error.to_json());
        }
    }

    /// Binary messages mean nothing on the hub, but they count against the
    /// rate.
    fn on_binary(&mut self, conn: &mut Conn<'_>, _data: &[u8]) {
        self.throttle.admit(conn);
    }

    fn client(&self) -> Option<&str> {
        Some(&self.client_id)
    }

    fn describe(&self) -> String {
        let rooms: Vec<&str> = self.rooms.iter().map(String::as_str).collect();
        format!(
            "(client {} in rooms [{}])",
            self.client_id,
            rooms.join(", ")
        )
    }

    fn on_batch_end(&mut self) {
        deferred::release();
    }

    fn on_close(&mut self) {
        deferred::release();
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

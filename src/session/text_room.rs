//! `/ws/{room}/{user}`: the plain-text room dialect. The member is in
//! exactly its URL room, from connect to disconnect; each text it sends is
//! a room message (numbered like any other, so hub members and `since`
//! replays see it), and it hears the room as plain lines.

use crate::hub::deferred;
use crate::hub::room::{Dialect, Member};
use crate::hub::wire;
use crate::session::rate::{self, Throttle};
use crate::shared::Shared;
use crate::wire::unix_millis;
use crate::ws::{Conn, Handler};
use serde_json::json;
use std::sync::Arc;

/// The heartbeat reply of older clients, ignored.
const PONG: &str = "__pong__";

/// A member of a plain-text room.
pub struct TextRoom {
    shared: Arc<Shared>,
    room: String,
    user: String,
    /// The connection id, once joined.
    joined: Option<u64>,
    throttle: Throttle,
}

impl TextRoom {
    /// `user` in `room`.
    pub fn new(shared: Arc<Shared>, room: String, user: String) -> Self {
        let throttle = Throttle::new(
            shared.config.max_messages_per_second,
            rate::Dialect::Strict,
            shared.metrics.clone(),
        )
        .for_client(&user);
        TextRoom {
            shared,
            room,
            user,
            joined: None,
            throttle,
        }
    }
}

impl Handler for TextRoom {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        let member = Member {
            conn: conn.id(),
            name: self.user.as_str().into(),
            dialect: Dialect::Text,
            outbox: conn.outbox().clone(),
        };
        // A text member's join is never refused: while Redis is away the
        // broker keeps it here, tells it so, and announces it once back.
        let _ = self.shared.broker.join(&self.room, member, None);
        self.joined = Some(conn.id());
    }

    fn on_text(&mut self, conn: &mut Conn<'_>, text: &str) {
        if !self.throttle.admit(conn) || text == PONG {
            return;
        }
        if let Some(id) = self.joined {
            // The room delivers this batch's lines together at its end.
            deferred::hold();
            let timestamp = json!(unix_millis());
            let sent = self.shared.broker.publish(&self.room, id, text, &timestamp);
            if sent.is_err() {
                // A text member cannot read an error object: it is told
                // in its own dialect that its line went nowhere.
                conn.send_text(&wire::text_not_delivered());
            }
        }
    }

    /// Binary messages mean nothing here, but they count against the rate.
    fn on_binary(&mut self, conn: &mut Conn<'_>, _data: &[u8]) {
        self.throttle.admit(conn);
    }

    fn on_batch_end(&mut self) {
        deferred::release();
    }

    fn client(&self) -> Option<&str> {
        Some(&self.user)
    }

    fn describe(&self) -> String {
        format!("({} in room {})", self.user, self.room)
    }

    fn on_close(&mut self) {
        deferred::release();
        if let Some(id) = self.joined.take() {
            self.shared.broker.leave(&self.room, id, false);
        }
    }
}

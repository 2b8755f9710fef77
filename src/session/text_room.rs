//! `/ws/{room}/{user}`: the plain-text room dialect (placeholder).

use crate::server::Shared;
use crate::session::Session;
use crate::ws::Conn;
use std::sync::Arc;

/// A member of a plain-text room.
pub struct TextRoom {
    _shared: Arc<Shared>,
    _room: String,
    _user: String,
}

impl TextRoom {
    /// `user` in `room`.
    pub fn new(shared: Arc<Shared>, room: String, user: String) -> Self {
        TextRoom {
            _shared: shared,
            _room: room,
            _user: user,
        }
    }
}

impl Session for TextRoom {
    fn on_open(&mut self, conn: &mut Conn<'_>) {
        conn.close(1011, "text rooms are not built yet");
    }
    fn on_text(&mut self, _conn: &mut Conn<'_>, _text: &str) {}
}

//! What a WebSocket connection means. The engine ([`crate::ws::conn`]) calls
//! a [`Session`] for each event; each endpoint of the contract is one
//! session type: [`echo`] for `/ws`, [`text_room`] for `/ws/{room}/{user}`,
//! [`hub`] for `/ws/chat/{client_id}`.
//!
//! Sessions run on the connection thread. They reply through [`Conn`] and
//! reach other connections only through their outboxes, never their sockets.

use crate::ws::Conn;

pub mod echo;
pub mod hub;
pub mod text_room;

/// The behaviour of one kind of WebSocket endpoint.
pub trait Session: Send {
    /// Called once after the handshake, before any message is read.
    fn on_open(&mut self, _conn: &mut Conn<'_>) {}
    /// A complete text message arrived.
    fn on_text(&mut self, conn: &mut Conn<'_>, text: &str);
    /// A complete binary message arrived; ignored unless overridden.
    fn on_binary(&mut self, _conn: &mut Conn<'_>, _data: &[u8]) {}
    /// The connection ended, however it ended. Release what it held here.
    fn on_close(&mut self) {}
}

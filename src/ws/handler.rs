//! The callbacks the engine makes: what a connection *means* is a
//! [`Handler`], implemented above this layer (in `crate::session`: echo, a
//! text room, the JSON hub). The engine knows no session, room or stream.

use crate::ws::Conn;

/// The behaviour of one kind of WebSocket endpoint. Called on the
/// connection's own thread, one event at a time.
pub trait Handler: Send {
    /// Called once after the handshake, before any message is read.
    fn on_open(&mut self, _conn: &mut Conn<'_>) {}
    /// A complete text message arrived.
    fn on_text(&mut self, conn: &mut Conn<'_>, text: &str);
    /// A complete binary message arrived; ignored unless overridden.
    fn on_binary(&mut self, _conn: &mut Conn<'_>, _data: &[u8]) {}
    /// Every message that was ready at one wake-up has been handled (at
    /// most a batch of them), and the connection is about to write: what
    /// the callbacks held back to send together goes now.
    fn on_batch_end(&mut self) {}
    /// The connection ended, however it ended. Release what it held here.
    /// Called once; for a slow consumer, as soon as its queue overflows,
    /// before its socket is closed.
    fn on_close(&mut self) {}
    /// Who this connection is, for log lines the engine writes about it
    /// (e.g. `user bob in room general`); empty by default.
    fn describe(&self) -> String {
        String::new()
    }
    /// The name the operator view gives this connection's client (the hub
    /// `client_id`, the text-room user); `None` (the default) names it by
    /// its address.
    fn client(&self) -> Option<&str> {
        None
    }
}

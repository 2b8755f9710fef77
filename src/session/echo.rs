//! `/ws`: every text message comes back as text, every binary as binary.

use crate::session::Session;
use crate::ws::Conn;

/// The echo endpoint.
#[derive(Debug, Default)]
pub struct Echo;

impl Session for Echo {
    fn on_text(&mut self, conn: &mut Conn<'_>, text: &str) {
        conn.send_text(text);
    }

    fn on_binary(&mut self, conn: &mut Conn<'_>, data: &[u8]) {
        conn.send_binary(data);
    }
}

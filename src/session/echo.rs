//! `/ws`: every text message comes back as text, every binary as binary.

use crate::ws::{Conn, Handler};

/// The echo endpoint.
#[derive(Debug, Default)]
pub struct Echo;

impl Handler for Echo {
    fn on_text(&mut self, conn: &mut Conn<'_>, text: &str) {
        conn.send_text(text);
    }

    fn on_binary(&mut self, conn: &mut Conn<'_>, data: &[u8]) {
        conn.send_binary(data);
    }
}

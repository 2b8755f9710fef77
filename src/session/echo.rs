//! `/ws`: every text message comes back as text, every binary as binary.

use crate::session::rate::{Dialect, Throttle};
use crate::shared::Shared;
use crate::ws::{Conn, Handler};

/// The echo endpoint.
pub struct Echo {
    throttle: Throttle,
}

impl Echo {
    /// An echo connection under `shared`'s rate limit.
    pub fn new(shared: &Shared) -> Echo {
        Echo {
            throttle: Throttle::new(
                shared.config.max_messages_per_second,
                Dialect::Strict,
                shared.metrics.clone(),
            ),
        }
    }
}

impl Handler for Echo {
    fn on_text(&mut self, conn: &mut Conn<'_>, text: &str) {
        if self.throttle.admit(conn) {
            conn.send_text(text);
        }
    }

    fn on_binary(&mut self, conn: &mut Conn<'_>, data: &[u8]) {
        if self.throttle.admit(conn) {
            conn.send_binary(data);
        }
    }
}

//! What each connection has queued for the publisher, in bytes. A
//! connection that sends faster than Redis takes its messages waits once
//! it has [`LIMIT`] bytes queued (its reader then stops reading, and TCP
//! pushes back on the client), so a flood costs bounded memory and slows
//! only the flooder. Ordinary clients never come near the limit: the
//! publisher sends what is queued within a round trip.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Bytes one connection may have queued for Redis.
pub const LIMIT: usize = 1 << 20;

/// Queued bytes per connection.
#[derive(Debug, Default)]
pub struct InFlight {
    queued: Mutex<HashMap<u64, usize>>,
    drained: Condvar,
}

impl InFlight {
    /// Counts `bytes` more for connection `conn`, first waiting (up to
    /// `timeout`) while it has [`LIMIT`] queued; false when it timed out.
    /// A connection with nothing queued may always queue one message.
    pub fn acquire(&self, conn: u64, bytes: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut queued = self.queued.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let mine = queued.get(&conn).copied().unwrap_or(0);
            if mine == 0 || mine + bytes <= LIMIT {
                *queued.entry(conn).or_insert(0) += bytes;
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            queued = self
                .drained
                .wait_timeout(queued, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// `bytes` of connection `conn` are done with.
    pub fn release(&self, conn: u64, bytes: usize) {
        let mut queued = self.queued.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mine) = queued.get_mut(&conn) {
            *mine = mine.saturating_sub(bytes);
            if *mine == 0 {
                queued.remove(&conn);
            }
        }
        drop(queued);
        self.drained.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_waits_past_the_limit_and_others_do_not() {
        let f = InFlight::default();
        assert!(f.acquire(1, LIMIT, Duration::ZERO), "one message always");
        assert!(!f.acquire(1, 10, Duration::from_millis(1)));
        assert!(f.acquire(2, 10, Duration::ZERO), "others are not held up");
        f.release(1, LIMIT);
        assert!(f.acquire(1, 10, Duration::ZERO));
    }
}

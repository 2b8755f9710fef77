//! One room's history in this process: its last `--room-history`
//! messages, and at most [`HISTORY_BYTES`] of them, so a few huge messages
//! cannot pin memory. Answers a `since` with the held messages after it
//! and whether they are all of them. No lock: the room holds it.

use crate::hub::member::{recovered, Since};
use std::collections::VecDeque;
use std::sync::Arc;

/// A room's history holds at most this many bytes of messages (besides
/// `--room-history` messages).
pub const HISTORY_BYTES: usize = 1 << 20;

/// The held messages of one room.
#[derive(Debug)]
pub struct History {
    held: VecDeque<Held>,
    bytes: usize,
    keep: usize,
}

#[derive(Debug)]
struct Held {
    seq: u64,
    json: Arc<str>,
}

impl History {
    /// A history keeping at most `keep` messages (0: none).
    pub fn new(keep: usize) -> History {
        History {
            held: VecDeque::new(),
            bytes: 0,
            keep,
        }
    }

    /// Keeps message `seq` (its JSON text), dropping the oldest as needed.
    pub fn push(&mut self, seq: u64, json: Arc<str>) {
        if self.keep == 0 {
            return;
        }
        while self.held.len() >= self.keep
            || (!self.held.is_empty() && self.bytes + json.len() > HISTORY_BYTES)
        {
            if let Some(old) = self.held.pop_front() {
                self.bytes -= old.json.len();
            }
        }
        self.bytes += json.len();
        self.held.push_back(Held { seq, json });
    }

    /// The `recovered` flag and the replay for `since`, in a room whose
    /// last `seq` is `last` in `epoch`.
    pub fn answer(&self, since: &Since, epoch: &str, last: u64) -> (bool, Vec<Arc<str>>) {
        let oldest = self.held.front().map(|h| h.seq);
        let replay = self
            .held
            .iter()
            .filter(|h| h.seq > since.seq)
            .map(|h| h.json.clone())
            .collect();
        (recovered(since, epoch, last, oldest), replay)
    }
}

//! The vocabulary every room speaks, whichever broker serves it: who a
//! member is ([`Member`], [`Dialect`]), what a join asks for ([`Since`])
//! and gets back ([`Joined`]), and what a fan-out did ([`Fanout`]).
//! Plain data and one helper ([`push`]); no locks, no rooms.

use crate::ws::Outbox;
use std::sync::Arc;

/// How a member is spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `/ws/{room}/{user}`: plain lines.
    Text,
    /// `/ws/chat/{client_id}`: JSON objects.
    Json,
}

/// A connection in a room.
#[derive(Debug, Clone)]
pub struct Member {
    /// The connection's server-wide id: a member's identity in a room.
    pub conn: u64,
    /// The `user` or `client_id` others see.
    pub name: Arc<str>,
    /// How it is spoken to.
    pub dialect: Dialect,
    /// Where its frames go.
    pub outbox: Arc<Outbox>,
}

/// A `join_room`'s `since` (and optional `epoch`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Since {
    /// The last `seq` the client holds.
    pub seq: u64,
    /// The epoch that `seq` belongs to, if the client said.
    pub epoch: Option<String>,
}

/// What a join gives the joiner to send itself, directly, before anything
/// queued on its outbox. When the joiner's outbox still held frames, the
/// recovery and replay were queued behind them instead, and are not here.
#[derive(Debug, Default)]
pub struct Joined {
    /// The room's current epoch.
    pub epoch: String,
    /// `Some(recovered)` when the join asked for `since`.
    pub recovered: Option<bool>,
    /// The held messages after `since`, in order (JSON texts).
    pub replay: Vec<Arc<str>>,
    /// The connection was already a member: nothing changed, and the
    /// `room_join` was not queued (the caller answers it directly).
    pub already: bool,
}

/// Frames queued and dropped by one fan-out.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Fanout {
    /// Frames queued.
    pub queued: u64,
    /// Frames refused by a full or closing outbox.
    pub dropped: u64,
}

impl Fanout {
    /// Adds `other`'s counts.
    pub fn add(&mut self, other: Fanout) {
        self.queued += other.queued;
        self.dropped += other.dropped;
    }
}

/// Queues one frame, counting the outcome.
pub fn push(outbox: &Outbox, frame: &Arc<[u8]>) -> Fanout {
    if outbox.send(frame.clone()) {
        Fanout {
            queued: 1,
            dropped: 0,
        }
    } else {
        Fanout {
            queued: 0,
            dropped: 1,
        }
    }
}

/// Whether a `since` (with its optional epoch) is answered completely by
/// a history whose oldest held `seq` is `oldest` (None: nothing held) in a
/// room whose last `seq` is `last` in `epoch`: the epoch matches (or was
/// not given), `since` is not in the future, and nothing after it has left
/// the history. One rule for every broker.
pub fn recovered(since: &Since, epoch: &str, last: u64, oldest: Option<u64>) -> bool {
    let same_epoch = since.epoch.as_deref().map_or(true, |e| e == epoch);
    let complete = since.seq <= last
        && match oldest {
            Some(oldest) => oldest <= since.seq + 1,
            None => since.seq == last,
        };
    same_epoch && complete
}

impl Joined {
    /// The answer to a `join_room` from a connection that is already a
    /// member, receiving the room live since `seq` `joined_after`, in a
    /// room whose last `seq` is `last` in `epoch`: nothing is replayed
    /// (it would arrive out of order with what is already queued), and
    /// `recovered` says whether the live messages cover everything after
    /// `since`.
    pub fn already(since: Option<&Since>, epoch: &str, joined_after: u64, last: u64) -> Joined {
        let recovered = since.map(|s| {
            s.epoch.as_deref().map_or(true, |e| e == epoch)
                && s.seq >= joined_after
                && s.seq <= last
        });
        Joined {
            epoch: epoch.to_string(),
            recovered,
            replay: Vec::new(),
            already: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn since(seq: u64, epoch: Option<&str>) -> Since {
        Since {
            seq,
            epoch: epoch.map(str::to_string),
        }
    }

    #[test]
    fn recovery_needs_the_epoch_and_everything_after_since() {
        assert!(recovered(&since(6, None), "E", 10, Some(7)));
        assert!(!recovered(&since(5, None), "E", 10, Some(7)), "6 is gone");
        assert!(recovered(&since(10, Some("E")), "E", 10, Some(7)));
        assert!(!recovered(&since(8, Some("X")), "E", 10, Some(7)));
        assert!(!recovered(&since(11, None), "E", 10, Some(7)), "future");
        assert!(recovered(&since(0, None), "E", 0, None), "empty room");
        assert!(!recovered(&since(3, None), "E", 5, None), "nothing held");
    }
}

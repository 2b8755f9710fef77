//! Rooms and the JSON hub's clients: the state behind `/ws/{room}/{user}`,
//! `/ws/chat/{client_id}` and the HTTP room API.
//!
//! - [`member`]: the vocabulary of every room (members, dialects, `since`,
//!   what a join answers, fan-out counts).
//! - [`audience`]: the members of one room on this server and delivery to
//!   them in their dialects, coalesced when busy; both brokers use it.
//! - [`history`]: one room's held messages and the answer to a `since`.
//! - [`room`]: one in-process room: an audience, a history and `seq`
//!   under one lock, and the atomic join-with-replay.
//! - [`deferred`]: deliveries a connection thread holds until the end of
//!   its read batch, so each member gets a batch's messages in one write.
//! - [`notices`], [`flusher`]: join and leave notices coalesced over 2 ms,
//!   so forming a big room costs O(members) wake-ups per window instead of
//!   one per notice.
//! - [`rooms`]: the table of rooms by name.
//! - [`clients`]: the registry of hub clients by `client_id` (replacement
//!   with 4001, `user_joined`/`user_left`, direct and global messages).
//! - [`wire`]: the messages of both dialects (pure).
//! - [`stats`]: counters for `/metrics`.
//!
//! The HTTP room API (`/rooms`, `/broadcast`) lives in `http::rooms` and
//! calls the broker; nothing here knows HTTP.
//!
//! This is the in-process state that [`crate::broker::local::LocalBroker`]
//! serves; handlers never see it, only the [`crate::broker::Broker`].
//!
//! # Locks
//! Three kinds, always taken in this order, each held only for a few
//! queue pushes:
//! 1. the room table (find, create or retire a room; never during a
//!    fan-out);
//! 2. one room (numbering, history, membership and its fan-out, all under
//!    this one lock so that every member sees one order, and a join's
//!    history snapshot and registration are one step);
//! 3. never together with 1 or 2: the client registry.
//!
//! No lock is ever held while writing to a socket: a fan-out only queues
//! an already-encoded, shared frame on each member's [`crate::ws::Outbox`],
//! which never waits (a client that does not read is closed with 1008).
//!
//! # Decisions where the contract is silent
//! See `docs/PROTOCOL-NOTES.md`. In short: a text member is in exactly its
//! URL room; a hub `message` to a room requires membership; global
//! messages and `system_notification` reach hub clients only, a
//! `POST /broadcast` to everyone reaches text members too; presence lists
//! distinct names, counts count connections; a room's epoch names the
//! server's life and the room's generation, and an empty room keeps its
//! history while it is among the 1,024 most recently emptied.

use std::hash::{BuildHasher, Hasher};

pub mod audience;
pub mod clients;
pub mod deferred;
pub mod flusher;
pub mod history;
pub mod member;
pub mod notices;
pub mod room;
pub mod rooms;
pub mod stats;
#[cfg(test)]
pub mod testing;
pub mod wire;

/// A fresh epoch: the start time in milliseconds and 32 random bits, so two
/// lives of the server never share one.
pub fn new_epoch() -> String {
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    format!("{:x}-{:08x}", crate::wire::unix_millis(), random as u32)
}

#[cfg(test)]
mod tests {
    use super::new_epoch;

    #[test]
    fn epochs_differ_between_lives() {
        assert_ne!(new_epoch(), new_epoch());
    }
}

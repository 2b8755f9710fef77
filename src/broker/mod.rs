//! The broker: the one interface through which every room operation,
//! broadcast, direct message, notification and presence question passes.
//! Handlers (the sessions and the HTTP room API) only ever see
//! `dyn Broker`, so a broker shared between instances (Redis, a later
//! issue) replaces [`local::LocalBroker`] without touching them.
//!
//! A broker owns delivery, not sockets: it queues frames on connections'
//! [`Outbox`]es and must never block on a client.

use crate::config::Config;
use crate::hub::room::{Joined, Member, Since};
use crate::hub::stats::HubStats;
use crate::ws::Outbox;
use serde_json::Value;
use std::sync::Arc;

pub mod local;
pub mod notifier;

/// The broker `config` asks for, counting into `stats`. The one place
/// where a broker is chosen.
pub fn from_config(config: &Config, stats: Arc<HubStats>) -> Arc<dyn Broker> {
    Arc::new(local::LocalBroker::new(
        crate::hub::new_epoch(),
        config.room_history,
        config.room_window,
        stats,
    ))
}

/// Rooms, hub clients and their traffic. Every method is called from
/// connection threads (or the notifier thread) concurrently.
pub trait Broker: Send + Sync {
    /// `"local"`, or the name `/healthz` reports for this broker.
    fn name(&self) -> &'static str;

    /// Registers hub client `client_id` (connection `conn`) and announces
    /// it with `user_joined`; an older connection with the same id is
    /// closed with 4001.
    fn connect(&self, client_id: &str, conn: u64, outbox: Arc<Outbox>);

    /// Unregisters `client_id` if `conn` still holds it, with `user_left`.
    fn disconnect(&self, client_id: &str, conn: u64);

    /// Adds `member` to `room`, atomically with the `since` snapshot, and
    /// announces it to the room. The joiner sends itself the returned
    /// recovery and replay directly, before anything queued later.
    fn join(&self, room: &str, member: Member, since: Option<&Since>) -> Joined;

    /// Removes connection `conn` from `room` and announces it; false when
    /// it was not a member.
    fn leave(&self, room: &str, conn: u64, tell_leaver: bool) -> bool;

    /// A message from member `conn` to `room`; its `seq`, or `None` when
    /// `conn` is not a member.
    fn publish(&self, room: &str, conn: u64, content: &str, timestamp: &Value) -> Option<u64>;

    /// A message from hub client `from` to every hub client.
    fn global(&self, from: &str, content: &str, timestamp: &Value);

    /// A direct message; false when `to` is not connected.
    fn direct(&self, to: &str, from: &str, content: &str) -> bool;

    /// `POST /broadcast`: to `room`'s members, or to every client; returns
    /// how many connections it reached.
    fn broadcast(&self, room: Option<&str>, message: &str) -> usize;

    /// A `system_notification` to every hub client; how many there are.
    fn notify(&self, message: &str) -> usize;

    /// The distinct names in `room`, sorted.
    fn presence(&self, room: &str) -> Vec<String>;

    /// Connections in `room` (0 for an unknown room).
    fn online(&self, room: &str) -> usize;

    /// Every room with at least one member and its count, sorted by name.
    fn rooms(&self) -> Vec<(String, usize)>;

    /// Connected hub clients.
    fn clients(&self) -> usize;

    /// Stops the broker's helper threads (at server shutdown).
    fn shutdown(&self) {}
}

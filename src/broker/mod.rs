//! The broker: the one interface through which every room operation,
//! broadcast, direct message, notification and presence question passes.
//! Handlers (the sessions and the HTTP room API) only ever see
//! `dyn Broker`: [`local::LocalBroker`] serves the rooms of this process,
//! [`redis::RedisBroker`] the rooms shared by every instance on one Redis.
//!
//! A broker owns delivery, not sockets: it queues frames on connections'
//! [`Outbox`]es and must never block on a client. It must not reach up:
//! no session, HTTP or accept loop here.

use crate::config::Config;
use crate::hub::room::{Joined, Member, Since};
use crate::hub::stats::HubStats;
use crate::ws::Outbox;
use serde_json::Value;
use std::sync::Arc;

pub mod local;
pub mod notifier;
pub mod redis;

/// The broker `config` asks for, counting into `stats`. The one place
/// where a broker is chosen. An unreachable Redis is not an error (the
/// broker keeps trying); a Redis broker whose threads the OS refuses at
/// start-up is, and ends the process with the reason.
pub fn from_config(config: &Config, stats: Arc<HubStats>) -> Arc<dyn Broker> {
    match &config.redis {
        Some(redis) => {
            match redis::RedisBroker::start(redis, config.room_history, config.room_window, stats) {
                Ok(broker) => Arc::new(broker),
                Err(e) => panic!("cannot start the Redis broker: {e}"),
            }
        }
        None => Arc::new(local::LocalBroker::new(
            crate::hub::new_epoch(),
            config.room_history,
            config.room_window,
            stats,
        )),
    }
}

/// Why the broker refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A room message or `leave_room` from a connection not in the room.
    NotInRoom,
    /// A `direct` to a `client_id` connected nowhere.
    UnknownClient,
    /// The request needs the shared broker (Redis), which cannot be
    /// reached now.
    Unavailable,
}

/// Rooms, hub clients and their traffic. Every method is called from
/// connection threads (or the notifier thread, or HTTP handlers)
/// concurrently.
///
/// A shared broker may answer some refusals later than the call returns:
/// a request it accepted and then could not carry out (Redis went away
/// with it in flight, `direct` to an id connected nowhere) is answered on
/// the requester's own outbox, as the session would have answered it.
pub trait Broker: Send + Sync {
    /// `"local"`, or the name `/healthz` reports for this broker now
    /// (`"redis"`, `"redis-down"`).
    fn name(&self) -> &'static str;

    /// Whether the broker can serve everything now (false: `/healthz`
    /// says `degraded`).
    fn healthy(&self) -> bool {
        true
    }

    /// Registers hub client `client_id` (connection `conn`) and announces
    /// it with `user_joined`; an older connection with the same id is
    /// closed with 4001.
    fn connect(&self, client_id: &str, conn: u64, outbox: Arc<Outbox>);

    /// Unregisters `client_id` if `conn` still holds it, with `user_left`.
    fn disconnect(&self, client_id: &str, conn: u64);

    /// Adds `member` to `room`, atomically with the `since` snapshot, and
    /// announces it to the room. The joiner sends itself the returned
    /// recovery and replay directly, before anything queued later.
    fn join(&self, room: &str, member: Member, since: Option<&Since>) -> Result<Joined, Refusal>;

    /// Removes connection `conn` from `room` and announces it; false when
    /// it was not a member.
    fn leave(&self, room: &str, conn: u64, tell_leaver: bool) -> bool;

    /// A message from member `conn` to `room`.
    fn publish(
        &self,
        room: &str,
        conn: u64,
        content: &str,
        timestamp: &Value,
    ) -> Result<(), Refusal>;

    /// A message from hub client `from` to every hub client.
    fn global(&self, from: &str, content: &str, timestamp: &Value) -> Result<(), Refusal>;

    /// A direct message from hub client `from` to `to`.
    fn direct(&self, to: &str, from: &str, content: &str) -> Result<(), Refusal>;

    /// `POST /broadcast`: to `room`'s members, or to every client; returns
    /// how many connections it reached.
    fn broadcast(&self, room: Option<&str>, message: &str) -> Result<usize, Refusal>;

    /// A `system_notification` to every hub client of this instance; how
    /// many there are.
    fn notify(&self, message: &str) -> usize;

    /// The distinct names in `room`, sorted.
    fn presence(&self, room: &str) -> Result<Vec<String>, Refusal>;

    /// Connections in `room` (0 for an unknown room).
    fn online(&self, room: &str) -> Result<usize, Refusal>;

    /// Every room with at least one member and its count, sorted by name.
    fn rooms(&self) -> Result<Vec<(String, usize)>, Refusal>;

    /// Rooms with a member on this instance (a gauge).
    fn local_rooms(&self) -> usize;

    /// Hub clients connected to this instance.
    fn clients(&self) -> usize;

    /// How many messages room `room` has numbered so far, as this instance
    /// knows it (`None`: no such room here); the operator view's room
    /// rates are its differences over time.
    fn room_messages(&self, _room: &str) -> Option<u64> {
        None
    }

    /// The broker's state for the operator view (`GET /admin/stats`): at
    /// least `name` (as `/healthz` says it); a shared broker adds what it
    /// knows of its peers and its link.
    fn state(&self) -> Value {
        serde_json::json!({ "name": self.name() })
    }

    /// The broker's own `/metrics` families, if any.
    fn metrics_text(&self) -> String {
        String::new()
    }

    /// Stops the broker's helper threads (at server shutdown, once every
    /// connection has ended).
    fn shutdown(&self) {}
}

//! Rooms and the JSON hub's clients: the state behind `/ws/{room}/{user}`,
//! `/ws/chat/{client_id}` and the HTTP room API.
//!
//! - [`room`]: one room: members of both dialects, history, `seq`, and the
//!   atomic join-with-replay.
//! - [`notices`], [`flusher`]: join and leave notices coalesced over 2 ms,
//!   so forming a big room costs O(members) wake-ups per window instead of
//!   one per notice.
//! - [`rooms`]: the table of rooms by name.
//! - [`clients`]: the registry of hub clients by `client_id` (replacement
//!   with 4001, `user_joined`/`user_left`, direct and global messages).
//! - [`wire`]: the messages of both dialects (pure).
//! - [`stats`]: counters for `/metrics`.
//! - [`api`]: `GET /rooms`, `GET /rooms/{room}/count`, `POST /broadcast`.
//!
//! [`Hub`] owns the [`Broker`] every handler goes through, the
//! `system_notification` thread, and the counters.
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

use crate::broker::local::LocalBroker;
use crate::broker::Broker;
use crate::config::Config;
use crate::metrics::Metrics;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub mod api;
pub mod clients;
pub mod flusher;
pub mod notices;
pub mod room;
pub mod rooms;
pub mod stats;
pub mod wire;

use stats::{Gauges, HubStats};

/// Rooms, presence and hub clients, behind a broker.
pub struct Hub {
    broker: Arc<dyn Broker>,
    stats: Arc<HubStats>,
    notifier: Mutex<Option<Notifier>>,
}

/// The `system_notification` thread; dropping `stop` ends it.
struct Notifier {
    stop: Sender<()>,
    thread: JoinHandle<()>,
}

impl Hub {
    /// A hub with the in-process broker; starts the notification thread
    /// when `config.notify_interval` is set.
    pub fn new(config: &Config, _metrics: Arc<Metrics>) -> Hub {
        let stats = Arc::new(HubStats::default());
        let broker: Arc<dyn Broker> = Arc::new(LocalBroker::new(
            new_epoch(),
            config.room_history,
            config.room_window,
            stats.clone(),
        ));
        let notifier = config
            .notify_interval
            .and_then(|every| start_notifier(broker.clone(), every));
        Hub {
            broker,
            stats,
            notifier: Mutex::new(notifier),
        }
    }

    /// The broker every room operation goes through.
    pub fn broker(&self) -> &dyn Broker {
        &*self.broker
    }

    /// The hub's Prometheus families.
    pub fn metrics_text(&self) -> String {
        self.stats.render(Gauges {
            rooms: self.broker.rooms().len(),
            hub_clients: self.broker.clients(),
        })
    }

    /// Stops the hub's helper threads.
    pub fn shutdown(&self) {
        let notifier = self
            .notifier
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(Notifier { stop, thread }) = notifier {
            drop(stop);
            if thread.join().is_err() {
                log::error!("the notification thread panicked");
            }
        }
        self.broker.shutdown();
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A fresh epoch: the start time in milliseconds and 32 random bits, so two
/// lives of the server never share one.
fn new_epoch() -> String {
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    format!("{:x}-{:08x}", crate::wire::unix_millis(), random as u32)
}

fn start_notifier(broker: Arc<dyn Broker>, every: Duration) -> Option<Notifier> {
    let (stop, stopped): (Sender<()>, Receiver<()>) = crossbeam_channel::bounded(0);
    let spawned = std::thread::Builder::new()
        .name("notify".into())
        .stack_size(128 * 1024)
        .spawn(move || loop {
            match stopped.recv_timeout(every) {
                Err(RecvTimeoutError::Timeout) => {
                    let n = broker.clients();
                    broker.notify(&format!("strand is up; {n} hub client(s) connected"));
                }
                // The sender was dropped: the hub is shutting down.
                _ => return,
            }
        });
    match spawned {
        Ok(thread) => Some(Notifier { stop, thread }),
        Err(e) => {
            log::error!("cannot start the notification thread: {e}; notifications are off");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::new_epoch;

    #[test]
    fn epochs_differ_between_lives() {
        assert_ne!(new_epoch(), new_epoch());
    }
}

//! The in-process broker: rooms and hub clients of this server only.
//!
//! Lock order (see [`crate::hub`]): the room table, then one room; the
//! client registry is never held together with either. No lock is held
//! while writing to a socket: deliveries only queue on outboxes.

use crate::broker::{Broker, Refusal};
use crate::hub::clients::Clients;
use crate::hub::flusher::{Flusher, FlusherThread};
use crate::hub::room::{Joined, Member, RoomCtx, Since};
use crate::hub::rooms::Rooms;
use crate::hub::stats::HubStats;
use crate::hub::wire;
use crate::ws::Outbox;
use serde_json::Value;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Rooms and clients in this process.
#[derive(Debug)]
pub struct LocalBroker {
    rooms: Rooms,
    clients: Clients,
    stats: Arc<HubStats>,
    flusher: Mutex<FlusherThread>,
}

impl LocalBroker {
    /// A broker whose rooms keep `keep` messages numbered in `epoch` and
    /// coalesce busy traffic over `window`; starts the thread that flushes
    /// rooms' batches.
    pub fn new(epoch: String, keep: usize, window: Duration, stats: Arc<HubStats>) -> LocalBroker {
        let (flusher, thread) = Flusher::start();
        let ctx = RoomCtx {
            epoch,
            generation: Default::default(),
            keep,
            window,
            stats: stats.clone(),
            flusher,
        };
        LocalBroker {
            rooms: Rooms::new(ctx),
            clients: Clients::default(),
            stats,
            flusher: Mutex::new(thread),
        }
    }
}

impl Broker for LocalBroker {
    fn name(&self) -> &'static str {
        "local"
    }

    fn connect(&self, client_id: &str, conn: u64, outbox: Arc<Outbox>) {
        let (fanout, replaced) = self.clients.connect(client_id, conn, outbox);
        if replaced {
            self.stats.replaced(client_id);
        }
        self.stats.count(fanout);
    }

    fn disconnect(&self, client_id: &str, conn: u64) {
        self.stats.count(self.clients.disconnect(client_id, conn));
    }

    fn join(&self, room: &str, member: Member, since: Option<&Since>) -> Result<Joined, Refusal> {
        Ok(self.rooms.join(room, member, since))
    }

    fn leave(&self, room: &str, conn: u64, tell_leaver: bool) -> bool {
        self.rooms.leave(room, conn, tell_leaver)
    }

    fn publish(
        &self,
        room: &str,
        conn: u64,
        content: &str,
        timestamp: &Value,
    ) -> Result<(), Refusal> {
        self.rooms
            .publish(room, conn, content, timestamp)
            .map(|_| ())
            .ok_or(Refusal::NotInRoom)
    }

    fn global(&self, from: &str, content: &str, timestamp: &Value) -> Result<(), Refusal> {
        let frame = wire::frame(&wire::global_message(from, content, timestamp));
        let (_, fanout) = self.clients.send_all(&frame);
        self.stats.global_messages.fetch_add(1, Relaxed);
        self.stats.count(fanout);
        Ok(())
    }

    fn direct(&self, to: &str, from: &str, content: &str) -> Result<(), Refusal> {
        let frame = wire::frame(&wire::direct(from, content));
        let fanout = self
            .clients
            .send_to(to, &frame)
            .ok_or(Refusal::UnknownClient)?;
        self.stats.direct_messages.fetch_add(1, Relaxed);
        self.stats.count(fanout);
        Ok(())
    }

    fn broadcast(&self, room: Option<&str>, message: &str) -> Result<usize, Refusal> {
        self.stats.broadcasts.fetch_add(1, Relaxed);
        Ok(match room {
            Some(name) => self
                .rooms
                .get(name)
                .map_or(0, |room| room.broadcast(message, false)),
            None => {
                // Hub clients once each through the registry (whatever
                // rooms they are in), text members through their room.
                let frame = wire::frame(&wire::broadcast(None, message));
                let (mut reached, fanout) = self.clients.send_all(&frame);
                self.stats.count(fanout);
                for room in self.rooms.all() {
                    reached += room.broadcast(message, true);
                }
                reached
            }
        })
    }

    fn notify(&self, message: &str) -> usize {
        let frame = wire::frame(&wire::notification(message, crate::wire::unix_millis()));
        let (reached, fanout) = self.clients.send_all(&frame);
        self.stats.notifications.fetch_add(1, Relaxed);
        self.stats.count(fanout);
        reached
    }

    fn presence(&self, room: &str) -> Result<Vec<String>, Refusal> {
        Ok(self
            .rooms
            .get(room)
            .map(|r| r.presence())
            .unwrap_or_default())
    }

    fn online(&self, room: &str) -> Result<usize, Refusal> {
        Ok(self.rooms.get(room).map_or(0, |r| r.online()))
    }

    fn rooms(&self) -> Result<Vec<(String, usize)>, Refusal> {
        Ok(self
            .rooms
            .all()
            .into_iter()
            .map(|r| (r.name().to_string(), r.online()))
            .filter(|(_, n)| *n > 0)
            .collect())
    }

    fn room_messages(&self, room: &str) -> Option<u64> {
        self.rooms.get(room).map(|r| r.messages())
    }

    fn local_rooms(&self) -> usize {
        self.rooms.all().iter().filter(|r| r.online() > 0).count()
    }

    fn clients(&self) -> usize {
        self.clients.len()
    }

    fn shutdown(&self) {
        self.flusher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .stop();
    }
}

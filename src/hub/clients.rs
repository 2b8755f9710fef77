//! The registry of connected JSON hub clients, by `client_id`: who gets
//! `user_joined`/`user_left`, global messages, `direct` messages and
//! notifications, and the replacement of a duplicate `client_id`.
//!
//! One lock over the map. Notices are queued under it (never written to a
//! socket; [`Outbox::send`] does not wait), so every client sees the
//! joins and leaves of others in the order the registry saw them.

use crate::hub::member::{push, Fanout};
use crate::hub::wire;
use crate::ws::Outbox;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Close code for a connection replaced by a newer one with its `client_id`.
pub const REPLACED: u16 = 4001;

#[derive(Debug)]
struct Entry {
    conn: u64,
    outbox: Arc<Outbox>,
}

/// The connected hub clients.
#[derive(Debug, Default)]
pub struct Clients {
    map: Mutex<HashMap<String, Entry>>,
}

impl Clients {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers connection `conn` as `id` and tells every other client.
    /// An older connection with the same `id` is closed with 4001; the
    /// others then see only this `user_joined` (the id never went away).
    /// Returns the fan-out and whether a connection was replaced.
    pub fn connect(&self, id: &str, conn: u64, outbox: Arc<Outbox>) -> (Fanout, bool) {
        let frame = wire::frame(&wire::user_joined(id));
        let mut map = self.lock();
        let old = map.insert(id.to_string(), Entry { conn, outbox });
        let fanout = send_others(&map, id, &frame);
        drop(map);
        let replaced = old.is_some();
        if let Some(old) = old {
            old.outbox.close(REPLACED, "replaced by a newer connection");
        }
        (fanout, replaced)
    }

    /// Registers connection `conn` as `id` without telling anyone (a
    /// shared broker announces it through Redis); an older connection with
    /// the same id is closed with 4001. Returns whether one was.
    pub fn register(&self, id: &str, conn: u64, outbox: Arc<Outbox>) -> bool {
        let old = self.lock().insert(id.to_string(), Entry { conn, outbox });
        if let Some(old) = &old {
            old.outbox.close(REPLACED, "replaced by a newer connection");
        }
        old.is_some()
    }

    /// Unregisters `id` if connection `conn` still holds it, without
    /// telling anyone; returns whether it did.
    pub fn unregister(&self, id: &str, conn: u64) -> bool {
        let mut map = self.lock();
        if map.get(id).map(|e| e.conn) != Some(conn) {
            return false;
        }
        map.remove(id);
        true
    }

    /// Closes `id`'s connection with 4001 if it is connection `conn`
    /// (a newer one connected elsewhere); returns whether it was.
    pub fn replace(&self, id: &str, conn: u64) -> bool {
        let mut map = self.lock();
        if map.get(id).map(|e| e.conn) != Some(conn) {
            return false;
        }
        if let Some(old) = map.remove(id) {
            old.outbox.close(REPLACED, "replaced by a newer connection");
        }
        true
    }

    /// `id`'s connection and outbox, if it is connected here.
    pub fn get(&self, id: &str) -> Option<(u64, Arc<Outbox>)> {
        self.lock().get(id).map(|e| (e.conn, e.outbox.clone()))
    }

    /// Every client here: (id, connection).
    pub fn snapshot(&self) -> Vec<(String, u64)> {
        self.lock()
            .iter()
            .map(|(id, e)| (id.clone(), e.conn))
            .collect()
    }

    /// Queues `frame` to every client but `id`.
    pub fn send_others(&self, id: &str, frame: &Arc<[u8]>) -> Fanout {
        send_others(&self.lock(), id, frame)
    }

    /// Unregisters `id` if connection `conn` still holds it (a replaced
    /// connection does not), and tells every other client.
    pub fn disconnect(&self, id: &str, conn: u64) -> Fanout {
        let mut map = self.lock();
        if map.get(id).map(|e| e.conn) != Some(conn) {
            return Fanout::default();
        }
        map.remove(id);
        send_others(&map, id, &wire::frame(&wire::user_left(id)))
    }

    /// Queues `frame` to client `id`; false when no such client.
    pub fn send_to(&self, id: &str, frame: &Arc<[u8]>) -> Option<Fanout> {
        self.lock().get(id).map(|e| push(&e.outbox, frame))
    }

    /// Queues `frame` to every client; returns how many there are.
    pub fn send_all(&self, frame: &Arc<[u8]>) -> (usize, Fanout) {
        let map = self.lock();
        let mut fanout = Fanout::default();
        for entry in map.values() {
            fanout.add(push(&entry.outbox, frame));
        }
        (map.len(), fanout)
    }

    /// Clients connected now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no client is connected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn send_others(map: &HashMap<String, Entry>, id: &str, frame: &Arc<[u8]>) -> Fanout {
    let mut fanout = Fanout::default();
    for (other, entry) in map.iter() {
        if other != id {
            fanout.add(push(&entry.outbox, frame));
        }
    }
    fanout
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::ws::Outgoing;

    #[test]
    fn a_duplicate_replaces_the_older_connection_with_4001() {
        let clients = Clients::default();
        let metrics = Arc::new(Metrics::default());
        let (first, first_rx) = Outbox::new(1, 1024, metrics.clone());
        let (second, _rx) = Outbox::new(2, 1024, metrics.clone());
        let (other, other_rx) = Outbox::new(3, 1024, metrics);
        clients.connect("b", 3, other);
        clients.connect("a", 1, first);
        clients.connect("a", 2, second);
        assert!(matches!(first_rx.try_recv(), Ok(Outgoing::Close(4001, _))));
        // The replaced connection's end does not unregister the new one.
        clients.disconnect("a", 1);
        assert_eq!(clients.len(), 2);
        assert_eq!(
            other_rx.try_iter().count(),
            2,
            "two user_joined, no user_left"
        );
        clients.disconnect("a", 2);
        assert_eq!(clients.len(), 1);
        assert_eq!(other_rx.try_iter().count(), 1, "user_left");
    }
}

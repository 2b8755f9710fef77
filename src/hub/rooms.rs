//! The table of rooms, by name: finds or creates a room, and retires a room
//! that is empty and has never numbered a message.
//!
//! Lock order: the table's lock, then a room's lock; never the other way.
//! The table lock is held only to find, create or retire a room, never
//! during a fan-out. A room that has numbered a message stays for the life
//! of the server, so its history and sequence survive everyone leaving (a
//! client that reconnects resumes with `since`); its `epoch` is therefore
//! the server's, new at every start.

use crate::hub::room::{Fanout, Joined, Member, Room, Since};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// All rooms.
#[derive(Debug)]
pub struct Rooms {
    table: Mutex<HashMap<String, Arc<Room>>>,
    epoch: String,
    keep: usize,
}

impl Rooms {
    /// An empty table whose rooms keep `keep` messages, numbered in `epoch`.
    pub fn new(epoch: String, keep: usize) -> Rooms {
        Rooms {
            table: Mutex::new(HashMap::new()),
            epoch,
            keep,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Room>>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The epoch of every room's sequence.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The room `name`, if it exists.
    pub fn get(&self, name: &str) -> Option<Arc<Room>> {
        self.lock().get(name).cloned()
    }

    /// Every room, sorted by name.
    pub fn all(&self) -> Vec<Arc<Room>> {
        let mut rooms: Vec<Arc<Room>> = self.lock().values().cloned().collect();
        rooms.sort_by(|a, b| a.name().cmp(b.name()));
        rooms
    }

    /// Adds `member` to room `name`, creating it; see [`Room::join`].
    pub fn join(&self, name: &str, member: Member, since: Option<&Since>) -> (Joined, Fanout) {
        loop {
            let room = self
                .lock()
                .entry(name.to_string())
                .or_insert_with(|| Arc::new(Room::new(name)))
                .clone();
            // The room may have been retired between the two locks; then
            // the next look-up creates a fresh one.
            if let Some(done) = room.join(member.clone(), since, &self.epoch) {
                return done;
            }
        }
    }

    /// Removes connection `conn` from room `name`; `None` when it was not
    /// a member.
    pub fn leave(&self, name: &str, conn: u64, tell_leaver: bool) -> Option<Fanout> {
        let room = self.get(name)?;
        let fanout = room.leave(conn, tell_leaver)?;
        self.retire(&room);
        Some(fanout)
    }

    /// Publishes in room `name` from member `conn`; `None` when `conn` is
    /// not a member.
    pub fn publish(
        &self,
        name: &str,
        conn: u64,
        content: &str,
        timestamp: &Value,
    ) -> Option<(u64, Fanout)> {
        self.get(name)?
            .publish(conn, content, timestamp, self.keep, &self.epoch)
    }

    fn retire(&self, room: &Arc<Room>) {
        let mut table = self.lock();
        // Only the table's current room of that name, and only if unused.
        let current = table.get(room.name()).is_some_and(|r| Arc::ptr_eq(r, room));
        if current && room.retire_if_unused() {
            table.remove(room.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::room::Dialect;
    use crate::metrics::Metrics;
    use crate::ws::Outbox;
    use serde_json::json;

    fn member(conn: u64) -> Member {
        let (outbox, _rx) = Outbox::new(conn, 1 << 20, Arc::new(Metrics::default()));
        Member {
            conn,
            name: "m".into(),
            dialect: Dialect::Text,
            outbox,
        }
    }

    #[test]
    fn unused_rooms_go_and_rooms_with_history_stay() {
        let rooms = Rooms::new("E".into(), 10);
        rooms.join("quiet", member(1), None);
        rooms.join("busy", member(2), None);
        rooms.publish("busy", 2, "hi", &json!(0)).unwrap();
        rooms.leave("quiet", 1, false).unwrap();
        rooms.leave("busy", 2, false).unwrap();
        assert!(rooms.get("quiet").is_none());
        let busy = rooms.get("busy").unwrap();
        assert_eq!(busy.online(), 0);
        assert!(rooms.leave("busy", 2, false).is_none());
    }
}

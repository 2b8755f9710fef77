//! The table of rooms, by name: finds or creates a room, and retires rooms
//! nobody is in.
//!
//! Lock order: the table's lock, then a room's lock; never the other way.
//! The table lock is held only to find, create or retire a room, never
//! during a fan-out.
//!
//! An empty room that has never numbered a message is retired at once. One
//! that has keeps its history and sequence while it is among the
//! [`MAX_IDLE_ROOMS`] most recently emptied rooms, so a client that drops
//! and comes back resumes with `since`; beyond that the oldest are retired,
//! which bounds the memory that abandoned rooms hold. A room created again
//! gets a new epoch, so a client resuming into it learns it missed data.

use crate::hub::room::{Joined, Member, Room, RoomCtx, Since};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

/// Empty rooms with history kept for resuming clients.
pub const MAX_IDLE_ROOMS: usize = 1024;

/// All rooms.
#[derive(Debug)]
pub struct Rooms {
    table: Mutex<Table>,
    ctx: Arc<RoomCtx>,
}

#[derive(Debug, Default)]
struct Table {
    rooms: HashMap<String, Arc<Room>>,
    /// Rooms in the order they became empty (some may have members again;
    /// those are skipped when their turn comes).
    idle: VecDeque<Arc<Room>>,
}

impl Rooms {
    /// An empty table whose rooms share `ctx`.
    pub fn new(ctx: RoomCtx) -> Rooms {
        Rooms {
            table: Mutex::new(Table::default()),
            ctx: Arc::new(ctx),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The room `name`, if it exists.
    pub fn get(&self, name: &str) -> Option<Arc<Room>> {
        self.lock().rooms.get(name).cloned()
    }

    /// Every room, sorted by name.
    pub fn all(&self) -> Vec<Arc<Room>> {
        let mut rooms: Vec<Arc<Room>> = self.lock().rooms.values().cloned().collect();
        rooms.sort_by(|a, b| a.name().cmp(b.name()));
        rooms
    }

    /// Adds `member` to room `name`, creating it; see [`Room::join`].
    pub fn join(&self, name: &str, member: Member, since: Option<&Since>) -> Joined {
        loop {
            let room = self
                .lock()
                .rooms
                .entry(name.to_string())
                .or_insert_with(|| Arc::new(Room::new(name, self.ctx.clone())))
                .clone();
            // The room may have been retired between the two locks; then
            // the next look-up creates a fresh one.
            if let Some(joined) = room.join(member.clone(), since) {
                return joined;
            }
        }
    }

    /// Removes connection `conn` from room `name`; false when it was not a
    /// member.
    pub fn leave(&self, name: &str, conn: u64, tell_leaver: bool) -> bool {
        let Some(room) = self.get(name) else {
            return false;
        };
        if !room.leave(conn, tell_leaver) {
            return false;
        }
        self.retire(&room);
        true
    }

    /// Publishes in room `name` from member `conn`; `None` when `conn` is
    /// not a member.
    pub fn publish(&self, name: &str, conn: u64, content: &str, timestamp: &Value) -> Option<u64> {
        self.get(name)?.publish(conn, content, timestamp)
    }

    fn retire(&self, room: &Arc<Room>) {
        let mut table = self.lock();
        if !table.holds(room) {
            return;
        }
        if room.retire_if_empty(false) {
            table.rooms.remove(room.name());
        } else if room.online() == 0 {
            table.idle.push_back(room.clone());
            while table.idle.len() > MAX_IDLE_ROOMS {
                let Some(oldest) = table.idle.pop_front() else {
                    break;
                };
                if table.holds(&oldest) && oldest.retire_if_empty(true) {
                    table.rooms.remove(oldest.name());
                }
            }
        }
    }
}

impl Table {
    /// Whether `room` is the table's current room of its name.
    fn holds(&self, room: &Arc<Room>) -> bool {
        self.rooms
            .get(room.name())
            .is_some_and(|r| Arc::ptr_eq(r, room))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::flusher::Flusher;
    use crate::hub::room::Dialect;
    use crate::hub::stats::HubStats;
    use serde_json::json;

    fn member(conn: u64) -> Member {
        crate::hub::testing::member(conn, "m", Dialect::Text).0
    }

    /// A table in epoch "E" whose notices go out at once.
    fn test_rooms() -> Rooms {
        Rooms::new(RoomCtx {
            epoch: "E".into(),
            generation: Default::default(),
            keep: 10,
            window: std::time::Duration::ZERO,
            stats: Arc::new(HubStats::default()),
            flusher: Flusher::immediate(),
        })
    }

    #[test]
    fn unused_rooms_go_and_rooms_with_history_stay() {
        let rooms = test_rooms();
        rooms.join("quiet", member(1), None);
        rooms.join("busy", member(2), None);
        rooms.publish("busy", 2, "hi", &json!(0)).unwrap();
        assert!(rooms.leave("quiet", 1, false));
        assert!(rooms.leave("busy", 2, false));
        assert!(rooms.get("quiet").is_none());
        let busy = rooms.get("busy").unwrap();
        assert_eq!(busy.online(), 0);
        assert!(!rooms.leave("busy", 2, false));
        assert_eq!(busy.epoch(), "E.2");
    }

    #[test]
    fn the_oldest_idle_rooms_are_retired_and_come_back_with_a_new_epoch() {
        let rooms = test_rooms();
        for i in 0..=MAX_IDLE_ROOMS as u64 {
            let name = format!("r{i}");
            rooms.join(&name, member(i), None);
            rooms.publish(&name, i, "hi", &json!(0)).unwrap();
            rooms.leave(&name, i, false);
        }
        assert!(rooms.get("r0").is_none(), "the oldest idle room went");
        assert!(rooms.get("r1").is_some());
        let first_epoch = "E.1";
        let joined = rooms.join(
            "r0",
            member(9999),
            Some(&Since {
                seq: 1,
                epoch: Some(first_epoch.into()),
            }),
        );
        assert_ne!(joined.epoch, first_epoch);
        assert_eq!(joined.recovered, Some(false));
    }
}

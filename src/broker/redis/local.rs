//! What this instance holds of the shared state: its rooms (those with a
//! member here, each subscribed), its hub clients, and what Redis has not
//! heard of yet (registrations made while it could not be reached).
//! Lock order: the room table, then one room; the client registry and the
//! unannounced set are never held with either.

use crate::broker::redis::room::{Room, RoomCtx};
use crate::hub::clients::Clients;
use crate::hub::member::Dialect;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// This instance's side of the shared rooms and clients.
#[derive(Debug)]
pub struct Local {
    table: Mutex<HashMap<String, Arc<Room>>>,
    ctx: Arc<RoomCtx>,
    /// Hub clients connected here.
    pub clients: Clients,
    /// Hub clients connected while Redis could not be reached.
    unannounced: Mutex<HashSet<String>>,
    /// Something changed here that Redis did not take: the heartbeat
    /// re-registers everything.
    dirty: AtomicBool,
}

/// Everything this instance holds, to register it again.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Members: room, connection, dialect, name, announce (joined while
    /// Redis was away).
    pub members: Vec<(String, u64, Dialect, Arc<str>, bool)>,
    /// Hub clients: id, connection, announce.
    pub clients: Vec<(String, u64, bool)>,
}

impl Local {
    /// Nothing yet; rooms share `ctx`.
    pub fn new(ctx: RoomCtx) -> Local {
        Local {
            table: Mutex::default(),
            ctx: Arc::new(ctx),
            clients: Clients::default(),
            unannounced: Mutex::default(),
            dirty: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Room>>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Room `name`, if it has anything here.
    pub fn room(&self, name: &str) -> Option<Arc<Room>> {
        self.lock().get(name).cloned()
    }

    /// Room `name`, created when missing; true when created (it must be
    /// subscribed).
    pub fn room_or_new(&self, name: &str) -> (Arc<Room>, bool) {
        let mut table = self.lock();
        if let Some(room) = table.get(name) {
            return (room.clone(), false);
        }
        let room = Arc::new(Room::new(name, self.ctx.clone()));
        table.insert(name.to_string(), room.clone());
        (room, true)
    }

    /// Every room here.
    pub fn rooms(&self) -> Vec<Arc<Room>> {
        self.lock().values().cloned().collect()
    }

    /// Rooms with a member here.
    pub fn room_count(&self) -> usize {
        self.lock().len()
    }

    /// Drops `room` from the table if nothing of it is left here; true
    /// when it did (the caller unsubscribes).
    pub fn retire(&self, room: &Arc<Room>) -> bool {
        let mut table = self.lock();
        let current = table.get(room.name()).is_some_and(|r| Arc::ptr_eq(r, room));
        if current && room.retire_if_empty() {
            table.remove(room.name());
            return true;
        }
        false
    }

    /// Hub client `id` connected while Redis was away.
    pub fn unannounced(&self, id: &str) {
        self.unannounced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string());
        self.mark_dirty();
    }

    /// Hub client `id` is gone (it will not be announced).
    pub fn forget(&self, id: &str) {
        self.unannounced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// Redis missed a change: re-register at the next heartbeat.
    pub fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
    }

    /// Whether a re-registration is due; clears the flag.
    pub fn take_dirty(&self) -> bool {
        self.dirty.swap(false, Ordering::AcqRel)
    }

    /// Everything held here now; clears what was waiting to be announced
    /// (the caller announces it).
    pub fn snapshot(&self) -> Snapshot {
        let mut snapshot = Snapshot::default();
        for room in self.rooms() {
            for (conn, dialect, name, announce) in room.snapshot() {
                snapshot
                    .members
                    .push((room.name().to_string(), conn, dialect, name, announce));
            }
        }
        let unannounced =
            std::mem::take(&mut *self.unannounced.lock().unwrap_or_else(|e| e.into_inner()));
        snapshot.clients = self
            .clients
            .snapshot()
            .into_iter()
            .map(|(id, conn)| {
                let announce = unannounced.contains(&id);
                (id, conn, announce)
            })
            .collect();
        snapshot
    }
}

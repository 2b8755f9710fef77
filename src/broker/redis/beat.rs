//! The heartbeat thread: keeps this instance alive in Redis, reaps the
//! instances that are not, and registers everything held here again when
//! Redis does not know it (first contact, a Redis that lost its data, this
//! instance reaped after a partition, or changes made while Redis was
//! away).
//!
//! With `--redis-presence-ttl T`, an instance beats every `T/8` (at most
//! every second) and counts as alive until `T/2` after its last beat: a
//! live instance reaps a dead one at its first beat after that, so the
//! dead one's clients leave presence, and are announced gone, within
//! `5T/8` of its last sign of life (within `T` with room to spare for a
//! loaded host), while a live instance would have to miss four beats in a
//! row to be taken for dead.

use crate::broker::redis::parts::Parts;
use crate::broker::redis::publisher::Op;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use redis::Connection;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// How long an instance's keys outlive its last beat when nobody reaps it.
pub const KEEP: Duration = Duration::from_secs(24 * 3600);

/// What the heartbeat thread works with.
pub struct Beat {
    /// The broker's shared pieces.
    pub parts: Parts,
    /// The publisher's queue, for re-registration.
    pub ops: Sender<Op>,
    /// `--redis-presence-ttl`.
    pub ttl: Duration,
}

impl Beat {
    /// The time between beats.
    pub fn every(&self) -> Duration {
        (self.ttl / 8).min(Duration::from_secs(1))
    }

    /// Beats until `stop` is dropped.
    pub fn run(self, stop: Receiver<()>) {
        let mut con: Option<(Connection, u64)> = None;
        loop {
            let generation = self.parts.link.generation();
            if con.as_ref().is_some_and(|(_, g)| *g != generation) {
                con = None; // the master moved
            }
            if con.is_none() {
                let connected = self.parts.link.connect("beat");
                self.parts.health.connected(&connected);
                con = connected.ok().map(|c| (c, generation));
            }
            if let Some((c, _)) = con.as_mut() {
                if !self.beat(c) {
                    con = None;
                }
            }
            if con.is_none() {
                self.parts.health.set_registered(false);
            }
            match stop.recv_timeout(self.every()) {
                Err(RecvTimeoutError::Timeout) => {}
                _ => return,
            }
        }
    }

    /// One beat; false when the connection failed.
    fn beat(&self, con: &mut Connection) -> bool {
        let alive_for = (self.ttl / 2).as_millis() as u64;
        let beat: redis::RedisResult<(i64, i64, i64)> = self
            .parts
            .scripts
            .beat
            .key(self.parts.keys.instances())
            .arg(self.parts.keys.instance())
            .arg(alive_for)
            .arg(self.parts.keys.prefix())
            .arg(KEEP.as_secs())
            .invoke(con);
        let (new, reaped_me, reaped) = match beat {
            Ok(answer) => answer,
            Err(e) => {
                self.parts.link.lost_master(&e);
                log::warn!("redis: heartbeat failed: {e}");
                return false;
            }
        };
        if reaped > 0 {
            log::info!(
                "redis: {reaped} instance(s) stopped beating; their clients were announced gone"
            );
            self.parts.health.reaped.fetch_add(reaped as u64, Relaxed);
        }
        if new == 1 || self.parts.local.take_dirty() {
            if new == 1 && reaped_me == 1 {
                log::warn!(
                    "redis: this instance was taken for dead; registering its clients again"
                );
            }
            let (done, answer) = crossbeam_channel::bounded(1);
            let resync = Op::Resync {
                announce_all: reaped_me == 1,
                done,
            };
            let ok = self.ops.send(resync).is_ok()
                && answer
                    .recv_timeout(Duration::from_secs(10))
                    .unwrap_or(false);
            if !ok {
                self.parts.local.mark_dirty();
                return true;
            }
        }
        self.parts.health.set_registered(true);
        true
    }
}

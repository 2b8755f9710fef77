//! The members of one room on this server, and delivery to them: each
//! event is encoded once per dialect and the same frame is queued to every
//! member that speaks it.
//!
//! An [`Audience`] has no lock of its own: its room holds it under the
//! room's lock, so everything queued here is queued in the room's one
//! order. It never touches a socket; [`Outbox::send`] only queues.
//!
//! Join and leave notices are coalesced (see [`crate::hub::notices`]) and
//! always go out before a later message. A notice waits [`notice_delay`]:
//! the flusher's short delay, or longer in a room whose last flush took
//! long (thousands of members, each copy encrypted under TLS), up to
//! [`MAX_NOTICE_DELAY`], so that flushing a room's notices takes a small
//! share of a core and a room forming fast gets its joins in fewer,
//! larger writes. What a push costs is mostly the
//! wake-up of the member's connection thread, so a large audience
//! ([`COALESCE_MEMBERS`] or more) that is busy (an event within the window
//! of its last delivery) batches its messages like its notices and
//! delivers them at the end of the window: each member is woken at most
//! once per window, however fast the room talks. A small audience, or a
//! large one that was quiet for a window, gets each event at once.
//!
//! A connection thread that handles a batch of reads holds its
//! deliveries until the batch ends (`held` in [`Audience::deliver`], see
//! [`crate::hub::deferred`]): they join the batch too, and each member
//! gets all of them in one write.
//!
//! Where a batch must be flushed later, the room is asked to schedule it
//! (a `schedule` callback: false means "flush now", e.g. no flusher).

use crate::hub::member::{push, Dialect, Fanout, Member};
use crate::hub::notices::{self, Batch};
use crate::ws::Outbox;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Audiences of at least this many members coalesce busy message traffic.
pub const COALESCE_MEMBERS: usize = 100;

/// A notice waits at least this many times as long as the audience's last
/// flush took (up to [`MAX_NOTICE_DELAY`]), so flushing its notices takes
/// at most 1 / (1 + this) of a core however fast members join, as long as
/// a flush takes less than a quarter of that cap.
pub const NOTICE_DUTY: u32 = 4;

/// The longest a notice waits to be coalesced: the lag of presence in the
/// largest rooms. (100 ms formed a 4,000-member room over `wss://` no
/// faster than 20 ms, and its messages' p99 rose by a third in 6 runs of 8.)
pub const MAX_NOTICE_DELAY: Duration = Duration::from_millis(20);

/// How long a notice batched now waits, given how long the audience's
/// last flush took (see [`NOTICE_DUTY`]).
pub fn notice_delay(last_flush: Duration) -> Duration {
    (last_flush * NOTICE_DUTY).clamp(crate::hub::flusher::DELAY, MAX_NOTICE_DELAY)
}

/// The two encodings of one event; `None` where no member needs it.
#[derive(Debug, Clone, Default)]
pub struct Frames {
    /// For hub members.
    pub json: Option<Arc<[u8]>>,
    /// For text members.
    pub text: Option<Arc<[u8]>>,
}

impl Frames {
    /// The frame for `dialect`, if there is one.
    pub fn of(&self, dialect: Dialect) -> Option<&Arc<[u8]>> {
        match dialect {
            Dialect::Json => self.json.as_ref(),
            Dialect::Text => self.text.as_ref(),
        }
    }
}

/// A member and where it stands in the room.
#[derive(Debug)]
pub struct Joiner {
    /// The member.
    pub member: Member,
    /// The last `seq` before this member joined: it receives every later
    /// message live.
    pub joined_after: u64,
    /// The first notice of the current batch this member should see.
    from: usize,
}

/// The members of one room, with their pending batch.
#[derive(Debug, Default)]
pub struct Audience {
    members: HashMap<u64, Joiner>,
    text_members: usize,
    /// Join and leave notices (and a busy audience's messages) not yet queued.
    batch: Batch,
    /// When the audience was last queued to.
    last_delivery: Option<Instant>,
    /// How long its last flush took (see [`notice_delay`]).
    last_flush: Duration,
}

impl Audience {
    /// Member `conn`, if it is one.
    pub fn get(&self, conn: u64) -> Option<&Joiner> {
        self.members.get(&conn)
    }

    /// Members now.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether there is no member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Text members now (whether a text frame is worth encoding).
    pub fn text_members(&self) -> usize {
        self.text_members
    }

    /// Every member.
    pub fn members(&self) -> impl Iterator<Item = &Joiner> {
        self.members.values()
    }

    /// The distinct names of the members, sorted.
    pub fn presence(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .members
            .values()
            .map(|j| j.member.name.to_string())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Adds `member` and batches `notice` (its join, in both dialects) for
    /// every member: a hub joiner sees it too, a text joiner does not.
    pub fn join(
        &mut self,
        member: Member,
        joined_after: u64,
        notice: Frames,
        schedule: impl FnOnce(Instant) -> bool,
    ) -> Fanout {
        let at = self.batch_push(notice);
        let from = match member.dialect {
            Dialect::Json => at,
            Dialect::Text => at + 1,
        };
        self.insert(member, joined_after, from);
        self.notice_added(schedule)
    }

    /// Adds `member` without a notice: it receives what is queued from now
    /// on (its owner has told it and the others what they need).
    pub fn insert_quietly(&mut self, member: Member, joined_after: u64) {
        let from = self.batch.len();
        self.insert(member, joined_after, from);
    }

    fn insert(&mut self, member: Member, joined_after: u64, from: usize) {
        if member.dialect == Dialect::Text {
            self.text_members += 1;
        }
        let joiner = Joiner {
            member,
            joined_after,
            from,
        };
        if let Some(old) = self.members.insert(joiner.member.conn, joiner) {
            if old.member.dialect == Dialect::Text {
                self.text_members -= 1;
            }
        }
    }

    /// Removes connection `conn`. With a `farewell` (a hub member that
    /// left by `leave_room`), the leaver first gets every batched notice
    /// it was due, then the farewell. `None` when `conn` was not a member.
    pub fn remove(&mut self, conn: u64, farewell: Option<&Arc<[u8]>>) -> Option<(Member, Fanout)> {
        let joiner = self.members.remove(&conn)?;
        let member = joiner.member;
        if member.dialect == Dialect::Text {
            self.text_members -= 1;
        }
        let mut fanout = Fanout::default();
        if let (Some(farewell), Dialect::Json) = (farewell, member.dialect) {
            if let Some(due) = self.batch.flush().frames(true, joiner.from) {
                fanout.add(push(&member.outbox, &due));
            }
            fanout.add(push(&member.outbox, farewell));
        }
        Some((member, fanout))
    }

    /// Batches a notice (a join or leave) for every member.
    pub fn notice(&mut self, notice: Frames, schedule: impl FnOnce(Instant) -> bool) -> Fanout {
        self.batch_push(notice);
        self.notice_added(schedule)
    }

    fn batch_push(&mut self, frames: Frames) -> usize {
        let empty = || Arc::<[u8]>::from(&[][..]);
        self.batch.push(
            frames.json.unwrap_or_else(empty),
            frames.text.unwrap_or_else(empty),
        )
    }

    /// After a notice was batched: schedules the batch, or flushes it now
    /// when it is full or cannot be scheduled.
    fn notice_added(&mut self, schedule: impl FnOnce(Instant) -> bool) -> Fanout {
        let n = self.batch.len();
        let due = Instant::now() + notice_delay(self.last_flush);
        if n >= notices::CAP || (n == 1 && !schedule(due)) {
            return self.flush();
        }
        Fanout::default()
    }

    /// Queues the waiting batch.
    pub fn flush(&mut self) -> Fanout {
        if self.batch.is_empty() {
            return Fanout::default();
        }
        // Windows are counted from when a delivery starts, as for one made
        // at once: a long fan-out does not stretch the next window.
        let start = Instant::now();
        self.last_delivery = Some(start);
        let Audience { members, batch, .. } = self;
        let mut flush = batch.flush();
        let mut fanout = Fanout::default();
        for joiner in members.values_mut() {
            let from = std::mem::take(&mut joiner.from);
            let json = joiner.member.dialect == Dialect::Json;
            if let Some(frames) = flush.frames(json, from) {
                fanout.add(push(&joiner.member.outbox, &frames));
            }
        }
        batch.clear();
        self.last_flush = start.elapsed();
        fanout
    }

    /// Queues an event to every member: at once, or into the batch when
    /// the audience is large and busy (see the module docs); `window` is
    /// `--room-window-ms`. `held`: the calling thread flushes this audience
    /// at the end of its batch of work (see [`crate::hub::deferred`]), so
    /// the event joins the batch, behind what it holds (a full batch is
    /// flushed at once).
    pub fn deliver(
        &mut self,
        frames: Frames,
        window: Duration,
        held: bool,
        schedule: impl FnOnce(Instant) -> bool,
    ) -> Fanout {
        if held {
            self.batch_push(frames);
            if self.batch.len() >= notices::CAP {
                return self.flush();
            }
            return Fanout::default();
        }
        let now = Instant::now();
        let window_end = self.last_delivery.map(|t| t + window);
        let busy = !window.is_zero()
            && self.members.len() >= COALESCE_MEMBERS
            && window_end.is_some_and(|end| now < end);
        if busy {
            let was_empty = self.batch.is_empty();
            self.batch_push(frames);
            let scheduled = !was_empty || window_end.is_some_and(schedule);
            if scheduled && self.batch.len() < notices::CAP {
                return Fanout::default();
            }
            return self.flush();
        }
        let mut fanout = self.flush();
        self.last_delivery = Some(now);
        fanout.add(self.fan_out(&frames));
        fanout
    }

    /// Queues `frames` to every member in its dialect, now.
    fn fan_out(&self, frames: &Frames) -> Fanout {
        let mut fanout = Fanout::default();
        for joiner in self.members.values() {
            if let Some(frame) = frames.of(joiner.member.dialect) {
                fanout.add(push(&joiner.member.outbox, frame));
            }
        }
        fanout
    }

    /// Queues `frames` to one outbox in its dialect (a member's own copy
    /// of something the others get through the batch).
    pub fn send_one(outbox: &Outbox, dialect: Dialect, frames: &Frames) -> Fanout {
        frames
            .of(dialect)
            .map(|f| push(outbox, f))
            .unwrap_or_default()
    }

    /// Forgets when the audience was last delivered to (tests: as if it
    /// had been quiet for a window).
    #[cfg(test)]
    pub fn forget_last_delivery(&mut self) {
        self.last_delivery = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::flusher::DELAY;

    #[test]
    fn notices_wait_longer_in_a_room_whose_flushes_take_long() {
        assert_eq!(notice_delay(Duration::ZERO), DELAY);
        assert_eq!(notice_delay(Duration::from_micros(100)), DELAY);
        assert_eq!(
            notice_delay(Duration::from_millis(3)),
            Duration::from_millis(12)
        );
        assert_eq!(notice_delay(Duration::from_secs(1)), MAX_NOTICE_DELAY);
    }
}

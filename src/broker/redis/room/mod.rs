//! One shared room as this instance sees it: its members here (an
//! [`Audience`]), the joins and leaves of members here that are still on
//! their way through Redis, and where the room's sequence stands here
//! (its epoch and the last `seq` delivered), for gap repair.
//!
//! Every member, wherever it is, hears a room's events in the order Redis
//! put them on the room's channel. So a member here is added to the
//! audience when its own join notice comes back through the channel and
//! its joiner has its answer (the `since` replay read in the same Lua
//! script that published the notice): whatever was published before the
//! notice is in the replay, whatever after reaches it live. A `leave_room`
//! likewise keeps the leaver hearing the room until its own leave notice
//! comes back, so it hears its own last message before its `room_leave`.
//!
//! A notice can be lost with a pub/sub connection; the subscriber then
//! calls [`Room::repair`], which also settles the joins and leaves whose
//! notices may have gone with it. Events arrive from the subscriber
//! thread; joins and leaves from connection threads; all under one lock.
//! Nothing here talks to Redis. Joins and leaves are here; what arrives
//! from the channel is in [`arrival`].

use crate::broker::redis::event::Said;
use crate::broker::redis::sequence::Sequence;
use crate::hub::audience::{Audience, Frames};
use crate::hub::deferred;
use crate::hub::flusher::{Flush, Flusher};
use crate::hub::member::{push, recovered, Dialect, Fanout, Joined, Member, Since};
use crate::hub::stats::HubStats;
use crate::hub::wire;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

mod arrival;

/// What every room of this instance shares.
#[derive(Debug)]
pub struct RoomCtx {
    /// This instance's id, to recognise its own members' notices.
    pub instance: String,
    /// `--room-window-ms`.
    pub window: Duration,
    /// Where deliveries are counted.
    pub stats: Arc<HubStats>,
    /// Where batches are scheduled.
    pub flusher: Flusher,
}

/// What a join's Lua script answered.
#[derive(Debug, Clone)]
pub struct JoinAnswer {
    /// The room's epoch.
    pub epoch: String,
    /// Its last `seq` when the join's notice was published.
    pub last: u64,
    /// The held messages after `since`, in order (empty without `since`).
    pub held: Vec<(u64, Said)>,
}

/// What the subscriber must do after an event.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Nothing: the event was delivered (or was a duplicate).
    Done,
    /// Messages after `seq` `after` of epoch `epoch` are missing: read them
    /// from the history, [`Room::repair`], then hand the event in again.
    Gap {
        /// The last `seq` delivered here.
        after: u64,
        /// Its epoch.
        epoch: String,
    },
}

/// A room of this instance.
#[derive(Debug)]
pub struct Room {
    name: String,
    ctx: Arc<RoomCtx>,
    state: Mutex<State>,
    /// The subscriber holds this room's channel (and has repaired it
    /// since its connection last came up).
    subscribed: AtomicBool,
}

#[derive(Debug, Default)]
struct State {
    audience: Audience,
    /// Members here whose join is on its way.
    pending: HashMap<u64, Pending>,
    /// Hub members here that left by `leave_room` and hear the room until
    /// their own leave notice.
    leavers: HashMap<u64, Member>,
    /// Members here that joined while Redis was away: their join notice,
    /// when it comes, is news to the others here too.
    unheard: HashSet<u64>,
    /// Members here added without waiting for their notice (it may have
    /// been lost); if it comes after all, it is not delivered again.
    settled: HashSet<u64>,
    /// Where the room's sequence stands here.
    sequence: Sequence,
    /// Removed from the table: a joiner that finds this looks again.
    dead: bool,
}

impl State {
    /// Whether anyone here who hears the room speaks `dialect`.
    fn speaks(&self, dialect: Dialect) -> bool {
        let text = self.audience.text_members();
        let in_audience = match dialect {
            Dialect::Text => text > 0,
            Dialect::Json => self.audience.len() > text || !self.leavers.is_empty(),
        };
        in_audience
            || self
                .pending
                .values()
                .any(|p| p.heard.is_some() && p.member.dialect == dialect)
    }

    /// Pending member `conn` if its join was answered (it is joined, its
    /// notice on its way), with the last `seq` before it joined.
    fn answered(&self, conn: u64) -> Option<(&Pending, u64)> {
        let pending = self.pending.get(&conn)?;
        pending.answered.map(|after| (pending, after))
    }
}

#[derive(Debug)]
struct Pending {
    member: Member,
    /// The join's answer was handled (its last `seq`).
    answered: Option<u64>,
    /// Its own notice came back; what came after it waits here.
    heard: Option<Vec<Frames>>,
}

impl Room {
    /// An empty room called `name`.
    pub fn new(name: &str, ctx: Arc<RoomCtx>) -> Room {
        Room {
            name: name.to_string(),
            ctx,
            state: Mutex::default(),
            subscribed: AtomicBool::new(false),
        }
    }

    /// The room's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A callback that schedules this room's batch on the flusher.
    fn scheduler(self: &Arc<Self>) -> impl FnOnce(Instant) -> bool + '_ {
        self.ctx.flusher.scheduler(self)
    }

    /// Whether the subscriber holds the channel now.
    pub fn is_subscribed(&self) -> bool {
        self.subscribed.load(Ordering::Acquire)
    }

    /// Set by the subscriber.
    pub fn set_subscribed(&self, yes: bool) {
        self.subscribed.store(yes, Ordering::Release);
    }

    /// `conn`'s name and outbox if it is a member here: in the audience,
    /// or joined (its join answered) with its notice still on its way. A
    /// leaver is not.
    pub fn member(&self, conn: u64) -> Option<Member> {
        let state = self.lock();
        match state.audience.get(conn) {
            Some(joiner) => Some(joiner.member.clone()),
            None => state.answered(conn).map(|(p, _)| p.member.clone()),
        }
    }

    /// Starts `member`'s join: it waits for its notice. `Err` answers a
    /// connection that is already a member (nothing changes); `None` when
    /// the room was retired meanwhile (look it up again).
    pub fn begin_join(&self, member: Member, since: Option<&Since>) -> Option<Result<(), Joined>> {
        let mut state = self.lock();
        if state.dead {
            return None;
        }
        let joined_after = match state.audience.get(member.conn) {
            Some(joiner) => Some(joiner.joined_after),
            None => state.answered(member.conn).map(|(_, after)| after),
        };
        if let Some(joined_after) = joined_after {
            let epoch = state.sequence.epoch().unwrap_or_default().to_string();
            let last = state.sequence.last().unwrap_or(0);
            return Some(Err(Joined::already(since, &epoch, joined_after, last)));
        }
        let conn = member.conn;
        state.pending.insert(
            conn,
            Pending {
                member,
                answered: None,
                heard: None,
            },
        );
        Some(Ok(()))
    }

    /// A join that could not be carried out: forgotten.
    pub fn abort_join(&self, conn: u64) {
        self.lock().pending.remove(&conn);
    }

    /// Finishes a join with its script's `answer`: the joiner's recovery
    /// and replay (returned to send directly, or queued behind what its
    /// outbox still holds), then, once its notice is back, its
    /// `room_join`. With `maybe_lost`, the subscriber's connection
    /// was replaced while the join ran, so its notice may never come: the
    /// member is added now.
    pub fn finish_join(
        self: &Arc<Self>,
        conn: u64,
        answer: JoinAnswer,
        since: Option<&Since>,
        maybe_lost: bool,
    ) -> Joined {
        let mut state = self.lock();
        let mut joined = Joined {
            epoch: answer.epoch.clone(),
            ..Joined::default()
        };
        let Some(pending) = state.pending.get_mut(&conn) else {
            return joined;
        };
        pending.answered = Some(answer.last);
        let outbox = pending.member.outbox.clone();
        if let Some(since) = since {
            let oldest = answer.held.first().map(|(seq, _)| *seq);
            let ok = recovered(since, &answer.epoch, answer.last, oldest);
            let replay: Vec<Arc<str>> = answer
                .held
                .iter()
                .map(|(seq, said)| self.render_json(said, *seq, &answer.epoch).into())
                .collect();
            if outbox.queued_bytes() > 0 {
                // Frames queued for this connection are not written yet:
                // a direct write would overtake them.
                let mut fanout = push(
                    &outbox,
                    &wire::frame(&wire::recovery(&self.name, &answer.epoch, ok)),
                );
                for json in &replay {
                    fanout.add(push(&outbox, &wire::frame(json)));
                }
                self.ctx.stats.count(fanout);
            } else {
                joined.recovered = Some(ok);
                joined.replay = replay;
            }
        }
        state.sequence.start(&answer.epoch, answer.last);
        let heard = state.pending.get(&conn).is_some_and(|p| p.heard.is_some());
        if heard || maybe_lost {
            self.settle(&mut state, conn, maybe_lost && !heard);
        }
        joined
    }

    /// Adds pending member `conn` to the audience. `synthesize`: its
    /// notice was not heard (and may never be): everyone here hears it
    /// now, and the real one is not delivered if it comes.
    fn settle(self: &Arc<Self>, state: &mut State, conn: u64, synthesize: bool) {
        let Some(pending) = state.pending.remove(&conn) else {
            return;
        };
        let member = pending.member;
        let joined_after = pending.answered.unwrap_or(0);
        let notice = wire::join_notice(&member.name, &self.name);
        let mut fanout = Fanout::default();
        match pending.heard {
            Some(after) => {
                // The others heard the notice already; the joiner gets its
                // own (a hub joiner) and what came after it, then the rest.
                if member.dialect == Dialect::Json {
                    fanout.add(Audience::send_one(&member.outbox, member.dialect, &notice));
                }
                for frames in &after {
                    fanout.add(Audience::send_one(&member.outbox, member.dialect, frames));
                }
                state.audience.insert_quietly(member, joined_after);
            }
            None => {
                if synthesize {
                    state.settled.insert(member.conn);
                }
                fanout.add(Self::to_bystanders(state, &notice));
                fanout.add(
                    state
                        .audience
                        .join(member, joined_after, notice, self.scheduler()),
                );
            }
        }
        self.ctx.stats.count(fanout);
    }

    /// Adds a text member while Redis cannot be reached: it hears the
    /// room here at once and is announced once Redis is back.
    pub fn join_offline(self: &Arc<Self>, member: Member) -> bool {
        let mut state = self.lock();
        if state.dead {
            return false;
        }
        state.unheard.insert(member.conn);
        let last = state.sequence.last().unwrap_or(0);
        state.audience.insert_quietly(member, last);
        true
    }

    /// Removes connection `conn`. A `leave_room` (`tell_leaver`) keeps it
    /// hearing the room until its leave notice comes back (or
    /// [`Room::release_leaver`]). Returns its name and dialect, `None`
    /// when it was not a member.
    pub fn leave(&self, conn: u64, tell_leaver: bool) -> Option<(Arc<str>, Dialect)> {
        let mut state = self.lock();
        state.unheard.remove(&conn);
        state.settled.remove(&conn);
        let member = match state.audience.remove(conn, None) {
            Some((member, fanout)) => {
                self.ctx.stats.count(fanout);
                member
            }
            // Joined, its notice still on its way: as a leaver it hears
            // its notice (its room_join) and then its leave.
            None => {
                state.answered(conn)?;
                state.pending.remove(&conn)?.member
            }
        };
        let named = (member.name.clone(), member.dialect);
        if tell_leaver && member.dialect == Dialect::Json {
            state.leavers.insert(conn, member);
        }
        Some(named)
    }

    /// A leaver whose notice will not come (Redis could not take the
    /// leave, or the notice was lost): it gets its `room_leave` now.
    pub fn release_leaver(&self, conn: u64) {
        let mut state = self.lock();
        if let Some(member) = state.leavers.remove(&conn) {
            let farewell = wire::frame(&wire::room_leave(&member.name, &self.name));
            self.ctx.stats.count(push(&member.outbox, &farewell));
        }
    }

    /// The members here, for re-registering them: (conn, dialect, name,
    /// whether their join was never announced).
    pub fn snapshot(&self) -> Vec<(u64, Dialect, Arc<str>, bool)> {
        let state = self.lock();
        let members = state.audience.members().map(|j| {
            let m = &j.member;
            (
                m.conn,
                m.dialect,
                m.name.clone(),
                state.unheard.contains(&m.conn),
            )
        });
        // A pending join is registered by its own script; listing it keeps
        // a re-registration from removing it.
        let pending = state.pending.values().map(|p| {
            (
                p.member.conn,
                p.member.dialect,
                p.member.name.clone(),
                false,
            )
        });
        members.chain(pending).collect()
    }

    /// Whether this instance has nothing in the room any more; then the
    /// room is marked retired (the caller drops it from the table and
    /// unsubscribes).
    pub fn retire_if_empty(&self) -> bool {
        let mut state = self.lock();
        if state.audience.is_empty() && state.pending.is_empty() && state.leavers.is_empty() {
            state.dead = true;
        }
        state.dead
    }

    /// Where delivery stands here: the epoch and last `seq` delivered.
    pub fn position(&self) -> (Option<String>, Option<u64>) {
        self.lock().sequence.position()
    }

    /// Redis numbered a publish of this instance `seq` in `epoch`.
    pub fn published(&self, epoch: &str, seq: u64) {
        self.lock().sequence.published(epoch, seq);
    }

    /// What this instance knows Redis handed out (see
    /// [`Sequence::known`]).
    pub fn known(&self) -> [(String, u64); 2] {
        self.lock().sequence.known()
    }

    /// A `POST /broadcast` to everyone: the text members here hear it (hub
    /// members hear it through the client registry). Returns how many.
    pub fn broadcast_to_text(self: &Arc<Self>, message: &str) -> usize {
        let mut state = self.lock();
        let n = state.audience.text_members();
        if n > 0 {
            let frames = wire::broadcast_frames(&self.name, message, true, true);
            let fanout = state.audience.deliver(
                frames,
                self.ctx.window,
                deferred::note(self),
                self.scheduler(),
            );
            self.ctx.stats.count(fanout);
        }
        n
    }
}

impl Flush for Room {
    fn flush(&self) {
        let fanout = self.lock().audience.flush();
        self.ctx.stats.count(fanout);
    }
}

#[cfg(test)]
mod tests;

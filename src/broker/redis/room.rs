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
//! Nothing here talks to Redis.

use crate::broker::redis::event::{Notice, RoomEvent, Said};
use crate::broker::redis::sequence::{Arrival, Sequence};
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

    /// An event from the room's channel.
    pub fn on_event(self: &Arc<Self>, event: &RoomEvent) -> Next {
        let mut state = self.lock();
        match event {
            RoomEvent::Message { seq, epoch, said } => match state.sequence.arrive(*seq, epoch) {
                Arrival::Duplicate => {}
                Arrival::Gap { after } => {
                    return Next::Gap {
                        after,
                        epoch: epoch.clone(),
                    }
                }
                Arrival::Deliver { lost } => {
                    if lost {
                        self.tell_lost(&mut state, epoch);
                    }
                    self.deliver_message(&mut state, *seq, epoch, said);
                }
            },
            RoomEvent::Notice(notice) => self.on_notice(&mut state, notice),
        }
        Next::Done
    }

    fn on_notice(self: &Arc<Self>, state: &mut State, notice: &Notice) {
        let own = |who: &str| {
            who.strip_prefix(self.ctx.instance.as_str())
                .and_then(|rest| rest.strip_prefix(':'))
                .and_then(|conn| conn.parse::<u64>().ok())
        };
        match notice {
            Notice::Joined { name, who } => {
                let frames = wire::join_notice(name, &self.name);
                if let Some(conn) = own(who) {
                    if let Some(pending) = state.pending.get_mut(&conn) {
                        if pending.answered.is_some() {
                            self.settle(state, conn, false);
                        } else {
                            // The others hear it now; the joiner, once
                            // its answer is out, with what follows.
                            self.to_everyone(state, frames, true);
                            if let Some(pending) = state.pending.get_mut(&conn) {
                                pending.heard = Some(Vec::new());
                            }
                        }
                        return;
                    }
                    if state.settled.remove(&conn) {
                        return;
                    }
                    if state.unheard.remove(&conn) {
                        // Joined while Redis was away: the others here hear
                        // of it now, in the order every instance does.
                        if let Some((member, _)) = state.audience.remove(conn, None) {
                            let after = state.sequence.last().unwrap_or(0);
                            let mut fanout = Self::to_bystanders(state, &frames);
                            fanout.add(state.audience.join(
                                member,
                                after,
                                frames,
                                self.scheduler(),
                            ));
                            self.ctx.stats.count(fanout);
                        }
                        return;
                    }
                    if state.audience.get(conn).is_some() {
                        return;
                    }
                }
                self.to_everyone(state, frames, true);
            }
            Notice::Left { name, who } => {
                let frames = wire::leave_notice(name, &self.name);
                if let Some(member) = own(who).and_then(|c| state.leavers.remove(&c)) {
                    self.ctx.stats.count(Audience::send_one(
                        &member.outbox,
                        member.dialect,
                        &frames,
                    ));
                }
                self.to_everyone(state, frames, true);
            }
            Notice::Broadcast { message } => {
                let frames = wire::broadcast_frames(
                    &self.name,
                    message,
                    false,
                    state.audience.text_members() > 0,
                );
                self.to_everyone(state, frames, false);
            }
        }
    }

    /// Queues `frames` to the audience (as a notice when `notice`), to the
    /// leavers, and to the joiners waiting for their answer.
    fn to_everyone(self: &Arc<Self>, state: &mut State, frames: Frames, notice: bool) {
        let mut fanout = Self::to_bystanders(state, &frames);
        fanout.add(if notice {
            state.audience.notice(frames, self.scheduler())
        } else {
            state.audience.deliver(
                frames,
                self.ctx.window,
                deferred::note(self),
                self.scheduler(),
            )
        });
        self.ctx.stats.count(fanout);
    }

    /// Queues `frames` to those who hear the room without being in its
    /// audience: the leavers, and the joiners that heard their own notice
    /// and wait for their answer.
    fn to_bystanders(state: &mut State, frames: &Frames) -> Fanout {
        let mut fanout = Fanout::default();
        for member in state.leavers.values() {
            fanout.add(Audience::send_one(&member.outbox, member.dialect, frames));
        }
        for pending in state.pending.values_mut() {
            if let Some(after) = pending.heard.as_mut() {
                after.push(frames.clone());
            }
        }
        fanout
    }

    fn render_json(&self, said: &Said, seq: u64, epoch: &str) -> String {
        wire::room_message(
            &said.name,
            &said.content,
            &self.name,
            seq,
            epoch,
            &said.timestamp,
        )
    }

    fn deliver_message(self: &Arc<Self>, state: &mut State, seq: u64, epoch: &str, said: &Said) {
        state.sequence.delivered(seq);
        // Encoded once per dialect, and only for a dialect someone speaks.
        let frames = Frames {
            json: state
                .speaks(Dialect::Json)
                .then(|| wire::frame(&self.render_json(said, seq, epoch))),
            text: state
                .speaks(Dialect::Text)
                .then(|| wire::frame(&wire::text_said(&said.name, &said.content))),
        };
        self.to_everyone(state, frames, false);
    }

    /// Tells everyone here that messages may have been lost, and that the
    /// room's epoch is now `epoch`.
    fn tell_lost(self: &Arc<Self>, state: &mut State, epoch: &str) {
        let frames = Frames {
            json: Some(wire::frame(&wire::recovery(&self.name, epoch, false))),
            text: Some(wire::frame(&wire::text_lost(&self.name))),
        };
        self.to_everyone(state, frames, false);
    }

    /// Repairs delivery here from the history: after a gap (`until`: the
    /// `seq` that arrived too early) or after the subscriber's connection
    /// was replaced (`until` None). `meta` is the room's epoch and last
    /// `seq` in Redis (`None`: Redis has no sequence for it any more),
    /// `held` the history the repair script read for this room's
    /// position. Delivers what was missed in order, says
    /// `recovered:false` where some of it is gone; after a new
    /// connection, also settles the joins and leaves whose notices may
    /// have been lost with the old one.
    pub fn repair(
        self: &Arc<Self>,
        meta: Option<(String, u64)>,
        held: &[(u64, Said)],
        until: Option<u64>,
    ) {
        let mut state = self.lock();
        if let Some(repair) = state.sequence.repair(meta, held, until) {
            if repair.lost {
                self.tell_lost(&mut state, &repair.epoch);
            }
            for (seq, said) in repair.deliver {
                self.deliver_message(&mut state, *seq, &repair.epoch, said);
            }
            state.sequence.delivered(repair.end);
        }
        if until.is_some() {
            return;
        }
        let answered: Vec<(u64, bool)> = state
            .pending
            .iter()
            .filter(|(_, p)| p.answered.is_some())
            .map(|(conn, p)| (*conn, p.heard.is_none()))
            .collect();
        for (conn, unheard) in answered {
            self.settle(&mut state, conn, unheard);
        }
        let leavers: Vec<u64> = state.leavers.keys().copied().collect();
        drop(state);
        for conn in leavers {
            self.release_leaver(conn);
        }
    }
}

impl Flush for Room {
    fn flush(&self) {
        let fanout = self.lock().audience.flush();
        self.ctx.stats.count(fanout);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::testing::{member, texts};
    use crossbeam_channel::Receiver;
    use serde_json::json;

    const ME: &str = "inst";

    fn room() -> Arc<Room> {
        let ctx = RoomCtx {
            instance: ME.into(),
            window: Duration::ZERO,
            stats: Arc::new(HubStats::default()),
            flusher: Flusher::immediate(),
        };
        Arc::new(Room::new("r", Arc::new(ctx)))
    }

    fn said(name: &str, content: &str) -> Said {
        Said {
            name: name.into(),
            content: content.into(),
            timestamp: json!(0),
        }
    }

    fn message(seq: u64, epoch: &str) -> RoomEvent {
        RoomEvent::Message {
            seq,
            epoch: epoch.into(),
            said: said("x", &format!("m{seq}")),
        }
    }

    fn joined(name: &str, conn: u64) -> RoomEvent {
        RoomEvent::Notice(Notice::Joined {
            name: name.into(),
            who: format!("{ME}:{conn}"),
        })
    }

    fn answer(last: u64) -> JoinAnswer {
        JoinAnswer {
            epoch: "E".into(),
            last,
            held: Vec::new(),
        }
    }

    /// Joins hub member `name` (connection `conn`) with its answer first
    /// or its notice first; returns its queue.
    fn join(
        room: &Arc<Room>,
        conn: u64,
        name: &str,
        notice_first: bool,
    ) -> Receiver<crate::ws::Outgoing> {
        let (m, rx) = member(conn, name, Dialect::Json);
        room.begin_join(m, None).unwrap().unwrap();
        if notice_first {
            room.on_event(&joined(name, conn));
            room.finish_join(conn, answer(0), None, false);
        } else {
            room.finish_join(conn, answer(0), None, false);
            room.on_event(&joined(name, conn));
        }
        rx
    }

    fn kinds(rx: &Receiver<crate::ws::Outgoing>) -> Vec<String> {
        texts(rx)
            .iter()
            .map(|t| {
                let v: serde_json::Value = serde_json::from_str(t).unwrap();
                match v["type"].as_str().unwrap() {
                    "message" => format!("message {}", v["seq"]),
                    "recovery" => format!("recovery {}", v["recovered"]),
                    kind => format!("{kind} {}", v["client_id"].as_str().unwrap_or("")),
                }
            })
            .collect()
    }

    #[test]
    fn a_joiner_hears_its_join_once_and_then_the_room_whichever_comes_first() {
        for notice_first in [true, false] {
            let room = room();
            let a = join(&room, 1, "a", !notice_first);
            let (b, b_rx) = member(2, "b", Dialect::Json);
            room.begin_join(b, None).unwrap().unwrap();
            if notice_first {
                room.on_event(&joined("b", 2));
                // Heard, not answered yet: what follows waits for b.
                room.on_event(&message(1, "E"));
                assert!(texts(&b_rx).is_empty());
                room.finish_join(2, answer(0), None, false);
            } else {
                room.finish_join(2, answer(0), None, false);
                room.on_event(&joined("b", 2));
                room.on_event(&message(1, "E"));
            }
            assert_eq!(kinds(&b_rx), ["room_join b", "message 1"]);
            assert_eq!(kinds(&a), ["room_join a", "room_join b", "message 1"]);
        }
    }

    #[test]
    fn joiners_waiting_for_their_answer_hear_joins_settled_meanwhile() {
        let room = room();
        let (a, a_rx) = member(1, "a", Dialect::Json);
        let (b, b_rx) = member(2, "b", Dialect::Json);
        room.begin_join(a, None).unwrap().unwrap();
        room.begin_join(b, None).unwrap().unwrap();
        room.on_event(&joined("a", 1)); // a heard, not answered
        room.finish_join(2, answer(0), None, false); // b answered first
        room.on_event(&joined("b", 2)); // b settles: a must hear it
        room.finish_join(1, answer(0), None, false);
        assert_eq!(kinds(&a_rx), ["room_join a", "room_join b"]);
        assert_eq!(kinds(&b_rx), ["room_join b"]);
    }

    #[test]
    fn a_leaver_hears_the_room_until_its_own_leave_notice() {
        let room = room();
        let a = join(&room, 1, "a", false);
        let _ = texts(&a);
        room.leave(1, true).unwrap();
        room.on_event(&message(1, "E"));
        room.on_event(&RoomEvent::Notice(Notice::Left {
            name: "a".into(),
            who: format!("{ME}:1"),
        }));
        room.on_event(&message(2, "E"));
        assert_eq!(kinds(&a), ["message 1", "room_leave a"]);
        assert!(room.retire_if_empty());
    }

    #[test]
    fn a_joiner_may_send_and_leave_before_its_notice_is_back() {
        let room = room();
        let (a, a_rx) = member(1, "a", Dialect::Json);
        room.begin_join(a, None).unwrap().unwrap();
        room.finish_join(1, answer(0), None, false);
        assert!(room.member(1).is_some(), "joined once answered");
        assert!(room
            .begin_join(member(1, "a", Dialect::Json).0, None)
            .unwrap()
            .is_err());
        room.leave(1, true).unwrap();
        assert!(room.member(1).is_none());
        room.on_event(&joined("a", 1));
        room.on_event(&message(1, "E"));
        room.on_event(&RoomEvent::Notice(Notice::Left {
            name: "a".into(),
            who: format!("{ME}:1"),
        }));
        assert_eq!(kinds(&a_rx), ["room_join a", "message 1", "room_leave a"]);
        assert!(room.retire_if_empty());
    }

    #[test]
    fn a_gap_is_asked_for_and_repaired_in_order() {
        let room = room();
        let a = join(&room, 1, "a", false);
        room.on_event(&message(1, "E"));
        assert_eq!(
            room.on_event(&message(4, "E")),
            Next::Gap {
                after: 1,
                epoch: "E".into()
            }
        );
        let held = vec![(2, said("x", "m2")), (3, said("x", "m3"))];
        room.repair(Some(("E".into(), 4)), &held, Some(4));
        assert_eq!(room.on_event(&message(4, "E")), Next::Done);
        room.on_event(&message(4, "E")); // a duplicate
        assert_eq!(
            kinds(&a),
            [
                "room_join a",
                "message 1",
                "message 2",
                "message 3",
                "message 4"
            ]
        );
    }

    #[test]
    fn what_left_the_history_or_a_new_epoch_is_told_as_not_recovered() {
        let room = room();
        let a = join(&room, 1, "a", false);
        room.on_event(&message(1, "E"));
        let _ = texts(&a);
        // 2 and 3 were trimmed; 4 and 5 are held.
        let held = vec![(4, said("x", "m4")), (5, said("x", "m5"))];
        room.repair(Some(("E".into(), 5)), &held, None);
        room.on_event(&message(6, "F"));
        assert_eq!(
            kinds(&a),
            [
                "recovery false",
                "message 4",
                "message 5",
                "recovery false",
                "message 6"
            ]
        );
    }

    #[test]
    fn a_room_restarted_in_redis_goes_on_from_its_new_first_message() {
        let room = room();
        let a = join(&room, 1, "a", false);
        for seq in 1..=5 {
            room.on_event(&message(seq, "E"));
        }
        let _ = texts(&a);
        // Redis came back empty; another instance sent 1 and 2 meanwhile.
        let held = vec![(1, said("x", "m1")), (2, said("x", "m2"))];
        room.repair(Some(("F".into(), 2)), &held, None);
        room.on_event(&message(3, "F"));
        assert_eq!(
            kinds(&a),
            ["recovery false", "message 1", "message 2", "message 3"]
        );
    }

    #[test]
    fn a_join_whose_notice_may_be_lost_is_settled_once() {
        let room = room();
        let (a, a_rx) = member(1, "a", Dialect::Text);
        room.begin_join(a, None).unwrap().unwrap();
        room.finish_join(1, answer(0), None, true);
        room.on_event(&joined("a", 1)); // it came after all
        let (b, b_rx) = member(2, "b", Dialect::Text);
        room.begin_join(b, None).unwrap().unwrap();
        room.finish_join(2, answer(0), None, false);
        room.on_event(&joined("b", 2));
        assert_eq!(texts(&a_rx), ["system: b joined r"]);
        assert!(texts(&b_rx).is_empty());
    }
}

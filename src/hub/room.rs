//! One room: its members (of both dialects), its history and its sequence.
//!
//! Everything that must be atomic happens under the room's one lock: a
//! message gets its `seq`, enters the history and is queued to every member
//! in the same critical section, so every member sees the room's messages
//! in `seq` order; a join takes its history snapshot and registers the
//! member in one critical section, so a `since` replay and the live
//! messages after it neither overlap nor leave a gap.
//!
//! Sending under the lock is fine: [`Outbox::send`] only queues (it never
//! touches a socket and never waits). Each message is encoded once per
//! dialect and the same `Arc` frame is queued to every member, so a fan-out
//! costs one cheap push per member. Join and leave notices are coalesced
//! (see [`crate::hub::notices`]) and always go out before a later message.
//!
//! What a push costs is mostly the wake-up of the member's connection
//! thread, and then its write and its client's wake-up. So a large room
//! ([`COALESCE_MEMBERS`] or more) that is busy (a message within the
//! window, [`RoomCtx::window`], of its last delivery) batches its messages like its
//! notices and delivers them at the end of the window: each member is woken
//! at most once per window per room, however fast the room talks. A small
//! room, or a large one that was quiet for a window, delivers at once.

use crate::hub::flusher::Flusher;
use crate::hub::notices::{self, Batch};
use crate::hub::stats::HubStats;
use crate::hub::wire;
use crate::ws::Outbox;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Rooms with at least this many members coalesce busy message traffic.
pub const COALESCE_MEMBERS: usize = 100;

/// How a member is spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `/ws/{room}/{user}`: plain lines.
    Text,
    /// `/ws/chat/{client_id}`: JSON objects.
    Json,
}

/// A connection in a room.
#[derive(Debug, Clone)]
pub struct Member {
    /// The connection's server-wide id: a member's identity in a room.
    pub conn: u64,
    /// The `user` or `client_id` others see.
    pub name: Arc<str>,
    /// How it is spoken to.
    pub dialect: Dialect,
    /// Where its frames go.
    pub outbox: Arc<Outbox>,
}

/// A `join_room`'s `since` (and optional `epoch`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Since {
    /// The last `seq` the client holds.
    pub seq: u64,
    /// The epoch that `seq` belongs to, if the client said.
    pub epoch: Option<String>,
}

/// A room's history holds at most this many bytes of messages (besides
/// `--room-history` messages), so a few huge messages cannot pin memory.
pub const HISTORY_BYTES: usize = 1 << 20;

/// What a join gives the joiner to send itself, directly, before anything
/// queued on its outbox. When the joiner's outbox still held frames, the
/// recovery and replay were queued behind them instead, and are not here.
#[derive(Debug, Default)]
pub struct Joined {
    /// The room's current epoch.
    pub epoch: String,
    /// `Some(recovered)` when the join asked for `since`.
    pub recovered: Option<bool>,
    /// The held messages after `since`, in order (JSON texts).
    pub replay: Vec<Arc<str>>,
    /// The connection was already a member: nothing changed, and the
    /// `room_join` was not queued (the caller answers it directly).
    pub already: bool,
}

/// Frames queued and dropped by one fan-out.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Fanout {
    /// Frames queued.
    pub queued: u64,
    /// Frames refused by a full or closing outbox.
    pub dropped: u64,
}

impl Fanout {
    /// Adds `other`'s counts.
    pub fn add(&mut self, other: Fanout) {
        self.queued += other.queued;
        self.dropped += other.dropped;
    }
}

/// What every room of one table shares.
#[derive(Debug)]
pub struct RoomCtx {
    /// The server life's epoch; each room's epoch is this plus the room's
    /// generation, so a room that is retired and created again never
    /// reuses an epoch with a restarted sequence.
    pub epoch: String,
    /// Rooms created so far, numbering generations.
    pub generation: AtomicU64,
    /// Messages kept per room.
    pub keep: usize,
    /// In a busy large room, how long a message may wait to travel with
    /// the next ones (`--room-window-ms`): at most this much latency added,
    /// and at most one wake-up of each member per window. Zero: none.
    pub window: Duration,
    /// Where deliveries are counted.
    pub stats: Arc<HubStats>,
    /// Where notice batches are scheduled.
    pub flusher: Flusher,
}

/// A room. Created by the room table; see the module docs.
#[derive(Debug)]
pub struct Room {
    name: String,
    epoch: String,
    ctx: Arc<RoomCtx>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    members: HashMap<u64, Joiner>,
    text_members: usize,
    history: VecDeque<Held>,
    history_bytes: usize,
    /// The `seq` of the next message: 1 in a new room.
    next_seq: u64,
    /// Join and leave notices (and a busy room's messages) not yet queued.
    batch: Batch,
    /// When the room last queued to its members.
    last_delivery: Option<Instant>,
    /// Removed from the table: a joiner that finds this looks again.
    dead: bool,
}

#[derive(Debug)]
struct Joiner {
    member: Member,
    /// The last `seq` before this member joined: it receives every later
    /// message live.
    joined_after: u64,
    /// The first notice of the current batch this member should see.
    from: usize,
}

#[derive(Debug)]
struct Held {
    seq: u64,
    json: Arc<str>,
}

/// The two encodings of one event; `None` where no member needs it.
struct Frames {
    json: Option<Arc<[u8]>>,
    text: Option<Arc<[u8]>>,
}

impl Room {
    /// An empty room called `name`.
    pub fn new(name: &str, ctx: Arc<RoomCtx>) -> Room {
        let generation = ctx.generation.fetch_add(1, Relaxed) + 1;
        Room {
            name: name.to_string(),
            epoch: format!("{}.{generation}", ctx.epoch),
            ctx,
            state: Mutex::new(State {
                members: HashMap::new(),
                text_members: 0,
                history: VecDeque::new(),
                history_bytes: 0,
                next_seq: 1,
                batch: Batch::default(),
                last_delivery: None,
                dead: false,
            }),
        }
    }

    /// The room's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The epoch of this room's sequence.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not take every room down with it; the
        // state is consistent after every single statement that changes it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `member`, answering `since` from the history, and announces it
    /// to every member in its dialect (the joiner included when it speaks
    /// JSON; a text joiner is told nothing). `None` when the room was
    /// removed from the table meanwhile: look it up again.
    pub fn join(self: &Arc<Self>, member: Member, since: Option<&Since>) -> Option<Joined> {
        let epoch = self.epoch.as_str();
        let mut state = self.lock();
        if state.dead {
            return None;
        }
        let last = state.next_seq - 1;
        if let Some(joiner) = state.members.get(&member.conn) {
            // Already receiving this room live since `joined_after`: nothing
            // to replay without reordering, so only say whether that covers
            // what the client asks for.
            let recovered = since.map(|s| {
                s.epoch.as_deref().map_or(true, |e| e == epoch)
                    && s.seq >= joiner.joined_after
                    && s.seq <= last
            });
            return Some(Joined {
                epoch: epoch.to_string(),
                recovered,
                replay: Vec::new(),
                already: true,
            });
        }
        let mut joined = Joined {
            epoch: epoch.to_string(),
            ..Joined::default()
        };
        if let Some(since) = since {
            let (recovered, replay) = state.answer(since, epoch);
            if member.outbox.queued_bytes() > 0 {
                // Frames queued for this connection are not written yet
                // (say, the messages and `room_leave` of a leave just
                // before): a direct write would overtake them, so the
                // answer is queued behind them instead.
                let outbox = &member.outbox;
                let mut fanout = push(
                    outbox,
                    &wire::frame(&wire::recovery(&self.name, epoch, recovered)),
                );
                for held in &replay {
                    fanout.add(push(outbox, &wire::frame(held)));
                }
                self.ctx.stats.count(fanout);
            } else {
                joined.recovered = Some(recovered);
                joined.replay = replay;
            }
        }
        let at = state.batch.push(
            wire::frame(&wire::room_join(&member.name, &self.name)),
            wire::frame(&wire::text_joined(&member.name, &self.name)),
        );
        let from = match member.dialect {
            Dialect::Json => at,
            Dialect::Text => {
                state.text_members += 1;
                at + 1
            }
        };
        let joiner = Joiner {
            member,
            joined_after: last,
            from,
        };
        state.members.insert(joiner.member.conn, joiner);
        self.notice_added(&mut state);
        Some(joined)
    }

    /// Removes connection `conn` and announces it to the remaining members;
    /// the leaver itself is told too (after every notice it was due) when
    /// `tell_leaver` (a `leave_room`, not a disconnect). False when `conn`
    /// was not a member.
    pub fn leave(self: &Arc<Self>, conn: u64, tell_leaver: bool) -> bool {
        let mut state = self.lock();
        let Some(joiner) = state.members.remove(&conn) else {
            return false;
        };
        let member = joiner.member;
        if member.dialect == Dialect::Text {
            state.text_members -= 1;
        }
        let json = wire::frame(&wire::room_leave(&member.name, &self.name));
        if tell_leaver && member.dialect == Dialect::Json {
            let mut fanout = Fanout::default();
            if let Some(due) = state.batch.flush().frames(true, joiner.from) {
                fanout.add(push(&member.outbox, &due));
            }
            fanout.add(push(&member.outbox, &json));
            self.ctx.stats.count(fanout);
        }
        let text = wire::frame(&wire::text_left(&member.name, &self.name));
        state.batch.push(json, text);
        self.notice_added(&mut state);
        true
    }

    /// After a notice was batched: schedules the batch, or flushes it now
    /// when it is full or there is no flusher.
    fn notice_added(self: &Arc<Self>, state: &mut State) {
        let n = state.batch.len();
        let due = Instant::now() + crate::hub::flusher::DELAY;
        if n >= notices::CAP || (n == 1 && !self.ctx.flusher.schedule(self, due)) {
            self.flush_locked(state);
        }
    }

    /// Queues the waiting batch (called by the flusher thread).
    pub fn flush(&self) {
        let mut state = self.lock();
        self.flush_locked(&mut state);
    }

    fn flush_locked(&self, state: &mut State) {
        if state.batch.is_empty() {
            return;
        }
        // Windows are counted from when a delivery starts, as for one made
        // at once: a long fan-out does not stretch the next window.
        state.last_delivery = Some(Instant::now());
        let State { members, batch, .. } = state;
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
        self.ctx.stats.count(fanout);
    }

    /// Queues an event to every member: at once, or into the batch when
    /// the room is large and busy (see the module docs).
    fn deliver(self: &Arc<Self>, state: &mut State, frames: Frames) {
        let now = Instant::now();
        let window = self.ctx.window;
        let window_end = state.last_delivery.map(|t| t + window);
        let busy = !window.is_zero()
            && state.members.len() >= COALESCE_MEMBERS
            && window_end.is_some_and(|end| now < end);
        if busy {
            let empty = || Arc::<[u8]>::from(&[][..]);
            let was_empty = state.batch.is_empty();
            state.batch.push(
                frames.json.unwrap_or_else(empty),
                frames.text.unwrap_or_else(empty),
            );
            let scheduled =
                !was_empty || window_end.is_some_and(|end| self.ctx.flusher.schedule(self, end));
            if scheduled && state.batch.len() < notices::CAP {
                return;
            }
            self.flush_locked(state);
            return;
        }
        self.flush_locked(state);
        state.last_delivery = Some(now);
        self.ctx.stats.count(state.fan_out(&frames));
    }

    /// Publishes a message from member `conn`: numbers it, keeps it in the
    /// history, and queues it to every member, the sender included. `None`
    /// when `conn` is not a member.
    pub fn publish(self: &Arc<Self>, conn: u64, content: &str, timestamp: &Value) -> Option<u64> {
        let mut state = self.lock();
        let name = state.members.get(&conn)?.member.name.clone();
        let seq = state.next_seq;
        state.next_seq += 1;
        let json: Arc<str> =
            wire::room_message(&name, content, &self.name, seq, &self.epoch, timestamp).into();
        let frames = Frames {
            json: Some(wire::frame(&json)),
            text: (state.text_members > 0).then(|| wire::frame(&wire::text_said(&name, content))),
        };
        let keep = self.ctx.keep;
        if keep > 0 {
            while state.history.len() >= keep
                || (!state.history.is_empty() && state.history_bytes + json.len() > HISTORY_BYTES)
            {
                if let Some(old) = state.history.pop_front() {
                    state.history_bytes -= old.json.len();
                }
            }
            state.history_bytes += json.len();
            state.history.push_back(Held { seq, json });
        }
        self.ctx.stats.room_messages.fetch_add(1, Relaxed);
        self.deliver(&mut state, frames);
        Some(seq)
    }

    /// Queues a `POST /broadcast` to every member and returns how many it
    /// reached; with `everyone` (a broadcast to every client, which reaches
    /// hub clients through the client registry) only text members here.
    pub fn broadcast(self: &Arc<Self>, message: &str, everyone: bool) -> usize {
        let mut state = self.lock();
        let frames = Frames {
            json: (!everyone).then(|| wire::frame(&wire::broadcast(Some(&self.name), message))),
            text: (state.text_members > 0).then(|| wire::frame(&wire::text_broadcast(message))),
        };
        self.deliver(&mut state, frames);
        if everyone {
            state.text_members
        } else {
            state.members.len()
        }
    }

    /// The distinct names of the members, sorted.
    pub fn presence(&self) -> Vec<String> {
        let state = self.lock();
        let mut names: Vec<String> = state
            .members
            .values()
            .map(|j| j.member.name.to_string())
            .collect();
        drop(state);
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Connections in the room now.
    pub fn online(&self) -> usize {
        self.lock().members.len()
    }

    /// Marks the room removed if it has no member, and (unless `even_with_history`)
    /// has never numbered a message. Returns whether it did.
    pub fn retire_if_empty(&self, even_with_history: bool) -> bool {
        let mut state = self.lock();
        if state.members.is_empty() && (even_with_history || state.next_seq == 1) {
            state.dead = true;
        }
        state.dead
    }
}

impl State {
    /// The `recovered` flag and the replay for `since`.
    fn answer(&self, since: &Since, epoch: &str) -> (bool, Vec<Arc<str>>) {
        let last = self.next_seq - 1;
        let same_epoch = since.epoch.as_deref().map_or(true, |e| e == epoch);
        // Everything after `since` is here when the oldest held message is
        // at most `since + 1` (or nothing was published after `since`). A
        // `since` past the last message cannot belong to this epoch.
        let complete = since.seq <= last
            && match self.history.front() {
                Some(oldest) => oldest.seq <= since.seq + 1,
                None => since.seq == last,
            };
        let replay = self
            .history
            .iter()
            .filter(|h| h.seq > since.seq)
            .map(|h| h.json.clone())
            .collect();
        (same_epoch && complete, replay)
    }

    /// Queues `frames` to every member in its dialect.
    fn fan_out(&self, frames: &Frames) -> Fanout {
        let mut fanout = Fanout::default();
        for joiner in self.members.values() {
            let member = &joiner.member;
            let frame = match member.dialect {
                Dialect::Json => &frames.json,
                Dialect::Text => &frames.text,
            };
            if let Some(frame) = frame {
                fanout.add(push(&member.outbox, frame));
            }
        }
        fanout
    }
}

/// Queues one frame, counting the outcome.
pub fn push(outbox: &Outbox, frame: &Arc<[u8]>) -> Fanout {
    if outbox.send(frame.clone()) {
        Fanout {
            queued: 1,
            dropped: 0,
        }
    } else {
        Fanout {
            queued: 0,
            dropped: 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::ws::Outgoing;
    use crossbeam_channel::Receiver;
    use serde_json::json;

    const WINDOW: Duration = Duration::from_millis(20);

    fn room_with(keep: usize, flusher: Flusher) -> Arc<Room> {
        room_windowed(keep, flusher, WINDOW)
    }

    fn room_windowed(keep: usize, flusher: Flusher, window: Duration) -> Arc<Room> {
        let ctx = RoomCtx {
            epoch: "E".into(),
            generation: AtomicU64::new(0),
            keep,
            window,
            stats: Arc::new(HubStats::default()),
            flusher,
        };
        Arc::new(Room::new("r", Arc::new(ctx)))
    }

    fn room(keep: usize) -> Arc<Room> {
        room_with(keep, Flusher::immediate())
    }

    fn member(conn: u64, name: &str, dialect: Dialect) -> (Member, Receiver<Outgoing>) {
        let (outbox, rx) = Outbox::new(conn, 1 << 20, Arc::new(Metrics::default()));
        let m = Member {
            conn,
            name: name.into(),
            dialect,
            outbox,
        };
        (m, rx)
    }

    /// Every text frame queued so far (buffers may hold several).
    fn texts(rx: &Receiver<Outgoing>) -> Vec<String> {
        let mut out = Vec::new();
        for item in rx.try_iter() {
            match item {
                Outgoing::Frame(buf) => {
                    let mut at = 0;
                    while at < buf.len() {
                        let n = (buf[at + 1] & 0x7f) as usize;
                        assert!(n < 126, "short frames only in these tests");
                        out.push(String::from_utf8(buf[at + 2..at + 2 + n].to_vec()).unwrap());
                        at += 2 + n;
                    }
                }
                Outgoing::Close(c, _) => out.push(format!("close {c}")),
            }
        }
        out
    }

    fn since(seq: u64, epoch: Option<&str>) -> Since {
        Since {
            seq,
            epoch: epoch.map(str::to_string),
        }
    }

    fn publish(room: &Arc<Room>, conn: u64, n: usize) {
        for i in 0..n {
            room.publish(conn, &format!("m{i}"), &json!(0)).unwrap();
        }
    }

    #[test]
    fn each_dialect_gets_its_own_shape() {
        let room = room(10);
        let (a, arx) = member(1, "a", Dialect::Json);
        let (b, brx) = member(2, "bob", Dialect::Text);
        room.join(a, None).unwrap();
        room.join(b, None).unwrap();
        room.publish(2, "hi", &json!(5)).unwrap();
        let a_got = texts(&arx);
        assert_eq!(a_got.len(), 3, "{a_got:?}");
        assert!(a_got[1].contains(r#""client_id":"bob""#));
        assert!(a_got[2].contains(r#""seq":1"#));
        assert_eq!(texts(&brx), vec!["bob: hi"]);
    }

    #[test]
    fn since_inside_the_history_recovers_everything_after_it() {
        let room = room(10);
        let (a, _arx) = member(1, "a", Dialect::Json);
        room.join(a, None).unwrap();
        publish(&room, 1, 5);
        let (b, _brx) = member(2, "b", Dialect::Json);
        let joined = room.join(b, Some(&since(2, Some("E.1")))).unwrap();
        assert_eq!(joined.epoch, "E.1");
        assert_eq!(joined.recovered, Some(true));
        let seqs: Vec<bool> = joined
            .replay
            .iter()
            .zip(3..)
            .map(|(j, n)| j.contains(&format!(r#""seq":{n}"#)))
            .collect();
        assert_eq!(seqs, vec![true, true, true]);
    }

    #[test]
    fn recovery_is_honest() {
        let room = room(4);
        let (a, _arx) = member(1, "a", Dialect::Json);
        room.join(a, None).unwrap();
        publish(&room, 1, 10);
        let mut conn = 10;
        let mut ask = |s: Since| {
            conn += 1;
            let (m, _rx) = member(conn, "x", Dialect::Json);
            let j = room.join(m, Some(&s)).unwrap();
            (j.recovered.unwrap(), j.replay.len())
        };
        assert_eq!(ask(since(6, None)), (true, 4), "oldest held is 7");
        assert_eq!(ask(since(5, None)), (false, 4), "6 has left the history");
        assert_eq!(ask(since(10, Some("E.1"))), (true, 0), "up to date");
        assert_eq!(ask(since(8, Some("other"))), (false, 2), "another epoch");
        assert_eq!(ask(since(11, None)), (false, 0), "from the future");
    }

    #[test]
    fn a_rejoin_replays_nothing() {
        let room = room(10);
        let (a, _arx) = member(1, "a", Dialect::Json);
        room.join(a.clone(), None).unwrap();
        publish(&room, 1, 3);
        let j = room.join(a.clone(), Some(&since(0, None))).unwrap();
        assert!(j.already && j.replay.is_empty());
        assert_eq!(j.recovered, Some(true), "it has received 1..3 live");
        let (b, _brx) = member(2, "b", Dialect::Json);
        room.join(b.clone(), None).unwrap();
        let j = room.join(b, Some(&since(1, None))).unwrap();
        assert_eq!(j.recovered, Some(false), "2 and 3 came before it joined");
    }

    #[test]
    fn leave_tells_the_leaver_only_when_asked() {
        let room = room(10);
        let (a, arx) = member(1, "a", Dialect::Json);
        let (b, brx) = member(2, "b", Dialect::Json);
        room.join(a, None).unwrap();
        room.join(b, None).unwrap();
        texts(&arx);
        texts(&brx);
        assert!(room.leave(1, true));
        assert_eq!(texts(&arx).len(), 1);
        assert_eq!(texts(&brx).len(), 1);
        assert!(room.leave(2, false));
        assert!(texts(&brx).is_empty());
        assert!(!room.leave(2, false));
        assert!(room.publish(2, "x", &json!(0)).is_none());
    }

    #[test]
    fn a_joiner_with_frames_still_queued_gets_its_replay_queued_behind_them() {
        let room = room(10);
        let (a, _arx) = member(1, "a", Dialect::Json);
        room.join(a, None).unwrap();
        publish(&room, 1, 3);
        let (b, brx) = member(2, "b", Dialect::Json);
        b.outbox.send(wire::frame("older"));
        let j = room.join(b, Some(&since(1, None))).unwrap();
        assert!(j.recovered.is_none() && j.replay.is_empty());
        let got = texts(&brx);
        assert_eq!(got[0], "older");
        assert!(got[1].contains(r#""type":"recovery""#) && got[1].contains("true"));
        assert!(got[2].contains(r#""seq":2"#) && got[3].contains(r#""seq":3"#));
        assert!(got[4].contains("room_join"), "{got:?}");
    }

    #[test]
    fn history_is_bounded_in_bytes_too() {
        let room = room(1000);
        let (a, _arx) = member(1, "a", Dialect::Text);
        room.join(a, None).unwrap();
        let big = "x".repeat(300 * 1024);
        for _ in 0..5 {
            room.publish(1, &big, &json!(0)).unwrap();
        }
        let (b, _brx) = member(2, "b", Dialect::Json);
        let j = room.join(b, Some(&since(0, None))).unwrap();
        assert_eq!(j.replay.len(), 3, "1 MiB holds three of them");
        assert_eq!(j.recovered, Some(false));
    }

    #[test]
    fn presence_is_sorted_and_distinct() {
        let room = room(10);
        for (conn, name) in [(1, "c"), (2, "a"), (3, "c"), (4, "b")] {
            room.join(member(conn, name, Dialect::Text).0, None)
                .unwrap();
        }
        assert_eq!(room.presence(), vec!["a", "b", "c"]);
        assert_eq!(room.online(), 4);
    }

    #[test]
    fn batched_notices_reach_each_member_from_its_own_join_on() {
        // A flusher whose queue nobody serves: the batch waits for a flush.
        let (tx, _rx) = crossbeam_channel::unbounded();
        let room = room_with(10, Flusher::with_queue(tx));
        let (a, arx) = member(1, "a", Dialect::Text);
        let (b, brx) = member(2, "b", Dialect::Json);
        let (c, crx) = member(3, "c", Dialect::Text);
        room.join(a, None).unwrap();
        room.join(b, None).unwrap();
        room.join(c, None).unwrap();
        assert!(texts(&arx).is_empty(), "nothing before the flush");
        room.leave(2, false);
        // A message flushes the batch first.
        room.publish(1, "hi", &json!(0)).unwrap();
        assert_eq!(
            texts(&arx),
            vec![
                "system: b joined r",
                "system: c joined r",
                "system: b left r",
                "a: hi"
            ]
        );
        assert!(texts(&brx).is_empty(), "b left before the flush");
        assert_eq!(texts(&crx), vec!["system: b left r", "a: hi"]);
    }

    #[test]
    fn a_hub_leaver_gets_what_it_was_due_then_its_room_leave() {
        let (tx, _rx) = crossbeam_channel::unbounded();
        let room = room_with(10, Flusher::with_queue(tx));
        let (a, arx) = member(1, "a", Dialect::Json);
        let (b, _brx) = member(2, "b", Dialect::Text);
        room.join(a, None).unwrap();
        room.join(b, None).unwrap();
        room.leave(1, true);
        let got = texts(&arx);
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[0].contains("room_join") && got[0].contains(r#""a""#));
        assert!(got[1].contains("room_join") && got[1].contains(r#""b""#));
        assert!(got[2].contains("room_leave"));
    }

    /// A room of `n` text members on a flusher nobody serves; returns the
    /// first member's queue and the flusher's schedule.
    /// What [`crowd`] returns.
    type Crowd = (
        Arc<Room>,
        Receiver<Outgoing>,
        Receiver<(Arc<Room>, Instant)>,
    );

    fn crowd(n: u64, window: Duration) -> Crowd {
        let (tx, schedule) = crossbeam_channel::unbounded();
        let room = room_windowed(10, Flusher::with_queue(tx), window);
        let mut first = None;
        for conn in 1..=n {
            let (m, rx) = member(conn, &format!("u{conn}"), Dialect::Text);
            room.join(m, None).unwrap();
            first.get_or_insert(rx);
        }
        room.flush();
        let first = first.unwrap();
        let _ = texts(&first);
        let _ = schedule.try_iter().count();
        (room, first, schedule)
    }

    #[test]
    fn a_busy_large_room_sends_a_window_of_messages_together() {
        let (room, first, schedule) = crowd(COALESCE_MEMBERS as u64, WINDOW);
        // As if the room had been quiet for a window.
        room.lock().last_delivery = None;
        room.publish(1, "m1", &json!(0)).unwrap();
        assert_eq!(texts(&first), vec!["u1: m1"], "the first goes at once");
        // Within the window of the last delivery: batched, flushed at its end.
        room.publish(1, "m2", &json!(0)).unwrap();
        room.publish(1, "m3", &json!(0)).unwrap();
        assert!(texts(&first).is_empty());
        let scheduled: Vec<_> = schedule.try_iter().collect();
        assert_eq!(scheduled.len(), 1, "one flush per window");
        assert!(scheduled[0].1 <= Instant::now() + WINDOW);
        room.flush();
        let mut frames = 0;
        for item in first.try_iter() {
            if let Outgoing::Frame(buf) = item {
                frames += 1;
                assert_eq!(
                    &buf[..],
                    &[
                        &*wire::frame(&wire::text_said("u1", "m2")),
                        &*wire::frame(&wire::text_said("u1", "m3"))
                    ]
                    .concat()[..]
                );
            }
        }
        assert_eq!(frames, 1, "one wake-up for both");
    }

    #[test]
    fn a_smaller_room_never_waits() {
        let (room, first, schedule) = crowd(COALESCE_MEMBERS as u64 - 1, WINDOW);
        for m in ["m1", "m2", "m3"] {
            room.publish(1, m, &json!(0)).unwrap();
        }
        assert_eq!(texts(&first), vec!["u1: m1", "u1: m2", "u1: m3"]);
        assert!(schedule.try_recv().is_err());
    }

    #[test]
    fn a_zero_window_turns_coalescing_off() {
        let (room, first, schedule) = crowd(COALESCE_MEMBERS as u64, Duration::ZERO);
        for m in ["m1", "m2", "m3"] {
            room.publish(1, m, &json!(0)).unwrap();
        }
        assert_eq!(texts(&first), vec!["u1: m1", "u1: m2", "u1: m3"]);
        assert!(schedule.try_recv().is_err());
    }
}

//! One room of the in-process hub: its members (an [`Audience`]), its
//! [`History`] and its sequence, under one lock.
//!
//! Everything that must be atomic happens under that lock: a message gets
//! its `seq`, enters the history and is queued to every member in the same
//! critical section, so every member sees the room's messages in `seq`
//! order; a join takes its history snapshot and registers the member in one
//! critical section, so a `since` replay and the live messages after it
//! neither overlap nor leave a gap. Sending under the lock is fine:
//! [`crate::ws::Outbox::send`] never waits. A message published on a thread
//! that holds its deliveries (see [`crate::hub::deferred`]) joins the
//! audience's batch under the same lock instead, so the order is the same.

pub use crate::hub::audience::COALESCE_MEMBERS;
use crate::hub::audience::{Audience, Frames};
use crate::hub::deferred;
use crate::hub::flusher::{Flush, Flusher};
use crate::hub::history::History;
pub use crate::hub::history::HISTORY_BYTES;
pub use crate::hub::member::{push, Dialect, Fanout, Joined, Member, Since};
use crate::hub::stats::HubStats;
use crate::hub::wire;
use serde_json::Value;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

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
    audience: Audience,
    history: History,
    /// The `seq` of the next message: 1 in a new room.
    next_seq: u64,
    /// Removed from the table: a joiner that finds this looks again.
    dead: bool,
}

impl Room {
    /// An empty room called `name`.
    pub fn new(name: &str, ctx: Arc<RoomCtx>) -> Room {
        let generation = ctx.generation.fetch_add(1, Relaxed) + 1;
        Room {
            name: name.to_string(),
            epoch: format!("{}.{generation}", ctx.epoch),
            state: Mutex::new(State {
                audience: Audience::default(),
                history: History::new(ctx.keep),
                next_seq: 1,
                dead: false,
            }),
            ctx,
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

    /// Messages numbered so far (the last `seq`).
    pub fn messages(&self) -> u64 {
        self.lock().next_seq - 1
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not take every room down with it; the
        // state is consistent after every single statement that changes it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A callback that schedules this room's batch on the flusher.
    fn scheduler(self: &Arc<Self>) -> impl FnOnce(Instant) -> bool + '_ {
        self.ctx.flusher.scheduler(self)
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
        if let Some(joiner) = state.audience.get(member.conn) {
            return Some(Joined::already(since, epoch, joiner.joined_after, last));
        }
        let mut joined = Joined {
            epoch: epoch.to_string(),
            ..Joined::default()
        };
        if let Some(since) = since {
            let (recovered, replay) = state.history.answer(since, epoch, last);
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
        let notice = wire::join_notice(&member.name, &self.name);
        let fanout = state.audience.join(member, last, notice, self.scheduler());
        self.ctx.stats.count(fanout);
        Some(joined)
    }

    /// Removes connection `conn` and announces it to the remaining members;
    /// the leaver itself is told too (after every notice it was due) when
    /// `tell_leaver` (a `leave_room`, not a disconnect). False when `conn`
    /// was not a member.
    pub fn leave(self: &Arc<Self>, conn: u64, tell_leaver: bool) -> bool {
        let mut state = self.lock();
        let Some(name) = state.audience.get(conn).map(|j| j.member.name.clone()) else {
            return false;
        };
        let notice = wire::leave_notice(&name, &self.name);
        let farewell = notice.json.as_ref().filter(|_| tell_leaver);
        let Some((_, mut fanout)) = state.audience.remove(conn, farewell) else {
            return false;
        };
        fanout.add(state.audience.notice(notice, self.scheduler()));
        self.ctx.stats.count(fanout);
        true
    }

    /// Publishes a message from member `conn`: numbers it, keeps it in the
    /// history, and queues it to every member, the sender included. `None`
    /// when `conn` is not a member.
    pub fn publish(self: &Arc<Self>, conn: u64, content: &str, timestamp: &Value) -> Option<u64> {
        let mut state = self.lock();
        let name = state.audience.get(conn)?.member.name.clone();
        let seq = state.next_seq;
        state.next_seq += 1;
        let json: Arc<str> =
            wire::room_message(&name, content, &self.name, seq, &self.epoch, timestamp).into();
        let frames = Frames {
            json: Some(wire::frame(&json)),
            text: (state.audience.text_members() > 0)
                .then(|| wire::frame(&wire::text_said(&name, content))),
        };
        state.history.push(seq, json);
        self.ctx.stats.room_messages.fetch_add(1, Relaxed);
        let fanout = state.audience.deliver(
            frames,
            self.ctx.window,
            deferred::note(self),
            self.scheduler(),
        );
        self.ctx.stats.count(fanout);
        Some(seq)
    }

    /// Queues a `POST /broadcast` to every member and returns how many it
    /// reached; with `everyone` (a broadcast to every client, which reaches
    /// hub clients through the client registry) only text members here.
    pub fn broadcast(self: &Arc<Self>, message: &str, everyone: bool) -> usize {
        let mut state = self.lock();
        let text_members = state.audience.text_members();
        let frames = wire::broadcast_frames(&self.name, message, everyone, text_members > 0);
        let reached = if everyone {
            text_members
        } else {
            state.audience.len()
        };
        let fanout = state.audience.deliver(
            frames,
            self.ctx.window,
            deferred::note(self),
            self.scheduler(),
        );
        self.ctx.stats.count(fanout);
        reached
    }

    /// The distinct names of the members, sorted.
    pub fn presence(&self) -> Vec<String> {
        self.lock().audience.presence()
    }

    /// Connections in the room now.
    pub fn online(&self) -> usize {
        self.lock().audience.len()
    }

    /// Marks the room removed if it has no member, and (unless `even_with_history`)
    /// has never numbered a message. Returns whether it did.
    pub fn retire_if_empty(&self, even_with_history: bool) -> bool {
        let mut state = self.lock();
        if state.audience.is_empty() && (even_with_history || state.next_seq == 1) {
            state.dead = true;
        }
        state.dead
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

    /// A room whose flushes wait for the test (keep the schedule alive),
    /// with hub member `a` (conn 1) and text member `b` (conn 2); their
    /// queues.
    fn hub_a_and_text_b() -> (Arc<Room>, Receiver<Outgoing>, Receiver<Outgoing>, Schedule) {
        let (tx, schedule) = crossbeam_channel::unbounded();
        let room = room_with(10, Flusher::with_queue(tx));
        let (a, arx) = member(1, "a", Dialect::Json);
        let (b, brx) = member(2, "b", Dialect::Text);
        room.join(a, None).unwrap();
        room.join(b, None).unwrap();
        (room, arx, brx, schedule)
    }

    #[test]
    fn a_hub_leaver_gets_what_it_was_due_then_its_room_leave() {
        let (room, arx, _brx, _schedule) = hub_a_and_text_b();
        room.leave(1, true);
        let got = texts(&arx);
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[0].contains("room_join") && got[0].contains(r#""a""#));
        assert!(got[1].contains("room_join") && got[1].contains(r#""b""#));
        assert!(got[2].contains("room_leave"));
    }

    #[test]
    fn held_messages_reach_each_member_once_around_a_join() {
        let (room, arx, brx, _schedule) = hub_a_and_text_b();
        Flush::flush(&*room);
        texts(&arx);
        texts(&brx);
        deferred::hold();
        publish(&room, 1, 2);
        assert!(texts(&arx).is_empty(), "held until the batch ends");
        // A joiner in the middle: seq 1 and 2 are its replay, not live.
        let (c, crx) = member(3, "c", Dialect::Json);
        let joined = room.join(c, Some(&since(0, None))).unwrap();
        assert_eq!(joined.recovered, Some(true));
        assert_eq!(joined.replay.len(), 2);
        room.publish(2, "late", &json!(0)).unwrap();
        deferred::release();
        let seqs = |got: &[String]| -> Vec<String> {
            got.iter()
                .map(|t| {
                    let v: Value = serde_json::from_str(t).unwrap();
                    format!("{}{}", v["type"].as_str().unwrap(), v["seq"])
                })
                .collect()
        };
        assert_eq!(
            seqs(&texts(&arx)),
            vec!["message1", "message2", "room_joinnull", "message3"]
        );
        assert_eq!(seqs(&texts(&crx)), vec!["room_joinnull", "message3"]);
        assert_eq!(
            texts(&brx),
            vec!["a: m0", "a: m1", "system: c joined r", "b: late"]
        );
    }

    /// Where a test's flusher queues its schedule.
    type Schedule = Receiver<(Arc<dyn Flush>, Instant)>;

    /// What [`crowd`] returns.
    type Crowd = (Arc<Room>, Receiver<Outgoing>, Schedule);

    /// A room of `n` text members on a flusher nobody serves; returns the
    /// first member's queue and the flusher's schedule.
    fn crowd(n: u64, window: Duration) -> Crowd {
        let (tx, schedule) = crossbeam_channel::unbounded();
        let room = room_windowed(10, Flusher::with_queue(tx), window);
        let mut first = None;
        for conn in 1..=n {
            let (m, rx) = member(conn, &format!("u{conn}"), Dialect::Text);
            room.join(m, None).unwrap();
            first.get_or_insert(rx);
        }
        Flush::flush(&*room);
        let first = first.unwrap();
        let _ = texts(&first);
        let _ = schedule.try_iter().count();
        (room, first, schedule)
    }

    #[test]
    fn a_busy_large_room_sends_a_window_of_messages_together() {
        let (room, first, schedule) = crowd(COALESCE_MEMBERS as u64, WINDOW);
        // As if the room had been quiet for a window.
        room.lock().audience.forget_last_delivery();
        room.publish(1, "m1", &json!(0)).unwrap();
        assert_eq!(texts(&first), vec!["u1: m1"], "the first goes at once");
        // Within the window of the last delivery: batched, flushed at its end.
        room.publish(1, "m2", &json!(0)).unwrap();
        room.publish(1, "m3", &json!(0)).unwrap();
        assert!(texts(&first).is_empty());
        let scheduled: Vec<_> = schedule.try_iter().collect();
        assert_eq!(scheduled.len(), 1, "one flush per window");
        assert!(scheduled[0].1 <= Instant::now() + WINDOW);
        Flush::flush(&*room);
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

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
//! costs one cheap push per member.

use crate::hub::wire;
use crate::ws::Outbox;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

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

/// What a join gives the joiner to send itself, directly, before anything
/// queued on its outbox.
#[derive(Debug, Default)]
pub struct Joined {
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

/// A room. Created by the room table; see the module docs.
#[derive(Debug)]
pub struct Room {
    name: String,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    members: HashMap<u64, Joiner>,
    text_members: usize,
    history: VecDeque<Held>,
    /// The `seq` of the next message: 1 in a new room.
    next_seq: u64,
    /// Removed from the table: a joiner that finds this looks again.
    dead: bool,
}

#[derive(Debug)]
struct Joiner {
    member: Member,
    /// The last `seq` before this member joined: it receives every later
    /// message live.
    joined_after: u64,
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
    pub fn new(name: &str) -> Room {
        Room {
            name: name.to_string(),
            state: Mutex::new(State {
                members: HashMap::new(),
                text_members: 0,
                history: VecDeque::new(),
                next_seq: 1,
                dead: false,
            }),
        }
    }

    /// The room's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not take every room down with it; the
        // state is consistent after every single statement that changes it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `member`, answering `since` from the history, and tells every
    /// member (the joiner included when it speaks JSON; a text joiner is
    /// told nothing) in its dialect. `None` when the room was removed from
    /// the table meanwhile: look it up again.
    pub fn join(
        &self,
        member: Member,
        since: Option<&Since>,
        epoch: &str,
    ) -> Option<(Joined, Fanout)> {
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
            let joined = Joined {
                recovered,
                replay: Vec::new(),
                already: true,
            };
            return Some((joined, Fanout::default()));
        }
        let mut joined = Joined::default();
        if let Some(since) = since {
            let (recovered, replay) = state.answer(since, epoch);
            joined.recovered = Some(recovered);
            joined.replay = replay;
        }
        let frames = Frames {
            json: Some(wire::frame(&wire::room_join(&member.name, &self.name))),
            text: (state.text_members > 0)
                .then(|| wire::frame(&wire::text_joined(&member.name, &self.name))),
        };
        let skip = (member.dialect == Dialect::Text).then_some(member.conn);
        if member.dialect == Dialect::Text {
            state.text_members += 1;
        }
        state.members.insert(
            member.conn,
            Joiner {
                member,
                joined_after: last,
            },
        );
        let fanout = state.fan_out(&frames, skip);
        Some((joined, fanout))
    }

    /// Removes connection `conn` and tells the remaining members; the
    /// leaver itself is told too when `tell_leaver` (a `leave_room`, not a
    /// disconnect). Returns false when `conn` was not a member.
    pub fn leave(&self, conn: u64, tell_leaver: bool) -> Option<Fanout> {
        let mut state = self.lock();
        let joiner = state.members.remove(&conn)?;
        let member = joiner.member;
        if member.dialect == Dialect::Text {
            state.text_members -= 1;
        }
        let frames = Frames {
            json: Some(wire::frame(&wire::room_leave(&member.name, &self.name))),
            text: (state.text_members > 0)
                .then(|| wire::frame(&wire::text_left(&member.name, &self.name))),
        };
        let mut fanout = state.fan_out(&frames, None);
        if tell_leaver && member.dialect == Dialect::Json {
            if let Some(json) = &frames.json {
                fanout.add(push(&member.outbox, json));
            }
        }
        Some(fanout)
    }

    /// Publishes a message from member `conn` (as `name`): numbers it,
    /// keeps it in a history of at most `keep`, and queues it to every
    /// member, the sender included. `None` when `conn` is not a member.
    pub fn publish(
        &self,
        conn: u64,
        content: &str,
        timestamp: &Value,
        keep: usize,
        epoch: &str,
    ) -> Option<(u64, Fanout)> {
        let mut state = self.lock();
        let name = state.members.get(&conn)?.member.name.clone();
        let seq = state.next_seq;
        state.next_seq += 1;
        let json: Arc<str> =
            wire::room_message(&name, content, &self.name, seq, epoch, timestamp).into();
        let frames = Frames {
            json: Some(wire::frame(&json)),
            text: (state.text_members > 0).then(|| wire::frame(&wire::text_said(&name, content))),
        };
        if keep > 0 {
            while state.history.len() >= keep {
                state.history.pop_front();
            }
            state.history.push_back(Held { seq, json });
        }
        Some((seq, state.fan_out(&frames, None)))
    }

    /// Queues a `POST /broadcast` to every member; `everyone` is true for
    /// a broadcast to every client, which reaches hub clients through the
    /// client registry, so here only text members get it.
    pub fn broadcast(&self, message: &str, everyone: bool) -> (usize, Fanout) {
        let state = self.lock();
        let frames = Frames {
            json: (!everyone).then(|| wire::frame(&wire::broadcast(Some(&self.name), message))),
            text: (state.text_members > 0).then(|| wire::frame(&wire::text_broadcast(message))),
        };
        let reached = if everyone {
            state.text_members
        } else {
            state.members.len()
        };
        (reached, state.fan_out(&frames, None))
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

    /// Marks the room removed if it has no member and has never numbered a
    /// message (a room that has, keeps its history and sequence for the
    /// life of the server). Returns whether it did.
    pub fn retire_if_unused(&self) -> bool {
        let mut state = self.lock();
        if state.members.is_empty() && state.next_seq == 1 {
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

    /// Queues `frames` to every member in its dialect, except `skip`.
    fn fan_out(&self, frames: &Frames, skip: Option<u64>) -> Fanout {
        let mut fanout = Fanout::default();
        for joiner in self.members.values() {
            let member = &joiner.member;
            if Some(member.conn) == skip {
                continue;
            }
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

    fn texts(rx: &Receiver<Outgoing>) -> Vec<String> {
        rx.try_iter()
            .map(|o| match o {
                Outgoing::Frame(f) => String::from_utf8(f[2..].to_vec()).unwrap(),
                Outgoing::Close(c, _) => format!("close {c}"),
            })
            .collect()
    }

    fn since(seq: u64, epoch: Option<&str>) -> Since {
        Since {
            seq,
            epoch: epoch.map(str::to_string),
        }
    }

    fn publish(room: &Room, conn: u64, n: usize, keep: usize) {
        for i in 0..n {
            room.publish(conn, &format!("m{i}"), &json!(0), keep, "E")
                .unwrap();
        }
    }

    #[test]
    fn each_dialect_gets_its_own_shape() {
        let room = Room::new("r");
        let (a, arx) = member(1, "a", Dialect::Json);
        let (b, brx) = member(2, "bob", Dialect::Text);
        room.join(a, None, "E").unwrap();
        room.join(b, None, "E").unwrap();
        room.publish(2, "hi", &json!(5), 10, "E").unwrap();
        let a_got = texts(&arx);
        assert_eq!(a_got.len(), 3, "{a_got:?}");
        assert!(a_got[1].contains(r#""client_id":"bob""#));
        assert!(a_got[2].contains(r#""seq":1"#));
        assert_eq!(texts(&brx), vec!["bob: hi"]);
    }

    #[test]
    fn since_inside_the_history_recovers_everything_after_it() {
        let room = Room::new("r");
        let (a, _arx) = member(1, "a", Dialect::Json);
        room.join(a, None, "E").unwrap();
        publish(&room, 1, 5, 10);
        let (b, _brx) = member(2, "b", Dialect::Json);
        let (joined, _) = room.join(b, Some(&since(2, Some("E"))), "E").unwrap();
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
        let room = Room::new("r");
        let (a, _arx) = member(1, "a", Dialect::Json);
        room.join(a, None, "E").unwrap();
        publish(&room, 1, 10, 4);
        let mut conn = 10;
        let mut ask = |s: Since| {
            conn += 1;
            let (m, _rx) = member(conn, "x", Dialect::Json);
            let (j, _) = room.join(m, Some(&s), "E").unwrap();
            (j.recovered.unwrap(), j.replay.len())
        };
        assert_eq!(ask(since(6, None)), (true, 4), "oldest held is 7");
        assert_eq!(ask(since(5, None)), (false, 4), "6 has left the history");
        assert_eq!(ask(since(10, Some("E"))), (true, 0), "up to date");
        assert_eq!(ask(since(8, Some("other"))), (false, 2), "another epoch");
        assert_eq!(ask(since(11, None)), (false, 0), "from the future");
    }

    #[test]
    fn a_rejoin_replays_nothing() {
        let room = Room::new("r");
        let (a, _arx) = member(1, "a", Dialect::Json);
        room.join(a.clone(), None, "E").unwrap();
        publish(&room, 1, 3, 10);
        let (j, _) = room.join(a.clone(), Some(&since(0, None)), "E").unwrap();
        assert!(j.already && j.replay.is_empty());
        assert_eq!(j.recovered, Some(true), "it has received 1..3 live");
        let (b, _brx) = member(2, "b", Dialect::Json);
        room.join(b.clone(), None, "E").unwrap();
        let (j, _) = room.join(b, Some(&since(1, None)), "E").unwrap();
        assert_eq!(j.recovered, Some(false), "2 and 3 came before it joined");
    }

    #[test]
    fn leave_tells_the_leaver_only_when_asked() {
        let room = Room::new("r");
        let (a, arx) = member(1, "a", Dialect::Json);
        let (b, brx) = member(2, "b", Dialect::Json);
        room.join(a, None, "E").unwrap();
        room.join(b, None, "E").unwrap();
        texts(&arx);
        texts(&brx);
        room.leave(1, true).unwrap();
        assert_eq!(texts(&arx).len(), 1);
        assert_eq!(texts(&brx).len(), 1);
        room.leave(2, false).unwrap();
        assert!(texts(&brx).is_empty());
        assert!(room.leave(2, false).is_none());
        assert!(room.publish(2, "x", &json!(0), 1, "E").is_none());
    }

    #[test]
    fn presence_is_sorted_and_distinct() {
        let room = Room::new("r");
        for (conn, name) in [(1, "c"), (2, "a"), (3, "c"), (4, "b")] {
            room.join(member(conn, name, Dialect::Text).0, None, "E")
                .unwrap();
        }
        assert_eq!(room.presence(), vec!["a", "b", "c"]);
        assert_eq!(room.online(), 4);
    }
}

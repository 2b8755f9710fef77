//! The subscriber thread: the one owner of this instance's pub/sub
//! connection. It holds the channel for every hub client, this instance's
//! control channel, and the channel of every room with something here;
//! (un)subscribe requests reach it over a channel, between reads (a
//! request is followed by a [`Event::Wake`] published to the control
//! channel, so it is seen at once). It delivers what arrives to the
//! members and clients here.
//!
//! Gap repair: a room message whose `seq` jumps past the next one makes it
//! read the missing range from the room's history first; a new connection
//! (after a drop, a `CLIENT KILL`, a restarted Redis) makes it repair every
//! room the same way before it delivers anything live. Silence is not
//! trusted: after [`PROBE_EVERY`] without a message it publishes a probe
//! to itself, and a connection that does not deliver it within
//! [`PROBE_GRACE`] is replaced (such connections exist after a failover).
//! Reconnects back off from nothing to [`MAX_BACKOFF`].

use crate::broker::redis::event::{
    decode_logged, entries, log_id, logged_entries, Event, LogId, RoomEvent, Said,
};
use crate::broker::redis::parts::Parts;
use crate::broker::redis::publisher::known_args;
use crate::broker::redis::room::{Next, Room};
use crate::hub::wire;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use redis::{Connection, RedisResult, Value};
use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Silence after which the connection is probed.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How long a probe may take to come back.
pub const PROBE_GRACE: Duration = Duration::from_secs(2);
/// The longest wait between two reconnect attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// A request for the subscriber.
#[derive(Debug)]
pub enum Request {
    /// Hold `room`'s channel; `done` hears when it is held (and repaired).
    Subscribe(Arc<Room>, Option<Sender<()>>),
    /// Let go of room `name`'s channel (unless it has a room again).
    Unsubscribe(String),
    /// End the thread.
    Stop,
}

/// What the subscriber thread works with.
pub struct Subscriber {
    /// The broker's shared pieces.
    pub parts: Parts,
}

/// Where this instance stands in the logs of the channel for every hub
/// client and of its own control channel: events up to these IDs were
/// delivered; after a reconnect, the rest is read from the logs.
#[derive(Debug, Default)]
struct Logs {
    all: Option<LogId>,
    inbox: Option<LogId>,
}

/// Why a connection's life ended.
enum End {
    /// The broker is stopping.
    Stop,
    /// No connection could be made (the next attempt backs off).
    Failed,
    /// The connection worked, then failed or went silent (the next
    /// attempt is made at once).
    Lost,
}

impl Subscriber {
    /// Runs until every request sender is dropped.
    pub fn run(self, requests: Receiver<Request>) {
        let mut channels: HashSet<String> = HashSet::new();
        let mut logs = Logs::default();
        let mut backoff = Duration::ZERO;
        loop {
            match self.serve(&requests, &mut channels, &mut logs) {
                End::Stop => return,
                End::Lost => backoff = Duration::ZERO,
                End::Failed => {}
            }
            self.parts.health.set_subscribed(false);
            // Healthy again only after a heartbeat has found (or put)
            // this instance's registration in place: Redis may be a new
            // one, empty.
            self.parts.health.set_registered(false);
            self.parts.health.generation.fetch_add(1, Relaxed);
            for room in self.parts.local.rooms() {
                room.set_subscribed(false);
            }
            // Wait before the next attempt, still taking requests; a new
            // master is tried at once.
            let until = Instant::now() + backoff;
            let generation = self.parts.link.generation();
            loop {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() || self.parts.link.generation() != generation {
                    break;
                }
                match requests.recv_timeout(left.min(Duration::from_millis(100))) {
                    Ok(Request::Stop) => return,
                    Ok(request) => self.note(request, &mut channels),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
            // Attempts that fail back off: 50 ms, doubling, to MAX_BACKOFF.
            backoff = (backoff * 2).clamp(Duration::from_millis(50), MAX_BACKOFF);
        }
    }

    /// Records a request while there is no connection.
    fn note(&self, request: Request, channels: &mut HashSet<String>) {
        match request {
            // Its `done` is dropped: the joiner gives up at once.
            Request::Subscribe(room, _) => {
                channels.insert(self.parts.keys.room_channel(room.name()));
            }
            Request::Unsubscribe(name) => {
                if self.parts.local.room(&name).is_none() {
                    channels.remove(&self.parts.keys.room_channel(&name));
                }
            }
            Request::Stop => {}
        }
    }

    /// One connection's life: subscribe, repair, deliver.
    fn serve(
        &self,
        requests: &Receiver<Request>,
        channels: &mut HashSet<String>,
        logs: &mut Logs,
    ) -> End {
        let generation = self.parts.link.generation();
        let connected = self
            .parts
            .link
            .connect("pubsub")
            .and_then(|p| Ok((p, self.parts.link.connect("repair")?)));
        self.parts.health.connected(&connected);
        let (mut con, mut repair) = match connected {
            Ok(pair) => pair,
            Err(e) => {
                log::debug!("redis: subscriber cannot connect: {e}");
                return End::Failed;
            }
        };
        let mut waiting = Vec::new();
        loop {
            match requests.try_recv() {
                Ok(Request::Subscribe(room, done)) => {
                    channels.insert(self.parts.keys.room_channel(room.name()));
                    waiting.extend(done);
                }
                Ok(Request::Stop) => return End::Stop,
                Ok(request) => self.note(request, channels),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return End::Stop,
            }
        }
        let mut pubsub = con.as_pubsub();
        let mut all: Vec<String> =
            vec![self.parts.keys.all_channel(), self.parts.keys.own_channel()];
        all.extend(channels.iter().cloned());
        let subscribed = pubsub
            .set_read_timeout(Some(PROBE_EVERY))
            .and_then(|_| pubsub.subscribe(&all));
        if let Err(e) = subscribed {
            log::warn!("redis: cannot subscribe: {e}");
            return End::Failed;
        }
        for room in self.parts.local.rooms() {
            if let Err(e) = self.repair(&mut repair, &room, None) {
                self.parts.link.lost_master(&e);
                log::warn!("redis: cannot repair room {}: {e}", room.name());
                return End::Failed;
            }
            room.set_subscribed(true);
        }
        for (key, last) in [
            (self.parts.keys.all_log(), &mut logs.all),
            (self.parts.keys.own_inbox(), &mut logs.inbox),
        ] {
            if let Err(e) = self.catch_up(&mut repair, &key, last) {
                log::warn!("redis: cannot read {key}: {e}");
                return End::Failed;
            }
        }
        for done in waiting {
            let _ = done.send(());
        }
        self.parts.health.set_subscribed(true);
        self.parts.health.reconnects.fetch_add(1, Relaxed);
        log::info!("redis: subscribed to {} channel(s)", all.len());

        let mut heard = Instant::now();
        let mut probed: Option<Instant> = None;
        loop {
            loop {
                match requests.try_recv() {
                    Ok(Request::Subscribe(room, done)) => {
                        let channel = self.parts.keys.room_channel(room.name());
                        if !channels.contains(&channel) {
                            if let Err(e) = pubsub.subscribe(&channel) {
                                log::warn!("redis: cannot subscribe: {e}");
                                return End::Lost;
                            }
                            channels.insert(channel);
                        }
                        room.set_subscribed(true);
                        if let Some(done) = done {
                            let _ = done.send(());
                        }
                    }
                    Ok(Request::Unsubscribe(name)) => {
                        let channel = self.parts.keys.room_channel(&name);
                        if self.parts.local.room(&name).is_none() && channels.remove(&channel) {
                            if let Err(e) = pubsub.unsubscribe(&channel) {
                                log::warn!("redis: cannot unsubscribe: {e}");
                                return End::Lost;
                            }
                        }
                    }
                    Ok(Request::Stop) => return End::Stop,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return End::Stop,
                }
            }
            if self.parts.link.generation() != generation {
                log::info!("redis: the subscriber moves to the new master");
                return End::Lost;
            }
            match pubsub.get_message() {
                Ok(msg) => {
                    heard = Instant::now();
                    probed = None;
                    let channel = msg.get_channel_name().to_string();
                    let mut retired = Vec::new();
                    let payload = msg.get_payload_bytes();
                    let dispatched =
                        self.dispatch(&mut repair, &channel, payload, logs, &mut retired);
                    if let Err(e) = dispatched {
                        self.parts.link.lost_master(&e);
                        log::warn!("redis: cannot repair a gap: {e}");
                        return End::Lost;
                    }
                    for name in retired {
                        let channel = self.parts.keys.room_channel(&name);
                        if self.parts.local.room(&name).is_none() && channels.remove(&channel) {
                            if let Err(e) = pubsub.unsubscribe(&channel) {
                                log::warn!("redis: cannot unsubscribe: {e}");
                                return End::Lost;
                            }
                        }
                    }
                }
                Err(e) if e.is_timeout() => {
                    if let Some(sent) = probed {
                        if sent.elapsed() > PROBE_GRACE {
                            log::warn!("redis: the pub/sub connection went silent; reconnecting");
                            return End::Lost;
                        }
                    } else if heard.elapsed() >= PROBE_EVERY {
                        let probe = redis::cmd("PUBLISH")
                            .arg(self.parts.keys.own_channel())
                            .arg(Event::Wake.encode())
                            .exec(&mut repair);
                        if let Err(e) = probe {
                            self.parts.link.lost_master(&e);
                            log::warn!("redis: cannot probe: {e}");
                            return End::Lost;
                        }
                        probed = Some(Instant::now());
                    }
                }
                Err(e) => {
                    log::warn!("redis: pub/sub connection lost: {e}");
                    return End::Lost;
                }
            }
        }
    }

    /// Delivers one message from `channel`.
    /// A room that nothing here holds any more is retired and its name
    /// pushed on `retired` (to unsubscribe).
    fn dispatch(
        &self,
        repair: &mut Connection,
        channel: &str,
        payload: &[u8],
        logs: &mut Logs,
        retired: &mut Vec<String>,
    ) -> RedisResult<()> {
        if let Some(name) = self.parts.keys.room_of_channel(channel) {
            let Some(room) = self.parts.local.room(name) else {
                return Ok(());
            };
            let Some(event) = RoomEvent::decode(payload) else {
                log::warn!("redis: an unreadable event on {channel}");
                return Ok(());
            };
            if let Next::Gap { .. } = room.on_event(&event) {
                let RoomEvent::Message { seq, .. } = &event else {
                    return Ok(());
                };
                self.parts.health.repairs.fetch_add(1, Relaxed);
                self.repair(repair, &room, Some(*seq))?;
                room.on_event(&event);
            }
            if self.parts.local.retire(&room) {
                retired.push(room.name().to_string());
            }
            return Ok(());
        }
        let Some((id, event)) = decode_logged(payload) else {
            return Ok(());
        };
        if let Some(id) = id {
            let last = if channel == self.parts.keys.own_channel() {
                &mut logs.inbox
            } else {
                &mut logs.all
            };
            if last.is_some_and(|last| id <= last) {
                return Ok(()); // read from the log already
            }
            *last = Some(id);
        }
        self.deliver(event);
        Ok(())
    }

    /// Delivers an event for hub clients here.
    fn deliver(&self, event: Event) {
        let clients = &self.parts.local.clients;
        match event {
            Event::UserJoined { id } => {
                let frame = wire::frame(&wire::user_joined(&id));
                self.parts.stats.count(clients.send_others(&id, &frame));
            }
            Event::UserLeft { id } => {
                let frame = wire::frame(&wire::user_left(&id));
                self.parts.stats.count(clients.send_others(&id, &frame));
            }
            Event::Global(Said {
                name,
                content,
                timestamp,
            }) => {
                let frame = wire::frame(&wire::global_message(&name, &content, &timestamp));
                self.parts.stats.count(clients.send_all(&frame).1);
            }
            Event::BroadcastAll { message } => {
                let frame = wire::frame(&wire::broadcast(None, &message));
                self.parts.stats.count(clients.send_all(&frame).1);
                for room in self.parts.local.rooms() {
                    room.broadcast_to_text(&message);
                }
            }
            Event::Direct { to, from, content } => {
                let frame = wire::frame(&wire::direct(&from, &content));
                if let Some(fanout) = clients.send_to(&to, &frame) {
                    self.parts.stats.count(fanout);
                }
            }
            Event::Replace { id, conn } => {
                if clients.replace(&id, conn) {
                    self.parts.stats.replacements.fetch_add(1, Relaxed);
                }
            }
            Event::Wake => {}
        }
    }

    /// Delivers what the log `key` holds after `last`; the first time,
    /// only notes where the log ends.
    fn catch_up(
        &self,
        con: &mut Connection,
        key: &str,
        last: &mut Option<LogId>,
    ) -> RedisResult<()> {
        match *last {
            Some((ms, seq)) => {
                let value: Value = redis::cmd("XRANGE")
                    .arg(key)
                    .arg(format!("({ms}-{seq}"))
                    .arg("+")
                    .query(con)?;
                for (id, event) in logged_entries(&value) {
                    *last = Some(id);
                    self.deliver(event);
                }
            }
            None => {
                let value: Value = redis::cmd("XREVRANGE")
                    .arg(key)
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1)
                    .query(con)?;
                let newest = match &value {
                    Value::Array(items) => items.first().and_then(|item| match item {
                        Value::Array(pair) => pair
                            .first()
                            .and_then(|id| redis::from_redis_value::<String>(id).ok())
                            .and_then(|id| log_id(&id)),
                        _ => None,
                    }),
                    _ => None,
                };
                *last = Some(newest.unwrap_or((0, 0)));
            }
        }
        Ok(())
    }

    /// Repairs `room` from its history: up to `until` (a gap), or
    /// everything after a new connection.
    fn repair(
        &self,
        con: &mut Connection,
        room: &Arc<Room>,
        until: Option<u64>,
    ) -> RedisResult<()> {
        let (epoch, last) = room.position();
        let k = &self.parts.keys;
        let value: Value = self
            .parts
            .scripts
            .repair
            .key(k.meta(room.name()))
            .key(k.history(room.name()))
            .arg(epoch.unwrap_or_default())
            .arg(last.map_or(-1, |l| l as i64))
            .arg(crate::hub::new_epoch())
            .arg(&known_args(room.known())[..])
            .invoke(con)?;
        let meta = match &value {
            Value::Array(parts) if parts.len() == 3 => Some((
                redis::from_redis_value::<String>(&parts[0])?,
                redis::from_redis_value::<u64>(&parts[1])?,
            )),
            _ => None,
        };
        let held = match &value {
            Value::Array(parts) if parts.len() == 3 => entries(&parts[2]),
            _ => Vec::new(),
        };
        room.repair(meta, &held, until);
        Ok(())
    }
}

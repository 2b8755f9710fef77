//! The shared broker: every instance started with the same `--redis URL`
//! (and `--redis-prefix`) serves one set of rooms, clients and presence.
//!
//! - [`keys`], [`event`], [`scripts`]: what is stored and sent (pure), and
//!   the Lua scripts that change it, one atomic step each.
//! - [`target`], [`link`], [`watch`]: where `--redis` points (one Redis,
//!   or the master Sentinel names), connections with timeouts that follow
//!   the master, a small query pool, what is known about reaching Redis,
//!   and the thread that hears Sentinel announce a failover.
//! - [`publisher`]: the thread through which every change goes, pipelined;
//!   connection threads never wait on it to send a message.
//! - [`subscriber`]: the thread that owns the pub/sub connection, delivers
//!   what arrives, and repairs gaps from the rooms' history.
//! - [`beat`]: the thread that keeps this instance alive, reaps dead ones
//!   and re-registers what Redis lost.
//! - [`local`], [`room`], [`sequence`]: what this instance holds: its
//!   clients, each room's members here with their joins and leaves in
//!   flight, and where each room's sequence stands here.
//! - [`inflight`]: the bound on what each connection has queued for Redis.
//! - [`parts`]: the pieces the three threads share.
//!
//! Like every broker it is called through [`Broker`] and knows no
//! session, HTTP or accept loop; it reaches clients only through their
//! outboxes.
//!
//! Every room event reaches every member, here too, through the room's
//! channel, so all members everywhere hear one order. What this instance
//! answers alone: `system_notification`s, and a joiner's own
//! recovery/replay (read in the join's script).

use crate::broker::{Broker, Refusal};
use crate::config::RedisConfig;
use crate::hub::flusher::{Flusher, FlusherThread};
use crate::hub::member::{Dialect, Joined, Member, Since};
use crate::hub::stats::HubStats;
use crate::hub::wire;
use crate::threads::JoinHandle;
use crate::ws::Outbox;
use crossbeam_channel::Sender;
use redis::RedisResult;
use serde_json::Value;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub mod beat;
pub mod event;
pub mod inflight;
pub mod keys;
pub mod link;
pub mod local;
pub mod parts;
pub mod publisher;
pub mod room;
pub mod scripts;
pub mod sequence;
pub mod subscriber;
pub mod target;
pub mod watch;

use event::{Event, Notice, Said};
use inflight::InFlight;
use keys::Keys;
use link::{Health, Link, Pool};
use local::Local;
use parts::Parts;
use publisher::{evalsha, Op, Publisher, Reply};
use room::{Room, RoomCtx};
use scripts::Scripts;
use subscriber::{Request, Subscriber};

/// How long a join or registration waits for Redis before `unavailable`.
const WAIT: Duration = Duration::from_secs(5);

/// Rooms, clients and presence shared through Redis.
pub struct RedisBroker {
    parts: Parts,
    pool: Pool,
    ops: Sender<Op>,
    requests: Sender<Request>,
    threads: Mutex<Threads>,
}

#[derive(Default)]
struct Threads {
    publisher: Option<JoinHandle<()>>,
    subscriber: Option<JoinHandle<()>>,
    beat: Option<(Sender<()>, JoinHandle<()>)>,
    watch: Option<(Sender<()>, JoinHandle<()>)>,
    flusher: Option<FlusherThread>,
}

impl RedisBroker {
    /// Starts the broker's threads. Redis need not be reachable: the
    /// threads keep trying, and requests answer `unavailable` meanwhile.
    pub fn start(
        config: &RedisConfig,
        keep: usize,
        window: Duration,
        stats: Arc<HubStats>,
    ) -> RedisResult<RedisBroker> {
        let instance = keys::new_instance_id();
        let keys = Keys::new(&config.prefix, &instance);
        let target = target::Target::parse(&config.url).map_err(|e| {
            redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "bad URL", e))
        })?;
        let link = Link::new(target, config.ca.clone(), config.client.clone(), &instance);
        let scripts = Arc::new(Scripts::new());
        let health = Arc::new(Health::reporting_to(stats.events.clone()));
        let (flusher, flusher_thread) = Flusher::start();
        let local = Arc::new(Local::new(RoomCtx {
            instance: instance.clone(),
            window,
            stats: stats.clone(),
            flusher,
        }));
        let (ops, op_queue) = crossbeam_channel::unbounded();
        let (requests, request_queue) = crossbeam_channel::unbounded();
        let (stop_beat, beat_stop) = crossbeam_channel::bounded(0);
        log::info!(
            "redis broker: instance {instance}, prefix {:?}, presence TTL {:?}",
            config.prefix,
            config.presence_ttl
        );
        let parts = Parts {
            link: link.clone(),
            keys: keys.clone(),
            scripts: scripts.clone(),
            health: health.clone(),
            local: local.clone(),
            stats: stats.clone(),
            inflight: Arc::new(InFlight::default()),
        };
        let publisher = Publisher {
            parts: parts.clone(),
            keep,
        };
        let subscriber = Subscriber {
            parts: parts.clone(),
        };
        let beat = beat::Beat {
            parts: parts.clone(),
            ops: ops.clone(),
            ttl: config.presence_ttl,
        };
        // Lean threads under SCHED_BATCH (see `crate::threads`): the
        // subscriber's fan-out is not preempted by every thread it wakes.
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            crate::threads::spawn(name, 256 * 1024, f).map_err(|e| {
                redis::RedisError::from((
                    redis::ErrorKind::ClientError,
                    "cannot start a thread",
                    e.to_string(),
                ))
            })
        };
        let threads = Threads {
            publisher: Some(spawn(
                "redis-publish",
                Box::new(move || publisher.run(op_queue)),
            )?),
            subscriber: Some(spawn(
                "redis-subscribe",
                Box::new(move || subscriber.run(request_queue)),
            )?),
            beat: Some((
                stop_beat,
                spawn("redis-beat", Box::new(move || beat.run(beat_stop)))?,
            )),
            watch: match link.sentinel_master() {
                Some(_) => {
                    let (stop_watch, watch_stop) = crossbeam_channel::bounded(0);
                    let watched = link.clone();
                    Some((
                        stop_watch,
                        spawn(
                            "redis-sentinel",
                            Box::new(move || watch::run(watched, watch_stop)),
                        )?,
                    ))
                }
                None => None,
            },
            flusher: Some(flusher_thread),
        };
        Ok(RedisBroker {
            parts,
            pool: Pool::new(link),
            ops,
            requests,
            threads: Mutex::new(threads),
        })
    }

    fn refuse_unless_reachable(&self) -> Result<(), Refusal> {
        if self.parts.health.reachable() {
            Ok(())
        } else {
            self.parts.health.unavailable.fetch_add(1, Relaxed);
            Err(Refusal::Unavailable)
        }
    }

    /// Runs `f` on a pooled connection (tried twice if it only reads);
    /// a failure is `unavailable`.
    fn ask<T>(
        &self,
        reads_only: bool,
        f: impl FnMut(&mut redis::Connection) -> RedisResult<T>,
    ) -> Result<T, Refusal> {
        self.refuse_unless_reachable()?;
        self.pool
            .with(&self.parts.health, reads_only, f)
            .map_err(|e| {
                log::warn!("redis: {e}");
                self.parts.health.unavailable.fetch_add(1, Relaxed);
                Refusal::Unavailable
            })
    }

    /// Queues the op a hub client here (`from`) asks for, carrying
    /// `content`; its late failure is answered on the client's outbox.
    fn queue_from(
        &self,
        from: &str,
        content: &str,
        op: impl FnOnce(Reply) -> Op,
    ) -> Result<(), Refusal> {
        let Some((conn, outbox)) = self.parts.local.clients.get(from) else {
            return Ok(()); // it is disconnecting
        };
        self.queue(op(Reply {
            conn,
            outbox,
            dialect: Dialect::Json,
            bytes: content.len() + 64,
        }))
    }

    /// Queues a message-carrying op for the publisher, once its
    /// connection has room for it (see [`inflight`]).
    fn queue(&self, op: Op) -> Result<(), Refusal> {
        self.refuse_unless_reachable()?;
        let (Op::Publish { reply, .. } | Op::Global { reply, .. } | Op::Direct { reply, .. }) = &op
        else {
            return self.ops.send(op).map_err(|_| Refusal::Unavailable);
        };
        let (conn, bytes) = (reply.conn, reply.bytes);
        if !self.parts.inflight.acquire(conn, bytes, WAIT) {
            self.parts.health.unavailable.fetch_add(1, Relaxed);
            return Err(Refusal::Unavailable);
        }
        self.ops.send(op).map_err(|_| {
            self.parts.inflight.release(conn, bytes);
            Refusal::Unavailable
        })
    }

    /// Makes sure the subscriber holds `room`'s channel, waking it.
    fn subscribe(&self, room: &Arc<Room>) -> bool {
        if room.is_subscribed() {
            return true;
        }
        let (done, subscribed) = crossbeam_channel::bounded(1);
        if self
            .requests
            .send(Request::Subscribe(room.clone(), Some(done)))
            .is_err()
        {
            return false;
        }
        self.wake();
        subscribed.recv_timeout(WAIT).is_ok()
    }

    /// Wakes the subscriber to take its requests now.
    fn wake(&self) {
        let channel = self.parts.keys.own_channel();
        let _ = self.pool.with(&self.parts.health, false, |c| {
            redis::cmd("PUBLISH")
                .arg(&channel)
                .arg(Event::Wake.encode())
                .exec(c)
        });
    }

    /// Drops `room` if nothing of it is left here, and lets its channel go.
    fn retire(&self, room: &Arc<Room>) {
        if self.parts.local.retire(room) {
            let _ = self
                .requests
                .send(Request::Unsubscribe(room.name().to_string()));
        }
    }

    /// A text member joins while Redis cannot be reached (or did not
    /// answer): it is in the room here, and is told why it hears nothing
    /// from elsewhere yet.
    fn join_offline(&self, name: &str, member: Member) -> Joined {
        let outbox = member.outbox.clone();
        loop {
            let (room, created) = self.parts.local.room_or_new(name);
            if created {
                let _ = self.requests.send(Request::Subscribe(room.clone(), None));
            }
            if room.join_offline(member.clone()) {
                break;
            }
        }
        self.parts.local.mark_dirty();
        outbox.send_text(&wire::text_unavailable(name));
        Joined::default()
    }

    fn join_shared(
        &self,
        name: &str,
        member: Member,
        since: Option<&Since>,
    ) -> Result<Joined, Refusal> {
        self.refuse_unless_reachable()?;
        let room = loop {
            let (room, _) = self.parts.local.room_or_new(name);
            match room.begin_join(member.clone(), since) {
                None => continue,
                Some(Err(already)) => return Ok(already),
                Some(Ok(())) => break room,
            }
        };
        let give_up = |room: &Arc<Room>| {
            room.abort_join(member.conn);
            self.retire(room);
            self.parts.health.unavailable.fetch_add(1, Relaxed);
            Err(Refusal::Unavailable)
        };
        if !self.subscribe(&room) {
            return give_up(&room);
        }
        let generation = self.parts.health.generation.load(Relaxed);
        let (done, answer) = crossbeam_channel::bounded(1);
        let op = Op::Join {
            room: name.to_string(),
            conn: member.conn,
            dialect: member.dialect,
            name: member.name.clone(),
            since: since.map(|s| s.seq),
            done,
        };
        if self.ops.send(op).is_err() {
            return give_up(&room);
        }
        match answer.recv_timeout(WAIT) {
            Ok(Ok(answer)) => {
                let maybe_lost = self.parts.health.generation.load(Relaxed) != generation
                    && room.is_subscribed();
                Ok(room.finish_join(member.conn, answer, since, maybe_lost))
            }
            _ => give_up(&room),
        }
    }
}

impl Broker for RedisBroker {
    fn name(&self) -> &'static str {
        if self.parts.health.healthy() {
            "redis"
        } else {
            "redis-down"
        }
    }

    fn healthy(&self) -> bool {
        self.parts.health.healthy()
    }

    fn connect(&self, client_id: &str, conn: u64, outbox: Arc<Outbox>) {
        if self.parts.local.clients.register(client_id, conn, outbox) {
            self.parts.stats.replaced(client_id);
        }
        if !self.parts.health.reachable() {
            self.parts.local.unannounced(client_id);
            return;
        }
        let (done, answer) = crossbeam_channel::bounded(1);
        let op = Op::Connect {
            id: client_id.to_string(),
            conn,
            done,
        };
        let registered = self.ops.send(op).is_ok() && answer.recv_timeout(WAIT).unwrap_or(false);
        if !registered {
            self.parts.local.unannounced(client_id);
        }
    }

    fn disconnect(&self, client_id: &str, conn: u64) {
        if !self.parts.local.clients.unregister(client_id, conn) {
            return;
        }
        self.parts.local.forget(client_id);
        if !self.parts.health.reachable()
            || self
                .ops
                .send(Op::Disconnect {
                    id: client_id.to_string(),
                    conn,
                })
                .is_err()
        {
            self.parts.local.mark_dirty();
        }
    }

    fn join(&self, room: &str, member: Member, since: Option<&Since>) -> Result<Joined, Refusal> {
        match member.dialect {
            Dialect::Json => self.join_shared(room, member, since),
            Dialect::Text => match self.join_shared(room, member.clone(), None) {
                Ok(joined) => Ok(joined),
                Err(_) => Ok(self.join_offline(room, member)),
            },
        }
    }

    fn leave(&self, name: &str, conn: u64, tell_leaver: bool) -> bool {
        let Some(room) = self.parts.local.room(name) else {
            return false;
        };
        if room.leave(conn, tell_leaver).is_none() {
            return false;
        }
        let op = Op::Leave {
            room: name.to_string(),
            conn,
        };
        if !self.parts.health.reachable() || self.ops.send(op).is_err() {
            room.release_leaver(conn);
            self.parts.local.mark_dirty();
        }
        self.retire(&room);
        true
    }

    fn publish(
        &self,
        name: &str,
        conn: u64,
        content: &str,
        timestamp: &Value,
    ) -> Result<(), Refusal> {
        let member = self
            .parts
            .local
            .room(name)
            .and_then(|room| room.member(conn))
            .ok_or(Refusal::NotInRoom)?;
        self.queue(Op::Publish {
            room: name.to_string(),
            said: Said {
                name: member.name.to_string(),
                content: content.to_string(),
                timestamp: timestamp.clone(),
            },
            reply: Reply {
                conn,
                outbox: member.outbox,
                dialect: member.dialect,
                bytes: content.len() + 64,
            },
        })
    }

    fn global(&self, from: &str, content: &str, timestamp: &Value) -> Result<(), Refusal> {
        let said = Said {
            name: from.to_string(),
            content: content.to_string(),
            timestamp: timestamp.clone(),
        };
        self.queue_from(from, content, |reply| Op::Global { said, reply })
    }

    fn direct(&self, to: &str, from: &str, content: &str) -> Result<(), Refusal> {
        self.queue_from(from, content, |reply| Op::Direct {
            to: to.to_string(),
            from: from.to_string(),
            content: content.to_string(),
            reply,
        })
    }

    fn broadcast(&self, room: Option<&str>, message: &str) -> Result<usize, Refusal> {
        let k = &self.parts.keys;
        let s = &self.parts.scripts;
        let reached: i64 = match room {
            Some(room) => {
                let notice = Notice::Broadcast {
                    message: message.to_string(),
                };
                let cmd = evalsha(
                    &s.broadcast_room,
                    &[k.who(room), k.instances()],
                    &[k.room_channel(room), notice.encode()],
                );
                self.ask(false, |c| script_query(c, s, &cmd))?
            }
            None => {
                let event = Event::BroadcastAll {
                    message: message.to_string(),
                };
                let cmd = evalsha(
                    &s.broadcast_all,
                    &[k.clients(), k.rooms(), k.instances()],
                    &[k.prefix().to_string(), event.encode()],
                );
                self.ask(false, |c| script_query(c, s, &cmd))?
            }
        };
        self.parts.stats.broadcasts.fetch_add(1, Relaxed);
        Ok(reached.max(0) as usize)
    }

    fn notify(&self, message: &str) -> usize {
        let frame = wire::frame(&wire::notification(message, crate::wire::unix_millis()));
        let (reached, fanout) = self.parts.local.clients.send_all(&frame);
        self.parts.stats.notifications.fetch_add(1, Relaxed);
        self.parts.stats.count(fanout);
        reached
    }

    fn presence(&self, room: &str) -> Result<Vec<String>, Refusal> {
        let cmd = evalsha(
            &self.parts.scripts.presence,
            &[self.parts.keys.who(room), self.parts.keys.instances()],
            &[],
        );
        let mut names: Vec<String> =
            self.ask(true, |c| script_query(c, &self.parts.scripts, &cmd))?;
        names.sort_unstable();
        names.dedup();
        Ok(names)
    }

    fn online(&self, room: &str) -> Result<usize, Refusal> {
        let cmd = evalsha(
            &self.parts.scripts.count,
            &[self.parts.keys.who(room), self.parts.keys.instances()],
            &[],
        );
        let n: i64 = self.ask(true, |c| script_query(c, &self.parts.scripts, &cmd))?;
        Ok(n.max(0) as usize)
    }

    fn rooms(&self) -> Result<Vec<(String, usize)>, Refusal> {
        let cmd = evalsha(
            &self.parts.scripts.rooms,
            &[self.parts.keys.rooms(), self.parts.keys.instances()],
            &[self.parts.keys.prefix().to_string()],
        );
        let flat: Vec<(String, usize)> =
            self.ask(true, |c| script_query(c, &self.parts.scripts, &cmd))?;
        let mut rooms = flat;
        rooms.sort();
        Ok(rooms)
    }

    fn room_messages(&self, room: &str) -> Option<u64> {
        self.parts.local.room(room).and_then(|r| r.position().1)
    }

    fn state(&self) -> Value {
        let h = &self.parts.health;
        // Instances registered (a dead one stays until a live one reaps
        // it, within the presence TTL). One query, only when asked.
        let instances: Option<u64> = h
            .reachable()
            .then(|| {
                self.ask(true, |c| {
                    redis::cmd("ZCARD")
                        .arg(self.parts.keys.instances())
                        .query(c)
                })
                .ok()
            })
            .flatten();
        let last_error = h
            .last_error()
            .map(|(at, error)| serde_json::json!({"at": at, "error": error}));
        serde_json::json!({
            "name": self.name(),
            "instance": self.parts.keys.instance(),
            "instances": instances,
            "reachable": h.reachable(),
            "subscribed": h.subscribed(),
            "reconnects": h.reconnects.load(Relaxed),
            "unavailable": h.unavailable.load(Relaxed),
            "reaped": h.reaped.load(Relaxed),
            "last_error": last_error,
        })
    }

    fn local_rooms(&self) -> usize {
        self.parts.local.room_count()
    }

    fn clients(&self) -> usize {
        self.parts.local.clients.len()
    }

    fn metrics_text(&self) -> String {
        let h = &self.parts.health;
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, value: u64| {
            crate::metrics::family(&mut out, name, kind, help, value)
        };
        family(
            "strand_redis_up",
            "gauge",
            "1 while Redis is reachable, subscribed and this instance registered.",
            h.healthy() as u64,
        );
        family(
            "strand_redis_connects_total",
            "counter",
            "Times the pub/sub connection was established.",
            h.reconnects.load(Relaxed),
        );
        family(
            "strand_redis_gap_repairs_total",
            "counter",
            "Gaps in a room's sequence filled from its history.",
            h.repairs.load(Relaxed),
        );
        family(
            "strand_redis_unavailable_total",
            "counter",
            "Requests refused or failed because Redis could not be reached.",
            h.unavailable.load(Relaxed),
        );
        family(
            "strand_redis_master_lost_total",
            "counter",
            "Times every Redis connection was opened again because the master was lost (a failover announced or seen, READONLY or LOADING).",
            self.parts.link.generation(),
        );
        family(
            "strand_redis_reaped_total",
            "counter",
            "Dead instances whose clients this instance announced gone.",
            h.reaped.load(Relaxed),
        );
        out
    }

    fn shutdown(&self) {
        let mut threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((stop, thread)) = threads.beat.take() {
            drop(stop);
            join(thread, "redis-beat");
        }
        // Every connection has ended and queued its leaves: the publisher
        // carries them out before it reaches the stop.
        if let Some(thread) = threads.publisher.take() {
            let _ = self.ops.send(Op::Stop);
            join(thread, "redis-publish");
        }
        let bye = evalsha(
            &self.parts.scripts.bye,
            &[],
            &[
                self.parts.keys.prefix().to_string(),
                self.parts.keys.instance().to_string(),
            ],
        );
        let unregistered = self.pool.with(&self.parts.health, true, |c| {
            script_query::<i64>(c, &self.parts.scripts, &bye)
        });
        if let Err(e) = unregistered {
            log::warn!("redis: could not unregister this instance: {e}");
        }
        if let Some(thread) = threads.subscriber.take() {
            let _ = self.requests.send(Request::Stop);
            self.wake();
            join(thread, "redis-subscribe");
        }
        if let Some((stop, thread)) = threads.watch.take() {
            drop(stop);
            join(thread, "redis-sentinel");
        }
        if let Some(mut flusher) = threads.flusher.take() {
            flusher.stop();
        }
        self.pool.close();
    }
}

fn join(thread: JoinHandle<()>, name: &str) {
    if thread.join().is_err() {
        log::error!("the {name} thread panicked");
    }
}

/// Runs an `EVALSHA` command, loading the scripts once if Redis lost them.
fn script_query<T: redis::FromRedisValue>(
    con: &mut redis::Connection,
    scripts: &Scripts,
    cmd: &redis::Cmd,
) -> RedisResult<T> {
    match cmd.query(con) {
        Err(e) if e.code() == Some("NOSCRIPT") => {
            for script in scripts.all() {
                script.load(con)?;
            }
            cmd.query(con)
        }
        other => other,
    }
}

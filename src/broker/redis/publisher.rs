//! The publisher thread: every change this instance makes to the shared
//! state (room messages, joins, leaves, hub clients coming and going,
//! global and direct messages, re-registration) goes through its queue,
//! in the order it was asked for, and becomes one Lua script call.
//!
//! Connection threads never wait on Redis to send a message: they queue
//! it and go on. The thread takes whatever is queued, sends it to Redis as
//! one pipeline, and reads the answers. A message is delivered (here too)
//! when it comes back through the room's channel. What fails is answered
//! on the requester's outbox: `unavailable` (or, to a text member, a
//! `system:` line), and `unknown_client` for a `direct` to nobody. Joins
//! and hub client registrations wait for their answer (a join needs its
//! replay; a registration must be in place before the client hears its
//! `welcome` is followed by anything).

use crate::broker::redis::event::{entries, Event, Said};
use crate::broker::redis::parts::Parts;
use crate::broker::redis::room::JoinAnswer;
use crate::hub::member::Dialect;
use crate::hub::wire as hub_wire;
use crate::wire::{ErrorCode, WireError};
use crate::ws::Outbox;
use crossbeam_channel::{Receiver, Sender};
use redis::{Cmd, Connection, ConnectionLike, RedisResult, Script, Value};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

/// Most requests sent to Redis in one pipeline.
const MAX_BATCH: usize = 512;

/// How long a shared room's history lives after its last message or join.
pub const HISTORY_TTL: Duration = Duration::from_secs(24 * 3600);

/// Where a request's late failure is answered.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The requester's connection.
    pub conn: u64,
    /// The requester's outbox.
    pub outbox: Arc<Outbox>,
    /// How to say it.
    pub dialect: Dialect,
    /// The bytes the request counts against its connection (see
    /// [`crate::broker::redis::inflight`]).
    pub bytes: usize,
}

impl Reply {
    fn unavailable(&self, what: &str) {
        let text = match self.dialect {
            Dialect::Json => WireError::new(
                ErrorCode::Unavailable,
                format!("{what}: Redis could not be reached; it may not have been delivered"),
            )
            .to_json(),
            Dialect::Text => hub_wire::text_not_delivered(),
        };
        self.outbox.send_text(&text);
    }
}

/// A request for the publisher.
#[derive(Debug)]
pub enum Op {
    /// A room message.
    Publish {
        /// The room.
        room: String,
        /// What was said.
        said: Said,
        /// The sender.
        reply: Reply,
    },
    /// A message to every hub client.
    Global {
        /// What was said.
        said: Said,
        /// The sender.
        reply: Reply,
    },
    /// A direct message.
    Direct {
        /// The recipient.
        to: String,
        /// The sender's id.
        from: String,
        /// What.
        content: String,
        /// The sender.
        reply: Reply,
    },
    /// A join: answered on `done`.
    Join {
        /// The room.
        room: String,
        /// The joining connection.
        conn: u64,
        /// Its dialect.
        dialect: Dialect,
        /// Its name.
        name: Arc<str>,
        /// `since`, if asked.
        since: Option<u64>,
        /// Where the answer goes.
        done: Sender<RedisResult<JoinAnswer>>,
    },
    /// A leave.
    Leave {
        /// The room.
        room: String,
        /// The leaving connection.
        conn: u64,
    },
    /// A hub client connected: answered on `done`.
    Connect {
        /// Its id.
        id: String,
        /// Its connection.
        conn: u64,
        /// Whether it is registered.
        done: Sender<bool>,
    },
    /// A hub client disconnected.
    Disconnect {
        /// Its id.
        id: String,
        /// Its connection.
        conn: u64,
    },
    /// Finish what is queued before this, then end the thread.
    Stop,
    /// Register everything held here again; answered on `done`.
    Resync {
        /// Announce every registration Redis lacks (this instance was
        /// reaped: everyone heard it leave).
        announce_all: bool,
        /// Whether it worked.
        done: Sender<bool>,
    },
}

/// What the publisher thread works with.
pub struct Publisher {
    /// The broker's shared pieces.
    pub parts: Parts,
    /// `--room-history`.
    pub keep: usize,
}

impl Publisher {
    /// Serves `ops` until [`Op::Stop`] (or every sender is dropped).
    pub fn run(self, ops: Receiver<Op>) {
        let mut con: Option<(Connection, u64)> = None;
        let mut stopping = false;
        while !stopping {
            let Ok(first) = ops.recv() else { return };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match ops.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            if let Some(at) = batch.iter().position(|op| matches!(op, Op::Stop)) {
                batch.truncate(at);
                stopping = true;
            }
            if batch.is_empty() {
                continue;
            }
            if con
                .as_ref()
                .is_some_and(|(_, generation)| *generation != self.parts.link.generation())
            {
                con = None; // the master moved
            }
            if con.is_none() {
                let generation = self.parts.link.generation();
                con = self.connect().map(|c| (c, generation));
            }
            let Some((c, _)) = con.as_mut() else {
                batch.into_iter().for_each(|op| self.failed(op));
                continue;
            };
            if let Err(e) = self.send(c, batch) {
                log::warn!("redis: publisher connection lost: {e}");
                con = None;
            }
        }
    }

    fn connect(&self) -> Option<Connection> {
        let connected = self.parts.link.connect("publish").and_then(|mut c| {
            for script in self.parts.scripts.all() {
                script.load(&mut c)?;
            }
            Ok(c)
        });
        self.parts.health.connected(&connected);
        match connected {
            Ok(c) => Some(c),
            Err(e) => {
                log::debug!("redis: publisher cannot connect: {e}");
                None
            }
        }
    }

    /// Sends `batch` as one pipeline and handles the answers; an error
    /// means the connection is no good (every op was answered).
    fn send(&self, con: &mut Connection, batch: Vec<Op>) -> RedisResult<()> {
        let mut pipe = redis::pipe();
        for op in &batch {
            pipe.add_command(self.command(op));
        }
        let packed = pipe.get_packed_pipeline();
        let values = match con.req_packed_commands(&packed, 0, batch.len()) {
            Ok(values) => values,
            Err(e) => {
                self.parts.link.lost_master(&e);
                batch.into_iter().for_each(|op| self.failed(op));
                return Err(e);
            }
        };
        let mut again = Vec::new();
        let mut lost = false;
        for (op, value) in batch.into_iter().zip(values) {
            match value {
                Value::ServerError(e) if e.code() == "NOSCRIPT" => again.push(op),
                value => {
                    // Refused, so not carried out: answered `unavailable`.
                    lost = lost || self.parts.link.lost_master_value(&value);
                    self.answered(op, value)
                }
            }
        }
        if lost {
            again.into_iter().for_each(|op| self.failed(op));
            return Err(redis::RedisError::from((
                redis::ErrorKind::ReadOnly,
                "this Redis is no longer the master",
            )));
        }
        if !again.is_empty() {
            // The scripts were flushed (SCRIPT FLUSH, or a restarted
            // Redis behind a proxy): load them and try those once more.
            for script in self.parts.scripts.all() {
                script.load(con)?;
            }
            for op in again {
                let value = con.req_command(&self.command(&op));
                match value {
                    Ok(value) => self.answered(op, value),
                    Err(e) => {
                        self.failed(op);
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }

    /// The one command that carries out `op`.
    fn command(&self, op: &Op) -> Cmd {
        let k = &self.parts.keys;
        let s = &self.parts.scripts;
        let ttl = HISTORY_TTL.as_secs();
        match op {
            Op::Publish { room, said, .. } => {
                let mut args = vec![
                    crate::hub::new_epoch(),
                    self.keep.to_string(),
                    ttl.to_string(),
                    k.room_channel(room),
                    said.encode(),
                ];
                args.extend(self.known(room));
                evalsha(&s.publish, &[k.meta(room), k.history(room)], &args)
            }
            Op::Global { said, .. } => evalsha(
                &s.global,
                &[],
                &[k.prefix().to_string(), Event::Global(said.clone()).encode()],
            ),
            Op::Direct {
                to, from, content, ..
            } => {
                let event = Event::Direct {
                    to: to.clone(),
                    from: from.clone(),
                    content: content.clone(),
                };
                evalsha(
                    &s.direct,
                    &[k.clients(), k.instances()],
                    &[to.clone(), k.prefix().to_string(), event.encode()],
                )
            }
            Op::Join {
                room,
                conn,
                dialect,
                name,
                since,
                ..
            } => {
                let mut args = vec![
                    crate::hub::new_epoch(),
                    ttl.to_string(),
                    k.room_channel(room),
                    k.holder(*conn),
                    who_value(*dialect, name),
                    room.clone(),
                    format!("{conn}|{room}"),
                    since.map_or("-1".to_string(), |s| s.to_string()),
                    name.to_string(),
                ];
                args.extend(self.known(room));
                let keys = [
                    k.meta(room),
                    k.history(room),
                    k.who(room),
                    k.rooms(),
                    k.own_who(),
                ];
                evalsha(&s.join, &keys, &args)
            }
            Op::Leave { room, conn } => evalsha(
                &s.leave,
                &[],
                &[
                    k.prefix().to_string(),
                    k.instance().to_string(),
                    format!("{conn}|{room}"),
                ],
            ),
            Op::Connect { id, conn, .. } => evalsha(
                &s.connect,
                &[k.clients(), k.own_clients()],
                &[id.clone(), k.holder(*conn), k.prefix().to_string()],
            ),
            Op::Disconnect { id, conn } => evalsha(
                &s.disconnect,
                &[k.clients(), k.own_clients()],
                &[id.clone(), k.holder(*conn), k.prefix().to_string()],
            ),
            Op::Stop => redis::cmd("PING"),
            Op::Resync { announce_all, .. } => {
                let snapshot = self.parts.local.snapshot();
                let mut args = vec![
                    k.prefix().to_string(),
                    k.instance().to_string(),
                    if *announce_all { "1" } else { "0" }.to_string(),
                    snapshot.members.len().to_string(),
                ];
                for (room, conn, dialect, name, announce) in &snapshot.members {
                    args.push(format!("{conn}|{room}"));
                    args.push(who_value(*dialect, name));
                    args.push(if *announce { "1" } else { "0" }.to_string());
                }
                args.push(snapshot.clients.len().to_string());
                for (id, conn, announce) in &snapshot.clients {
                    args.push(id.clone());
                    args.push(conn.to_string());
                    args.push(if *announce { "1" } else { "0" }.to_string());
                }
                evalsha(&s.resync, &[], &args)
            }
        }
    }

    /// What this instance knows Redis handed out in `room`, as script
    /// arguments (see [`known_args`]).
    fn known(&self, room: &str) -> [String; 4] {
        known_args(
            self.parts
                .local
                .room(room)
                .map(|r| r.known())
                .unwrap_or_default(),
        )
    }

    /// Handles Redis's answer to `op`.
    fn answered(&self, op: Op, value: Value) {
        if let Value::ServerError(e) = &value {
            log::warn!("redis: a script failed: {e:?}");
            return self.failed(op);
        }
        self.done_with(&op);
        match op {
            Op::Publish { room, .. } => {
                self.parts.stats.room_messages.fetch_add(1, Relaxed);
                let numbered = redis::from_redis_value::<(u64, String)>(&value);
                if let (Ok((seq, epoch)), Some(room)) = (numbered, self.parts.local.room(&room)) {
                    room.published(&epoch, seq);
                }
            }
            Op::Global { .. } => {
                self.parts.stats.global_messages.fetch_add(1, Relaxed);
            }
            Op::Direct { to, reply, .. } => {
                if matches!(value, Value::Int(1)) {
                    self.parts.stats.direct_messages.fetch_add(1, Relaxed);
                } else {
                    let error = WireError::new(
                        ErrorCode::UnknownClient,
                        format!("no client {to:?} is connected"),
                    );
                    reply.outbox.send_text(&error.to_json());
                }
            }
            Op::Join { done, .. } => {
                let _ = done.send(join_answer(value));
            }
            Op::Leave { .. } | Op::Disconnect { .. } | Op::Stop => {}
            Op::Connect { done, .. } => {
                let _ = done.send(true);
            }
            Op::Resync { done, .. } => {
                if let Value::Array(taken) = value {
                    for id in taken {
                        if let Ok(id) = redis::from_redis_value::<String>(&id) {
                            // Another instance holds the id now: ours is
                            // the older connection.
                            if let Some((conn, _)) = self.parts.local.clients.get(&id) {
                                self.parts.local.clients.replace(&id, conn);
                            }
                        }
                    }
                }
                let _ = done.send(true);
            }
        }
    }

    /// `op`'s bytes no longer count against its connection.
    fn done_with(&self, op: &Op) {
        if let Op::Publish { reply, .. } | Op::Global { reply, .. } | Op::Direct { reply, .. } = op
        {
            self.parts.inflight.release(reply.conn, reply.bytes);
        }
    }

    /// `op` could not be carried out: its requester hears so.
    fn failed(&self, op: Op) {
        self.parts.health.unavailable.fetch_add(1, Relaxed);
        self.done_with(&op);
        match op {
            Op::Publish { reply, .. } => reply.unavailable("message"),
            Op::Global { reply, .. } => reply.unavailable("message"),
            Op::Direct { reply, .. } => reply.unavailable("direct"),
            Op::Join { done, .. } => {
                let _ = done.send(Err(redis::RedisError::from((
                    redis::ErrorKind::IoError,
                    "Redis could not be reached",
                ))));
            }
            Op::Leave { room, conn } => {
                if let Some(room) = self.parts.local.room(&room) {
                    room.release_leaver(conn);
                }
                self.parts.local.mark_dirty();
            }
            Op::Connect { id, done, .. } => {
                self.parts.local.unannounced(&id);
                let _ = done.send(false);
            }
            Op::Disconnect { .. } => self.parts.local.mark_dirty(),
            Op::Stop => {}
            Op::Resync { done, .. } => {
                self.parts.local.mark_dirty();
                let _ = done.send(false);
            }
        }
    }
}

/// `EVALSHA` of `script` with `keys` and `args`.
pub fn evalsha(script: &Script, keys: &[String], args: &[String]) -> Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash())
        .arg(keys.len())
        .arg(keys)
        .arg(args);
    cmd
}

/// The scripts' arguments for what this instance knows was handed out in
/// a room: epoch, seq, epoch, seq (see `room_epoch` in
/// [`crate::broker::redis::scripts`]).
pub fn known_args(known: [(String, u64); 2]) -> [String; 4] {
    let [(e1, s1), (e2, s2)] = known;
    [e1, s1.to_string(), e2, s2.to_string()]
}

/// How a member is stored in `who` hashes: its dialect's letter and name.
pub fn who_value(dialect: Dialect, name: &str) -> String {
    let d = match dialect {
        Dialect::Json => 'j',
        Dialect::Text => 't',
    };
    format!("{d}{name}")
}

fn join_answer(value: Value) -> RedisResult<JoinAnswer> {
    let bad = || redis::RedisError::from((redis::ErrorKind::TypeError, "unexpected join answer"));
    let Value::Array(parts) = value else {
        return Err(bad());
    };
    let [epoch, last, held] = <[Value; 3]>::try_from(parts).map_err(|_| bad())?;
    Ok(JoinAnswer {
        epoch: redis::from_redis_value(&epoch)?,
        last: redis::from_redis_value(&last)?,
        held: entries(&held),
    })
}

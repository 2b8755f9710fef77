//! Connections to Redis and what is known about reaching it.
//!
//! Every thread that talks to Redis (the publisher, the subscriber, the
//! heartbeat, and connection threads asking questions through the [`Pool`])
//! opens its connections here, with timeouts on connecting, reading and
//! writing, so a Redis that hangs can hold nobody forever. [`Health`] is
//! what they learn: a failed connect marks Redis unreachable, a successful
//! one reachable again. Requests that need Redis are refused at once while
//! it is unreachable, instead of queueing behind a dead connection.

use crate::activity::{Events, Kind};
use redis::{Client, Connection, RedisResult};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How long a connect may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a command's answer may take.
pub const IO_TIMEOUT: Duration = Duration::from_secs(3);

/// Opens connections to one Redis.
#[derive(Debug, Clone)]
pub struct Link {
    client: Client,
    instance: String,
}

impl Link {
    /// A link to `url`, naming its connections after `instance`.
    pub fn new(url: &str, instance: &str) -> RedisResult<Link> {
        Ok(Link {
            client: Client::open(url)?,
            instance: instance.to_string(),
        })
    }

    /// A new connection with timeouts, named `strand:INSTANCE:ROLE` (see
    /// `CLIENT LIST`).
    pub fn connect(&self, role: &str) -> RedisResult<Connection> {
        let mut con = self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        con.set_read_timeout(Some(IO_TIMEOUT))?;
        con.set_write_timeout(Some(IO_TIMEOUT))?;
        redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg(format!("strand:{}:{role}", self.instance))
            .exec(&mut con)?;
        Ok(con)
    }
}

/// What is known about reaching Redis, and counters for `/metrics`.
#[derive(Debug, Default)]
pub struct Health {
    /// Where going down and coming back are named (the operator view).
    events: Option<Arc<Events>>,
    /// The last failure to reach Redis: Unix ms and the error.
    last_error: Mutex<Option<(u64, String)>>,
    reachable: AtomicBool,
    subscribed: AtomicBool,
    registered: AtomicBool,
    /// Subscriber connections lost so far: a join that spans a change
    /// knows its notice may have been lost.
    pub generation: AtomicU64,
    /// Times the subscriber (re)connected.
    pub reconnects: AtomicU64,
    /// Gaps in a room's sequence repaired from the history.
    pub repairs: AtomicU64,
    /// Requests refused or failed because Redis could not be reached.
    pub unavailable: AtomicU64,
    /// Instances this one found dead and reaped.
    pub reaped: AtomicU64,
}

impl Health {
    /// A health that names its changes in `events`.
    pub fn reporting_to(events: Arc<Events>) -> Health {
        Health {
            events: Some(events),
            ..Health::default()
        }
    }

    /// Notes how a connect went: reachable, or not with the error.
    pub fn connected<T>(&self, result: &RedisResult<T>) {
        if let Err(e) = result {
            self.note_error(e);
        }
        self.set_reachable(result.is_ok());
    }

    /// Keeps `error` as the last failure to reach Redis.
    pub fn note_error(&self, error: &dyn std::fmt::Display) {
        let mut last = self.last_error.lock().unwrap_or_else(|e| e.into_inner());
        *last = Some((crate::wire::unix_millis(), error.to_string()));
    }

    /// The last failure to reach Redis (Unix ms, the error), if any.
    pub fn last_error(&self) -> Option<(u64, String)> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether requests that need Redis should be tried.
    pub fn reachable(&self) -> bool {
        self.reachable.load(Ordering::Acquire)
    }

    /// Whether everything works: reachable, subscribed, registered.
    pub fn healthy(&self) -> bool {
        self.reachable() && self.subscribed() && self.registered.load(Ordering::Acquire)
    }

    /// Whether the subscriber holds its channels now.
    pub fn subscribed(&self) -> bool {
        self.subscribed.load(Ordering::Acquire)
    }

    /// A connection or command worked (`true`) or a connect failed.
    pub fn set_reachable(&self, yes: bool) {
        if self.reachable.swap(yes, Ordering::AcqRel) != yes {
            if yes {
                log::info!("redis: reachable");
            } else {
                log::warn!("redis: cannot be reached; room requests answer `unavailable`");
            }
            if let Some(events) = &self.events {
                let (kind, detail) = if yes {
                    (Kind::BrokerUp, "Redis can be reached again".to_string())
                } else {
                    let why = self.last_error().map(|(_, e)| e).unwrap_or_default();
                    (Kind::BrokerDown, format!("Redis cannot be reached: {why}"))
                };
                events.record(kind, "", detail);
            }
        }
    }

    /// The subscriber gained or lost its channels.
    pub fn set_subscribed(&self, yes: bool) {
        self.subscribed.store(yes, Ordering::Release);
    }

    /// This instance's heartbeat was (or could not be) written.
    pub fn set_registered(&self, yes: bool) {
        self.registered.store(yes, Ordering::Release);
    }
}

/// A few connections for questions asked from connection and HTTP threads
/// (presence, counts, broadcasts). At most [`Pool::MAX`] are open; a
/// thread that finds none free waits for one, up to [`IO_TIMEOUT`].
pub struct Pool {
    link: Link,
    state: Mutex<PoolState>,
    freed: Condvar,
}

#[derive(Default)]
struct PoolState {
    idle: Vec<Connection>,
    open: usize,
}

impl Pool {
    /// Most connections the pool opens.
    pub const MAX: usize = 4;

    /// An empty pool on `link`.
    pub fn new(link: Link) -> Pool {
        Pool {
            link,
            state: Mutex::default(),
            freed: Condvar::new(),
        }
    }

    /// Runs `f` on a pooled connection. A connection that fails is
    /// dropped, not returned; a failed connect marks Redis unreachable.
    /// When `f` only reads (`retry`), a connection that turns out to be
    /// dead (Redis restarted since it was last used) is replaced and `f`
    /// tried once more; a write is not repeated, since it may have been
    /// carried out.
    pub fn with<T>(
        &self,
        health: &Health,
        retry: bool,
        mut f: impl FnMut(&mut Connection) -> RedisResult<T>,
    ) -> RedisResult<T> {
        let (mut con, reused) = self.take(health)?;
        let mut result = f(&mut con);
        if let Err(e) = &result {
            if retry && reused && broken(e) {
                self.give_back(con, false);
                let (fresh, _) = self.take_new(health)?;
                con = fresh;
                result = f(&mut con);
            }
        }
        let keep = match &result {
            Ok(_) => true,
            Err(e) => !broken(e),
        };
        self.give_back(con, keep);
        result
    }

    fn give_back(&self, con: Connection, keep: bool) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if keep {
            state.idle.push(con);
        } else {
            state.open -= 1;
        }
        self.freed.notify_one();
    }

    /// A new connection, counted as open.
    fn take_new(&self, health: &Health) -> RedisResult<(Connection, bool)> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.open += 1;
        drop(state);
        let connected = self.link.connect("query");
        health.connected(&connected);
        match connected {
            Ok(con) => Ok((con, false)),
            Err(e) => {
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                state.open -= 1;
                self.freed.notify_one();
                Err(e)
            }
        }
    }

    /// An idle connection (reused: true) or a new one.
    fn take(&self, health: &Health) -> RedisResult<(Connection, bool)> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(con) = state.idle.pop() {
                return Ok((con, true));
            }
            if state.open < Self::MAX {
                drop(state);
                return self.take_new(health);
            }
            let (next, timeout) = self
                .freed
                .wait_timeout(state, IO_TIMEOUT)
                .unwrap_or_else(|e| e.into_inner());
            state = next;
            if timeout.timed_out() && state.idle.is_empty() && state.open >= Self::MAX {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::IoError,
                    "no free Redis connection",
                )));
            }
        }
    }

    /// Closes every idle connection (at shutdown).
    pub fn close(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let n = state.idle.len();
        state.idle.clear();
        state.open -= n;
    }
}

/// Whether `e` means the connection is no good (rather than a command
/// that failed on a good one).
fn broken(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error()
}

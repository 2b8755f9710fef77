//! Connections to Redis and what is known about reaching it.
//!
//! Every thread that talks to Redis (the publisher, the subscriber, the
//! heartbeat, and connection threads asking questions through the [`Pool`])
//! opens its connections here, with timeouts on connecting, reading and
//! writing, so a Redis that hangs can hold nobody forever. [`Health`] is
//! what they learn: a failed connect marks Redis unreachable, a successful
//! one reachable again. Requests that need Redis are refused at once while
//! it is unreachable, instead of queueing behind a dead connection.
//!
//! Behind Sentinel, every connect asks the sentinels where the master is
//! and checks its `ROLE`; the [`Link`]'s generation counts the masters
//! lost (a failover announced or seen, a `READONLY`/`LOADING` answer), and
//! whoever holds a connection from an older generation lets it go. This
//! module decides nothing about rooms; it only knows where Redis is.

use crate::activity::{Events, Kind};
use crate::broker::redis::target::{Sentinels, Target};
use crate::config::ClientPem;
use redis::{Client, Connection, ConnectionAddr, ConnectionInfo, RedisError, RedisResult, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long a connect may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a command's answer may take.
pub const IO_TIMEOUT: Duration = Duration::from_secs(3);

/// Opens connections to Redis: to its fixed address, or to the master the
/// sentinels name now (asked again at every connect, and checked with
/// `ROLE`). Cloning shares it.
#[derive(Clone)]
pub struct Link {
    inner: Arc<LinkInner>,
}

struct LinkInner {
    target: Target,
    /// `--redis-ca`: PEM roots trusted instead of the system's.
    roots: Option<Vec<u8>>,
    /// `--redis-cert`/`--redis-key`: the certificate presented, if asked.
    client: Option<ClientPem>,
    instance: String,
    /// Bumped each time the master is known lost (a sentinel announced a
    /// new one, or Redis answered `READONLY`/`LOADING`): every holder of a
    /// connection opened before lets it go and connects again.
    generation: AtomicU64,
    /// The sentinel that answered last is asked first.
    sentinels: Mutex<Vec<(String, u16)>>,
    /// The master's address when connections were last opened to it.
    master: Mutex<Option<(String, u16)>>,
    /// When a lost master was last logged at `warn` (a Redis that stays a
    /// replica would otherwise say so every second).
    told_lost: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("instance", &self.inner.instance)
            .finish_non_exhaustive()
    }
}

impl Link {
    /// A link to `target`, trusting `roots` (PEM) for TLS when given and
    /// presenting `client`, naming its connections after `instance`.
    pub fn new(
        target: Target,
        roots: Option<Vec<u8>>,
        client: Option<ClientPem>,
        instance: &str,
    ) -> Link {
        let sentinels = match &target {
            Target::Sentinel(s) => s.addrs.clone(),
            Target::Direct(_) => Vec::new(),
        };
        Link {
            inner: Arc::new(LinkInner {
                target,
                roots,
                client,
                instance: instance.to_string(),
                generation: AtomicU64::new(0),
                sentinels: Mutex::new(sentinels),
                master: Mutex::new(None),
                told_lost: Mutex::new(None),
            }),
        }
    }

    /// The master's name, when the sentinels are asked for it.
    pub fn sentinel_master(&self) -> Option<&str> {
        match &self.inner.target {
            Target::Sentinel(s) => Some(&s.master),
            Target::Direct(_) => None,
        }
    }

    /// Connections opened before this changes should be let go.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// The master is lost (`why`): every connection is opened again.
    pub fn lose_master(&self, why: &str) {
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        let whither = match self.inner.target {
            Target::Sentinel(_) => "to the master the sentinels name",
            Target::Direct(_) => "again",
        };
        let mut told = self
            .inner
            .told_lost
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !told.is_some_and(|at| at.elapsed() < Duration::from_secs(10)) {
            *told = Some(Instant::now());
            log::warn!("redis: {why}; every connection is opened {whither}");
        } else {
            log::debug!("redis: {why}; every connection is opened {whither}");
        }
    }

    /// A sentinel names the master at `addr` now: when connections were
    /// opened to another one, the master is lost.
    pub fn sentinels_name(&self, addr: (String, u16)) {
        let mut master = self.inner.master.lock().unwrap_or_else(|e| e.into_inner());
        if master.as_ref().is_some_and(|m| *m != addr) {
            let why = format!("the sentinels name a new master, {}:{}", addr.0, addr.1);
            *master = Some(addr);
            drop(master);
            self.lose_master(&why);
        }
    }

    /// Whether `e` says the server is no longer (or not yet) a usable
    /// master: a demoted master (`READONLY`), one loading its data
    /// (`LOADING`), or a replica cut from its master (`MASTERDOWN`). When
    /// so, the master counts as lost.
    pub fn lost_master(&self, e: &RedisError) -> bool {
        let lost = e.code().is_some_and(is_lost_master_code);
        if lost {
            self.lose_master(&format!("Redis answered {e}"));
        }
        lost
    }

    /// Whether a script's answer in a pipeline says the master is lost.
    pub fn lost_master_value(&self, value: &Value) -> bool {
        match value {
            Value::ServerError(e) if is_lost_master_code(e.code()) => {
                self.lose_master(&format!("Redis answered {e:?}"));
                true
            }
            _ => false,
        }
    }

    /// A new connection with timeouts, named `strand:INSTANCE:ROLE` (see
    /// `CLIENT LIST`).
    pub fn connect(&self, role: &str) -> RedisResult<Connection> {
        let mut con = match &self.inner.target {
            Target::Direct(info) => self.open(info.clone())?,
            Target::Sentinel(s) => self.open_master(s)?,
        };
        redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg(format!("strand:{}:{role}", self.inner.instance))
            .exec(&mut con)?;
        Ok(con)
    }

    /// A connection with timeouts to `info`, with TLS when it says so.
    fn open(&self, info: ConnectionInfo) -> RedisResult<Connection> {
        let inner = &self.inner;
        let client = match &info.addr {
            ConnectionAddr::TcpTls { .. } if inner.roots.is_some() || inner.client.is_some() => {
                Client::build_with_tls(
                    info,
                    redis::TlsCertificates {
                        client_tls: inner.client.as_ref().map(|c| redis::ClientTlsConfig {
                            client_cert: c.cert.clone(),
                            client_key: c.key.clone(),
                        }),
                        root_cert: inner.roots.clone(),
                    },
                )?
            }
            _ => Client::open(info)?,
        };
        let con = client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        con.set_read_timeout(Some(IO_TIMEOUT))?;
        con.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(con)
    }

    /// Asks the sentinels where the master is, connects to it, and makes
    /// sure it is a master (a sentinel may not know of a failover yet).
    fn open_master(&self, s: &Sentinels) -> RedisResult<Connection> {
        let (host, port) = self.ask_sentinels(s)?;
        let mut con = self.open(ConnectionInfo {
            addr: addr(&host, port, s.tls),
            redis: s.redis_info(),
        })?;
        let role: Vec<Value> = redis::cmd("ROLE").query(&mut con)?;
        let role = role
            .first()
            .and_then(|r| redis::from_redis_value::<String>(r).ok())
            .unwrap_or_default();
        if role != "master" {
            return Err(RedisError::from((
                redis::ErrorKind::IoError,
                "the sentinels' master is not a master (yet)",
                format!("{host}:{port} says it is a {role}"),
            )));
        }
        *self.inner.master.lock().unwrap_or_else(|e| e.into_inner()) = Some((host, port));
        Ok(con)
    }

    /// The master's address, from the first sentinel that knows it.
    pub fn ask_sentinels(&self, s: &Sentinels) -> RedisResult<(String, u16)> {
        let order = self
            .inner
            .sentinels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut errors = Vec::new();
        for (host, port) in order {
            let asked = self.sentinel(s, &host, port).and_then(|mut con| {
                redis::cmd("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg(&s.master)
                    .query::<Option<(String, u16)>>(&mut con)
            });
            match asked {
                Ok(Some(master)) => {
                    let mut first = self
                        .inner
                        .sentinels
                        .lock()
                        .unwrap_or_else(|e| e.into_inner());
                    if let Some(at) = first.iter().position(|a| a.0 == host && a.1 == port) {
                        let found = first.remove(at);
                        first.insert(0, found);
                    }
                    return Ok(master);
                }
                Ok(None) => errors.push(format!("{host}:{port} knows no master {:?}", s.master)),
                Err(e) => errors.push(format!("{host}:{port}: {e}")),
            }
        }
        Err(RedisError::from((
            redis::ErrorKind::IoError,
            "no sentinel named the master",
            errors.join("; "),
        )))
    }

    /// A connection to the sentinel at `host:port`, with timeouts.
    pub fn sentinel(&self, s: &Sentinels, host: &str, port: u16) -> RedisResult<Connection> {
        self.open(ConnectionInfo {
            addr: addr(host, port, s.tls),
            redis: Default::default(),
        })
    }

    /// The sentinels, in the order they are asked.
    pub fn sentinels(&self) -> Option<(Sentinels, Vec<(String, u16)>)> {
        match &self.inner.target {
            Target::Sentinel(s) => Some((
                s.clone(),
                self.inner
                    .sentinels
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone(),
            )),
            Target::Direct(_) => None,
        }
    }
}

fn addr(host: &str, port: u16, tls: bool) -> ConnectionAddr {
    if tls {
        ConnectionAddr::TcpTls {
            host: host.to_string(),
            port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(host.to_string(), port)
    }
}

fn is_lost_master_code(code: &str) -> bool {
    matches!(code, "READONLY" | "LOADING" | "MASTERDOWN")
}

/// What is known about reaching Redis, and counters for `/metrics`.
#[derive(Debug, Default)]
pub struct Health {
    /// Where going down and coming back are named (the operator view).
    events: Option<Arc<Events>>,
    /// The last failure to reach Redis: Unix ms and the error.
    last_error: Mutex<Option<(u64, String)>>,
    reachable: AtomicBool,
    /// Why Redis cannot be reached was logged (once per outage).
    told_down: AtomicBool,
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

    /// A connect worked or failed. When Redis becomes unreachable the
    /// reason (a refused TLS certificate, a master that is not one, a
    /// timeout...) is logged once per outage and kept as the last error;
    /// going down and coming back are named in the operator view's events.
    pub fn connected<T>(&self, result: &RedisResult<T>) {
        match result {
            Ok(_) => {
                self.told_down.store(false, Ordering::Release);
                if !self.reachable.swap(true, Ordering::AcqRel) {
                    log::info!("redis: reachable");
                    self.tell(Kind::BrokerUp, "Redis can be reached again".to_string());
                }
            }
            Err(e) => {
                self.note_error(e);
                let was_reachable = self.reachable.swap(false, Ordering::AcqRel);
                if !self.told_down.swap(true, Ordering::AcqRel) {
                    log::warn!(
                        "redis: cannot be reached ({e}); room requests answer `unavailable`"
                    );
                }
                if was_reachable {
                    self.tell(Kind::BrokerDown, format!("Redis cannot be reached: {e}"));
                }
            }
        }
    }

    fn tell(&self, kind: Kind, detail: String) {
        if let Some(events) = &self.events {
            events.record(kind, "", detail);
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
    /// Idle connections, with the link's generation when each was opened.
    idle: Vec<(Connection, u64)>,
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
    /// carried out. A connection opened before the master was lost (see
    /// [`Link::generation`]) is not reused.
    pub fn with<T>(
        &self,
        health: &Health,
        retry: bool,
        mut f: impl FnMut(&mut Connection) -> RedisResult<T>,
    ) -> RedisResult<T> {
        let (mut con, reused) = self.take(health)?;
        let mut result = f(&mut con.0);
        let mut lost = matches!(&result, Err(e) if self.link.lost_master(e));
        if let Err(e) = &result {
            if retry && (lost || reused && broken(e)) {
                self.give_back(con, false);
                let (fresh, _) = self.take_new(health)?;
                con = fresh;
                result = f(&mut con.0);
                lost = matches!(&result, Err(e) if self.link.lost_master(e));
            }
        }
        let keep = !lost && !matches!(&result, Err(e) if broken(e));
        self.give_back(con, keep);
        result
    }

    fn give_back(&self, con: (Connection, u64), keep: bool) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if keep && con.1 == self.link.generation() {
            state.idle.push(con);
        } else {
            state.open -= 1;
        }
        self.freed.notify_one();
    }

    /// A new connection, counted as open.
    fn take_new(&self, health: &Health) -> RedisResult<((Connection, u64), bool)> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.open += 1;
        drop(state);
        let generation = self.link.generation();
        let connected = self.link.connect("query");
        health.connected(&connected);
        match connected {
            Ok(con) => Ok(((con, generation), false)),
            Err(e) => {
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                state.open -= 1;
                self.freed.notify_one();
                Err(e)
            }
        }
    }

    /// An idle connection (reused: true) or a new one.
    fn take(&self, health: &Health) -> RedisResult<((Connection, u64), bool)> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let now = self.link.generation();
            let before = state.idle.len();
            state.idle.retain(|(_, generation)| *generation == now);
            state.open -= before - state.idle.len();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> Link {
        let target = Target::parse("redis://127.0.0.1:1").unwrap();
        Link::new(target, None, None, "test")
    }

    #[test]
    fn a_demoted_loading_or_cut_off_server_is_a_lost_master() {
        let link = link();
        for kind in [
            redis::ErrorKind::ReadOnly,
            redis::ErrorKind::BusyLoadingError,
            redis::ErrorKind::MasterDown,
        ] {
            let before = link.generation();
            assert!(link.lost_master(&RedisError::from((kind, "refused"))));
            assert_eq!(link.generation(), before + 1, "{kind:?}");
        }
        let before = link.generation();
        for other in [redis::ErrorKind::ResponseError, redis::ErrorKind::IoError] {
            assert!(!link.lost_master(&RedisError::from((other, "no"))));
        }
        assert_eq!(link.generation(), before);
    }
}

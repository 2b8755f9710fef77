//! The request-head door: where an accepted connection waits until its
//! request head (and body) is complete, holding no thread.
//!
//! The accept loop hands every connection to [`Door::admit`]. Its socket
//! waits in the readiness thread ([`crate::ws::readiness`]); each time it
//! is readable, the readiness thread reads what is there into the
//! connection's buffer (nothing is allocated before the first byte) and
//! parses it ([`crate::http::request::complete`], pure). A complete
//! request, or a broken one, is handed to `dispatch`, which gives it a
//! (cached) thread. So thousands of silent or trickling sockets cost a
//! descriptor and a few hundred bytes each, never a thread.
//!
//! Bounds: a connection must complete its head and body within
//! [`HEAD_TIMEOUT`] of being accepted, however slowly it trickles (then it
//! is answered 408 and closed); at most `bound` connections wait here at
//! once, and a new one past that evicts the oldest (408). With
//! `--max-connections-per-ip`, an address over its share is answered 503
//! at accept, before its head is read, and closed.
//!
//! On a TLS port the door also runs the handshake: each readiness event
//! feeds what arrived to the connection's rustls session and writes what it
//! answers (waiting for writability when the socket is full), then reads
//! the decrypted head as above. The head deadline covers the handshake, so
//! a silent TLS socket costs no thread either; the session travels with
//! the [`Arrival`]. A client that speaks plain HTTP to the TLS port is
//! answered a plain 400 saying so; a handshake that fails is counted by
//! reason ([`crate::tls::Failure`]); an ACME `tls-alpn-01` validation
//! (ALPN `acme-tls/1`) is closed as soon as its handshake completes.
//!
//! It must not block (it runs on the readiness thread) nor serve requests.

use crate::http::request::{self, ReadError, Request, HEAD_TIMEOUT, MAX_REQUEST_BYTES};
use crate::http::Response;
use crate::metrics::Metrics;
use crate::tls::certs::ACME_TLS_ALPN;
use crate::tls::{Failure, Tls};
use crate::ws::readiness::{Key, Readiness, Ready, Timer};
use rustls::ServerConnection;
use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, TcpStream};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;

/// A connection whose request is read (or failed to parse), for a thread.
pub struct Arrival {
    /// The socket, non-blocking; when `key` is set, still registered with
    /// the readiness thread under it (disarmed): whoever takes it either
    /// hands the registration on (the WebSocket engine) or deregisters it.
    pub stream: TcpStream,
    /// The socket's registration with the readiness thread; `None` when
    /// the whole head was there at accept and it never waited here.
    pub key: Option<Key>,
    /// The request, or why it could not be read.
    pub request: Result<Request, ReadError>,
    /// Holds the connection's place in its address's count until dropped.
    pub slot: IpSlot,
    /// On a TLS port, the connection's session, its handshake done.
    pub tls: Option<Box<ServerConnection>>,
}

impl Arrival {
    /// Answers `response` without blocking (what the socket takes now), on
    /// the readiness thread: the 503 of a refused thread.
    pub fn answer_now(&mut self, response: &Response) {
        let bytes = response.to_bytes();
        match &mut self.tls {
            None => {
                let _ = (&self.stream).write(&bytes);
            }
            Some(session) => {
                let _ = session.writer().write_all(&bytes);
                session.send_close_notify();
                let _ = flush_tls(&self.stream, session);
            }
        }
    }
}

/// Where complete requests go: gives each a thread.
pub type Dispatch = Box<dyn Fn(Arrival) + Send + Sync>;

/// The door; see the module docs.
pub struct Door {
    inner: Arc<Inner>,
}

struct Inner {
    readiness: Arc<Readiness>,
    metrics: Arc<Metrics>,
    dispatch: Dispatch,
    bound: usize,
    per_ip: Option<Arc<PerIp>>,
    /// The port speaks TLS.
    tls: Option<Arc<Tls>>,
    /// Waiting heads in accept order, which is deadline order; heads that
    /// left are removed lazily.
    waiting: Mutex<VecDeque<Arc<Head>>>,
}

/// One connection reading its head.
struct Head {
    door: Weak<Inner>,
    deadline: Instant,
    state: Mutex<Option<Reading>>,
}

struct Reading {
    stream: TcpStream,
    key: Key,
    buf: Vec<u8>,
    slot: IpSlot,
    tls: Option<TlsHead>,
}

/// A connection's TLS session while the door reads its head.
struct TlsHead {
    tls: Arc<Tls>,
    /// Made when the first byte arrives and is a TLS handshake record's,
    /// so a silent socket costs no session.
    session: Option<Box<ServerConnection>>,
}

impl TlsHead {
    fn wants_write(&self) -> bool {
        self.session.as_ref().is_some_and(|s| s.wants_write())
    }
}

/// Read per `read` call.
const CHUNK: usize = 4096;

impl Door {
    /// A door on `readiness` that hands complete requests to `dispatch`;
    /// at most `bound` connections wait at once; `per_ip`: most
    /// connections from one address (0: no limit); `tls`: every connection
    /// starts with a TLS handshake.
    pub fn new(
        readiness: Arc<Readiness>,
        metrics: Arc<Metrics>,
        bound: usize,
        per_ip: usize,
        tls: Option<Arc<Tls>>,
        dispatch: Dispatch,
    ) -> Door {
        let inner = Arc::new(Inner {
            readiness: readiness.clone(),
            metrics,
            dispatch,
            bound: bound.max(1),
            per_ip: (per_ip > 0).then(|| {
                Arc::new(PerIp {
                    limit: per_ip,
                    open: Mutex::new(HashMap::new()),
                })
            }),
            tls,
            waiting: Mutex::new(VecDeque::new()),
        });
        readiness.set_timer(Arc::new(Deadlines(Arc::downgrade(&inner))));
        Door { inner }
    }

    /// Takes an accepted connection: it waits here for its request head.
    pub fn admit(&self, stream: TcpStream) {
        let inner = &self.inner;
        let slot = match &inner.per_ip {
            None => IpSlot(None),
            Some(per_ip) => match stream.peer_addr().map(|a| per_ip.take(a.ip())) {
                Ok(Some(slot)) => slot,
                Err(_) => return,
                Ok(None) => {
                    inner.metrics.per_ip_refused.fetch_add(1, Relaxed);
                    log::debug!("refusing a connection: over its address's share");
                    if inner.tls.is_some() {
                        // No plain answer means anything to a TLS client,
                        // and a handshake would cost what the limit saves.
                        return;
                    }
                    return refuse_now(stream, crate::http::response::over_capacity());
                }
            },
        };
        if let Err(e) = stream.set_nonblocking(true) {
            log::debug!("accepted socket unusable: {e}");
            return;
        }
        // A client usually sends its head right after connecting, so under
        // load it is often all there already: then it goes straight to a
        // thread, without waiting on the readiness thread.
        let mut tls = inner.tls.as_ref().map(|tls| TlsHead {
            tls: tls.clone(),
            session: None,
        });
        let mut buf = Vec::new();
        match read_available(&stream, tls.as_mut(), &mut buf) {
            Progress::Waiting => {}
            Progress::Done(request) => {
                return (inner.dispatch)(Arrival {
                    stream,
                    key: None,
                    request,
                    slot,
                    tls: tls.and_then(|t| t.session),
                })
            }
            ended => return inner.ended(stream, ended),
        }
        let write = tls.as_ref().is_some_and(TlsHead::wants_write);
        let head = Arc::new(Head {
            door: Arc::downgrade(inner),
            deadline: Instant::now() + HEAD_TIMEOUT,
            state: Mutex::new(None),
        });
        {
            // Held while registering, so an event that fires at once
            // waits for the state to be in place.
            let mut state = head.lock();
            let key = match inner.readiness.register(&stream, head.clone(), true, write) {
                Ok(key) => key,
                Err(e) => {
                    log::warn!("cannot wait for a request head: {e}");
                    return;
                }
            };
            *state = Some(Reading {
                stream,
                key,
                buf,
                slot,
                tls,
            });
        }
        inner.metrics.heads_pending.fetch_add(1, Relaxed);
        let (was_empty, evict) = {
            let mut waiting = inner.lock_waiting();
            let was_empty = waiting.is_empty();
            waiting.push_back(head);
            let pending = inner.metrics.heads_pending.load(Relaxed) as usize;
            // Heads that left are dropped from the queue now and then, so
            // it stays within twice the waiting ones.
            if waiting.len() > 2 * pending + 64 {
                waiting.retain(|h| h.lock().is_some());
            }
            let evict = if pending > inner.bound {
                oldest_waiting(&mut waiting)
            } else {
                None
            };
            (was_empty, evict)
        };
        if let Some(oldest) = evict {
            if let Some(reading) = oldest.leave(false) {
                inner.metrics.heads_evicted.fetch_add(1, Relaxed);
                inner.time_out(reading);
            }
        }
        if was_empty {
            // The readiness thread may sleep with no deadline: wake it.
            inner.readiness.wake_if_no_deadline();
        }
    }

    /// Closes every connection still reading its head (server shutdown).
    pub fn close_all(&self) {
        let waiting = std::mem::take(&mut *self.inner.lock_waiting());
        for head in waiting {
            drop(head.leave(false));
        }
    }
}

/// Pops the oldest head still waiting.
fn oldest_waiting(waiting: &mut VecDeque<Arc<Head>>) -> Option<Arc<Head>> {
    while let Some(head) = waiting.pop_front() {
        if head.lock().is_some() {
            return Some(head);
        }
    }
    None
}

impl Inner {
    fn lock_waiting(&self) -> MutexGuard<'_, VecDeque<Arc<Head>>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection that left without a request: closed, counted when its
    /// TLS handshake failed, answered when it spoke plain HTTP to TLS.
    fn ended(&self, stream: TcpStream, how: Progress) {
        let Some(tls) = &self.tls else { return };
        match how {
            Progress::NotTls => {
                tls.failed(Failure::NotTls);
                refuse_now(
                    stream,
                    Response::error(400, "this port speaks TLS: use https:// or wss://"),
                );
            }
            Progress::Failed(why) => tls.failed(why),
            _ => {}
        }
    }

    /// Answers 408 without blocking (through the session under TLS, once
    /// its handshake is done; a handshake not done is counted and closed).
    fn time_out(&self, mut reading: Reading) {
        let response = Response::error(
            408,
            &format!(
                "request head not complete within {} s",
                HEAD_TIMEOUT.as_secs()
            ),
        );
        match reading.tls.as_mut().map(|t| (&t.tls, t.session.as_mut())) {
            Some((_, Some(session))) if !session.is_handshaking() => {
                let _ = session.writer().write_all(&response.to_bytes());
                session.send_close_notify();
                let _ = flush_tls(&reading.stream, session);
            }
            Some((tls, _)) => tls.failed(Failure::Timeout),
            None => {
                let _ = (&reading.stream).write(&response.to_bytes());
            }
        }
        let _ = reading.stream.shutdown(Shutdown::Write);
    }
}

impl Head {
    fn lock(&self) -> MutexGuard<'_, Option<Reading>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the connection out of the door (once): no more events reach
    /// the door. Its registration is removed unless it is `handed_on`.
    fn leave(&self, handed_on: bool) -> Option<Reading> {
        let reading = self.lock().take()?;
        if let Some(door) = self.door.upgrade() {
            if !handed_on {
                door.readiness.deregister(&reading.stream, reading.key);
            }
            door.metrics.heads_pending.fetch_sub(1, Relaxed);
        }
        Some(reading)
    }
}

impl Ready for Head {
    fn ready(&self, _readable: bool, _writable: bool) {
        let Some(door) = self.door.upgrade() else {
            return;
        };
        let outcome = {
            let mut state = self.lock();
            let Some(reading) = state.as_mut() else {
                return;
            };
            match read_available(&reading.stream, reading.tls.as_mut(), &mut reading.buf) {
                Progress::Waiting => {
                    let write = reading.tls.as_ref().is_some_and(TlsHead::wants_write);
                    match door
                        .readiness
                        .arm(&reading.stream, reading.key, true, write)
                    {
                        Ok(()) => return,
                        Err(_) => Progress::Gone,
                    }
                }
                other => other,
            }
        };
        let handed_on = matches!(outcome, Progress::Done(_));
        let Some(reading) = self.leave(handed_on) else {
            return;
        };
        match outcome {
            Progress::Done(request) => (door.dispatch)(Arrival {
                stream: reading.stream,
                key: Some(reading.key),
                request,
                slot: reading.slot,
                tls: reading.tls.and_then(|t| t.session),
            }),
            // Closed before its head was complete: nothing to answer.
            ended => door.ended(reading.stream, ended),
        }
    }
}

enum Progress {
    Waiting,
    Gone,
    /// The TLS handshake failed (an alert was sent when rustls had one).
    Failed(Failure),
    /// The first byte on a TLS port was not a TLS handshake record's.
    NotTls,
    Done(Result<Request, ReadError>),
}

/// Reads what `stream` holds into `buf`, through `tls` when the port
/// speaks TLS.
fn read_available(stream: &TcpStream, tls: Option<&mut TlsHead>, buf: &mut Vec<u8>) -> Progress {
    match tls {
        None => read_plain(stream, buf),
        Some(tls) => read_tls(stream, tls, buf),
    }
}

/// The first byte of a TLS record carrying a handshake message.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Runs the handshake as far as what arrived allows, writing what the
/// session answers without blocking, then reads the decrypted head into
/// `buf` (the rest of the plaintext stays in the session).
fn read_tls(stream: &TcpStream, tls: &mut TlsHead, buf: &mut Vec<u8>) -> Progress {
    if tls.session.is_none() {
        let mut first = [0u8; 1];
        match stream.peek(&mut first) {
            Ok(0) => return Progress::Failed(Failure::Closed),
            Ok(_) if first[0] != TLS_HANDSHAKE_RECORD => return Progress::NotTls,
            Ok(_) => match tls.tls.session() {
                Ok(session) => tls.session = Some(session),
                Err(e) => {
                    log::warn!("cannot start a TLS session: {e}");
                    return Progress::Gone;
                }
            },
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::Waiting,
            Err(_) => return Progress::Gone,
        }
    }
    let Some(session) = tls.session.as_mut() else {
        return Progress::Gone;
    };
    let mut chunk = [0u8; CHUNK];
    loop {
        if flush_tls(stream, session).is_err() {
            return Progress::Gone;
        }
        match session.read_tls(&mut &*stream) {
            Ok(0) if session.is_handshaking() => return Progress::Failed(Failure::Closed),
            Ok(0) => return Progress::Gone,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::Waiting,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Progress::Gone,
        }
        if let Err(e) = session.process_new_packets() {
            // The alert rustls queued tells the client why.
            let _ = flush_tls(stream, session);
            log::debug!("TLS handshake failed: {e}");
            return Progress::Failed(Failure::of(&e));
        }
        if !session.is_handshaking() && session.alpn_protocol() == Some(ACME_TLS_ALPN) {
            // An ACME tls-alpn-01 validation: the handshake is all it wants.
            session.send_close_notify();
            let _ = flush_tls(stream, session);
            return Progress::Gone;
        }
        loop {
            let room = MAX_REQUEST_BYTES.saturating_sub(buf.len());
            if room == 0 {
                let _ = flush_tls(stream, session);
                return Progress::Done(Err(ReadError::HeadTooLarge));
            }
            match session.reader().read(&mut chunk[..room.min(CHUNK)]) {
                Ok(0) => return Progress::Gone,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    match request::complete(buf) {
                        Ok(None) => continue,
                        done => {
                            let _ = flush_tls(stream, session);
                            return Progress::Done(done.map(|r| r.expect("complete")));
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return Progress::Gone,
            }
        }
    }
}

/// Writes what `session` wants to send until the socket would block.
pub(crate) fn flush_tls(stream: &TcpStream, session: &mut ServerConnection) -> io::Result<()> {
    while session.wants_write() {
        match session.write_tls(&mut &*stream) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads what `stream` holds into `buf`, stopping as soon as the request
/// is complete (later bytes stay in the socket for the WebSocket reader).
fn read_plain(stream: &TcpStream, buf: &mut Vec<u8>) -> Progress {
    let mut chunk = [0u8; CHUNK];
    loop {
        let room = MAX_REQUEST_BYTES.saturating_sub(buf.len());
        if room == 0 {
            return Progress::Done(Err(ReadError::HeadTooLarge));
        }
        match (&*stream).read(&mut chunk[..room.min(CHUNK)]) {
            Ok(0) => return Progress::Gone,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                match request::complete(buf) {
                    Ok(None) => continue,
                    done => return Progress::Done(done.map(|r| r.expect("complete"))),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::Waiting,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Progress::Gone,
        }
    }
}

/// The door's head deadlines, for the readiness thread.
struct Deadlines(Weak<Inner>);

impl Timer for Deadlines {
    fn next_deadline(&self) -> Option<Instant> {
        let door = self.0.upgrade()?;
        let mut waiting = door.lock_waiting();
        // Skip heads that already left, so an idle door asks for no wake-up.
        while waiting.front().is_some_and(|h| h.lock().is_none()) {
            waiting.pop_front();
        }
        waiting.front().map(|h| h.deadline)
    }

    fn fire(&self, now: Instant) {
        let Some(door) = self.0.upgrade() else {
            return;
        };
        loop {
            let head = {
                let mut waiting = door.lock_waiting();
                match waiting.front() {
                    Some(h) if h.deadline <= now => waiting.pop_front(),
                    _ => None,
                }
            };
            let Some(head) = head else { break };
            if let Some(reading) = head.leave(false) {
                door.metrics.heads_timed_out.fetch_add(1, Relaxed);
                door.time_out(reading);
            }
        }
    }
}

/// Answers `response` (a 503 at accept, a 400 for plain HTTP on a TLS
/// port) without blocking, and closes. What the client already sent is
/// read and dropped first, so that closing does not reset the connection
/// and destroy the answer.
fn refuse_now(stream: TcpStream, response: Response) {
    let _ = stream.set_nonblocking(true);
    let mut sink = [0u8; 1024];
    while matches!((&stream).read(&mut sink), Ok(n) if n > 0) {}
    let _ = (&stream).write(&response.to_bytes());
    let _ = stream.shutdown(Shutdown::Write);
}

/// Open connections per address, when limited.
struct PerIp {
    limit: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerIp {
    fn take(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.limit {
            return None;
        }
        *n += 1;
        Some(IpSlot(Some((self.clone(), ip))))
    }
}

/// One connection's place in its address's count; freed when dropped.
pub struct IpSlot(Option<(Arc<PerIp>, IpAddr)>);

impl Drop for IpSlot {
    fn drop(&mut self) {
        if let Some((per_ip, ip)) = self.0.take() {
            let mut open = per_ip.open.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = open.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&ip);
                }
            }
        }
    }
}

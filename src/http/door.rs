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
//! It must not block (it runs on the readiness thread) nor serve requests.

use crate::http::request::{self, ReadError, Request, HEAD_TIMEOUT, MAX_REQUEST_BYTES};
use crate::http::Response;
use crate::metrics::Metrics;
use crate::ws::readiness::{Key, Readiness, Ready, Timer};
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
}

/// Read per `read` call.
const CHUNK: usize = 4096;

impl Door {
    /// A door on `readiness` that hands complete requests to `dispatch`;
    /// at most `bound` connections wait at once; `per_ip`: most
    /// connections from one address (0: no limit).
    pub fn new(
        readiness: Arc<Readiness>,
        metrics: Arc<Metrics>,
        bound: usize,
        per_ip: usize,
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
                    return refuse_now(stream);
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
        let mut buf = Vec::new();
        match read_available(&stream, &mut buf) {
            Progress::Waiting => {}
            Progress::Gone => return,
            Progress::Done(request) => {
                return (inner.dispatch)(Arrival {
                    stream,
                    key: None,
                    request,
                    slot,
                })
            }
        }
        let head = Arc::new(Head {
            door: Arc::downgrade(inner),
            deadline: Instant::now() + HEAD_TIMEOUT,
            state: Mutex::new(None),
        });
        {
            // Held while registering, so an event that fires at once
            // waits for the state to be in place.
            let mut state = head.lock();
            let key = match inner.readiness.register(&stream, head.clone(), true, false) {
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
                time_out(reading);
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
            match read_available(&reading.stream, &mut reading.buf) {
                Progress::Waiting => {
                    match door
                        .readiness
                        .arm(&reading.stream, reading.key, true, false)
                    {
                        Ok(()) => return,
                        Err(_) => None,
                    }
                }
                Progress::Gone => None,
                Progress::Done(request) => Some(request),
            }
        };
        let Some(reading) = self.leave(outcome.is_some()) else {
            return;
        };
        match outcome {
            // Closed before its head was complete: nothing to answer.
            None => drop(reading),
            Some(request) => (door.dispatch)(Arrival {
                stream: reading.stream,
                key: Some(reading.key),
                request,
                slot: reading.slot,
            }),
        }
    }
}

enum Progress {
    Waiting,
    Gone,
    Done(Result<Request, ReadError>),
}

/// Reads what `stream` holds into `buf`, stopping as soon as the request
/// is complete (later bytes stay in the socket for the WebSocket reader).
fn read_available(stream: &TcpStream, buf: &mut Vec<u8>) -> Progress {
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
                time_out(reading);
            }
        }
    }
}

/// Answers 408 without blocking, and closes.
fn time_out(reading: Reading) {
    let response = Response::error(
        408,
        &format!(
            "request head not complete within {} s",
            HEAD_TIMEOUT.as_secs()
        ),
    );
    let _ = (&reading.stream).write(&response.to_bytes());
    let _ = reading.stream.shutdown(Shutdown::Write);
}

/// Answers 503 at accept without blocking, and closes. What the client
/// already sent is read and dropped first, so that closing does not reset
/// the connection and destroy the answer.
fn refuse_now(stream: TcpStream) {
    let _ = stream.set_nonblocking(true);
    let mut sink = [0u8; 1024];
    while matches!((&stream).read(&mut sink), Ok(n) if n > 0) {}
    let response = crate::http::response::over_capacity();
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

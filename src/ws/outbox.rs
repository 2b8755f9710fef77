//! The write gate of one connection: how every thread, the connection's own
//! and every other (rooms, broadcasts, streams, tails), sends to it.
//!
//! Any thread may write a frame straight to the socket, without blocking
//! (`MSG_DONTWAIT`), when nothing is queued for the connection: the gate's
//! lock is held for the write, so frames never interleave. What cannot go
//! at once (the socket would block, a partial write, frames already
//! waiting) is queued, in order, and the connection thread drains the
//! queue when the socket becomes writable. A fan-out to 1,000 members thus
//! costs 1,000 non-blocking sends on the publishing thread, not 1,000
//! wake-ups.
//!
//! The queue is bounded in bytes, not messages. A sender never waits on
//! the client: [`Outbox::send`] either writes or queues the encoded frame
//! or, when the client holds more than the limit unread, drops it and
//! marks the connection a slow consumer, which its thread then closes with
//! 1008. Producers that may wait (a stream replaying its spool) use
//! [`Outbox::send_wait`], which waits for room rather than overflowing.
//!
//! Under TLS the socket's session lives behind the gate's lock too
//! ([`TlsWire`]): queued frames stay plaintext, and are sealed when they
//! are sent, a batch at a time, so the queue counts plaintext plus at most
//! one batch of ciphertext not yet written.
//!
//! An outbox made by [`Outbox::new`] has no socket: its frames go to a
//! channel, for unit tests of the layers above.
//!
//! It must not run callbacks or know what the frames mean.

use crate::metrics::Metrics;
use crate::ws::tls_wire::TlsWire;
use crossbeam_channel::{Receiver, Sender};
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::Thread;
use std::time::Duration;

/// What an outbox without a socket hands its reader (see [`Outbox::new`]).
#[derive(Debug)]
pub enum Outgoing {
    /// An encoded frame (see [`crate::ws::frame`]), shared between recipients.
    Frame(Arc<[u8]>),
    /// Close the connection with this code and reason.
    Close(u16, String),
}

/// Wake-up reasons of a connection thread, as bits of [`Signal`].
pub mod wake {
    /// The socket is readable (or failed).
    pub const READABLE: u8 = 1;
    /// The socket is writable (or failed).
    pub const WRITABLE: u8 = 2;
    /// Another thread queued frames that wait for the socket.
    pub const QUEUED: u8 = 4;
    /// A close was asked for (see [`super::Outbox::take_close`]).
    pub const CLOSE: u8 = 8;
}

/// Wakes one connection thread: reasons gather in a bit set, and one token
/// in a one-slot channel stands for all of them until the thread takes
/// them, so signalling never blocks and never allocates.
#[derive(Debug)]
pub struct Signal {
    bits: AtomicU8,
    tx: Sender<()>,
}

impl Signal {
    /// A signal and the receiver its connection thread selects on.
    pub fn new() -> (Arc<Signal>, Receiver<()>) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let signal = Signal {
            bits: AtomicU8::new(0),
            tx,
        };
        (Arc::new(signal), rx)
    }

    /// Adds `bits` to the reasons, waking the thread if none were pending.
    pub fn raise(&self, bits: u8) {
        if self.bits.fetch_or(bits, Ordering::AcqRel) == 0 {
            // Tokens are sent only on 0 -> non-zero and the thread takes the
            // bits after receiving one, so the slot is always free here.
            let _ = self.tx.try_send(());
        }
    }

    /// Takes every pending reason.
    pub fn take(&self) -> u8 {
        self.bits.swap(0, Ordering::AcqRel)
    }
}

impl crate::ws::readiness::Ready for Signal {
    fn ready(&self, readable: bool, writable: bool) {
        let mut bits = 0;
        if readable {
            bits |= wake::READABLE;
        }
        if writable {
            bits |= wake::WRITABLE;
        }
        // An event with neither (interest cleared) still wakes the thread.
        self.raise(if bits == 0 { wake::READABLE } else { bits });
    }
}

/// The sending side of one connection: its write gate and queue.
#[derive(Debug)]
pub struct Outbox {
    id: u64,
    gate: Mutex<Gate>,
    /// Bytes queued and not yet written (a copy of the gate's count that
    /// senders can read without the lock).
    queued: AtomicUsize,
    limit: usize,
    closing: AtomicBool,
    signal: Option<Arc<Signal>>,
    has_waiters: AtomicBool,
    waiters: Mutex<Vec<Thread>>,
    metrics: Arc<Metrics>,
}

#[derive(Debug)]
enum Sink {
    Socket(Arc<TcpStream>),
    /// A socket speaking TLS through this session.
    Tls(Arc<TcpStream>, Box<TlsWire>),
    Channel(Sender<Outgoing>),
    /// The connection ended: nothing is written any more.
    Gone,
}

#[derive(Debug)]
struct Gate {
    sink: Sink,
    queue: VecDeque<Arc<[u8]>>,
    /// Bytes of the front frame already written.
    front_sent: usize,
    /// The close another thread asked for, until the connection takes it.
    close: Option<(u16, String)>,
    /// The connection is being closed as a slow consumer.
    slow: bool,
    /// The connection thread is running a callback: its own frames, written
    /// when it returns, go ahead of what others send meanwhile, which is
    /// queued. Holds the queue's length when the hold began.
    held: Option<usize>,
    /// Bytes queued during the hold: they wait for the callback, not for
    /// the client, so they do not count against the limit (the connection
    /// writes them once they pass [`crate::ws::conn`]'s flush threshold).
    held_bytes: usize,
}

/// How a write through the gate went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Everything is on the socket.
    All,
    /// Some bytes wait in the queue for the socket to become writable.
    Queued,
}

/// Frames written per `writev` when draining.
const IOV: usize = 64;

impl Outbox {
    /// An outbox without a socket, of at most `limit` bytes, for connection
    /// `id`: frames and closes go to the returned receiver, and count as
    /// queued until [`Outbox::drained`].
    pub fn new(id: u64, limit: usize, metrics: Arc<Metrics>) -> (Arc<Outbox>, Receiver<Outgoing>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        (
            Arc::new(Outbox::with(id, limit, metrics, Sink::Channel(tx), None)),
            rx,
        )
    }

    /// The gate of `socket` (non-blocking) for connection `id`, with a
    /// queue of at most `limit` bytes; `signal` wakes the connection thread.
    /// With `tls`, every byte goes through that session.
    pub fn for_socket(
        id: u64,
        limit: usize,
        metrics: Arc<Metrics>,
        socket: Arc<TcpStream>,
        tls: Option<Box<rustls::ServerConnection>>,
        signal: Arc<Signal>,
    ) -> Arc<Outbox> {
        let sink = match tls {
            None => Sink::Socket(socket),
            Some(session) => Sink::Tls(socket, Box::new(TlsWire::new(session))),
        };
        Arc::new(Outbox::with(id, limit, metrics, sink, Some(signal)))
    }

    fn with(
        id: u64,
        limit: usize,
        metrics: Arc<Metrics>,
        sink: Sink,
        signal: Option<Arc<Signal>>,
    ) -> Outbox {
        Outbox {
            id,
            gate: Mutex::new(Gate {
                sink,
                queue: VecDeque::new(),
                front_sent: 0,
                close: None,
                slow: false,
                held: None,
                held_bytes: 0,
            }),
            queued: AtomicUsize::new(0),
            limit,
            closing: AtomicBool::new(false),
            signal,
            has_waiters: AtomicBool::new(false),
            waiters: Mutex::new(Vec::new()),
            metrics,
        }
    }

    /// The connection's server-wide id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Sends `frame` without waiting: written at once when the socket takes
    /// it, else queued. Returns false when it was dropped: the connection
    /// is closing, or this frame would take the queue over its limit, in
    /// which case the connection is closed as a slow consumer.
    pub fn send(&self, frame: Arc<[u8]>) -> bool {
        if self.closing.load(Ordering::Relaxed) {
            return false;
        }
        let n = frame.len();
        let mut gate = self.lock();
        if self.closing.load(Ordering::Relaxed) {
            return false;
        }
        let unread = self.queued.load(Ordering::Relaxed) - gate.held_bytes;
        if unread > 0 && unread + n > self.limit {
            drop(gate);
            self.overflow();
            return false;
        }
        self.metrics.messages_out.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .bytes_out
            .fetch_add(n as u64, Ordering::Relaxed);
        match &gate.sink {
            Sink::Gone => false,
            Sink::Channel(tx) => {
                self.queued.fetch_add(n, Ordering::AcqRel);
                let _ = tx.send(Outgoing::Frame(frame));
                true
            }
            Sink::Socket(_) | Sink::Tls(..) => {
                if gate.queue.is_empty() && gate.held.is_none() {
                    let written = match self.put(&mut gate, &[IoSlice::new(&frame)]) {
                        Ok(w) => w,
                        // A failed socket: the connection thread finds out
                        // by reading; the frame is lost with the connection.
                        Err(_) => return true,
                    };
                    if written == n && gate.cipher_pending() == 0 {
                        return true;
                    }
                    if written < n {
                        gate.front_sent = written;
                        gate.queue.push_back(frame);
                        self.queued.fetch_add(n - written, Ordering::AcqRel);
                    }
                    drop(gate);
                    self.raise(wake::QUEUED);
                } else {
                    if gate.held.is_some() {
                        gate.held_bytes += n;
                    }
                    gate.queue.push_back(frame);
                    self.queued.fetch_add(n, Ordering::AcqRel);
                }
                true
            }
        }
    }

    /// Encodes `text` as one text frame and sends it with [`Outbox::send`].
    pub fn send_text(&self, text: &str) -> bool {
        self.send(crate::ws::frame::text(text).into())
    }

    /// Sends `frame` once the queue holds at most half its limit, waiting
    /// for the client to read as long as needed. Returns false, without
    /// sending, when the connection closes or `stop` becomes true first.
    pub fn send_wait(&self, frame: Arc<[u8]>, stop: &AtomicBool) -> bool {
        loop {
            if stop.load(Ordering::Relaxed) || self.closing.load(Ordering::Relaxed) {
                return false;
            }
            let queued = self.queued.load(Ordering::Acquire);
            if queued == 0 || queued + frame.len() <= self.limit / 2 {
                return self.send(frame);
            }
            self.waiters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(std::thread::current());
            self.has_waiters.store(true, Ordering::Release);
            // Re-check after registering so a drain in between is not missed;
            // the timeout bounds how late a `stop` is noticed.
            if self.queued.load(Ordering::Acquire) == queued {
                std::thread::park_timeout(Duration::from_millis(50));
            }
        }
    }

    /// Asks the connection to close with `code` and `reason` after what is
    /// already queued; later sends are dropped.
    pub fn close(&self, code: u16, reason: &str) {
        if self.closing.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut gate = self.lock();
        if let Sink::Channel(tx) = &gate.sink {
            let _ = tx.send(Outgoing::Close(code, reason.to_string()));
            return;
        }
        gate.close = Some((code, reason.to_string()));
        drop(gate);
        self.raise(wake::CLOSE);
    }

    /// Whether the connection still accepts frames.
    pub fn is_open(&self) -> bool {
        !self.closing.load(Ordering::Relaxed)
    }

    /// Bytes queued and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// The queue overflowed: drop the frame, close as a slow consumer.
    #[cold]
    fn overflow(&self) {
        self.metrics
            .dropped_messages
            .fetch_add(1, Ordering::Relaxed);
        if self.closing.swap(true, Ordering::AcqRel) {
            return;
        }
        self.metrics
            .slow_consumer_closes
            .fetch_add(1, Ordering::Relaxed);
        let mut gate = self.lock();
        if let Sink::Channel(tx) = &gate.sink {
            let _ = tx.send(Outgoing::Close(1008, "slow consumer".into()));
            return;
        }
        gate.close = Some((1008, "slow consumer".into()));
        gate.slow = true;
        drop(gate);
        self.raise(wake::CLOSE);
    }

    /// Hands `slices` to the socket through [`put`], keeping the count of
    /// queued bytes.
    fn put(&self, gate: &mut Gate, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        put(&mut gate.sink, &self.queued, slices)
    }

    /// Under TLS: decrypted plaintext the session holds (`WouldBlock` when
    /// none; 0 after the peer's `close_notify`). Plain sockets: `None`.
    pub(crate) fn tls_read_plain(&self, buf: &mut [u8]) -> Option<io::Result<usize>> {
        match &mut self.lock().sink {
            Sink::Tls(_, wire) => Some(wire.read_plain(buf)),
            Sink::Gone => Some(Ok(0)),
            _ => None,
        }
    }

    /// Under TLS: feeds ciphertext the connection thread received (outside
    /// the lock) to the session; how much it took. What the session answers
    /// is written, and counts as queued while the socket holds it back.
    pub(crate) fn tls_feed(&self, cipher: &[u8]) -> io::Result<usize> {
        let mut gate = self.lock();
        let Sink::Tls(socket, wire) = &mut gate.sink else {
            return Ok(cipher.len());
        };
        let before = wire.pending();
        let taken = wire.feed(socket, cipher);
        let after = wire.pending();
        account(&self.queued, before, after);
        taken
    }

    /// Under TLS, seals a `close_notify` after everything queued or sealed
    /// so far: the queue is sent first.
    pub(crate) fn tls_close_notify(&self) {
        let mut gate = self.lock();
        if !gate.queue.is_empty() {
            return;
        }
        let Sink::Tls(socket, wire) = &mut gate.sink else {
            return;
        };
        let before = wire.pending();
        wire.close_notify(socket);
        account(&self.queued, before, wire.pending());
    }

    fn raise(&self, bits: u8) {
        if let Some(signal) = &self.signal {
            signal.raise(bits);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Gate> {
        self.gate.lock().unwrap_or_else(|e| e.into_inner())
    }

    // The connection thread's side.

    /// Holds the gate for a callback of the connection thread: until
    /// [`Outbox::write_own`], other senders queue instead of writing, so the
    /// frames the callback writes go first (a joiner's replay before the
    /// room's live messages).
    pub(crate) fn hold(&self) {
        let mut gate = self.lock();
        if gate.held.is_none() {
            gate.held = Some(gate.queue.len());
        }
    }

    /// Writes the connection's own frames (`bytes`, any number of whole
    /// frames, maybe none) and releases the hold: they go ahead of what
    /// others sent during the hold and behind what was queued before it,
    /// at once when nothing is ahead of them. Then writes what the socket
    /// takes of the queue. Own frames are never dropped (the connection
    /// stops reading instead while its queue is not empty). `ends_with_close`:
    /// the last of `bytes` is the connection's close frame, after which
    /// nothing may be written (RFC 6455, 5.5.1), so what others sent during
    /// the hold is dropped (senders already see the connection closing).
    /// An error means the socket failed.
    pub(crate) fn write_own(&self, bytes: &[u8], ends_with_close: bool) -> io::Result<Written> {
        let mut gate = self.lock();
        let ahead = gate.held.take().unwrap_or(gate.queue.len());
        gate.held_bytes = 0;
        if ends_with_close && gate.queue.len() > ahead {
            let dropped: usize = gate.queue.drain(ahead..).map(|f| f.len()).sum();
            self.queued.fetch_sub(dropped, Ordering::AcqRel);
        }
        if !gate.has_socket() {
            return Ok(Written::All);
        }
        let queued_during_hold = gate.queue.len() > ahead;
        if !bytes.is_empty() {
            let written = if ahead == 0 {
                self.put(&mut gate, &[IoSlice::new(bytes)])?
            } else {
                0
            };
            if written < bytes.len() {
                if ahead == 0 {
                    gate.front_sent = written;
                }
                gate.queue.insert(ahead, bytes.into());
                self.queued
                    .fetch_add(bytes.len() - written, Ordering::AcqRel);
            }
        }
        if gate.queue.is_empty() && gate.cipher_pending() == 0 {
            return Ok(Written::All);
        }
        drop(gate);
        if queued_during_hold {
            self.drain().map(|(_, written)| written)
        } else {
            Ok(Written::Queued)
        }
    }

    /// Writes what is queued until the socket would block. Returns whether
    /// anything was written and whether the queue is now empty.
    pub(crate) fn drain(&self) -> io::Result<(bool, Written)> {
        let mut guard = self.lock();
        let gate = &mut *guard;
        let mut progress = false;
        let result = loop {
            if gate.queue.is_empty() && gate.cipher_pending() == 0 {
                break Ok(Written::All);
            }
            if !gate.has_socket() {
                break Ok(Written::All);
            }
            if gate.held.is_some() {
                break Ok(Written::Queued);
            }
            let before = self.queued.load(Ordering::Acquire);
            let slices: Vec<IoSlice<'_>> = gate
                .queue
                .iter()
                .take(IOV)
                .enumerate()
                .map(|(i, f)| IoSlice::new(if i == 0 { &f[gate.front_sent..] } else { f }))
                .collect();
            let n = match put(&mut gate.sink, &self.queued, &slices) {
                Ok(n) => n,
                Err(e) => break Err(e),
            };
            drop(slices);
            if n == 0 {
                // Under TLS, ciphertext may have gone out with no new
                // plaintext taken: progress, and try again.
                if self.queued.load(Ordering::Acquire) == before {
                    break Ok(Written::Queued);
                }
                progress = true;
                continue;
            }
            progress = true;
            self.queued.fetch_sub(n, Ordering::AcqRel);
            let mut left = n;
            while left > 0 {
                let front_left = gate.queue[0].len() - gate.front_sent;
                if left >= front_left {
                    left -= front_left;
                    gate.queue.pop_front();
                    gate.front_sent = 0;
                } else {
                    gate.front_sent += left;
                    left = 0;
                }
            }
        };
        drop(guard);
        if progress {
            self.wake_waiters();
        }
        result.map(|w| (progress, w))
    }

    /// The close another thread asked for, once, and whether it is a slow
    /// consumer's.
    pub(crate) fn take_close(&self) -> Option<(u16, String, bool)> {
        let mut gate = self.lock();
        let slow = gate.slow;
        gate.close.take().map(|(c, r)| (c, r, slow))
    }

    /// Drops every queued frame not yet begun (a slow consumer's backlog),
    /// keeping the rest of a frame already partly written so that a close
    /// frame can follow it. Returns the bytes that were queued.
    pub(crate) fn discard_backlog(&self) -> usize {
        let mut gate = self.lock();
        let before = self.queued.load(Ordering::Acquire);
        let keep = if gate.front_sent > 0 { 1 } else { 0 };
        let dropped: usize = gate.queue.drain(keep..).map(|f| f.len()).sum();
        self.queued.fetch_sub(dropped, Ordering::AcqRel);
        before
    }

    /// Marks the connection as being closed by its own thread: later sends
    /// are dropped.
    pub(crate) fn refuse_more(&self) {
        self.closing.store(true, Ordering::Release);
    }

    /// Called after writing `bytes` taken from the channel of an outbox
    /// without a socket; wakes producers waiting in [`Outbox::send_wait`].
    #[cfg(test)]
    pub(crate) fn drained(&self, bytes: usize) {
        self.queued.fetch_sub(bytes, Ordering::AcqRel);
        self.wake_waiters();
    }

    fn wake_waiters(&self) {
        if self.has_waiters.swap(false, Ordering::AcqRel) {
            let waiters =
                std::mem::take(&mut *self.waiters.lock().unwrap_or_else(|e| e.into_inner()));
            for t in waiters {
                t.unpark();
            }
        }
    }

    /// Marks the connection as ended: later sends are dropped, the queue is
    /// freed, the socket is let go (the outbox may outlive it, held by
    /// rooms and streams) and waiting producers return.
    pub(crate) fn shut(&self) {
        self.closing.store(true, Ordering::Release);
        let mut gate = self.lock();
        if let Sink::Tls(socket, wire) = &mut gate.sink {
            // The peer learns the session ended on purpose (best effort:
            // behind whatever ciphertext was waiting, without blocking).
            wire.close_notify(socket);
        }
        if gate.has_socket() {
            gate.sink = Sink::Gone;
            gate.queue.clear();
            gate.front_sent = 0;
            gate.held = None;
            gate.held_bytes = 0;
            self.queued.store(0, Ordering::Release);
        }
        drop(gate);
        self.has_waiters.store(true, Ordering::Release);
        self.wake_waiters();
    }
}

impl Gate {
    /// Ciphertext sealed and not yet written (TLS).
    fn cipher_pending(&self) -> usize {
        match &self.sink {
            Sink::Tls(_, wire) => wire.pending(),
            _ => 0,
        }
    }

    fn has_socket(&self) -> bool {
        matches!(self.sink, Sink::Socket(_) | Sink::Tls(..))
    }
}

/// Writes `slices` to the sink's socket without blocking; the plaintext
/// bytes taken (0 when the socket would block). Under TLS, the ciphertext
/// left waiting counts in `queued` (see the module docs).
fn put(sink: &mut Sink, queued: &AtomicUsize, slices: &[IoSlice<'_>]) -> io::Result<usize> {
    match sink {
        Sink::Socket(socket) => send_vectored_now(socket, slices),
        Sink::Tls(socket, wire) => {
            let before = wire.pending();
            let taken = wire.send(socket, slices);
            account(queued, before, wire.pending());
            taken
        }
        Sink::Channel(_) | Sink::Gone => Ok(0),
    }
}

/// Moves the queued count by the change of the ciphertext waiting.
fn account(queued: &AtomicUsize, before: usize, after: usize) {
    if after > before {
        queued.fetch_add(after - before, Ordering::AcqRel);
    } else if before > after {
        queued.fetch_sub(before - after, Ordering::AcqRel);
    }
}

/// One non-blocking `send`; 0 when the socket would block.
pub(crate) fn send_now(socket: &TcpStream, bytes: &[u8]) -> io::Result<usize> {
    send_vectored_now(socket, &[IoSlice::new(bytes)])
}

/// One non-blocking `sendmsg` of `slices`; 0 when the socket would block.
/// `MSG_NOSIGNAL`: a peer that is gone is an error, not a SIGPIPE.
fn send_vectored_now(socket: &TcpStream, slices: &[IoSlice<'_>]) -> io::Result<usize> {
    loop {
        match rustix::net::sendmsg(
            socket,
            slices,
            &mut rustix::net::SendAncillaryBuffer::default(),
            rustix::net::SendFlags::DONTWAIT | rustix::net::SendFlags::NOSIGNAL,
        ) {
            Ok(n) => return Ok(n),
            Err(rustix::io::Errno::AGAIN) => return Ok(0),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: usize) -> Arc<[u8]> {
        vec![0u8; n].into()
    }

    #[test]
    fn overflow_drops_and_asks_for_one_slow_consumer_close() {
        let metrics = Arc::new(Metrics::default());
        let (outbox, rx) = Outbox::new(1, 100, metrics.clone());
        assert!(outbox.send(frame(60)));
        assert!(!outbox.send(frame(60)));
        assert!(!outbox.send(frame(10)), "closing drops everything after");
        assert!(matches!(rx.try_recv(), Ok(Outgoing::Frame(_))));
        assert!(matches!(rx.try_recv(), Ok(Outgoing::Close(1008, _))));
        assert!(rx.try_recv().is_err());
        assert_eq!(metrics.slow_consumer_closes.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn one_frame_larger_than_the_limit_still_passes_an_empty_queue() {
        let (outbox, _rx) = Outbox::new(1, 100, Arc::new(Metrics::default()));
        assert!(outbox.send(frame(500)));
    }

    #[test]
    fn send_wait_waits_for_a_drain() {
        let (outbox, rx) = Outbox::new(1, 100, Arc::new(Metrics::default()));
        assert!(outbox.send(frame(60)));
        let stop = AtomicBool::new(false);
        let o = outbox.clone();
        let drainer = std::thread::spawn(move || {
            let Ok(Outgoing::Frame(f)) = rx.recv() else {
                panic!()
            };
            o.drained(f.len());
            rx
        });
        assert!(outbox.send_wait(frame(40), &stop));
        let rx = drainer.join().unwrap();
        assert!(matches!(rx.try_recv(), Ok(Outgoing::Frame(_))));
    }

    #[test]
    fn send_wait_gives_up_on_stop() {
        let (outbox, _rx) = Outbox::new(1, 100, Arc::new(Metrics::default()));
        assert!(outbox.send(frame(90)));
        let stop = AtomicBool::new(true);
        assert!(!outbox.send_wait(frame(40), &stop));
    }

    #[test]
    fn nothing_sent_during_a_hold_follows_the_connections_close_frame() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let (signal, _rx) = Signal::new();
        let metrics = Arc::new(Metrics::default());
        let outbox = Outbox::for_socket(1, 1 << 20, metrics, Arc::new(server), None, signal);
        assert!(outbox.send(b"before".to_vec().into()));
        outbox.hold();
        // Another thread's frame arrives while the callback that ends the
        // connection runs: it would land after the close frame.
        assert!(outbox.send(b"during".to_vec().into()));
        outbox.refuse_more();
        assert_eq!(outbox.write_own(b"CLOSE", true).unwrap(), Written::All);
        assert!(!outbox.send(b"after".to_vec().into()));
        assert_eq!(outbox.queued_bytes(), 0);
        outbox.shut();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while got.len() < b"beforeCLOSE".len() {
            let n = std::io::Read::read(&mut client, &mut buf).unwrap();
            assert!(n > 0, "the socket ended early: {got:?}");
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"beforeCLOSE");
    }

    #[test]
    fn a_signal_sends_one_token_for_many_reasons() {
        let (signal, rx) = Signal::new();
        signal.raise(wake::QUEUED);
        signal.raise(wake::CLOSE);
        assert!(rx.try_recv().is_ok());
        assert!(rx.try_recv().is_err());
        assert_eq!(signal.take(), wake::QUEUED | wake::CLOSE);
        signal.raise(wake::READABLE);
        assert!(rx.try_recv().is_ok());
        assert_eq!(signal.take(), wake::READABLE);
    }
}

//! The connection thread: one per WebSocket. It reads the socket when the
//! readiness thread says it is readable, runs the [`Handler`]'s callbacks,
//! and drains its write gate ([`Outbox`]) when the socket is writable.
//!
//! It `select!`s over its [`Signal`] (readable, writable, frames queued by
//! other threads, a close asked for by another thread such as server
//! shutdown's 1001, see [`Registry`]) and heartbeat ticks
//! (`crossbeam_channel::tick`, no extra thread), with the nearest deadline
//! (idle, a stalled write, a close handshake) as the select timeout.
//! Everything ready at a wake-up is handled before one write, so a burst
//! costs one syscall.
//!
//! Reads are non-blocking: the reader returns what is complete and keeps
//! partial frames, and the socket is re-armed (oneshot) when it would
//! block. While frames wait in the gate's queue the connection stops
//! reading, so a client that sends without reading is held back by TCP,
//! not by memory. A queue that makes no progress for [`WRITE_TIMEOUT`]
//! ends the connection.
//!
//! Closing follows RFC 6455: a close frame is written once and never
//! followed by anything; a peer's close is answered with its own code (or
//! 1002 for an invalid one); then the socket is shut down. A slow consumer
//! (its queue overflowed) leaves at once: the handler's `on_close` runs
//! before anything else, the unsent backlog is dropped, and the socket is
//! closed within [`SLOW_CLOSE_WAIT`].
//!
//! A close that follows a client's broken frame (1009 for a message over
//! the limit, 1002, 1007) must reach a client that is still sending: the
//! socket cannot be closed with the rest of that frame unread (the kernel
//! would answer with a reset, and the client would read the reset, not the
//! code). So after the close frame is out the connection sends its FIN
//! (after a `close_notify` under TLS) and reads and discards raw bytes,
//! unparsed, until the client's FIN or [`CLOSE_WAIT`].

use crate::metrics::Metrics;
use crate::ws::frame::{self, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT};
use crate::ws::handler::Handler;
use crate::ws::outbox::{wake, Outbox, Signal, Written};
use crate::ws::reader::{self, FrameReader, Inbound};
use crate::ws::readiness::{Key, Readiness};
use crate::ws::registry::Registry;
use crossbeam_channel::{select, tick, Receiver};
use std::io::{self, Read};
use std::net::{Shutdown, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tungstenite::Message;

/// How long queued frames may wait without any of them being written
/// before the connection is given up (a client that stopped reading).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for the peer's reply to our close frame (and for our
/// own close frame to be written).
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// How long a slow consumer's close may take before its socket is cut.
pub const SLOW_CLOSE_WAIT: Duration = Duration::from_secs(1);
/// Messages handled per wake-up before writing, so a flood from one side
/// cannot starve the other.
const BATCH: usize = 256;
/// Own frames buffered before they are written mid-batch.
const FLUSH_AT: usize = 64 * 1024;

/// Settings of the engine, from the server's configuration.
#[derive(Clone)]
pub struct ConnParams {
    /// Heartbeat ping period.
    pub ping_interval: Duration,
    /// Close after this long without anything from the client.
    pub idle_timeout: Duration,
    /// Largest incoming message.
    pub max_message_bytes: usize,
    /// Outbound queue limit in bytes.
    pub max_queue_bytes: usize,
    /// Where the connection registers, so server shutdown can reach it.
    pub registry: Arc<Registry>,
    /// The server's counters.
    pub metrics: Arc<Metrics>,
    /// The readiness thread every socket waits on.
    pub readiness: Arc<Readiness>,
}

impl std::fmt::Debug for ConnParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnParams")
            .field("ping_interval", &self.ping_interval)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("max_queue_bytes", &self.max_queue_bytes)
            .finish_non_exhaustive()
    }
}

/// What a [`Handler`] can do with its connection during a callback.
pub struct Conn<'a> {
    writer: &'a mut FrameWriter,
    outbox: &'a Arc<Outbox>,
    close: &'a mut Option<(u16, String)>,
}

impl Conn<'_> {
    /// Sends a text message to this client (in order with everything else
    /// this callback sends).
    pub fn send_text(&mut self, text: &str) {
        self.writer.frame(OP_TEXT, text.as_bytes());
    }

    /// Sends a binary message to this client.
    pub fn send_binary(&mut self, data: &[u8]) {
        self.writer.frame(OP_BINARY, data);
    }

    /// Sends an already encoded frame (see [`crate::ws::frame`]).
    pub fn send_encoded(&mut self, frame: &[u8]) {
        self.writer.encoded(frame);
    }

    /// This connection's outbox, to register with rooms, streams and tails.
    pub fn outbox(&self) -> &Arc<Outbox> {
        self.outbox
    }

    /// This connection's server-wide id.
    pub fn id(&self) -> u64 {
        self.outbox.id()
    }

    /// Closes the connection with `code` once the callback returns.
    pub fn close(&mut self, code: u16, reason: &str) {
        self.close.get_or_insert((code, reason.to_string()));
    }
}

/// Serves one upgraded connection to its end on this thread: writes
/// `handshake` (the 101 response) through the write gate, registers the
/// socket with the readiness thread (or takes over its registration `key`
/// there), then runs the loop. Fails, with nothing written, when the socket cannot be
/// registered.
///
/// Setting up and tearing down are out of line, so that only the loop's
/// own frames lie beneath it: an idle connection thread keeps every stack
/// page it ever touched, and each page is 4 KiB per connection.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
pub fn serve(
    id: u64,
    stream: TcpStream,
    key: Option<Key>,
    tls: Option<Box<rustls::ServerConnection>>,
    leftover: Vec<u8>,
    handshake: Vec<u8>,
    session: Box<dyn Handler>,
    params: &ConnParams,
) -> io::Result<()> {
    // On the heap: the engine (tungstenite's reader state most of it)
    // would otherwise sit in this frame beneath the loop for the
    // connection's life.
    let mut engine = Box::new(start(id, stream, key, tls, leftover, handshake, params)?);
    let mut session = session;
    let outcome = catch_unwind(AssertUnwindSafe(|| engine.run(&mut *session)));
    finish(engine, outcome.is_err(), session);
    Ok(())
}

/// Registers the socket and writes the handshake.
#[inline(never)]
fn start(
    id: u64,
    stream: TcpStream,
    key: Option<Key>,
    tls: Option<Box<rustls::ServerConnection>>,
    leftover: Vec<u8>,
    handshake: Vec<u8>,
    params: &ConnParams,
) -> io::Result<Engine<'_>> {
    let socket = Arc::new(stream);
    let _ = socket.set_nodelay(true);
    let (signal, wake_rx) = Signal::new();
    let key = match key {
        Some(key) => {
            params.readiness.retarget(key, signal.clone());
            key
        }
        None => {
            socket.set_nonblocking(true)?;
            params
                .readiness
                .register(&*socket, signal.clone(), false, false)?
        }
    };
    let is_tls = tls.is_some();
    let outbox = Outbox::for_socket(
        id,
        params.max_queue_bytes,
        params.metrics.clone(),
        socket.clone(),
        tls,
        signal.clone(),
    );
    params.registry.register(&outbox, &socket);
    // The session may already hold plaintext the door did not need.
    let read_now = !leftover.is_empty() || is_tls;
    let source = SocketRead {
        socket: socket.clone(),
        tls: is_tls.then(|| {
            Box::new(TlsRead {
                outbox: outbox.clone(),
                cipher: Vec::new(),
                at: 0,
            })
        }),
    };
    let reader = FrameReader::new(source, leftover, reader::config(params.max_message_bytes));
    let written = outbox.write_own(&handshake, false);
    drop(handshake);
    if let Err(e) = written {
        outbox.shut();
        params.registry.deregister(id);
        params.readiness.deregister(&*socket, key);
        return Err(e);
    }
    let now = Instant::now();
    Ok(Engine {
        socket,
        key,
        reader,
        writer: FrameWriter::new(params.metrics.clone()),
        outbox,
        signal,
        wake_rx,
        params,
        armed: (false, false),
        // The leftover may hold whole frames; else the socket says when.
        read_more: read_now,
        reader_ended: false,
        discarding: false,
        half_closed: false,
        paused: false,
        close_sent: false,
        closing: None,
        stalled_since: None,
        session_closed: false,
        held: false,
        last_heard: now,
    })
}

/// Ends the connection after its loop: a 1011 close if the loop panicked,
/// the session's goodbye, then the socket.
#[inline(never)]
fn finish(mut engine: Box<Engine<'_>>, panicked: bool, mut session: Box<dyn Handler>) {
    let id = engine.outbox.id();
    if panicked {
        engine.params.metrics.panics.fetch_add(1, Relaxed);
        log::error!("connection {id}: a panic ended this connection");
        engine.send_close(1011, "internal error");
        let _ = engine.flush();
    }
    // The session is dropped (and leaves its rooms) before the socket goes.
    if !engine.session_closed {
        let _ = catch_unwind(AssertUnwindSafe(|| session.on_close()));
    }
    drop(session);
    engine.outbox.shut();
    let params = engine.params;
    params.registry.deregister(id);
    params.readiness.deregister(&*engine.socket, engine.key);
    if engine.discarding && !engine.reader_ended {
        // What arrived since the last read would turn the close into a reset.
        engine.discard();
    }
    let _ = engine.socket.shutdown(Shutdown::Both);
}

/// Reads a shared socket: plain, or through its TLS session.
struct SocketRead {
    socket: Arc<TcpStream>,
    tls: Option<Box<TlsRead>>,
}

impl Read for SocketRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.tls {
            None => (&*self.socket).read(buf),
            Some(tls) => tls.read(&self.socket, buf),
        }
    }
}

/// Ciphertext received per `recv` under TLS (one full record).
const CIPHER_READ: usize = 16 * 1024 + 256;

/// The read side of a TLS connection. Ciphertext is received here,
/// outside the write gate's lock, and fed to the session under it
/// ([`Outbox::tls_feed`]); plaintext is copied out under it too.
struct TlsRead {
    outbox: Arc<Outbox>,
    /// Received ciphertext; freed whenever the socket runs dry, so an idle
    /// connection holds none.
    cipher: Vec<u8>,
    /// How much of `cipher` the session took.
    at: usize,
}

impl TlsRead {
    fn read(&mut self, socket: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.outbox.tls_read_plain(buf) {
                Some(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                Some(done) => return done,
                None => return Ok(0),
            }
            if self.at < self.cipher.len() {
                let taken = self.outbox.tls_feed(&self.cipher[self.at..])?;
                if taken == 0 {
                    // Neither plaintext to read nor room for more: a
                    // session that makes no progress is broken.
                    return Err(io::Error::other("TLS session stalled"));
                }
                self.at += taken;
                continue;
            }
            self.cipher.resize(CIPHER_READ, 0);
            self.at = 0;
            let n = match Read::read(&mut &*socket, &mut self.cipher) {
                Ok(n) => n,
                Err(e) => {
                    self.cipher = Vec::new();
                    return Err(e);
                }
            };
            if n == 0 {
                self.cipher = Vec::new();
                return Ok(0);
            }
            self.cipher.truncate(n);
        }
    }
}

/// The connection thread's state.
struct Engine<'p> {
    socket: Arc<TcpStream>,
    key: Key,
    reader: FrameReader<SocketRead>,
    writer: FrameWriter,
    outbox: Arc<Outbox>,
    signal: Arc<Signal>,
    wake_rx: Receiver<()>,
    params: &'p ConnParams,
    /// The interest (readable, writable) armed with the readiness thread.
    armed: (bool, bool),
    /// The reader may hold more than the socket shows: read without waiting.
    read_more: bool,
    /// The client's close, end or failure was read: nothing more to read.
    reader_ended: bool,
    /// The client broke the protocol: what it still sends is read and
    /// discarded raw until its FIN (see the module docs).
    discarding: bool,
    /// Our FIN was sent (after the close frame, while discarding).
    half_closed: bool,
    /// Reading stopped because frames wait to be written.
    paused: bool,
    close_sent: bool,
    /// Closing: the deadline by which the connection ends regardless.
    closing: Option<Instant>,
    /// Since when queued frames have waited without progress.
    stalled_since: Option<Instant>,
    /// The handler's `on_close` already ran (a slow consumer's).
    session_closed: bool,
    /// This thread holds the gate (a callback is running).
    held: bool,
    last_heard: Instant,
}

/// How handling one event left the connection.
enum Flow {
    Continue,
    /// Send a close frame with this code and reason, wait for the reply, end.
    Close(u16, String),
    /// The peer's close was answered: end once the answer is written.
    Answered,
    /// The peer is gone: end now.
    End,
}

impl Engine<'_> {
    /// The loop. Its own frame lies beneath every session callback for the
    /// connection's life, so what is rare (opening, closing, logging) is
    /// kept out of line to keep it small (see [`serve`]).
    #[inline(never)]
    fn run(&mut self, session: &mut dyn Handler) {
        let mut flow = self.open(session);
        let ticker = tick(self.params.ping_interval);
        loop {
            match std::mem::replace(&mut flow, Flow::Continue) {
                Flow::Continue => {}
                Flow::Close(code, reason) => self.begin_close(code, &reason, CLOSE_WAIT),
                Flow::Answered => {
                    self.reader_ended = true;
                    self.begin_close(1000, "", CLOSE_WAIT);
                }
                Flow::End => return,
            }
            if let Err(e) = self.flush() {
                return self.write_failed(e);
            }
            let backlog = self.outbox.queued_bytes() > 0;
            if self.discarding && self.close_sent && !backlog && !self.half_closed {
                self.half_close();
                continue;
            }
            let now = Instant::now();
            if let Some(deadline) = self.closing {
                if (self.reader_ended && !backlog) || now >= deadline {
                    return;
                }
            }
            if backlog {
                let since = *self.stalled_since.get_or_insert(now);
                if now - since >= WRITE_TIMEOUT {
                    return self.stalled();
                }
            } else {
                self.stalled_since = None;
            }
            if let Err(e) = self.arm(backlog) {
                return self.write_failed(e);
            }
            let bits = if self.read_more {
                self.signal.take() | wake::READABLE
            } else {
                let wait = self.next_deadline(now).saturating_duration_since(now);
                select! {
                    recv(self.wake_rx) -> _ => self.signal.take(),
                    recv(ticker) -> _ => {
                        if !self.close_sent {
                            self.writer.frame(OP_PING, b"");
                        }
                        continue;
                    }
                    default(wait) => {
                        if self.closing.is_none()
                            && self.last_heard.elapsed() >= self.params.idle_timeout
                        {
                            flow = Flow::Close(1000, "idle timeout".into());
                        }
                        continue;
                    }
                }
            };
            if bits & (wake::READABLE | wake::WRITABLE) != 0 {
                // Oneshot: the interest that fired is cleared.
                self.armed = (false, false);
            }
            if bits & wake::CLOSE != 0 {
                if let Some((code, reason, slow)) = self.outbox.take_close() {
                    if slow {
                        self.slow_consumer(session);
                        continue;
                    }
                    flow = Flow::Close(code, reason);
                }
            }
            if self.outbox.queued_bytes() > 0 {
                match self.outbox.drain() {
                    Ok((progress, written)) => {
                        if progress {
                            self.stalled_since = None;
                        }
                        if written == Written::All && self.paused {
                            // The reader may hold frames it read before.
                            self.paused = false;
                            self.read_more = true;
                        }
                    }
                    Err(e) => return self.write_failed(e),
                }
            }
            if (bits & wake::READABLE != 0 || self.read_more) && matches!(flow, Flow::Continue) {
                flow = self.read(session);
            }
        }
    }

    /// The earliest of the idle, stall and closing deadlines.
    fn next_deadline(&self, now: Instant) -> Instant {
        let mut at = self.last_heard + self.params.idle_timeout;
        if let Some(since) = self.stalled_since {
            at = at.min(since + WRITE_TIMEOUT);
        }
        if let Some(deadline) = self.closing {
            at = at.min(deadline);
        }
        at.max(now)
    }

    /// Arms the interest the connection needs now: readable unless the
    /// reader ended or frames wait to be written (then the client is held
    /// back), writable while frames wait.
    fn arm(&mut self, backlog: bool) -> io::Result<()> {
        let readable =
            !self.reader_ended && !self.read_more && (!backlog || self.closing.is_some());
        let want = (readable, backlog);
        if want == self.armed || want == (false, false) {
            return Ok(());
        }
        self.armed = want;
        self.params
            .readiness
            .arm(&*self.socket, self.key, want.0, want.1)
    }

    /// Reads and handles what the client sent, up to a batch, then tells
    /// the handler the batch ended.
    fn read(&mut self, session: &mut dyn Handler) -> Flow {
        let flow = self.read_batch(session);
        session.on_batch_end();
        flow
    }

    fn read_batch(&mut self, session: &mut dyn Handler) -> Flow {
        self.read_more = false;
        if self.reader_ended {
            return Flow::Continue;
        }
        if self.discarding {
            self.discard();
            return Flow::Continue;
        }
        self.hold();
        for _ in 0..BATCH {
            let Some(event) = self.reader.read() else {
                return Flow::Continue;
            };
            self.last_heard = Instant::now();
            let flow = if self.closing.is_some() {
                self.while_closing(event)
            } else {
                self.inbound(event, session)
            };
            if !matches!(flow, Flow::Continue) {
                return flow;
            }
            // Own frames, or others' queued behind the hold, are many:
            // write them now rather than at the end of the batch.
            if self.writer.buf.len() >= FLUSH_AT || self.outbox.queued_bytes() >= FLUSH_AT {
                match self.flush() {
                    Ok(Written::All) => self.hold(),
                    // The client is not reading: stop reading it until the
                    // queue drains.
                    Ok(Written::Queued) => {
                        self.paused = true;
                        return Flow::Continue;
                    }
                    Err(_) => return Flow::End,
                }
            }
        }
        self.read_more = true;
        Flow::Continue
    }

    #[inline(never)]
    fn open(&mut self, session: &mut dyn Handler) -> Flow {
        self.hold();
        let mut close = None;
        session.on_open(&mut Conn {
            writer: &mut self.writer,
            outbox: &self.outbox,
            close: &mut close,
        });
        close.map_or(Flow::Continue, |(c, r)| Flow::Close(c, r))
    }

    #[cold]
    #[inline(never)]
    fn write_failed(&self, e: io::Error) {
        log::debug!("connection {}: write failed: {e}", self.outbox.id());
    }

    #[cold]
    #[inline(never)]
    fn stalled(&self) {
        log::info!(
            "connection {}: nothing written for {} s with {} bytes queued; cut",
            self.outbox.id(),
            WRITE_TIMEOUT.as_secs(),
            self.outbox.queued_bytes()
        );
    }

    /// The queue overflowed: the handler lets go of everything at once
    /// (its rooms see it leave), the backlog is dropped, and a 1008 close
    /// follows whatever frame was partly written; the socket is cut if
    /// that does not go within [`SLOW_CLOSE_WAIT`].
    #[cold]
    #[inline(never)]
    fn slow_consumer(&mut self, session: &mut dyn Handler) {
        let what = session.describe();
        if !self.session_closed {
            self.session_closed = true;
            let _ = catch_unwind(AssertUnwindSafe(|| session.on_close()));
        }
        let queued = self.outbox.discard_backlog();
        log::info!(
            "connection {}{}{what}: slow consumer, {queued} bytes queued unread; closing with 1008",
            self.outbox.id(),
            if what.is_empty() { "" } else { " " },
        );
        self.writer.buf.clear();
        self.writer.frames = 0;
        self.begin_close(1008, "slow consumer", SLOW_CLOSE_WAIT);
    }

    /// Our close frame is out after a broken frame: ends the TLS session
    /// (`close_notify`, which may wait in the gate like any write) and
    /// then sends our FIN, so the client reads the close, then the end.
    #[cold]
    #[inline(never)]
    fn half_close(&mut self) {
        self.outbox.tls_close_notify();
        if self.outbox.queued_bytes() == 0 {
            self.half_closed = true;
            let _ = self.socket.shutdown(Shutdown::Write);
        }
    }

    /// Reads and drops what the socket holds, raw (under TLS the
    /// ciphertext, undecrypted: the session has ended), until it would
    /// block; the client's FIN or a failure ends the reading.
    #[cold]
    #[inline(never)]
    fn discard(&mut self) {
        let mut sink = vec![0u8; 16 * 1024];
        loop {
            match Read::read(&mut &*self.socket, &mut sink) {
                Ok(0) => break self.reader_ended = true,
                Ok(_) => self.last_heard = Instant::now(),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break self.reader_ended = true,
            }
        }
    }

    /// Queues a close frame (once) and starts the closing deadline.
    #[inline(never)]
    fn begin_close(&mut self, code: u16, reason: &str, wait: Duration) {
        if self.closing.is_none() {
            self.closing = Some(Instant::now() + wait);
        }
        self.send_close(code, reason);
    }

    /// Queues a close frame, once; nothing is written after it.
    fn send_close(&mut self, code: u16, reason: &str) {
        self.outbox.refuse_more();
        if self.close_sent {
            return;
        }
        self.close_sent = true;
        self.writer
            .frame(OP_CLOSE, &frame::close_payload(code, reason));
        self.params.metrics.close_sent(code);
    }

    /// What the client sends after our close: data is discarded, its close
    /// or end finishes the handshake.
    fn while_closing(&mut self, event: Inbound) -> Flow {
        match event {
            Inbound::Message(_) => Flow::Continue,
            _ => {
                self.reader_ended = true;
                Flow::Continue
            }
        }
    }

    fn inbound(&mut self, event: Inbound, session: &mut dyn Handler) -> Flow {
        let metrics = &self.params.metrics;
        let mut close = None;
        let mut conn = Conn {
            writer: &mut self.writer,
            outbox: &self.outbox,
            close: &mut close,
        };
        match event {
            Inbound::Message(Message::Text(text)) => {
                metrics.messages_in.fetch_add(1, Relaxed);
                metrics.bytes_in.fetch_add(text.len() as u64, Relaxed);
                session.on_text(&mut conn, text.as_str());
            }
            Inbound::Message(Message::Binary(data)) => {
                metrics.messages_in.fetch_add(1, Relaxed);
                metrics.bytes_in.fetch_add(data.len() as u64, Relaxed);
                session.on_binary(&mut conn, &data);
            }
            Inbound::Message(Message::Ping(data)) => conn.writer.frame(OP_PONG, &data),
            Inbound::Message(_) => {}
            Inbound::Close(frame) => {
                // Answer with the peer's code (tungstenite already replaced
                // an invalid one with 1002); an empty close gets an empty one.
                let payload = match &frame {
                    Some(f) => frame::close_payload(u16::from(f.code), &f.reason),
                    None => Vec::new(),
                };
                let code = frame.as_ref().map_or(1005, |f| u16::from(f.code));
                if !self.close_sent {
                    self.close_sent = true;
                    self.outbox.refuse_more();
                    self.writer.frame(OP_CLOSE, &payload);
                    metrics.close_sent(code);
                }
                return Flow::Answered;
            }
            Inbound::Failed(code, reason) => {
                self.discarding = true;
                log::debug!("connection {}: {reason}", self.outbox.id());
                return Flow::Close(code, reason);
            }
            Inbound::Gone => {
                self.reader_ended = true;
                return Flow::End;
            }
        }
        close.map_or(Flow::Continue, |(c, r)| Flow::Close(c, r))
    }

    /// Holds the gate while callbacks run (see [`Outbox::hold`]).
    fn hold(&mut self) {
        if !self.held {
            self.held = true;
            self.outbox.hold();
        }
    }

    /// Writes this thread's own frames through the gate, releasing it.
    fn flush(&mut self) -> io::Result<Written> {
        if !self.held && self.writer.buf.is_empty() {
            return Ok(Written::All);
        }
        self.held = false;
        self.writer.flush(&self.outbox)
    }
}

/// Buffers the connection's own frames for one write per wake-up.
struct FrameWriter {
    buf: Vec<u8>,
    frames: u64,
    /// The last frame in `buf` is the close frame: nothing may follow it.
    ends_with_close: bool,
    metrics: Arc<Metrics>,
}

impl FrameWriter {
    fn new(metrics: Arc<Metrics>) -> Self {
        FrameWriter {
            buf: Vec::new(),
            frames: 0,
            ends_with_close: false,
            metrics,
        }
    }

    fn frame(&mut self, opcode: u8, payload: &[u8]) {
        frame::encode_into(opcode, payload, &mut self.buf);
        self.frames += 1;
        self.ends_with_close = opcode == OP_CLOSE;
    }

    fn encoded(&mut self, frame: &[u8]) {
        self.buf.extend_from_slice(frame);
        self.frames += 1;
        self.ends_with_close = false;
    }

    #[inline(never)]
    fn flush(&mut self, outbox: &Outbox) -> io::Result<Written> {
        let result = outbox.write_own(&self.buf, self.ends_with_close);
        self.ends_with_close = false;
        self.metrics.messages_out.fetch_add(self.frames, Relaxed);
        self.metrics
            .bytes_out
            .fetch_add(self.buf.len() as u64, Relaxed);
        self.frames = 0;
        self.buf.clear();
        // An idle connection should not keep a burst's buffer.
        if self.buf.capacity() > 64 * 1024 {
            self.buf = Vec::new();
        }
        result
    }
}

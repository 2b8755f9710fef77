//! The connection thread: one per WebSocket, and the only writer on its
//! socket.
//!
//! It `select!`s over three sources: messages from the reader thread, its
//! [`Outbox`] (what rooms, streams and tails send it, and server shutdown's
//! 1001 close, see [`Registry`]) and heartbeat ticks
//! (`crossbeam_channel::tick`, no extra thread), with the idle deadline as
//! the select timeout. Everything ready at a wake-up is handled before one
//! write, so a burst costs one syscall.
//!
//! Closing follows RFC 6455: a close frame is written once and never
//! followed by anything; a peer's close is answered with its own code (or
//! 1002 for an invalid one); then the socket is shut down, which also ends
//! the reader thread, which is joined before the thread returns.

use crate::metrics::Metrics;
use crate::threads::JoinHandle;
use crate::ws::frame::{self, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT};
use crate::ws::handler::Handler;
use crate::ws::outbox::{Outbox, Outgoing};
use crate::ws::reader::{self, Inbound};
use crate::ws::registry::Registry;
use crossbeam_channel::{select, tick, Receiver};
use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tungstenite::Message;

/// How long a write may block on a client that does not read before the
/// connection is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait for the peer's reply to our close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// Stack of the reader thread: tungstenite's parser needs little.
const READER_STACK: usize = 64 * 1024;
/// Inbound messages buffered between reader and connection thread; a full
/// channel stops the reader, which pushes back on the client through TCP.
const INBOUND_CAPACITY: usize = 8;
/// Messages handled per wake-up before writing, so a flood from one side
/// cannot starve the other.
const BATCH: usize = 256;

/// Settings of the engine, from the server's configuration.
#[derive(Debug, Clone)]
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
}

/// Why an upgrade could not be served.
#[derive(Debug)]
pub enum Refused {
    /// The OS refused to start the reader thread; the socket is handed
    /// back (untouched) so the caller can answer 503.
    Thread(io::Error, Option<TcpStream>),
    /// Writing the handshake response failed.
    Io(io::Error),
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

/// Serves one upgraded connection to its end: starts the reader thread,
/// writes `handshake` (the 101 response), then runs the loop on this thread.
/// Fails before writing anything when the OS refuses the reader thread, so
/// the caller can still answer 503.
///
/// Setting up and tearing down are out of line, so that only the loop's
/// own frames lie beneath it: an idle connection thread keeps every stack
/// page it ever touched, and each page is 4 KiB per connection.
#[inline(never)]
pub fn serve(
    id: u64,
    stream: TcpStream,
    leftover: Vec<u8>,
    handshake: Vec<u8>,
    session: Box<dyn Handler>,
    params: &ConnParams,
) -> Result<(), Refused> {
    let (mut engine, reader) = start(id, stream, leftover, handshake, params)?;
    let mut session = session;
    let outcome = catch_unwind(AssertUnwindSafe(|| engine.run(&mut *session)));
    finish(engine, outcome.is_err(), session, reader);
    Ok(())
}

/// Starts the reader thread and writes the handshake.
#[inline(never)]
fn start(
    id: u64,
    stream: TcpStream,
    leftover: Vec<u8>,
    handshake: Vec<u8>,
    params: &ConnParams,
) -> Result<(Engine<'_>, JoinHandle<()>), Refused> {
    let stream = Arc::new(stream);
    let (in_tx, in_rx) = crossbeam_channel::bounded(INBOUND_CAPACITY);
    let read_side = stream.clone();
    let config = reader::config(params.max_message_bytes);
    let reader = crate::threads::spawn(&format!("read-{id}"), READER_STACK, move || {
        reader::run(read_side, leftover, config, in_tx)
    });
    let reader = match reader {
        Ok(handle) => handle,
        // The failed spawn dropped its closure and with it the other Arc.
        Err(e) => return Err(Refused::Thread(e, Arc::try_unwrap(stream).ok())),
    };
    // Shut the socket on every way out, so the reader always ends.
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let written = (&*stream).write_all(&handshake);
    drop(handshake);
    if let Err(e) = written {
        let _ = stream.shutdown(Shutdown::Both);
        let _ = reader.join();
        return Err(Refused::Io(e));
    }
    let (outbox, out_rx) = Outbox::new(id, params.max_queue_bytes, params.metrics.clone());
    params.registry.register(&outbox, &stream);
    let engine = Engine {
        writer: FrameWriter::new(stream, params.metrics.clone()),
        outbox,
        out_rx,
        in_rx,
        params,
        close_sent: false,
    };
    Ok((engine, reader))
}

/// Ends the connection after its loop: a 1011 close if the loop panicked,
/// the session's goodbye, then the socket and the reader thread.
#[inline(never)]
fn finish(
    mut engine: Engine<'_>,
    panicked: bool,
    mut session: Box<dyn Handler>,
    reader: JoinHandle<()>,
) {
    let id = engine.outbox.id();
    if panicked {
        engine.params.metrics.panics.fetch_add(1, Relaxed);
        log::error!("connection {id}: a panic ended this connection");
        let _ = engine.send_close(1011, "internal error");
    }
    // The session is dropped (and leaves its rooms) before the socket goes.
    let _ = catch_unwind(AssertUnwindSafe(|| session.on_close()));
    drop(session);
    engine.outbox.shut();
    engine.params.registry.deregister(id);
    let Engine { writer, in_rx, .. } = engine;
    let _ = writer.stream.shutdown(Shutdown::Both);
    // The reader may be blocked handing us a message on the full inbound
    // channel (a flooding client whose socket then failed): dropping the
    // receiver fails that send, so the reader always ends.
    drop(in_rx);
    if reader.join().is_err() {
        log::error!("connection {id}: the reader thread panicked");
    }
}

/// The connection thread's state.
struct Engine<'p> {
    writer: FrameWriter,
    outbox: Arc<Outbox>,
    out_rx: Receiver<Outgoing>,
    in_rx: Receiver<Inbound>,
    params: &'p ConnParams,
    close_sent: bool,
}

/// How handling one event left the connection.
enum Flow {
    Continue,
    /// Send a close frame with this code and reason, wait for the reply, end.
    Close(u16, String),
    /// The peer is gone, or the handshake is complete: end now.
    End,
}

impl Engine<'_> {
    /// The loop. Its own frame lies beneath every session callback for the
    /// connection's life, so what is rare (opening, closing, logging) is
    /// kept out of line to keep it small (see [`serve`]).
    fn run(&mut self, session: &mut dyn Handler) {
        let mut flow = self.open(session);
        let ticker = tick(self.params.ping_interval);
        let mut last_heard = Instant::now();
        while let Flow::Continue = flow {
            if let Err(e) = self.writer.flush() {
                return self.write_failed(e);
            }
            let idle_left =
                (last_heard + self.params.idle_timeout).saturating_duration_since(Instant::now());
            flow = select! {
                recv(self.in_rx) -> event => {
                    last_heard = Instant::now();
                    let mut flow = self.inbound(event.unwrap_or(Inbound::Gone), session);
                    for _ in 0..BATCH {
                        let Flow::Continue = flow else { break };
                        match self.in_rx.try_recv() {
                            Ok(event) => flow = self.inbound(event, session),
                            Err(_) => break,
                        }
                    }
                    flow
                }
                recv(self.out_rx) -> item => match item {
                    Ok(item) => self.outgoing(item),
                    Err(_) => Flow::End,
                },
                recv(ticker) -> _ => {
                    self.writer.frame(OP_PING, b"");
                    Flow::Continue
                }
                default(idle_left) => {
                    if last_heard.elapsed() >= self.params.idle_timeout {
                        Flow::Close(1000, "idle timeout".into())
                    } else {
                        Flow::Continue
                    }
                }
            };
            // Whatever else is queued goes out in the same write.
            for _ in 0..BATCH {
                let Flow::Continue = flow else { break };
                match self.out_rx.try_recv() {
                    Ok(item) => flow = self.outgoing(item),
                    Err(_) => break,
                }
            }
        }
        self.end(flow);
    }

    #[inline(never)]
    fn open(&mut self, session: &mut dyn Handler) -> Flow {
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

    #[inline(never)]
    fn end(&mut self, flow: Flow) {
        if let Flow::Close(code, reason) = flow {
            if self.send_close(code, &reason).is_ok() {
                self.await_close_reply();
            }
        }
        let _ = self.writer.flush();
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
                    self.writer.frame(OP_CLOSE, &payload);
                    metrics.close_sent(code);
                }
                return Flow::End;
            }
            Inbound::Failed(code, reason) => {
                log::debug!("connection {}: {reason}", self.outbox.id());
                return Flow::Close(code, reason);
            }
            Inbound::Gone => return Flow::End,
        }
        close.map_or(Flow::Continue, |(c, r)| Flow::Close(c, r))
    }

    #[inline(never)]
    fn outgoing(&mut self, item: Outgoing) -> Flow {
        match item {
            Outgoing::Frame(frame) => {
                self.writer.encoded(&frame);
                self.outbox.drained(frame.len());
                Flow::Continue
            }
            Outgoing::Close(code, reason) => Flow::Close(code, reason),
        }
    }

    /// Writes a close frame, once; nothing is written after it.
    fn send_close(&mut self, code: u16, reason: &str) -> io::Result<()> {
        if self.close_sent {
            return Ok(());
        }
        self.close_sent = true;
        self.writer
            .frame(OP_CLOSE, &frame::close_payload(code, reason));
        self.params.metrics.close_sent(code);
        self.writer.flush()
    }

    /// Waits briefly for the peer to answer our close frame, discarding
    /// data that was already in flight.
    fn await_close_reply(&mut self) {
        let deadline = Instant::now() + CLOSE_WAIT;
        while let Ok(event) = self.in_rx.recv_deadline(deadline) {
            match event {
                Inbound::Message(_) => continue,
                _ => return,
            }
        }
    }
}

/// Buffers frames for one write per wake-up.
struct FrameWriter {
    stream: Arc<TcpStream>,
    buf: Vec<u8>,
    frames: u64,
    metrics: Arc<Metrics>,
}

impl FrameWriter {
    fn new(stream: Arc<TcpStream>, metrics: Arc<Metrics>) -> Self {
        FrameWriter {
            stream,
            buf: Vec::new(),
            frames: 0,
            metrics,
        }
    }

    fn frame(&mut self, opcode: u8, payload: &[u8]) {
        frame::encode_into(opcode, payload, &mut self.buf);
        self.frames += 1;
    }

    fn encoded(&mut self, frame: &[u8]) {
        self.buf.extend_from_slice(frame);
        self.frames += 1;
    }

    #[inline(never)]
    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let result = (&*self.stream).write_all(&self.buf);
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

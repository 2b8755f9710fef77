//! The read half of a connection. It runs on its own thread, parses frames
//! with tungstenite and forwards what it reads to the connection thread.
//!
//! tungstenite writes automatic pong and close replies from inside `read()`.
//! Here those writes go to [`ReadHalf`]'s `Write`, which discards them: the
//! connection thread is the socket's only writer, so replies can never be
//! interleaved with a frame it is writing, and it alone decides when the
//! connection is closed. The reader ends when the socket is shut down (the
//! connection thread does that as it finishes), at a close frame, or at an
//! error, and tells the connection thread why.

use crossbeam_channel::Sender;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use tungstenite::error::{Error, ProtocolError};
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tungstenite::{Message, WebSocket};

/// What the reader forwards to the connection thread.
#[derive(Debug)]
pub enum Inbound {
    /// A text, binary, ping or pong message.
    Message(Message),
    /// The peer's close frame. It already carries the code to reply with:
    /// tungstenite turns an invalid code into 1002.
    Close(Option<CloseFrame>),
    /// The peer broke the protocol; close with this code and reason.
    Failed(u16, String),
    /// The socket ended without a close handshake (or was shut down).
    Gone,
}

/// A socket's read side. Writes, which tungstenite makes only for its
/// automatic replies, are discarded: see the module docs.
#[derive(Debug)]
pub struct ReadHalf(pub Arc<TcpStream>);

impl Read for ReadHalf {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl Write for ReadHalf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Bytes read from the socket per `read` call. tungstenite allocates this
/// buffer per connection and zero-fills it before every read, so it is
/// both resident memory and per-read work: small messages need little,
/// and large ones only take more reads.
const READ_BUFFER: usize = 1024;

/// The tungstenite configuration of the read side: a small read buffer
/// (tungstenite's 128 KiB default would dominate memory) and the server's
/// message limit.
pub fn config(max_message_bytes: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(Some(max_message_bytes))
        .max_frame_size(Some(max_message_bytes))
}

/// Reads frames from `stream` until it ends, sending each to `tx`.
/// `leftover` holds bytes read past the HTTP request head.
pub fn run(
    stream: Arc<TcpStream>,
    leftover: Vec<u8>,
    config: WebSocketConfig,
    tx: Sender<Inbound>,
) {
    let mut ws =
        WebSocket::from_partially_read(ReadHalf(stream), leftover, Role::Server, Some(config));
    loop {
        let event = match ws.read() {
            Ok(Message::Close(frame)) => Inbound::Close(frame),
            Ok(Message::Frame(_)) => continue,
            Ok(message) => {
                if tx.send(Inbound::Message(message)).is_err() {
                    return;
                }
                continue;
            }
            Err(error) => classify(error),
        };
        let _ = tx.send(event);
        return;
    }
}

/// Maps a read error to what the connection thread should do.
fn classify(error: Error) -> Inbound {
    match error {
        Error::Utf8(_) => Inbound::Failed(1007, "invalid UTF-8 in text".into()),
        Error::Capacity(e) => Inbound::Failed(1009, format!("message too big: {e}")),
        Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => Inbound::Gone,
        Error::Protocol(e) => Inbound::Failed(1002, format!("protocol error: {e}")),
        Error::ConnectionClosed | Error::AlreadyClosed | Error::Io(_) => Inbound::Gone,
        other => Inbound::Failed(1002, format!("protocol error: {other}")),
    }
}

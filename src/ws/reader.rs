//! The read half of a connection: parses client frames with tungstenite
//! from any non-blocking `Read` and says what they mean for the
//! connection thread. It does no I/O of its own beyond that `Read`, so a
//! fuzz target can drive it with random chunks and `WouldBlock`s at random
//! splits (tungstenite keeps its state across `WouldBlock`).
//!
//! tungstenite writes automatic pong and close replies from inside
//! `read()`. Here those writes go to [`Discard`], which drops them: the
//! connection thread decides every reply and writes it through the
//! connection's write gate, so replies never interleave with other frames.

use std::io::{self, Read, Write};
use tungstenite::error::{Error, ProtocolError};
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tungstenite::{Message, WebSocket};

/// What the reader found for the connection thread.
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

/// A byte source whose writes (tungstenite's automatic replies) are
/// discarded: see the module docs.
#[derive(Debug)]
pub struct Discard<R>(pub R);

impl<R: Read> Read for Discard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R> Write for Discard<R> {
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

/// Parses the client's frames from `R`.
pub struct FrameReader<R> {
    ws: WebSocket<Discard<R>>,
    ended: bool,
}

impl<R: Read> FrameReader<R> {
    /// Reads from `source`, after `leftover` (bytes read past the request
    /// head).
    pub fn new(source: R, leftover: Vec<u8>, config: WebSocketConfig) -> Self {
        FrameReader {
            ws: WebSocket::from_partially_read(
                Discard(source),
                leftover,
                Role::Server,
                Some(config),
            ),
            ended: false,
        }
    }

    /// The next thing the client said, or `None` when the source would
    /// block (call again once it is readable). After a close, a failure or
    /// the end, every call returns [`Inbound::Gone`].
    pub fn read(&mut self) -> Option<Inbound> {
        if self.ended {
            return Some(Inbound::Gone);
        }
        loop {
            let event = match self.ws.read() {
                Ok(Message::Frame(_)) => continue,
                Ok(Message::Close(frame)) => Inbound::Close(frame),
                Ok(message) => return Some(Inbound::Message(message)),
                Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(Error::Io(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => classify(error),
            };
            self.ended = true;
            return Some(event);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out `data` in chunks of the given sizes, with a `WouldBlock`
    /// between every two.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        sizes: Vec<usize>,
        blocked: bool,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.at == self.data.len() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.blocked = !self.blocked;
            if self.blocked {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let size = self.sizes.pop().unwrap_or(1).max(1);
            let n = size.min(buf.len()).min(self.data.len() - self.at);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    fn masked(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0x80 | opcode];
        assert!(payload.len() < 126);
        out.push(0x80 | payload.len() as u8);
        let mask = [1, 2, 3, 4];
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[test]
    fn messages_survive_every_split_and_would_block() {
        let mut data = Vec::new();
        for i in 0..20 {
            data.extend(masked(0x1, format!("message {i}").as_bytes()));
        }
        data.extend(masked(0x8, &1000u16.to_be_bytes()));
        for split in [1, 2, 3, 5, 7, 64] {
            let source = Trickle {
                data: data.clone(),
                at: 0,
                sizes: vec![split; 1000],
                blocked: false,
            };
            let mut reader = FrameReader::new(source, Vec::new(), config(1 << 20));
            let mut texts = Vec::new();
            let mut blocked = 0;
            loop {
                match reader.read() {
                    None => blocked += 1,
                    Some(Inbound::Message(Message::Text(t))) => texts.push(t.to_string()),
                    Some(Inbound::Close(f)) => {
                        assert_eq!(f.map(|f| u16::from(f.code)), Some(1000));
                        break;
                    }
                    Some(other) => panic!("split {split}: {other:?}"),
                }
                assert!(blocked < 100_000, "no progress");
            }
            let want: Vec<String> = (0..20).map(|i| format!("message {i}")).collect();
            assert_eq!(texts, want, "split {split}");
            assert!(matches!(reader.read(), Some(Inbound::Gone)));
        }
    }

    #[test]
    fn leftover_bytes_come_first() {
        let frame = masked(0x1, b"early");
        let source = Trickle {
            data: Vec::new(),
            at: 0,
            sizes: Vec::new(),
            blocked: false,
        };
        let mut reader = FrameReader::new(source, frame, config(1 << 20));
        match reader.read() {
            Some(Inbound::Message(Message::Text(t))) => assert_eq!(t.as_str(), "early"),
            other => panic!("{other:?}"),
        }
        assert!(reader.read().is_none());
    }
}

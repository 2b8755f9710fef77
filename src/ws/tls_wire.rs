//! One connection's TLS session as the write gate drives it: plaintext
//! frames in, ciphertext out to a non-blocking socket, and ciphertext
//! received fed in for the frame reader.
//!
//! The gate ([`crate::ws::outbox`]) owns a [`TlsWire`] behind its lock, so
//! the session is never used from two threads at once. Frames stay
//! plaintext in the gate's queue until they are sent: [`TlsWire::send`]
//! first writes the ciphertext still waiting and only when all of it is
//! out seals the next batch (up to [`SEAL_BATCH`] bytes of frames, handed
//! to rustls as one vectored write, so as few records as fit). The
//! ciphertext waiting is therefore at most one batch, and the queue keeps
//! its meaning for `--max-queue-bytes`.
//!
//! It must not decide what to send or when to close: the gate and the
//! connection thread do.

use rustls::ServerConnection;
use std::io::{self, IoSlice, Read};
use std::net::TcpStream;

/// Plaintext sealed per batch: what a member's queue holds goes out as
/// one write of at most this much (one full TLS record, or a few).
pub const SEAL_BATCH: usize = 16 * 1024;

/// A ciphertext buffer larger than this is freed when it empties, so an
/// idle connection does not keep a burst's buffer.
const KEEP_CIPHER: usize = 4 * 1024;

/// One connection's TLS session and the ciphertext not yet on the socket.
pub struct TlsWire {
    session: Box<ServerConnection>,
    cipher: Vec<u8>,
    cipher_sent: usize,
}

impl std::fmt::Debug for TlsWire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsWire")
            .field("pending", &self.pending())
            .finish_non_exhaustive()
    }
}

impl TlsWire {
    /// Drives `session`, whose handshake the door completed.
    pub fn new(session: Box<ServerConnection>) -> TlsWire {
        TlsWire {
            session,
            cipher: Vec::new(),
            cipher_sent: 0,
        }
    }

    /// Ciphertext sealed and not yet on the socket.
    pub fn pending(&self) -> usize {
        self.cipher.len() - self.cipher_sent
    }

    /// Writes waiting ciphertext, then seals and writes the next batch of
    /// `slices`, without blocking. Returns the plaintext bytes taken (sealed
    /// whether or not their ciphertext is out yet); 0 when the socket would
    /// not take what was waiting.
    pub fn send(&mut self, socket: &TcpStream, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        if !self.flush(socket)? || slices.is_empty() {
            return Ok(0);
        }
        let mut batch: [IoSlice<'_>; 64] = [IoSlice::new(&[]); 64];
        let mut n = 0;
        let mut size = 0;
        for slice in slices {
            if n == batch.len() || size == SEAL_BATCH {
                break;
            }
            let take = slice.len().min(SEAL_BATCH - size);
            batch[n] = IoSlice::new(&slice[..take]);
            n += 1;
            size += take;
        }
        let taken = io::Write::write_vectored(&mut self.session.writer(), &batch[..n])?;
        self.seal()?;
        self.flush(socket)?;
        Ok(taken)
    }

    /// Moves what rustls wants to send (records, alerts, tickets) into the
    /// ciphertext buffer.
    fn seal(&mut self) -> io::Result<()> {
        while self.session.wants_write() {
            self.session.write_tls(&mut self.cipher)?;
        }
        Ok(())
    }

    /// Writes waiting ciphertext until the socket would block; whether all
    /// of it is out.
    pub fn flush(&mut self, socket: &TcpStream) -> io::Result<bool> {
        while self.pending() > 0 {
            let n = super::outbox::send_now(socket, &self.cipher[self.cipher_sent..])?;
            if n == 0 {
                return Ok(false);
            }
            self.cipher_sent += n;
        }
        self.cipher.clear();
        self.cipher_sent = 0;
        if self.cipher.capacity() > KEEP_CIPHER {
            self.cipher = Vec::new();
        }
        Ok(true)
    }

    /// Feeds ciphertext the connection received; returns how much rustls
    /// took (it takes less while plaintext waits to be read). What rustls
    /// answers (a key update, an alert) is sealed and written. A TLS error
    /// (a bad record, the peer's fatal alert) is `InvalidData`.
    pub fn feed(&mut self, socket: &TcpStream, mut cipher: &[u8]) -> io::Result<usize> {
        let before = cipher.len();
        match self.session.read_tls(&mut cipher) {
            Ok(_) => {}
            // The plaintext buffer is full: read it before feeding more.
            Err(e) if e.kind() == io::ErrorKind::Other => return Ok(0),
            Err(e) => return Err(e),
        }
        let processed = self.session.process_new_packets();
        // An alert to the peer goes out even when the session failed.
        self.seal()?;
        self.flush(socket)?;
        processed.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Ok(before - cipher.len())
    }

    /// Reads decrypted plaintext: `WouldBlock` when none waits, 0 after the
    /// peer's `close_notify` (or a TCP end without it).
    pub fn read_plain(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.session.reader().read(buf) {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
            other => other,
        }
    }

    /// Seals a `close_notify` behind everything sealed so far and tries to
    /// write it, without blocking.
    pub fn close_notify(&mut self, socket: &TcpStream) {
        self.session.send_close_notify();
        if self.seal().is_ok() {
            let _ = self.flush(socket);
        }
    }
}

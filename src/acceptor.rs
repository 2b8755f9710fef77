//! The accept that shutdown can interrupt without taking a client.
//!
//! It waits until the listening socket has a client or shutdown rings its
//! wake-up, and once woken it accepts nothing more: every client still in
//! the queue stays there. Under socket activation that queue belongs to the
//! service manager and outlives this process, so the next strand serves
//! those clients; waking a blocked `accept` by connecting to ourselves would
//! instead take one of them and drop it.
//!
//! It owns the listening socket and its wake-up only; what becomes of an
//! accepted client is the accept loop's business.

use rustix::event::{poll, PollFd, PollFlags};
use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A listening socket whose accept returns `None` once woken.
pub struct Acceptor {
    listener: TcpListener,
    wake: UnixStream,
    woken: Arc<AtomicBool>,
}

/// Rings an [`Acceptor`]'s wake-up, from any thread.
#[derive(Clone)]
pub struct AcceptWaker(Arc<UnixStream>, Arc<AtomicBool>);

impl Acceptor {
    /// Takes over `listener` (made non-blocking: a client that went away
    /// between the wake-up and `accept` must not block the loop).
    pub fn new(listener: TcpListener) -> io::Result<(Acceptor, AcceptWaker)> {
        listener.set_nonblocking(true)?;
        let (ring, wake) = UnixStream::pair()?;
        ring.set_nonblocking(true)?;
        let woken = Arc::new(AtomicBool::new(false));
        Ok((
            Acceptor {
                listener,
                wake,
                woken: woken.clone(),
            },
            AcceptWaker(Arc::new(ring), woken),
        ))
    }

    /// The listening socket.
    pub fn listener(&self) -> &TcpListener {
        &self.listener
    }

    /// Waits for the next client and accepts it; `None` once woken, even
    /// if clients are waiting. Accepted streams are blocking.
    pub fn accept(&self) -> Option<io::Result<TcpStream>> {
        loop {
            // Under load a client is usually waiting: accept it before
            // polling, a syscall less per client. The flag is what stops
            // this once woken; the poll only sleeps.
            if self.woken.load(Ordering::SeqCst) {
                return None;
            }
            match self.listener.accept() {
                Ok((stream, _)) => return Some(Ok(stream)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Some(Err(e)),
            }
            let mut fds = [
                PollFd::new(&self.listener, PollFlags::IN),
                PollFd::new(&self.wake, PollFlags::IN),
            ];
            match poll(&mut fds, None) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Some(Err(e.into())),
            }
        }
    }
}

impl AcceptWaker {
    /// Makes the [`Acceptor`]'s current and every later `accept` return `None`.
    pub fn wake(&self) {
        // One byte in an empty socket pair: it cannot block, and it stays
        // unread, so the wake-up is never lost.
        self.1.store(true, Ordering::SeqCst);
        let _ = (&*self.0).write(&[1]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::time::Duration;

    #[test]
    fn a_woken_acceptor_leaves_waiting_clients_in_the_queue() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let queue = listener.try_clone().unwrap();
        let (acceptor, waker) = Acceptor::new(listener).unwrap();
        let _client = TcpStream::connect(addr).unwrap();
        waker.wake();
        assert!(acceptor.accept().is_none());
        assert!(acceptor.accept().is_none(), "a wake-up lasts");
        // The client is still queued for whoever accepts next.
        queue.set_nonblocking(false).unwrap();
        assert!(queue.accept().is_ok());
    }

    #[test]
    fn accepted_streams_block() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (acceptor, _waker) = Acceptor::new(listener).unwrap();
        let _client = TcpStream::connect(addr).unwrap();
        let stream = acceptor.accept().unwrap().unwrap();
        // A non-blocking stream would fail at once instead of waiting out
        // the timeout.
        let timeout = Duration::from_millis(50);
        stream.set_read_timeout(Some(timeout)).unwrap();
        let started = std::time::Instant::now();
        assert!((&stream).read(&mut [0u8; 1]).is_err());
        assert!(started.elapsed() >= timeout / 2, "{:?}", started.elapsed());
    }
}

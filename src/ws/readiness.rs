//! The readiness thread: one thread, shared by every socket, that waits
//! for sockets to become readable or writable (the `polling` crate: epoll
//! on Linux, oneshot interest) and tells each socket's owner.
//!
//! An owner registers a socket with a [`Ready`] target and the interest it
//! wants; when the socket is ready the thread calls the target once, and
//! the interest is cleared until the owner re-arms it with
//! [`Readiness::arm`]. A connection's target only sets a flag and wakes the
//! connection thread; the request-head door's target reads the head right
//! there. Targets must never block: one slow target delays every socket.
//!
//! One [`Timer`] may ask to be woken at a deadline (the door's head
//! deadlines); nothing else here keeps time.
//!
//! Keys are never reused, so an event that was already fetched for a socket
//! deregistered since cannot reach another socket's owner.
#![allow(unsafe_code)]

use polling::{Event, Events, Poller};
use std::collections::HashMap;
use std::io;
use std::num::NonZeroUsize;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Instant;

/// What the readiness thread calls when a registered socket is ready.
pub trait Ready: Send + Sync {
    /// `readable`/`writable` say which interest fired (an error or a hang-up
    /// fires both). Runs on the readiness thread: must not block.
    fn ready(&self, readable: bool, writable: bool);
}

/// One deadline-keeping user of the readiness thread.
pub trait Timer: Send + Sync {
    /// The earliest deadline it has, if any.
    fn next_deadline(&self) -> Option<Instant>;
    /// Called on the readiness thread once `now` has passed a deadline.
    fn fire(&self, now: Instant);
}

/// A registration: the key its events carry.
pub type Key = usize;

/// The shared readiness thread and its registrations.
pub struct Readiness {
    poller: Poller,
    targets: RwLock<HashMap<Key, Arc<dyn Ready>>>,
    next_key: AtomicUsize,
    timer: Mutex<Option<Arc<dyn Timer>>>,
    stopping: AtomicBool,
    /// The thread sleeps without a deadline (see `wake_if_no_deadline`).
    no_deadline: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Events fetched per wait.
const EVENTS: usize = 1024;

impl Readiness {
    /// Creates the poller and starts the thread.
    pub fn start() -> io::Result<Arc<Readiness>> {
        let readiness = Arc::new(Readiness {
            poller: Poller::new()?,
            targets: RwLock::new(HashMap::new()),
            next_key: AtomicUsize::new(1),
            timer: Mutex::new(None),
            stopping: AtomicBool::new(false),
            no_deadline: AtomicBool::new(false),
            thread: Mutex::new(None),
        });
        let theirs = readiness.clone();
        let thread = std::thread::Builder::new()
            .name("readiness".into())
            .stack_size(128 * 1024)
            .spawn(move || theirs.run())?;
        *readiness.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(thread);
        Ok(readiness)
    }

    /// Registers `socket` (non-blocking) with `target`, armed for the given
    /// interest. The caller must [`Readiness::deregister`] it before the
    /// socket is closed.
    pub fn register(
        &self,
        socket: &impl AsFd,
        target: Arc<dyn Ready>,
        readable: bool,
        writable: bool,
    ) -> io::Result<Key> {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        self.write_targets().insert(key, target);
        let fd = socket.as_fd();
        // SAFETY: every owner deregisters (deletes) the socket before it
        // closes it: `Registered`'s drop and the door's hand-off do.
        let added = unsafe { self.poller.add(&fd, interest(key, readable, writable)) };
        if let Err(e) = added {
            self.write_targets().remove(&key);
            return Err(e);
        }
        Ok(key)
    }

    /// Re-arms `key` for the given interest (oneshot: until it next fires).
    pub fn arm(
        &self,
        socket: &impl AsFd,
        key: Key,
        readable: bool,
        writable: bool,
    ) -> io::Result<()> {
        self.poller
            .modify(socket, interest(key, readable, writable))
    }

    /// Hands registration `key` to a new target (the socket stays in the
    /// poller, disarmed until [`Readiness::arm`]): a connection whose head
    /// the door read keeps its registration.
    pub fn retarget(&self, key: Key, target: Arc<dyn Ready>) {
        self.write_targets().insert(key, target);
    }

    /// Removes `socket`: its target is never called again.
    pub fn deregister(&self, socket: &impl AsFd, key: Key) {
        let _ = self.poller.delete(socket);
        self.write_targets().remove(&key);
    }

    /// Sets the one timer, replacing any earlier one.
    pub fn set_timer(&self, timer: Arc<dyn Timer>) {
        *self.timer.lock().unwrap_or_else(|e| e.into_inner()) = Some(timer);
        self.wake();
    }

    /// Makes the thread look at the timer's deadline again (after the timer
    /// got an earlier one).
    pub fn wake(&self) {
        let _ = self.poller.notify();
    }

    /// As [`Readiness::wake`], but only when the thread sleeps with no
    /// deadline at all (it looks at the timer at every wake-up anyway).
    pub fn wake_if_no_deadline(&self) {
        if self.no_deadline.load(Ordering::SeqCst) {
            self.wake();
        }
    }

    /// Sockets registered now.
    pub fn registered(&self) -> usize {
        self.targets.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Stops the thread and waits for it.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.wake();
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            if thread.join().is_err() {
                log::error!("the readiness thread panicked");
            }
        }
    }

    fn write_targets(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Key, Arc<dyn Ready>>> {
        self.targets.write().unwrap_or_else(|e| e.into_inner())
    }

    fn run(&self) {
        let mut events = Events::with_capacity(NonZeroUsize::new(EVENTS).expect("non-zero"));
        let mut fired: Vec<(Arc<dyn Ready>, bool, bool)> = Vec::with_capacity(EVENTS);
        while !self.stopping.load(Ordering::SeqCst) {
            let timer = self.timer.lock().unwrap_or_else(|e| e.into_inner()).clone();
            self.no_deadline.store(true, Ordering::SeqCst);
            let deadline = timer.as_ref().and_then(|t| t.next_deadline());
            if deadline.is_some() {
                self.no_deadline.store(false, Ordering::SeqCst);
            }
            events.clear();
            let waited = match deadline {
                Some(at) => self.poller.wait_deadline(&mut events, at),
                None => self.poller.wait(&mut events, None),
            };
            self.no_deadline.store(false, Ordering::SeqCst);
            if let Err(e) = waited {
                log::error!("readiness wait failed: {e}");
                std::thread::sleep(std::time::Duration::from_millis(10));
                continue;
            }
            {
                // Targets are looked up under the lock and called after it,
                // so that a target may register or deregister sockets.
                let targets = self.targets.read().unwrap_or_else(|e| e.into_inner());
                for event in events.iter() {
                    if let Some(target) = targets.get(&event.key) {
                        fired.push((target.clone(), event.readable, event.writable));
                    }
                }
            }
            for (target, readable, writable) in fired.drain(..) {
                let called = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    target.ready(readable, writable)
                }));
                if called.is_err() {
                    log::error!("a readiness target panicked");
                }
            }
            if let Some(timer) = timer {
                let now = Instant::now();
                if timer.next_deadline().is_some_and(|at| at <= now) {
                    timer.fire(now);
                }
            }
        }
    }
}

fn interest(key: Key, readable: bool, writable: bool) -> Event {
    match (readable, writable) {
        (true, true) => Event::all(key),
        (true, false) => Event::readable(key),
        (false, true) => Event::writable(key),
        (false, false) => Event::none(key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    struct Flag(crossbeam_channel::Sender<(bool, bool)>);
    impl Ready for Flag {
        fn ready(&self, r: bool, w: bool) {
            let _ = self.0.send((r, w));
        }
    }

    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        b.set_nonblocking(true).unwrap();
        (a, b)
    }

    #[test]
    fn fires_once_per_arming() {
        let readiness = Readiness::start().unwrap();
        let (mut client, server) = pair();
        let (tx, rx) = crossbeam_channel::unbounded();
        let key = readiness
            .register(&server, Arc::new(Flag(tx)), true, false)
            .unwrap();
        client.write_all(b"x").unwrap();
        assert_eq!(rx.recv().unwrap(), (true, false));
        client.write_all(b"y").unwrap();
        let quiet = rx.recv_timeout(std::time::Duration::from_millis(100));
        assert!(quiet.is_err(), "oneshot: nothing until re-armed");
        readiness.arm(&server, key, true, true).unwrap();
        assert_eq!(rx.recv().unwrap(), (true, true));
        readiness.deregister(&server, key);
        assert_eq!(readiness.registered(), 0);
        readiness.stop();
    }

    struct Once(Mutex<Option<Instant>>, crossbeam_channel::Sender<()>);
    impl Timer for Once {
        fn next_deadline(&self) -> Option<Instant> {
            *self.0.lock().unwrap()
        }
        fn fire(&self, _: Instant) {
            self.0.lock().unwrap().take();
            let _ = self.1.send(());
        }
    }

    #[test]
    fn the_timer_fires_at_its_deadline() {
        let readiness = Readiness::start().unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        let at = Instant::now() + std::time::Duration::from_millis(30);
        readiness.set_timer(Arc::new(Once(Mutex::new(Some(at)), tx)));
        rx.recv().unwrap();
        assert!(Instant::now() >= at);
        readiness.stop();
    }
}

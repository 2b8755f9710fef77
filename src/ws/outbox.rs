//! The outbound queue of one connection: how every thread other than the
//! connection's own (rooms, broadcasts, streams, tails) sends to it.
//!
//! The queue is bounded in bytes, not messages. A sender never waits on the
//! client: [`Outbox::send`] either queues the already-encoded frame or, when
//! the client holds more than the limit unread, drops it and asks the
//! connection to close with 1008 `slow consumer`, so one stalled client can
//! slow no one else down and its memory is released. Producers that may
//! wait (a stream replaying its spool) use [`Outbox::send_wait`] instead,
//! which waits for room rather than overflowing.

use crate::metrics::Metrics;
use crossbeam_channel::{Receiver, Sender};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::Thread;
use std::time::Duration;

/// What the connection thread receives from its outbox.
#[derive(Debug)]
pub enum Outgoing {
    /// An encoded frame (see [`crate::ws::frame`]), shared between recipients.
    Frame(Arc<[u8]>),
    /// Close the connection with this code and reason.
    Close(u16, String),
}

/// The sending side of one connection's outbound queue.
#[derive(Debug)]
pub struct Outbox {
    id: u64,
    tx: Sender<Outgoing>,
    queued: AtomicUsize,
    limit: usize,
    closing: AtomicBool,
    has_waiters: AtomicBool,
    waiters: Mutex<Vec<Thread>>,
    metrics: Arc<Metrics>,
}

impl Outbox {
    /// A queue of at most `limit` bytes for connection `id`, and the receiver
    /// the connection thread selects on.
    pub fn new(id: u64, limit: usize, metrics: Arc<Metrics>) -> (Arc<Outbox>, Receiver<Outgoing>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let outbox = Outbox {
            id,
            tx,
            queued: AtomicUsize::new(0),
            limit,
            closing: AtomicBool::new(false),
            has_waiters: AtomicBool::new(false),
            waiters: Mutex::new(Vec::new()),
            metrics,
        };
        (Arc::new(outbox), rx)
    }

    /// The connection's server-wide id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Queues `frame` without waiting. Returns false when it was dropped: the
    /// connection is closing, or this frame would take the queue over its
    /// limit, in which case the connection is closed as a slow consumer.
    pub fn send(&self, frame: Arc<[u8]>) -> bool {
        if self.closing.load(Ordering::Relaxed) {
            return false;
        }
        let n = frame.len();
        let before = self.queued.fetch_add(n, Ordering::AcqRel);
        if before > 0 && before + n > self.limit {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            self.metrics
                .dropped_messages
                .fetch_add(1, Ordering::Relaxed);
            if !self.closing.swap(true, Ordering::AcqRel) {
                self.metrics
                    .slow_consumer_closes
                    .fetch_add(1, Ordering::Relaxed);
                let _ = self.tx.send(Outgoing::Close(1008, "slow consumer".into()));
            }
            return false;
        }
        if self.tx.send(Outgoing::Frame(frame)).is_err() {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Encodes `text` as one text frame and queues it with [`Outbox::send`].
    pub fn send_text(&self, text: &str) -> bool {
        self.send(crate::ws::frame::text(text).into())
    }

    /// Queues `frame` once the queue holds at most half its limit, waiting
    /// for the client to read as long as needed. Returns false, without
    /// queueing, when the connection closes or `stop` becomes true first.
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

    /// Asks the connection to close with `code` and `reason`; later sends are
    /// dropped.
    pub fn close(&self, code: u16, reason: &str) {
        if !self.closing.swap(true, Ordering::AcqRel) {
            let _ = self.tx.send(Outgoing::Close(code, reason.to_string()));
        }
    }

    /// Whether the connection still accepts frames.
    pub fn is_open(&self) -> bool {
        !self.closing.load(Ordering::Relaxed)
    }

    /// Bytes queued and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Called by the connection thread after writing `bytes` taken from the
    /// queue; wakes producers waiting in [`Outbox::send_wait`].
    pub(crate) fn drained(&self, bytes: usize) {
        self.queued.fetch_sub(bytes, Ordering::AcqRel);
        if self.has_waiters.swap(false, Ordering::AcqRel) {
            let waiters =
                std::mem::take(&mut *self.waiters.lock().unwrap_or_else(|e| e.into_inner()));
            for t in waiters {
                t.unpark();
            }
        }
    }

    /// Marks the connection as ended: later sends are dropped and waiting
    /// producers return.
    pub(crate) fn shut(&self) {
        self.closing.store(true, Ordering::Release);
        self.drained(0);
        let waiters = std::mem::take(&mut *self.waiters.lock().unwrap_or_else(|e| e.into_inner()));
        for t in waiters {
            t.unpark();
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
}

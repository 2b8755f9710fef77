//! The thread that flushes rooms' batches (see [`crate::hub::notices`]):
//! notices a short [`DELAY`] after the first, and the messages of a busy
//! large room at the end of its window (see [`crate::hub::room`]).
//!
//! A room schedules itself, with its deadline, when its batch goes from
//! empty to non-empty. One thread keeps the deadlines in a heap and sleeps
//! to the earliest.

use crossbeam_channel::{select, Receiver, Sender};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Something with a batch to flush: a room of either broker.
pub trait Flush: Send + Sync + std::fmt::Debug {
    /// Queues the waiting batch to its members.
    fn flush(&self);
}

/// A scheduled flush's target and deadline.
pub type Scheduled = (Arc<dyn Flush>, Instant);

/// How long a join or leave notice waits to be coalesced with others, at
/// least (a room whose flushes take long waits longer: see
/// [`crate::hub::audience::notice_delay`]).
pub const DELAY: Duration = Duration::from_millis(2);

/// Where rooms schedule their flushes.
#[derive(Debug, Clone)]
pub struct Flusher {
    tx: Option<Sender<Scheduled>>,
}

/// The running flusher thread; [`FlusherThread::stop`] ends it.
#[derive(Debug)]
pub struct FlusherThread {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    /// No thread: every notice is flushed at once (for tests, and when the
    /// thread cannot be started).
    pub fn immediate() -> Flusher {
        Flusher { tx: None }
    }

    /// Schedules onto `tx`, for tests that flush by hand.
    pub fn with_queue(tx: Sender<Scheduled>) -> Flusher {
        Flusher { tx: Some(tx) }
    }

    /// Starts the flusher thread.
    pub fn start() -> (Flusher, FlusherThread) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let (stop_tx, stop_rx) = crossbeam_channel::bounded(0);
        let spawned = std::thread::Builder::new()
            .name("room-flush".into())
            .stack_size(128 * 1024)
            .spawn(move || run(rx, stop_rx));
        match spawned {
            Ok(thread) => (
                Flusher { tx: Some(tx) },
                FlusherThread {
                    stop: Some(stop_tx),
                    thread: Some(thread),
                },
            ),
            Err(e) => {
                log::error!("cannot start the room flusher thread: {e}; notices go out one by one");
                (
                    Flusher::immediate(),
                    FlusherThread {
                        stop: None,
                        thread: None,
                    },
                )
            }
        }
    }

    /// A callback scheduling `room`'s flush, for an audience that batches
    /// (see [`crate::hub::audience`]).
    pub fn scheduler<'a, R: Flush + 'static>(
        &'a self,
        room: &'a Arc<R>,
    ) -> impl FnOnce(Instant) -> bool + 'a {
        move |due| self.schedule(room.clone(), due)
    }

    /// Schedules a flush of `room` at `due`; false when the caller must
    /// flush now.
    pub fn schedule(&self, room: Arc<dyn Flush>, due: Instant) -> bool {
        match &self.tx {
            Some(tx) => tx.send((room, due)).is_ok(),
            None => false,
        }
    }
}

impl FlusherThread {
    /// Ends the thread and waits for it.
    pub fn stop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                log::error!("the room flusher thread panicked");
            }
        }
    }
}

/// A scheduled flush; ordered by deadline, then by arrival.
struct Due {
    at: Instant,
    order: u64,
    room: Arc<dyn Flush>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

fn run(rx: Receiver<Scheduled>, stop: Receiver<()>) {
    let mut pending: BinaryHeap<Reverse<Due>> = BinaryHeap::new();
    let mut order = 0u64;
    loop {
        let now = Instant::now();
        while pending.peek().is_some_and(|Reverse(d)| d.at <= now) {
            if let Some(Reverse(due)) = pending.pop() {
                due.room.flush();
            }
        }
        let wait = pending
            .peek()
            .map(|Reverse(d)| d.at.saturating_duration_since(now));
        let scheduled = select! {
            recv(rx) -> item => item,
            recv(stop) -> _ => return,
            default(wait.unwrap_or(Duration::from_secs(3600))) => continue,
        };
        let Ok((room, at)) = scheduled else { return };
        order += 1;
        pending.push(Reverse(Due { at, order, room }));
    }
}

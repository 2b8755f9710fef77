//! The thread that flushes rooms' notice batches (see
//! [`crate::hub::notices`]) a short [`DELAY`] after their first notice.
//!
//! A room schedules itself when its batch goes from empty to non-empty;
//! since every deadline is "now + DELAY", the queue is in deadline order
//! and one thread sleeping to the head's deadline serves every room.

use crate::hub::room::Room;
use crossbeam_channel::{select, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a join or leave notice may wait to be coalesced with others.
pub const DELAY: Duration = Duration::from_millis(2);

/// Where rooms schedule their flushes.
#[derive(Debug, Clone)]
pub struct Flusher {
    tx: Option<Sender<(Arc<Room>, Instant)>>,
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
    pub fn with_queue(tx: Sender<(Arc<Room>, Instant)>) -> Flusher {
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

    /// Schedules a flush of `room`; false when the caller must flush now.
    pub fn schedule(&self, room: &Arc<Room>) -> bool {
        match &self.tx {
            Some(tx) => tx.send((room.clone(), Instant::now() + DELAY)).is_ok(),
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

fn run(rx: Receiver<(Arc<Room>, Instant)>, stop: Receiver<()>) {
    loop {
        select! {
            recv(rx) -> item => {
                let Ok((room, due)) = item else { return };
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    // Stop is noticed within DELAY at most.
                    std::thread::sleep(wait);
                }
                room.flush();
            }
            recv(stop) -> _ => return,
        }
    }
}

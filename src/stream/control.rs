//! What a stream's threads share with the connection that owns them: one
//! stop flag, the count of `data` sent, and how the stream ended when it
//! ended by itself. Plain atomics and one rarely taken mutex.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// Why a stream ended without a `stop`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    /// Machine-readable: `producer_exited` or `spool_error`.
    pub reason: &'static str,
    /// For people.
    pub message: String,
}

/// State shared by a stream's writer, reader and owner.
#[derive(Debug, Default)]
pub struct Control {
    /// Set by `stop` or disconnect; every thread of the stream checks it.
    pub stop: AtomicBool,
    /// `data` messages sent by this stream (the `lines` of `stopped`).
    pub lines: AtomicU64,
    ending: Mutex<Option<Ending>>,
    reported: AtomicBool,
}

impl Control {
    /// Whether the stream was asked to stop.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Records that the writer has nothing more to write, and why.
    pub fn end(&self, reason: &'static str, message: String) {
        let mut ending = self.ending.lock().unwrap_or_else(|e| e.into_inner());
        ending.get_or_insert(Ending { reason, message });
    }

    /// How the writer ended, if it ended by itself.
    pub fn ending(&self) -> Option<Ending> {
        self.ending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Claims the right to send this stream's one `stopped` message: true
    /// for the first caller only (the reader at a producer's exit, or the
    /// owner at `stop`).
    pub fn claim_report(&self) -> bool {
        !self.reported.swap(true, Ordering::AcqRel)
    }

    /// Whether `stopped` has been sent.
    pub fn reported(&self) -> bool {
        self.reported.load(Ordering::Acquire)
    }
}

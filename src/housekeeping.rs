//! The one helper thread that ticks once a second, at the turn of each
//! Unix second, for the server's periodic chores: the operator view's
//! series sample ([`crate::activity::series`]) every tick, and handing
//! freed heap back ([`crate::memory::TrimCheck`]) every tenth. What it
//! runs is a closure the server builds; it must not block for long (the
//! chores are a few atomic loads, a short lock, a rare `malloc_trim`).
//!
//! One thread for every chore, not one per chore, and none per request or
//! connection: nothing here costs more when more clients connect or more
//! operators look.

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The running thread; [`Housekeeping::stop`] (or dropping it) ends it.
#[derive(Debug)]
pub struct Housekeeping {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Housekeeping {
    /// Calls `chores(unix_seconds)` at every turn of a second until
    /// stopped. `None` when the OS refuses the thread: the chores are then
    /// not done (the series stays empty, memory is kept), as logged.
    pub fn start(chores: impl FnMut(u64) + Send + 'static) -> Option<Housekeeping> {
        let (stop, stopped) = crossbeam_channel::bounded(0);
        let spawned = std::thread::Builder::new()
            .name("housekeeping".into())
            .stack_size(64 * 1024)
            .spawn(move || run(chores, &stopped));
        match spawned {
            Ok(thread) => Some(Housekeeping {
                stop: Some(stop),
                thread: Some(thread),
            }),
            Err(e) => {
                log::warn!(
                    "no housekeeping thread (the OS refused it: {e}): no trimming, no series"
                );
                None
            }
        }
    }

    /// Ends the thread and waits for it.
    pub fn stop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Housekeeping {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(mut chores: impl FnMut(u64), stopped: &Receiver<()>) {
    loop {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let to_next =
            Duration::from_secs(1) - Duration::from_nanos(since_epoch.subsec_nanos().into());
        match stopped.recv_timeout(to_next) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        chores(now.as_secs());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn ticks_at_each_second_and_stops_at_once() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut h = Housekeeping::start(move |t| {
            let _ = tx.send(t);
        })
        .unwrap();
        let first = rx.recv_timeout(Duration::from_secs(3)).unwrap();
        let second = rx.recv_timeout(Duration::from_secs(3)).unwrap();
        assert_eq!(second, first + 1);
        let started = Instant::now();
        h.stop();
        assert!(started.elapsed() < Duration::from_millis(500));
    }
}

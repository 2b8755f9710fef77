//! The `system_notification` thread: every `--notify-interval`, one
//! notification to every hub client of this instance, through the broker.

use crate::broker::Broker;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The running notification thread; [`Notifier::stop`] ends it.
pub struct Notifier {
    stop: Sender<()>,
    thread: JoinHandle<()>,
}

impl Notifier {
    /// Starts notifying through `broker` every `every`; `None` (logged)
    /// when the OS refuses the thread.
    pub fn start(broker: Arc<dyn Broker>, every: Duration) -> Option<Notifier> {
        let (stop, stopped): (Sender<()>, Receiver<()>) = crossbeam_channel::bounded(0);
        let spawned = std::thread::Builder::new()
            .name("notify".into())
            .stack_size(128 * 1024)
            .spawn(move || loop {
                match stopped.recv_timeout(every) {
                    Err(RecvTimeoutError::Timeout) => {
                        let n = broker.clients();
                        broker.notify(&format!("strand is up; {n} hub client(s) connected"));
                    }
                    // The sender was dropped: the server is shutting down.
                    _ => return,
                }
            });
        match spawned {
            Ok(thread) => Some(Notifier { stop, thread }),
            Err(e) => {
                log::error!("cannot start the notification thread: {e}; notifications are off");
                None
            }
        }
    }

    /// Ends the thread and waits for it.
    pub fn stop(self) {
        drop(self.stop);
        if self.thread.join().is_err() {
            log::error!("the notification thread panicked");
        }
    }
}

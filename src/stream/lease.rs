//! One stream per client spool at a time, server-wide. A client that
//! reconnects replaces its old connection, whose stream may still be
//! stopping for a moment; the new `start` waits for that rather than have
//! two writers append to one spool.

use crossbeam_channel::Sender;
use std::collections::HashSet;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The spools in use.
#[derive(Debug, Default)]
pub struct Leases {
    held: Mutex<HashSet<String>>,
    freed: Condvar,
    /// Told (without waiting) whenever a stream lets go of a spool: the
    /// janitor, which may now delete it.
    on_free: Mutex<Option<Sender<()>>>,
}

/// Holds a client's spool until dropped.
#[derive(Debug)]
pub struct Lease {
    leases: Arc<Leases>,
    client_id: String,
    /// Whether dropping it tells `on_free` (not for the janitor's own).
    notify: bool,
}

impl Leases {
    /// The `strand_streams_running` gauge, as Prometheus text.
    pub fn metrics_text(&self) -> String {
        let running = self.held.lock().unwrap_or_else(|e| e.into_inner()).len();
        format!(
            "# HELP strand_streams_running Per-client streams running now.\n\
             # TYPE strand_streams_running gauge\nstrand_streams_running {running}\n"
        )
    }

    /// Takes `client_id`'s spool, waiting up to `wait` for a previous
    /// holder to let go; `None` if it does not.
    pub(super) fn take(self: &Arc<Self>, client_id: &str, wait: Duration) -> Option<Lease> {
        let deadline = Instant::now() + wait;
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        while held.contains(client_id) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            held = self
                .freed
                .wait_timeout(held, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        held.insert(client_id.to_string());
        Some(Lease {
            leases: self.clone(),
            client_id: client_id.to_string(),
            notify: true,
        })
    }

    /// Takes `client_id`'s spool if it is free, without waiting; dropping
    /// this lease tells no one (the janitor's, while it deletes).
    pub(super) fn take_quietly(self: &Arc<Self>, client_id: &str) -> Option<Lease> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if !held.insert(client_id.to_string()) {
            return None;
        }
        Some(Lease {
            leases: self.clone(),
            client_id: client_id.to_string(),
            notify: false,
        })
    }

    /// Whether a stream holds `client_id`'s spool now.
    pub(super) fn is_held(&self, client_id: &str) -> bool {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.contains(client_id)
    }

    /// Whom to tell when a stream lets go of a spool.
    pub(super) fn notify_on_free(&self, tell: Sender<()>) {
        *self.on_free.lock().unwrap_or_else(|e| e.into_inner()) = Some(tell);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut held = self.leases.held.lock().unwrap_or_else(|e| e.into_inner());
        held.remove(&self.client_id);
        self.leases.freed.notify_all();
        drop(held);
        if self.notify {
            let on_free = self
                .leases
                .on_free
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(tell) = on_free.as_ref() {
                let _ = tell.try_send(());
            }
        }
    }
}

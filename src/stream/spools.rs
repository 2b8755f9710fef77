//! The data directory's spools, server-wide: where they live, how large
//! one may grow, the producers a client may start, and which clients'
//! spools have a stream running (one at a time, see [`Leases`]). Every
//! connection's [`super::Streams`] shares one.

use super::lease::{Lease, Leases};
use super::producer::ProducerSpec;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The spools of every client, and what a stream may run.
#[derive(Debug)]
pub struct Spools {
    /// The data directory.
    pub dir: PathBuf,
    /// Size at which a client's spool rotates.
    pub max_bytes: u64,
    /// Commands clients may start by name.
    pub producers: Vec<ProducerSpec>,
    leases: Arc<Leases>,
}

impl Spools {
    /// Spools in `dir` that rotate at `max_bytes`, and the `producers`.
    pub fn new(dir: PathBuf, max_bytes: u64, producers: Vec<ProducerSpec>) -> Spools {
        Spools {
            dir,
            max_bytes,
            producers,
            leases: Arc::default(),
        }
    }

    /// Takes `client_id`'s spool, waiting up to `wait` for a previous
    /// stream of the same client to let go; `None` if it does not.
    pub fn lease(&self, client_id: &str, wait: Duration) -> Option<Lease> {
        self.leases.take(client_id, wait)
    }

    /// The streams' Prometheus families.
    pub fn metrics_text(&self) -> String {
        self.leases.metrics_text()
    }
}

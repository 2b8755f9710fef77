//! The data directory's spools, server-wide: where they live, how large
//! one may grow, the producers a client may start, which clients' spools
//! have a stream running (one at a time, see [`Leases`]), and the janitor
//! that keeps the directory within its bounds. Every connection's
//! [`super::Streams`] shares one.

use super::janitor::{DiskLimits, DiskStats, Janitor};
use super::lease::{Lease, Leases};
use super::producer::ProducerSpec;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
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
    disk: Arc<DiskStats>,
    janitor: Mutex<Option<Janitor>>,
}

impl Spools {
    /// Spools in `dir` that rotate at `max_bytes`, and the `producers`;
    /// a janitor thread keeps `dir` within `limits`.
    pub fn new(
        dir: PathBuf,
        max_bytes: u64,
        producers: Vec<ProducerSpec>,
        limits: DiskLimits,
    ) -> Spools {
        let leases = Arc::<Leases>::default();
        let disk = Arc::<DiskStats>::default();
        let janitor = Janitor::start(dir.clone(), limits, leases.clone(), disk.clone())
            .map_err(|e| log::error!("no spool janitor (the OS refused its thread: {e})"))
            .ok();
        Spools {
            dir,
            max_bytes,
            producers,
            leases,
            disk,
            janitor: Mutex::new(janitor),
        }
    }

    /// Stops the janitor (server shutdown).
    pub fn shutdown(&self) {
        let janitor = self
            .janitor
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        drop(janitor);
    }

    /// Takes `client_id`'s spool, waiting up to `wait` for a previous
    /// stream of the same client to let go; `None` if it does not.
    pub fn lease(&self, client_id: &str, wait: Duration) -> Option<Lease> {
        self.leases.take(client_id, wait)
    }

    /// The streams' and the data directory's Prometheus families.
    pub fn metrics_text(&self) -> String {
        let disk = &self.disk;
        format!(
            "{}# HELP strand_data_dir_bytes Bytes of spool files in the data directory (at the last sweep).\n\
             # TYPE strand_data_dir_bytes gauge\nstrand_data_dir_bytes {}\n\
             # HELP strand_spools_deleted_total Clients' spools deleted, by reason.\n\
             # TYPE strand_spools_deleted_total counter\n\
             strand_spools_deleted_total{{reason=\"retention\"}} {}\n\
             strand_spools_deleted_total{{reason=\"budget\"}} {}\n",
            self.leases.metrics_text(),
            disk.bytes.load(Relaxed),
            disk.deleted_retention.load(Relaxed),
            disk.deleted_budget.load(Relaxed),
        )
    }
}

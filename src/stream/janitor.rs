//! Keeps the data directory within its bounds: deletes the spools of
//! clients not seen for `--spool-retention`, then, while the spools
//! together exceed `--data-max-bytes`, the least recently seen clients'
//! spools. A client is "seen" when its stream writes (the spool's mtime;
//! a stream also touches it as it ends).
//!
//! A spool is deleted only under its client's [`Lease`](super::lease), so
//! never while a stream runs on it, and no stream can start on it halfway
//! through. Only `<name>.spool` and `<name>.spool.1` files are counted or
//! touched; anything else in the directory is left alone.
//!
//! One thread, sweeping every [`SWEEP_EVERY`] at most, and when a stream
//! ends (at most once a second: a sweep lists the directory).

use super::lease::Leases;
use crossbeam_channel::Sender;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// The longest time between two sweeps.
pub const SWEEP_EVERY: Duration = Duration::from_secs(10);
/// The shortest: a test's retention of a second is swept four times a second.
const SWEEP_MIN: Duration = Duration::from_millis(100);
/// Sweeps woken by streams ending come at most this often.
const SWEEP_GAP: Duration = Duration::from_secs(1);

/// The bounds of the data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskLimits {
    /// Spools untouched for this long are deleted.
    pub retention: Duration,
    /// The spools' total size at most (0: no budget).
    pub budget: u64,
}

/// What the sweeps did, for `/metrics`.
#[derive(Debug, Default)]
pub struct DiskStats {
    /// Bytes of spool files after the last sweep.
    pub bytes: AtomicU64,
    /// Clients' spools deleted for retention.
    pub deleted_retention: AtomicU64,
    /// Clients' spools deleted to keep the budget.
    pub deleted_budget: AtomicU64,
}

/// One client's spool files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSpool {
    /// The client's id.
    pub client_id: String,
    /// Its files (`.spool`, `.spool.1`) that exist.
    pub files: Vec<PathBuf>,
    /// Their total size.
    pub bytes: u64,
    /// The newest modification time among them.
    pub seen: SystemTime,
}

/// Every client's spool files in `dir`.
pub fn scan(dir: &Path) -> Vec<ClientSpool> {
    let mut by_client: HashMap<String, ClientSpool> = HashMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let Some(client_id) = name
            .strip_suffix(".spool")
            .or_else(|| name.strip_suffix(".spool.1"))
            .filter(|id| crate::names::is_valid(id))
        else {
            continue;
        };
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let seen = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let spool = by_client
            .entry(client_id.to_string())
            .or_insert_with(|| ClientSpool {
                client_id: client_id.to_string(),
                files: Vec::new(),
                bytes: 0,
                seen,
            });
        spool.files.push(entry.path());
        spool.bytes += meta.len();
        spool.seen = spool.seen.max(seen);
    }
    let mut spools: Vec<ClientSpool> = by_client.into_values().collect();
    spools.sort_by(|a, b| (a.seen, &a.client_id).cmp(&(b.seen, &b.client_id)));
    spools
}

/// Why a spool is to be deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Not seen for the retention time.
    Retention,
    /// The oldest while the total is over the budget.
    Budget,
}

/// Which of `spools` (sorted oldest first, as [`scan`] returns them) to
/// delete at `now`, and why; `busy` tells which have a stream running
/// (never chosen). Pure.
pub fn choose(
    spools: &[ClientSpool],
    limits: DiskLimits,
    now: SystemTime,
    busy: impl Fn(&str) -> bool,
) -> Vec<(usize, Reason)> {
    let mut chosen = Vec::new();
    let mut total: u64 = spools.iter().map(|s| s.bytes).sum();
    for (i, spool) in spools.iter().enumerate() {
        if busy(&spool.client_id) {
            continue;
        }
        let age = now.duration_since(spool.seen).unwrap_or_default();
        let reason = if age >= limits.retention {
            Reason::Retention
        } else if limits.budget > 0 && total > limits.budget {
            Reason::Budget
        } else {
            continue;
        };
        total -= spool.bytes;
        chosen.push((i, reason));
    }
    chosen
}

/// The janitor's thread.
#[derive(Debug)]
pub struct Janitor {
    stop: Arc<AtomicBool>,
    wake: Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl Janitor {
    /// Starts sweeping `dir` (the first sweep at once); [`Leases`] wakes it
    /// whenever a stream lets go of its spool.
    pub fn start(
        dir: PathBuf,
        limits: DiskLimits,
        leases: Arc<Leases>,
        stats: Arc<DiskStats>,
    ) -> std::io::Result<Janitor> {
        let (wake, woken) = crossbeam_channel::bounded(1);
        leases.notify_on_free(wake.clone());
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let every = (limits.retention / 4).clamp(SWEEP_MIN, SWEEP_EVERY);
        let thread = std::thread::Builder::new()
            .name("spool-janitor".into())
            .stack_size(128 * 1024)
            .spawn(move || {
                // However often streams end, one sweep per `gap` at most.
                let gap = every.min(SWEEP_GAP);
                while !stopping.load(Ordering::Acquire) {
                    sweep(&dir, limits, &leases, &stats);
                    let swept = Instant::now();
                    let _ = woken.recv_timeout(every);
                    while !stopping.load(Ordering::Acquire) && swept.elapsed() < gap {
                        let _ = woken.recv_deadline(swept + gap);
                    }
                }
            })?;
        Ok(Janitor {
            stop,
            wake,
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for it.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.wake.try_send(());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Janitor {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One sweep: deletes what [`choose`] picks, under each client's lease.
pub fn sweep(dir: &Path, limits: DiskLimits, leases: &Arc<Leases>, stats: &DiskStats) {
    let spools = scan(dir);
    let now = SystemTime::now();
    let mut total: u64 = spools.iter().map(|s| s.bytes).sum();
    for (i, reason) in choose(&spools, limits, now, |id| leases.is_held(id)) {
        let spool = &spools[i];
        // Held while deleting: a `start` of this client waits meanwhile.
        let Some(_lease) = leases.take_quietly(&spool.client_id) else {
            continue;
        };
        let mut freed = 0;
        for file in &spool.files {
            let len = std::fs::metadata(file).map_or(0, |m| m.len());
            match std::fs::remove_file(file) {
                Ok(()) => freed += len,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => log::warn!("cannot delete {}: {e}", file.display()),
            }
        }
        total = total.saturating_sub(freed);
        let counter = match reason {
            Reason::Retention => &stats.deleted_retention,
            Reason::Budget => &stats.deleted_budget,
        };
        counter.fetch_add(1, Relaxed);
        log::info!(
            "deleted the spool of {} ({freed} bytes, {})",
            spool.client_id,
            match reason {
                Reason::Retention => "not seen for the retention time",
                Reason::Budget => "over the data directory's budget",
            }
        );
    }
    if limits.budget > 0 && total > limits.budget {
        log::warn!(
            "the spools in {} take {total} bytes, over --data-max-bytes {}: \
             the rest belongs to running streams",
            dir.display(),
            limits.budget
        );
    }
    stats.bytes.store(total, Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spool(id: &str, bytes: u64, age_s: u64, now: SystemTime) -> ClientSpool {
        ClientSpool {
            client_id: id.into(),
            files: Vec::new(),
            bytes,
            seen: now - Duration::from_secs(age_s),
        }
    }

    #[test]
    fn retention_first_then_the_oldest_until_under_budget() {
        let now = SystemTime::now();
        let limits = DiskLimits {
            retention: Duration::from_secs(100),
            budget: 250,
        };
        // Oldest first, as scan sorts them.
        let spools = [
            spool("gone", 50, 500, now),
            spool("old", 100, 90, now),
            spool("busy", 100, 80, now),
            spool("mid", 100, 50, now),
            spool("new", 100, 10, now),
        ];
        let chosen = choose(&spools, limits, now, |id| id == "busy");
        // 450 bytes: "gone" for age (400 left), then "old" (300), then
        // "busy" is skipped and "mid" goes (200 <= 250).
        assert_eq!(
            chosen,
            [
                (0, Reason::Retention),
                (1, Reason::Budget),
                (3, Reason::Budget)
            ]
        );
    }

    #[test]
    fn a_busy_spool_is_never_chosen_even_when_old() {
        let now = SystemTime::now();
        let limits = DiskLimits {
            retention: Duration::from_secs(1),
            budget: 1,
        };
        let spools = [spool("busy", 1000, 10_000, now)];
        assert!(choose(&spools, limits, now, |_| true).is_empty());
    }

    #[test]
    fn scan_groups_both_generations_and_ignores_other_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.spool"), "12345").unwrap();
        std::fs::write(dir.path().join("a.spool.1"), "123").unwrap();
        std::fs::write(dir.path().join("b.spool"), "1").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "keep").unwrap();
        std::fs::write(dir.path().join(".x.spool"), "bad name").unwrap();
        std::fs::create_dir(dir.path().join("d.spool")).unwrap();
        let mut spools = scan(dir.path());
        spools.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        let summary: Vec<(&str, usize, u64)> = spools
            .iter()
            .map(|s| (s.client_id.as_str(), s.files.len(), s.bytes))
            .collect();
        assert_eq!(summary, [("a", 2, 8), ("b", 1, 1)]);
    }
}

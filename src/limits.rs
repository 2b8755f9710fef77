//! Resolving `--max-connections auto`: the ceiling a thread-per-connection
//! server can actually reach on this host, from the limits that bind it.
//!
//! Every WebSocket costs one thread (its connection thread; reads reach it
//! from the one shared readiness thread) and one file descriptor. A
//! connection still sending its request head costs a descriptor and no
//! thread. Threads are bounded by `kernel.pid_max`,
//! `kernel.threads-max`, the cgroup's `pids.max` and `vm.max_map_count`
//! (each connection thread's stack and guard page take 2 memory maps; see
//! [`crate::threads`]); file
//! descriptors by `RLIMIT_NOFILE`.

use std::fs;

/// Threads one WebSocket connection uses.
pub const THREADS_PER_CONNECTION: u64 = 1;
/// Threads and descriptors kept back for the accept loop, helpers, logs,
/// spool files, tails and plain HTTP requests.
const HEADROOM: u64 = 64;

/// The resolved ceiling and the limit that set it, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ceiling {
    /// Most WebSocket connections at once.
    pub connections: usize,
    /// Which OS limit bound it, e.g. `kernel.pid_max=32768`.
    pub reason: String,
}

/// The OS limits read at start-up; `None` where a limit is absent or unreadable.
#[derive(Debug, Clone, Default)]
pub struct OsLimits {
    /// `/proc/sys/kernel/pid_max`.
    pub pid_max: Option<u64>,
    /// `/proc/sys/kernel/threads-max`.
    pub threads_max: Option<u64>,
    /// The cgroup's `pids.max` (v2 or v1).
    pub cgroup_pids_max: Option<u64>,
    /// `/proc/sys/vm/max_map_count`.
    pub max_map_count: Option<u64>,
    /// The soft `RLIMIT_NOFILE`.
    pub nofile: Option<u64>,
}

impl OsLimits {
    /// Reads the limits of the running process.
    pub fn read() -> OsLimits {
        let num =
            |path: &str| -> Option<u64> { fs::read_to_string(path).ok()?.trim().parse().ok() };
        OsLimits {
            pid_max: num("/proc/sys/kernel/pid_max"),
            threads_max: num("/proc/sys/kernel/threads-max"),
            cgroup_pids_max: cgroup_pids_max(),
            max_map_count: num("/proc/sys/vm/max_map_count"),
            nofile: nofile_limit(),
        }
    }

    /// The connection ceiling these limits allow.
    pub fn ceiling(&self) -> Ceiling {
        let mut candidates: Vec<(u64, String)> = Vec::new();
        let by_threads = |limit: u64| limit.saturating_sub(HEADROOM) / THREADS_PER_CONNECTION;
        if let Some(v) = self.pid_max {
            candidates.push((by_threads(v), format!("kernel.pid_max={v}")));
        }
        if let Some(v) = self.threads_max {
            candidates.push((by_threads(v), format!("kernel.threads-max={v}")));
        }
        if let Some(v) = self.cgroup_pids_max {
            candidates.push((by_threads(v), format!("cgroup pids.max={v}")));
        }
        if let Some(v) = self.max_map_count {
            candidates.push((
                by_threads(v / 2),
                format!("vm.max_map_count={v} (2 maps per thread)"),
            ));
        }
        if let Some(v) = self.nofile {
            candidates.push((v.saturating_sub(HEADROOM), format!("RLIMIT_NOFILE={v}")));
        }
        match candidates.into_iter().min_by_key(|(n, _)| *n) {
            Some((n, reason)) => Ceiling {
                connections: n.max(1) as usize,
                reason,
            },
            None => Ceiling {
                connections: 1024,
                reason: "no OS limit readable; a conservative default".into(),
            },
        }
    }
}

fn cgroup_pids_max() -> Option<u64> {
    // cgroup v2: the process's own group from /proc/self/cgroup ("0::/path").
    let own = fs::read_to_string("/proc/self/cgroup").ok()?;
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let file = if controllers.is_empty() {
            format!("/sys/fs/cgroup{path}/pids.max")
        } else if controllers.split(',').any(|c| c == "pids") {
            format!("/sys/fs/cgroup/pids{path}/pids.max")
        } else {
            continue;
        };
        if let Ok(text) = fs::read_to_string(&file) {
            return text.trim().parse().ok(); // "max" means unlimited: None
        }
    }
    None
}

fn nofile_limit() -> Option<u64> {
    let limits = fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tightest_limit_wins_and_is_named() {
        let limits = OsLimits {
            pid_max: Some(32768),
            threads_max: Some(200_000),
            cgroup_pids_max: None,
            max_map_count: Some(262_144),
            nofile: Some(20000),
        };
        let c = limits.ceiling();
        assert_eq!(c.connections, 20000 - HEADROOM as usize);
        assert!(c.reason.contains("NOFILE"), "{}", c.reason);
        let threads_bind = OsLimits {
            nofile: Some(1 << 20),
            ..limits
        };
        let c = threads_bind.ceiling();
        assert_eq!(c.connections, 32768 - HEADROOM as usize);
        assert!(c.reason.contains("pid_max"), "{}", c.reason);
    }

    #[test]
    fn descriptors_can_bind_first() {
        let limits = OsLimits {
            pid_max: Some(4_000_000),
            nofile: Some(1024),
            ..Default::default()
        };
        assert_eq!(limits.ceiling().connections, 1024 - HEADROOM as usize);
        assert!(limits.ceiling().reason.contains("NOFILE"));
    }

    #[test]
    fn reading_this_host_gives_a_positive_ceiling() {
        assert!(OsLimits::read().ceiling().connections > 0);
    }
}

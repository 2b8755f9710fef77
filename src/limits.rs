//! Resolving `--max-connections auto`: the ceiling a thread-per-connection
//! server can actually reach on this host, from the limits that bind it.
//!
//! Every WebSocket costs one thread (its connection thread; reads reach it
//! from the one shared readiness thread) and one file descriptor. A
//! connection still sending its request head costs a descriptor and no
//! thread. Threads are bounded by `kernel.pid_max`,
//! `kernel.threads-max`, the cgroup's `pids.max` and `vm.max_map_count`
//! (each connection thread's stack and guard page take 2 memory maps; see
//! [`crate::threads`]) and, for a user other than root, `RLIMIT_NPROC`;
//! file descriptors by `RLIMIT_NOFILE`.
//!
//! The rlimits come from `getrlimit`, the rest from `/proc` and `/sys`,
//! which an empty root (a chroot, a bare container) may lack: a kernel
//! limit it cannot read is assumed at the kernel's default, and the
//! unreadable ones are listed for the start-up log.

use std::fs;

/// Threads one WebSocket connection uses.
pub const THREADS_PER_CONNECTION: u64 = 1;
/// Threads and descriptors kept back for the accept loop, helpers, logs,
/// spool files, tails and plain HTTP requests.
const HEADROOM: u64 = 64;
/// The kernel's defaults, assumed where `/proc` cannot say.
const DEFAULT_PID_MAX: u64 = 32768;
const DEFAULT_MAX_MAP_COUNT: u64 = 65530;

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
    /// The soft `RLIMIT_NPROC` (the user's threads), when the kernel
    /// enforces it: not for root (of the initial user namespace).
    pub nproc: Option<u64>,
    /// The limits that could not be read, e.g. `kernel.pid_max` without `/proc`.
    pub unknown: Vec<&'static str>,
}

impl OsLimits {
    /// Reads the limits of the running process.
    pub fn read() -> OsLimits {
        let mut unknown = Vec::new();
        let mut num = |name: &'static str, path: &str| -> Option<u64> {
            let text = fs::read_to_string(path).ok();
            let value = text.and_then(|t| t.trim().parse().ok());
            if value.is_none() {
                unknown.push(name);
            }
            value
        };
        let pid_max = num("kernel.pid_max", "/proc/sys/kernel/pid_max");
        let threads_max = num("kernel.threads-max", "/proc/sys/kernel/threads-max");
        let max_map_count = num("vm.max_map_count", "/proc/sys/vm/max_map_count");
        let cgroup_pids_max = match cgroup_pids_max() {
            Ok(limit) => limit,
            Err(()) => {
                unknown.push("cgroup pids.max");
                None
            }
        };
        use rustix::process::{getrlimit, Resource};
        let nproc = if exempt_from_nproc() {
            None
        } else {
            getrlimit(Resource::Nproc).current
        };
        OsLimits {
            pid_max,
            threads_max,
            cgroup_pids_max,
            max_map_count,
            nofile: getrlimit(Resource::Nofile).current,
            nproc,
            unknown,
        }
    }

    /// The connection ceiling these limits allow.
    pub fn ceiling(&self) -> Ceiling {
        let mut candidates: Vec<(u64, String)> = Vec::new();
        let by_threads = |limit: u64| limit.saturating_sub(HEADROOM) / THREADS_PER_CONNECTION;
        match self.pid_max {
            Some(v) => candidates.push((by_threads(v), format!("kernel.pid_max={v}"))),
            None => candidates.push((
                by_threads(DEFAULT_PID_MAX),
                format!("kernel.pid_max unread, the kernel's default {DEFAULT_PID_MAX} assumed"),
            )),
        }
        if let Some(v) = self.threads_max {
            candidates.push((by_threads(v), format!("kernel.threads-max={v}")));
        }
        if let Some(v) = self.cgroup_pids_max {
            candidates.push((by_threads(v), format!("cgroup pids.max={v}")));
        }
        match self.max_map_count {
            Some(v) => candidates.push((
                by_threads(v / 2),
                format!("vm.max_map_count={v} (2 maps per thread)"),
            )),
            None => candidates.push((
                by_threads(DEFAULT_MAX_MAP_COUNT / 2),
                format!(
                    "vm.max_map_count unread, the kernel's default {DEFAULT_MAX_MAP_COUNT} \
                     assumed (2 maps per thread)"
                ),
            )),
        }
        if let Some(v) = self.nproc {
            candidates.push((by_threads(v), format!("RLIMIT_NPROC={v}")));
        }
        if let Some(v) = self.nofile {
            candidates.push((v.saturating_sub(HEADROOM), format!("RLIMIT_NOFILE={v}")));
        }
        let (n, reason) = candidates
            .into_iter()
            .min_by_key(|(n, _)| *n)
            .expect("pid_max is always a candidate");
        Ceiling {
            connections: n.max(1) as usize,
            reason,
        }
    }
}

/// Whether the kernel lets this process pass `RLIMIT_NPROC`: root of the
/// initial user namespace only. Root of another namespace (a rootless
/// container, `unshare -r`) is an ordinary user to the kernel; when
/// `/proc` cannot say, the limit is kept.
fn exempt_from_nproc() -> bool {
    let identity = || {
        let map = fs::read_to_string("/proc/self/uid_map").ok()?;
        Some(map.split_whitespace().eq(["0", "0", "4294967295"]))
    };
    rustix::process::getuid().is_root() && identity() == Some(true)
}

/// The cgroup's `pids.max`: `Ok(None)` when unlimited or when no cgroup
/// has the pids controller, `Err` when `/proc` or `/sys` cannot say.
fn cgroup_pids_max() -> Result<Option<u64>, ()> {
    // cgroup v2: the process's own group from /proc/self/cgroup ("0::/path").
    let own = fs::read_to_string("/proc/self/cgroup").map_err(|_| ())?;
    if !std::path::Path::new("/sys/fs/cgroup").is_dir() {
        return Err(());
    }
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let file = if controllers.is_empty() {
            format!("/sys/fs/cgroup{path}/pids.max")
        } else if controllers.split(',').any(|c| c == "pids") {
            format!("/sys/fs/cgroup/pids{path}/pids.max")
        } else {
            continue;
        };
        if let Ok(text) = fs::read_to_string(&file) {
            return Ok(text.trim().parse().ok()); // "max" means unlimited: None
        }
    }
    Ok(None)
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
            ..Default::default()
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
    fn unread_kernel_limits_are_assumed_at_the_kernels_defaults() {
        // An empty root: no /proc, only the rlimits.
        let limits = OsLimits {
            nofile: Some(1 << 20),
            ..Default::default()
        };
        let c = limits.ceiling();
        let by_maps = (DEFAULT_MAX_MAP_COUNT / 2 - HEADROOM) / THREADS_PER_CONNECTION;
        assert_eq!(c.connections, by_maps as usize);
        assert!(c.reason.contains("vm.max_map_count unread"), "{}", c.reason);
    }

    #[test]
    fn a_users_process_limit_can_bind_first() {
        let limits = OsLimits {
            pid_max: Some(4_000_000),
            max_map_count: Some(1 << 24),
            nofile: Some(1 << 20),
            nproc: Some(4096),
            ..Default::default()
        };
        let c = limits.ceiling();
        assert_eq!(c.connections, 4096 - HEADROOM as usize);
        assert!(c.reason.contains("RLIMIT_NPROC=4096"), "{}", c.reason);
    }

    #[test]
    fn reading_this_host_gives_a_positive_ceiling() {
        assert!(OsLimits::read().ceiling().connections > 0);
    }
}

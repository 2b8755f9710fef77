//! Before a run: whether this host lets one process open the requested
//! clients, said before the run instead of as a heap of `spawn` or
//! `no local port` errors in the middle of it.
//!
//! A client costs one thread (a pid, and 4 memory maps: its stack, the
//! guard page below it, and the alternate signal stack Rust's std gives
//! every thread, with its own guard page), one file descriptor and one
//! ephemeral port of its source address. So the clients are bounded by `kernel.pid_max` and
//! `kernel.threads-max` less the threads the host already runs, the
//! cgroup's `pids.max`, `RLIMIT_NPROC`, `vm.max_map_count`,
//! `RLIMIT_NOFILE` (whose soft limit the tool raises to the hard one) and
//! `net.ipv4.ip_local_port_range` times the source addresses
//! (`--local-ip`). Crossing most of them only warns: the clients beyond
//! the limit fail and are counted by cause. Crossing `vm.max_map_count`
//! stops the run before it starts, as a thread that cannot map its signal
//! stack aborts the whole process.

use crate::limits::OsLimits;
use std::fs;

/// Threads, descriptors and maps the tool itself uses beside its clients
/// (main, progress, helpers; stdio, the JSON file; the binary's mappings).
const OWN_THREADS: u64 = 8;
const OWN_FDS: u64 = 16;
const OWN_MAPS: u64 = 200;
/// Memory maps per client thread: its stack and guard page, its signal
/// stack and guard page (4066 maps measured with 1,000 clients).
const MAPS_PER_CLIENT: u64 = 4;

/// A limit the run would cross.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What is crossed, and how to raise it.
    pub text: String,
    /// Whether the run must not start (it would abort midway).
    pub stops: bool,
}

/// What the host has, beside the OS limits.
#[derive(Debug, Clone, Default)]
pub struct Host {
    /// The OS limits (see [`crate::limits`]).
    pub limits: OsLimits,
    /// Threads running on the host now (all processes), from `/proc/loadavg`.
    pub threads_in_use: Option<u64>,
    /// Ephemeral ports per source address, from `ip_local_port_range`.
    pub ephemeral_ports: Option<u64>,
}

impl Host {
    /// Reads the host's limits and use (raising `RLIMIT_NOFILE` first).
    pub fn read() -> Host {
        raise_nofile();
        Host {
            limits: OsLimits::read(),
            threads_in_use: fs::read_to_string("/proc/loadavg")
                .ok()
                .and_then(|t| parse_loadavg_threads(&t)),
            ephemeral_ports: fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
                .ok()
                .and_then(|t| parse_port_range(&t)),
        }
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard one (a no-op when equal).
fn raise_nofile() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
}

/// The total of threads in `/proc/loadavg` (`0.10 0.20 0.30 2/345 6789`).
pub fn parse_loadavg_threads(text: &str) -> Option<u64> {
    text.split_whitespace()
        .nth(3)?
        .split('/')
        .nth(1)?
        .parse()
        .ok()
}

/// How many ports `ip_local_port_range` (`32768\t60999`) holds.
pub fn parse_port_range(text: &str) -> Option<u64> {
    let mut it = text.split_whitespace().map(|s| s.parse::<u64>().ok());
    let (lo, hi) = (it.next()??, it.next()??);
    (hi >= lo).then(|| hi - lo + 1)
}

fn warn(text: String) -> Problem {
    Problem { text, stops: false }
}

impl Problem {
    fn stops(self) -> Problem {
        Problem {
            stops: true,
            ..self
        }
    }
}

/// The limits `clients` clients from `sources` source addresses (at least
/// one) would cross on `host`, each said with how to raise it.
pub fn problems(clients: u64, sources: usize, host: &Host) -> Vec<Problem> {
    let l = &host.limits;
    let mut out = Vec::new();
    let threads = clients + OWN_THREADS;
    let in_use = host.threads_in_use.unwrap_or(0);
    for (name, limit, how) in [
        (
            "kernel.pid_max",
            l.pid_max,
            "sysctl -w kernel.pid_max=4194304",
        ),
        (
            "kernel.threads-max",
            l.threads_max,
            "sysctl -w kernel.threads-max=N",
        ),
    ] {
        if let Some(limit) = limit {
            let free = limit.saturating_sub(in_use);
            if threads > free {
                out.push(warn(format!(
                    "{clients} clients need {threads} threads, but {name}={limit} leaves {free} \
                     ({in_use} threads run on this host): `{how}`, or split the clients over \
                     machines with --segment"
                )));
            }
        }
    }
    for (name, limit, how) in [
        (
            "cgroup pids.max",
            l.cgroup_pids_max,
            "raise the cgroup's pids.max",
        ),
        ("RLIMIT_NPROC", l.nproc, "ulimit -u"),
    ] {
        if let Some(limit) = limit.filter(|v| threads > *v) {
            out.push(warn(format!(
                "{clients} clients need {threads} threads, but {name}={limit}: {how}"
            )));
        }
    }
    if let Some(limit) = l.max_map_count {
        let maps = clients * MAPS_PER_CLIENT + OWN_MAPS;
        if maps > limit {
            out.push(
                warn(format!(
                    "{clients} clients need about {maps} memory maps (4 per client thread: \
                 stacks and guard pages), but vm.max_map_count={limit}: \
                 `sysctl -w vm.max_map_count={}` (a thread that cannot map its stack \
                 aborts the process, so the run does not start)",
                    (maps * 2).next_power_of_two()
                ))
                .stops(),
            );
        }
    }
    if let Some(limit) = l.nofile {
        let fds = clients + OWN_FDS;
        if fds > limit {
            out.push(warn(format!(
                "{clients} clients need {fds} file descriptors, but RLIMIT_NOFILE={limit} \
                 (its hard limit): `ulimit -Hn {fds}` as root, or LimitNOFILE= in a unit"
            )));
        }
    }
    if let Some(ports) = host.ephemeral_ports {
        let sources = sources.max(1) as u64;
        let each = clients.div_ceil(sources);
        if each > ports {
            out.push(warn(format!(
                "{clients} clients from {sources} source address(es) need {each} ports each, \
                 but net.ipv4.ip_local_port_range holds {ports}: add --local-ip addresses \
                 (on loopback any 127.x.y.z works: --local-ip 127.0.0.2 --local-ip 127.0.0.3 ...), \
                 {} in all",
                clients.div_ceil(ports)
            )));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> Host {
        Host {
            limits: OsLimits {
                pid_max: Some(32768),
                threads_max: Some(192_735),
                cgroup_pids_max: None,
                max_map_count: Some(65530),
                nofile: Some(20000),
                nproc: None,
                unknown: vec![],
            },
            threads_in_use: Some(1000),
            ephemeral_ports: Some(28232),
        }
    }

    #[test]
    fn proc_files_parse() {
        assert_eq!(
            parse_loadavg_threads("0.52 0.58 0.59 3/1161 12345\n"),
            Some(1161)
        );
        assert_eq!(parse_loadavg_threads("nonsense"), None);
        assert_eq!(parse_port_range("32768\t60999\n"), Some(28232));
        assert_eq!(parse_port_range("5 1"), None);
    }

    #[test]
    fn fifteen_thousand_clients_fit_this_host() {
        assert_eq!(problems(15_000, 1, &host()), vec![]);
        assert_eq!(
            problems(16_500, 1, &host()).len(),
            1,
            "the maps run out first"
        );
    }

    #[test]
    fn each_limit_is_named_with_its_remedy() {
        let p = problems(40_000, 1, &host());
        let all: Vec<&str> = p.iter().map(|p| p.text.as_str()).collect();
        let all = all.join("\n");
        assert!(all.contains("kernel.pid_max=32768 leaves 31768"), "{all}");
        assert!(all.contains("vm.max_map_count=65530"), "{all}");
        assert!(all.contains("RLIMIT_NOFILE=20000"), "{all}");
        assert!(all.contains("--local-ip"), "{all}");
        assert_eq!(p.len(), 4, "{all}");
        let stopping: Vec<_> = p.iter().filter(|p| p.stops).collect();
        assert_eq!(stopping.len(), 1);
        assert!(stopping[0].text.contains("vm.max_map_count"));
    }

    #[test]
    fn source_addresses_multiply_the_ports() {
        let mut h = host();
        h.limits.pid_max = Some(4_194_304);
        h.limits.max_map_count = Some(1 << 20);
        h.limits.nofile = Some(1 << 20);
        assert_eq!(problems(50_000, 1, &h).len(), 1);
        assert!(problems(50_000, 2, &h).is_empty());
    }
}

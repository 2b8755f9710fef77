//! Giving freed heap memory back to the system after connections end.
//!
//! glibc's malloc gives a thread that allocates while another holds the
//! arena it wanted an arena of its own, up to eight per core, and keeps what
//! is freed inside each arena for reuse: it returns memory to the system
//! only from the top of the main heap, unless asked. A server whose
//! threads come and go by the thousand leaves a megabyte or two of free
//! pages in every arena: in the churn soak (`tests/soak.rs`) resident
//! memory rose from 22 MB to 47-55 MB, all of it in the 16 arenas of a
//! 2-core machine, and stayed there with every connection gone.
//!
//! Two remedies, measured with that soak (100 s of churn, same machine):
//! - [`limit_arenas`] at start-up: as many arenas as cores, at least two
//!   (`M_ARENA_MAX`), so the free pages sit in a few heaps instead of
//!   sixteen. A small host has one or two cores, hence little contention
//!   on an arena's lock to save; and each thread's own cache of small
//!   blocks (`tcache`) takes no lock at all. Echo with 100 clients, server
//!   pinned, 5 alternating rounds: 65.5k msgs/s with the cap, 63.9k
//!   without (median).
//! - The [`TrimCheck`], on the housekeeping thread: every [`EVERY`], when
//!   connections ended since it last looked, it calls `malloc_trim(0)`, which
//!   hands every arena's free pages back (`madvise`), wherever they are in
//!   the heap. An idle server is never touched.
//!
//! With both, RSS went from a baseline of 18.2 MiB to a peak of 27.3 and
//! back to 22.2 MiB; with the trimmer alone 20.2, 35.1 and 29.9. Over 30
//! minutes (172,440 connections) it went 18.2, 32.0, 25.3 MiB with both,
//! where with neither it had kept rising, from 22.3 to 55.3 MiB. `heaptrack` over
//! the same soak found nothing unfreed but the frames queued to the
//! clients still connected at the final SIGTERM: the growth was the
//! allocator's, not a leak. Other C libraries (musl) keep less and have
//! neither knob: there both do nothing.

use std::time::Duration;

/// How often the [`TrimCheck`] looks (every tenth housekeeping tick).
pub const EVERY: Duration = Duration::from_secs(10);

/// Trims the heap when connections have ended since it last looked. The
/// housekeeping thread ([`crate::housekeeping`]) calls
/// [`TrimCheck::look`] every [`EVERY`]; an idle server is never touched.
#[derive(Debug)]
pub struct TrimCheck {
    seen: u64,
}

impl TrimCheck {
    /// Starts from `ended`, how many connections have ended so far.
    pub fn new(ended: u64) -> TrimCheck {
        TrimCheck { seen: ended }
    }

    /// Trims when `ended` moved since the last look; returns whether it did.
    pub fn look(&mut self, ended: u64) -> bool {
        if ended == self.seen {
            return false;
        }
        self.seen = ended;
        release_free_memory();
        true
    }
}

/// Caps glibc's arenas at the number of cores (at least 2), unless the
/// operator chose (`MALLOC_ARENA_MAX` or `GLIBC_TUNABLES`). Call before
/// other threads start.
pub fn limit_arenas() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let Some(cap) = arena_cap(
        std::env::var_os("MALLOC_ARENA_MAX").is_some(),
        std::env::var("GLIBC_TUNABLES").ok().as_deref(),
        cores,
    ) else {
        return;
    };
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a malloc parameter.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, cap as libc::c_int);
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = cap;
}

/// The arena cap to set: `None` when the operator chose one already.
fn arena_cap(env_set: bool, tunables: Option<&str>, cores: usize) -> Option<usize> {
    if env_set || tunables.is_some_and(|t| t.contains("glibc.malloc.arena_max")) {
        return None;
    }
    Some(cores.max(2))
}

/// Returns the allocator's free pages to the system, where it can.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes each arena's lock itself; it only changes
    // which free pages are resident.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The heap as the allocator sees it: bytes in live allocations, and
/// bytes it holds free (resident or not). glibc only; `None` elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heap {
    /// Bytes in allocations not yet freed.
    pub in_use: u64,
    /// Bytes the allocator keeps for reuse.
    pub free: u64,
}

/// Reads [`Heap`] (walks every arena under its lock: for scrapes, not for
/// hot paths).
pub fn heap() -> Option<Heap> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's counters.
        #[allow(unsafe_code)]
        let info = unsafe { libc::mallinfo2() };
        Some(Heap {
            in_use: (info.uordblks + info.hblkhd) as u64,
            free: info.fordblks as u64,
        })
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rss_kib() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Fills an arena of another thread with 32 MiB of 1 KiB blocks and
    /// frees all but every 64th (and the last, so the heap's top cannot
    /// shrink by itself): what a burst of connections leaves. Returns the
    /// blocks kept.
    fn fragmented_heap() -> Vec<Vec<u8>> {
        std::thread::spawn(|| {
            let blocks: Vec<Vec<u8>> = (0..32 * 1024).map(|i| vec![i as u8; 1024]).collect();
            let last = blocks.len() - 1;
            blocks
                .into_iter()
                .enumerate()
                .filter(|(i, _)| i % 64 == 0 || *i == last)
                .map(|(_, b)| b)
                .collect()
        })
        .join()
        .unwrap()
    }

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn trimming_hands_back_the_free_pages_between_live_blocks() {
        let kept = fragmented_heap();
        let before = rss_kib();
        release_free_memory();
        let after = rss_kib();
        assert!(
            after + 16 * 1024 < before,
            "RSS {before} KiB before, {after} after"
        );
        assert_eq!(kept[1][0], 64u8);
    }

    #[test]
    fn the_check_trims_only_when_connections_ended() {
        let mut check = TrimCheck::new(5);
        assert!(!check.look(5), "nothing ended: no trim");
        assert!(check.look(6));
        assert!(!check.look(6));
        assert!(check.look(9));
    }

    #[test]
    fn the_cap_follows_the_cores_unless_the_operator_chose() {
        assert_eq!(arena_cap(false, None, 1), Some(2));
        assert_eq!(arena_cap(false, None, 2), Some(2));
        assert_eq!(arena_cap(false, None, 8), Some(8));
        assert_eq!(arena_cap(true, None, 8), None);
        assert_eq!(
            arena_cap(
                false,
                Some("glibc.malloc.arena_max=3:glibc.malloc.tcache_count=0"),
                8
            ),
            None
        );
        assert_eq!(
            arena_cap(false, Some("glibc.malloc.tcache_count=0"), 4),
            Some(4)
        );
    }

    #[test]
    fn the_heap_counts_live_allocations() {
        let block: Vec<u8> = vec![7; 1 << 20];
        if let Some(heap) = heap() {
            assert!(heap.in_use >= 1 << 20, "{heap:?}");
        }
        assert_eq!(block[12345], 7);
    }
}

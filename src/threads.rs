//! Spawning connection threads without the per-thread cost std adds, and
//! the [`Cache`] of finished connection threads parked for the next
//! connection. Threads started per command (streams, tailers) or once (the
//! hub's) use `std::thread`. This module knows nothing of sockets or
//! connections: it runs closures.
//!
//! `std::thread` gives every thread its own alternate signal stack, so it
//! can report a stack overflow: an `mmap`, an `mprotect` for its guard page
//! and an `munmap` at exit. On a multi-threaded process each of the last
//! two flushes the TLB of every other core (an inter-processor interrupt),
//! and the three hold the process's memory-map lock. Profiled under the
//! `connect` benchmark they were ~40% of strand's CPU per connection, and
//! they add two memory mappings per thread against `vm.max_map_count`.
//!
//! These threads come straight from `pthread_create`. What they give up is
//! std's stack-overflow message: an overflow still kills the process (the
//! guard page is still there), only without saying why. Panics are caught
//! and returned from [`JoinHandle::join`] as with std, and the thread's
//! name is kept for the kernel (`top -H`, `ps -L`) and for [`current_name`].
//!
//! They also run under `SCHED_BATCH` (no privilege needed): same fair share
//! of the CPU, but a thread that is woken does not preempt the one that
//! woke it. A message to a 4,000-member room wakes 4,000 connection
//! threads from one loop; with preemption each wake-up could hand the
//! core to the woken thread and the loop crawled, so the last member's
//! delivery came late (room p99 79-137 ms against 71-78 ms measured side
//! by side); echo throughput and latency did not change.
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::ffi::{c_void, CStr, CString};
use std::fmt::Write as _;
use std::io;
use std::mem::MaybeUninit;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::Thread;
use std::time::{Duration, Instant};

thread_local! {
    static NAME: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The name this module's [`spawn`] gave the current thread, else std's.
pub fn current_name() -> Option<String> {
    NAME.with(|name| name.borrow().clone())
        .or_else(|| std::thread::current().name().map(str::to_string))
}

/// Owns a thread started by [`spawn`]; dropping it detaches the thread.
pub struct JoinHandle<T> {
    native: libc::pthread_t,
    result: Arc<Mutex<Option<std::thread::Result<T>>>>,
    joined: bool,
}

impl<T> JoinHandle<T> {
    /// Waits for the thread; `Err` holds its panic, as with std.
    pub fn join(mut self) -> std::thread::Result<T> {
        // SAFETY: `native` names a joinable thread that nothing else joins
        // or detaches (`joined` guards Drop).
        let rc = unsafe { libc::pthread_join(self.native, std::ptr::null_mut()) };
        assert_eq!(
            rc,
            0,
            "pthread_join failed: {}",
            io::Error::from_raw_os_error(rc)
        );
        self.joined = true;
        let result = self.result.lock().unwrap_or_else(|e| e.into_inner()).take();
        result.expect("a joined thread has stored its result")
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        if !self.joined {
            // SAFETY: as in `join`; a detached thread frees itself at exit.
            unsafe { libc::pthread_detach(self.native) };
        }
    }
}

type Main = Box<dyn FnOnce() + Send>;

/// Starts `f` on a new thread named `name` with a `stack`-byte stack.
/// Fails, dropping `f`, when the OS refuses the thread.
pub fn spawn<F, T>(name: &str, stack: usize, f: F) -> io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let result = Arc::new(Mutex::new(None));
    let theirs = result.clone();
    let owned_name = name.to_string();
    // The kernel keeps 15 bytes of a thread's name.
    let short: String = name.chars().filter(|c| *c != '\0').take(15).collect();
    let kernel_name = CString::new(short).unwrap_or_default();
    let main: Main = Box::new(move || {
        rename(&kernel_name);
        NAME.with(|n| *n.borrow_mut() = Some(owned_name));
        let batch = libc::sched_param { sched_priority: 0 };
        // SAFETY: sets the calling thread's policy; failure changes nothing.
        unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &batch) };
        let outcome = catch_unwind(AssertUnwindSafe(f));
        *theirs.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
    });
    let arg = Box::into_raw(Box::new(main));
    let stack = stack.max(libc::PTHREAD_STACK_MIN);
    let mut native: libc::pthread_t = 0;
    // SAFETY: the attribute object is initialised before use and destroyed
    // after; on success the new thread takes ownership of `arg` (see
    // `entry`), on failure it is reclaimed here.
    let rc = unsafe {
        let mut attr = MaybeUninit::<libc::pthread_attr_t>::uninit();
        let rc = libc::pthread_attr_init(attr.as_mut_ptr());
        if rc != 0 {
            drop(Box::from_raw(arg));
            return Err(io::Error::from_raw_os_error(rc));
        }
        let mut rc = libc::pthread_attr_setstacksize(attr.as_mut_ptr(), stack);
        if rc == 0 {
            rc = libc::pthread_create(&mut native, attr.as_ptr(), entry, arg.cast());
        }
        libc::pthread_attr_destroy(attr.as_mut_ptr());
        if rc != 0 {
            drop(Box::from_raw(arg));
        }
        rc
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(JoinHandle {
        native,
        result,
        joined: false,
    })
}

/// Renames the calling thread for the kernel (`top -H`, /proc) and for
/// [`current_name`].
fn rename(name: &CStr) {
    // SAFETY: names the calling thread (a prctl, no /proc file).
    unsafe { libc::pthread_setname_np(libc::pthread_self(), name.as_ptr()) };
    NAME.with(|n| *n.borrow_mut() = Some(name.to_string_lossy().into_owned()));
}

/// Work handed to a cached thread.
pub type Job = Box<dyn FnOnce() + Send>;

/// The name of a thread parked in a [`Cache`], as /proc shows it.
pub const PARKED_NAME: &str = "parked";

/// The counters of a [`Cache`], shown in `/metrics`.
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Threads parked now, waiting for a job.
    pub parked: AtomicU64,
    /// Threads started because none was parked.
    pub spawned: AtomicU64,
    /// Jobs served by a parked thread instead of a new one.
    pub reused: AtomicU64,
    /// Parked threads that exited: over the bound, or idle too long.
    pub trimmed: AtomicU64,
}

impl CacheStats {
    /// The Prometheus families of these counters.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, kind, help, value) in [
            (
                "strand_thread_cache_parked",
                "gauge",
                "Connection threads parked in the cache.",
                &self.parked,
            ),
            (
                "strand_thread_cache_spawned_total",
                "counter",
                "Connection threads started because none was parked.",
                &self.spawned,
            ),
            (
                "strand_thread_cache_reused_total",
                "counter",
                "Connections served by a parked thread.",
                &self.reused,
            ),
            (
                "strand_thread_cache_trimmed_total",
                "counter",
                "Parked threads that exited (over the bound or idle too long).",
                &self.trimmed,
            ),
        ] {
            let value = value.load(Relaxed);
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        out
    }
}

/// A cache of finished threads (MySQL's `thread_cache_size`): a thread
/// that finished its job parks, named [`PARKED_NAME`], and runs the next
/// job handed to [`Cache::run`] instead of a new thread being created. At
/// most `bound` threads stay parked; one parked longer than `idle` exits.
/// The most recently parked thread is reused first, so its stack is warm
/// and the others can age out.
pub struct Cache {
    inner: Arc<CacheInner>,
}

struct CacheInner {
    name: CString,
    stack: usize,
    bound: usize,
    idle: Duration,
    /// Parked threads, most recent last, each with its hand-off.
    parked: Mutex<Vec<(u64, Arc<Handoff>)>>,
    next_id: AtomicU64,
    stopping: AtomicBool,
    stats: Arc<CacheStats>,
}

impl Cache {
    /// A cache of threads named `name` with `stack`-byte stacks, keeping at
    /// most `bound` parked for at most `idle` each.
    pub fn new(
        name: &str,
        stack: usize,
        bound: usize,
        idle: Duration,
        stats: Arc<CacheStats>,
    ) -> Cache {
        Cache {
            inner: Arc::new(CacheInner {
                name: CString::new(name.replace('\0', "")).unwrap_or_default(),
                stack,
                bound,
                idle,
                parked: Mutex::new(Vec::new()),
                next_id: AtomicU64::new(1),
                stopping: AtomicBool::new(false),
                stats,
            }),
        }
    }

    /// Runs `job` on a parked thread, or on a new one when none is parked.
    /// When the OS refuses the thread, `job` is handed back.
    pub fn run(&self, job: Job) -> Result<(), (io::Error, Job)> {
        let parked = self.inner.lock().pop();
        let Some((_, handoff)) = parked else {
            return self.spawn(job);
        };
        self.inner.stats.parked.fetch_sub(1, Relaxed);
        handoff.give(Some(job));
        self.inner.stats.reused.fetch_add(1, Relaxed);
        Ok(())
    }

    fn spawn(&self, job: Job) -> Result<(), (io::Error, Job)> {
        // The job waits in a slot so it can be handed back if the spawn
        // fails (a failed spawn drops its closure).
        let slot = Arc::new(Mutex::new(Some(job)));
        let theirs = slot.clone();
        let inner = self.inner.clone();
        let name = inner.name.to_string_lossy().into_owned();
        // Counted first, so the count is never behind a thread's work.
        self.inner.stats.spawned.fetch_add(1, Relaxed);
        match spawn(&name, self.inner.stack, move || {
            let job = theirs.lock().unwrap_or_else(|e| e.into_inner()).take();
            drop(theirs);
            if let Some(job) = job {
                inner.serve(job);
            }
        }) {
            Ok(handle) => {
                drop(handle);
                Ok(())
            }
            Err(e) => {
                self.inner.stats.spawned.fetch_sub(1, Relaxed);
                let job = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
                Err((e, job.expect("a refused spawn leaves its job")))
            }
        }
    }

    /// Makes every parked thread exit, and threads that finish later exit
    /// instead of parking.
    pub fn shutdown(&self) {
        self.inner.stopping.store(true, Relaxed);
        let parked = std::mem::take(&mut *self.inner.lock());
        self.inner
            .stats
            .parked
            .fetch_sub(parked.len() as u64, Relaxed);
        // An empty hand-off ends each parked thread's wait.
        for (_, handoff) in parked {
            handoff.give(None);
        }
    }
}

/// How a job reaches one parked thread: a slot and a wake-up. A parked
/// thread sleeps in the kernel (`park`); a channel's receive would first
/// spin and `sched_yield` several times, which on one core under a
/// connection storm was 13% of the server's time (`perf`, `connect`).
struct Handoff {
    /// `Some(job)`: run it; `Some(None)`: exit.
    next: Mutex<Option<Option<Job>>>,
    thread: Thread,
}

impl Handoff {
    /// Hands `job` (or, with `None`, the order to exit) to the thread.
    fn give(&self, job: Option<Job>) {
        *self.next.lock().unwrap_or_else(|e| e.into_inner()) = Some(job);
        self.thread.unpark();
    }

    /// What was handed over, if anything yet.
    fn take(&self) -> Option<Option<Job>> {
        self.next.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl CacheInner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, Arc<Handoff>)>> {
        self.parked.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The life of a cached thread: run a job, park, run the next.
    fn serve(self: Arc<Self>, first: Job) {
        let id = self.next_id.fetch_add(1, Relaxed);
        let handoff = Arc::new(Handoff {
            next: Mutex::new(None),
            thread: std::thread::current(),
        });
        let parked_name = CString::new(PARKED_NAME).expect("no NUL");
        let mut job = first;
        loop {
            job();
            match self.park(id, &handoff, &parked_name) {
                Some(next) => job = next,
                None => return,
            }
        }
    }

    /// Parks until a job comes; `None` when this thread should exit.
    fn park(&self, id: u64, handoff: &Arc<Handoff>, name: &CStr) -> Option<Job> {
        {
            let mut parked = self.lock();
            if self.stopping.load(Relaxed) || parked.len() >= self.bound {
                self.stats.trimmed.fetch_add(1, Relaxed);
                return None;
            }
            parked.push((id, handoff.clone()));
            self.stats.parked.fetch_add(1, Relaxed);
        }
        rename(name);
        let mut deadline = Some(Instant::now() + self.idle);
        let job = loop {
            if let Some(next) = handoff.take() {
                break next;
            }
            let Some(at) = deadline else {
                std::thread::park();
                continue;
            };
            let now = Instant::now();
            if now < at {
                std::thread::park_timeout(at - now);
                continue;
            }
            let mut parked = self.lock();
            if let Some(at) = parked.iter().position(|(p, _)| *p == id) {
                parked.remove(at);
                self.stats.parked.fetch_sub(1, Relaxed);
                self.stats.trimmed.fetch_add(1, Relaxed);
                break None;
            }
            // Taken by `run` (or shutdown) as the time ran out: what it
            // hands over is on its way.
            deadline = None;
        };
        if job.is_some() {
            rename(&self.name);
        }
        job
    }
}

extern "C" fn entry(arg: *mut c_void) -> *mut c_void {
    // SAFETY: `spawn` passes a `Box<Main>` leaked for this thread alone.
    let main = unsafe { Box::from_raw(arg.cast::<Main>()) };
    // `main` catches the closure's panic; nothing else in it can unwind.
    main();
    std::ptr::null_mut()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_value_and_keeps_the_name() {
        let handle = spawn("worker-7", 64 * 1024, || (current_name(), 6 * 7)).unwrap();
        assert_eq!(handle.join().unwrap(), (Some("worker-7".to_string()), 42));
    }

    #[test]
    fn threads_run_under_sched_batch() {
        // SAFETY: reads the calling thread's policy.
        let policy = spawn("batch", 64 * 1024, || unsafe {
            libc::sched_getscheduler(0)
        });
        assert_eq!(policy.unwrap().join().unwrap(), libc::SCHED_BATCH);
    }

    #[test]
    fn a_panic_comes_back_from_join() {
        let handle = spawn("doomed", 64 * 1024, || -> u8 { panic!("on purpose") }).unwrap();
        let panic = handle.join().unwrap_err();
        assert_eq!(panic.downcast_ref::<&str>(), Some(&"on purpose"));
    }

    fn cache(bound: usize, idle: Duration) -> (Cache, Arc<CacheStats>) {
        let stats = Arc::new(CacheStats::default());
        let cache = Cache::new("cached", 64 * 1024, bound, idle, stats.clone());
        (cache, stats)
    }

    /// Runs a job on `cache` and waits for it to finish on some thread;
    /// returns that thread's kernel id.
    fn run_one(cache: &Cache) -> i64 {
        let (tx, rx) = crossbeam_channel::bounded(1);
        cache
            .run(Box::new(move || {
                // SAFETY: gettid has no preconditions.
                tx.send(unsafe { libc::syscall(libc::SYS_gettid) }).unwrap()
            }))
            .map_err(|(e, _)| e)
            .unwrap();
        rx.recv().unwrap()
    }

    fn wait_parked(stats: &CacheStats, n: u64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while stats.parked.load(Relaxed) != n {
            assert!(std::time::Instant::now() < deadline, "never {n} parked");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn a_finished_thread_serves_the_next_job() {
        let (cache, stats) = cache(4, Duration::from_secs(60));
        let first = run_one(&cache);
        wait_parked(&stats, 1);
        let second = run_one(&cache);
        assert_eq!(first, second, "the parked thread ran the second job");
        assert_eq!(stats.spawned.load(Relaxed), 1);
        assert_eq!(stats.reused.load(Relaxed), 1);
        cache.shutdown();
    }

    #[test]
    fn threads_beyond_the_bound_exit() {
        let (cache, stats) = cache(2, Duration::from_secs(60));
        let (go_tx, go_rx) = crossbeam_channel::bounded::<()>(0);
        for _ in 0..5 {
            let go = go_rx.clone();
            cache
                .run(Box::new(move || {
                    let _ = go.recv();
                }))
                .ok()
                .unwrap();
        }
        drop(go_tx);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while stats.trimmed.load(Relaxed) != 3 {
            assert!(std::time::Instant::now() < deadline, "three never exited");
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(stats.parked.load(Relaxed), 2);
        assert_eq!(stats.spawned.load(Relaxed), 5);
        cache.shutdown();
        assert_eq!(stats.parked.load(Relaxed), 0);
    }

    #[test]
    fn an_idle_thread_exits() {
        let (cache, stats) = cache(4, Duration::from_millis(50));
        run_one(&cache);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while stats.trimmed.load(Relaxed) != 1 {
            assert!(std::time::Instant::now() < deadline, "never trimmed");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(stats.parked.load(Relaxed), 0);
        run_one(&cache);
        assert_eq!(
            stats.spawned.load(Relaxed),
            2,
            "a new thread after the trim"
        );
    }

    #[test]
    fn a_dropped_handle_detaches_and_the_thread_still_runs() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        drop(spawn("detached", 64 * 1024, move || tx.send(1).unwrap()).unwrap());
        assert_eq!(rx.recv().unwrap(), 1);
    }
}

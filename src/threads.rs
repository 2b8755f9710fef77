//! Spawning the two threads every WebSocket owns (its connection and
//! reader threads) without the per-thread cost std adds. Threads started
//! per command (streams, tailers) or once (the hub's) use `std::thread`.
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
use std::ffi::{c_void, CString};
use std::io;
use std::mem::MaybeUninit;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

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
        // SAFETY: names the calling thread (a prctl, no /proc file).
        unsafe { libc::pthread_setname_np(libc::pthread_self(), kernel_name.as_ptr()) };
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

    #[test]
    fn a_dropped_handle_detaches_and_the_thread_still_runs() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        drop(spawn("detached", 64 * 1024, move || tx.send(1).unwrap()).unwrap());
        assert_eq!(rx.recv().unwrap(), 1);
    }
}

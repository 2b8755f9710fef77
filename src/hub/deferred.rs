//! Deliveries a thread holds until the end of its batch of work: what a
//! connection thread publishes while it handles one read's worth of
//! messages is queued to each member together, once, when the batch ends.
//!
//! A room publishing on a holding thread puts the message in its audience's
//! batch, in `seq` order under its lock like any other delivery, and
//! [`note`]s itself here; [`release`] flushes every room noted, in the order
//! noted. So a publisher that sends faster than the server fans out gets
//! its messages to each member in one write per batch (the batches grow
//! exactly when the server falls behind), and one that it keeps up with
//! waits for nothing: no timer is involved.
//!
//! Whoever flushes a room delivers everything its batch holds, whichever
//! thread put it there, so two publishers in one room keep one order; a
//! thread that does not hold (an HTTP broadcast, the flusher) flushes the
//! batch before its own delivery. What must not wait for the batch's end
//! (a direct message after a room message, a leave, a close) calls
//! [`release`] first.
//!
//! It knows rooms only as [`Flush`]; it must not take a room's lock itself
//! except through [`Flush::flush`], and never while a room's lock is held.

use crate::hub::flusher::Flush;
use std::cell::RefCell;
use std::sync::Arc;

thread_local! {
    /// `Some` while this thread holds deliveries: the rooms to flush.
    static HELD: RefCell<Option<Vec<Arc<dyn Flush>>>> = const { RefCell::new(None) };
}

/// From now until [`release`], deliveries on this thread are held.
pub fn hold() {
    HELD.with(|held| {
        held.borrow_mut().get_or_insert_with(Vec::new);
    });
}

/// Whether this thread holds deliveries; if it does, `room` is noted to be
/// flushed at [`release`] (once, however often it is noted). Called by a
/// room under its own lock: only touches this thread's list.
pub fn note<R: Flush + 'static>(room: &Arc<R>) -> bool {
    HELD.with(|held| {
        let mut held = held.borrow_mut();
        let Some(rooms) = held.as_mut() else {
            return false;
        };
        let ptr = Arc::as_ptr(room) as *const ();
        if !rooms
            .iter()
            .any(|r| std::ptr::eq(Arc::as_ptr(r) as *const (), ptr))
        {
            rooms.push(room.clone());
        }
        true
    })
}

/// Stops holding and flushes every room noted since [`hold`].
pub fn release() {
    let Some(rooms) = HELD.with(|held| held.borrow_mut().take()) else {
        return;
    };
    for room in rooms {
        room.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Debug, Default)]
    struct Counted(AtomicUsize);
    impl Flush for Counted {
        fn flush(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn rooms_noted_while_holding_are_flushed_once_at_release() {
        let a = Arc::new(Counted::default());
        let b = Arc::new(Counted::default());
        assert!(!note(&a), "not holding: deliver now");
        hold();
        assert!(note(&a));
        assert!(note(&b));
        assert!(note(&a));
        assert_eq!(a.0.load(Ordering::SeqCst), 0);
        release();
        assert_eq!(a.0.load(Ordering::SeqCst), 1);
        assert_eq!(b.0.load(Ordering::SeqCst), 1);
        assert!(!note(&a), "released");
        release();
        assert_eq!(a.0.load(Ordering::SeqCst), 1);
    }
}

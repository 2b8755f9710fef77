//! Coalescing of a room's join and leave notices.
//!
//! Forming a room of N members means N²/2 notices. Queued one by one, each
//! one wakes its member's connection thread for a single small write, and
//! a 4,000-member room takes minutes. Instead a room collects the notices
//! of a short window (see [`crate::hub::flusher`]; longer in a room whose
//! flushes take long, see [`crate::hub::audience::notice_delay`]) in a
//! [`Batch`] and queues each member *one* frame buffer holding all the
//! notices it should see: the whole batch for members that were there
//! before it started (one shared `Arc`), the part after its own join for a
//! member that joined during the window (a copy, at most [`CAP`] notices
//! long). Under TLS that buffer is sealed as one record (up to 16 KiB).
//!
//! Whatever the room queues later (a message, a broadcast) either joins the
//! batch (a busy large room's messages, see [`crate::hub::room`]) or
//! flushes it first, so notices and messages keep their order.

use std::sync::Arc;

/// A batch is flushed at once when it reaches this many notices; this
/// bounds the copies made for members that joined during the window.
pub const CAP: usize = 128;

/// The notices of one window, in order, in both dialects.
#[derive(Debug, Default)]
pub struct Batch {
    json: Vec<Arc<[u8]>>,
    text: Vec<Arc<[u8]>>,
}

/// The frames of one flush: both dialects, all notices concatenated.
#[derive(Debug)]
pub struct Flush<'b> {
    batch: &'b Batch,
    json: Option<Arc<[u8]>>,
    text: Option<Arc<[u8]>>,
}

impl Batch {
    /// Appends a notice; returns its index.
    pub fn push(&mut self, json: Arc<[u8]>, text: Arc<[u8]>) -> usize {
        self.json.push(json);
        self.text.push(text);
        self.json.len() - 1
    }

    /// Notices waiting.
    pub fn len(&self) -> usize {
        self.json.len()
    }

    /// Whether no notice waits.
    pub fn is_empty(&self) -> bool {
        self.json.is_empty()
    }

    /// Forgets every notice (after a flush).
    pub fn clear(&mut self) {
        self.json.clear();
        self.text.clear();
    }

    /// Starts a flush; [`Flush::frames`] then gives each member its buffer.
    pub fn flush(&self) -> Flush<'_> {
        Flush {
            batch: self,
            json: None,
            text: None,
        }
    }
}

impl Flush<'_> {
    /// The buffer for a member that should see notices `from..` (in JSON
    /// when `json`), or `None` when there are none for it.
    pub fn frames(&mut self, json: bool, from: usize) -> Option<Arc<[u8]>> {
        let (notices, whole) = if json {
            (&self.batch.json, &mut self.json)
        } else {
            (&self.batch.text, &mut self.text)
        };
        if from >= notices.len() {
            return None;
        }
        let frames = if from > 0 {
            concat(&notices[from..])
        } else {
            whole.get_or_insert_with(|| concat(notices)).clone()
        };
        // A message only one dialect needed has an empty frame in the other.
        (!frames.is_empty()).then_some(frames)
    }
}

/// One buffer holding `frames` back to back: encoded frames concatenated
/// are still a valid stream of frames.
fn concat(frames: &[Arc<[u8]>]) -> Arc<[u8]> {
    if frames.len() == 1 {
        return frames[0].clone();
    }
    let mut out = Vec::with_capacity(frames.iter().map(|f| f.len()).sum());
    for f in frames {
        out.extend_from_slice(f);
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(s: &str) -> Arc<[u8]> {
        s.as_bytes().into()
    }

    #[test]
    fn members_get_the_part_of_the_batch_after_they_joined() {
        let mut batch = Batch::default();
        batch.push(f("J1"), f("t1"));
        batch.push(f("J2"), f("t2"));
        batch.push(f("J3"), f("t3"));
        let mut flush = batch.flush();
        let all = flush.frames(true, 0).unwrap();
        assert_eq!(&*all, b"J1J2J3");
        assert!(Arc::ptr_eq(&all, &flush.frames(true, 0).unwrap()), "shared");
        assert_eq!(&*flush.frames(false, 1).unwrap(), b"t2t3");
        assert_eq!(&*flush.frames(false, 2).unwrap(), b"t3");
        assert!(flush.frames(false, 3).is_none());
    }
}

//! One tailer per followed file, shared by all its followers: a thread that
//! reads what is appended once and fans each line out, with `tail -F`
//! semantics (partial lines held, truncation and rotation noticed, the name
//! followed rather than the first file).
//!
//! Live fan-out uses the non-blocking [`Outbox::send`]: one frame encoded
//! once and queued to every live follower, so one slow follower never holds
//! up the others or the file; a follower that falls more than its queue
//! limit behind is closed as a slow consumer (1008), like any other. Only a
//! follower's own catch-up (see [`super::catchup`]) waits for its client.
//!
//! Everything below is done under the state lock: advancing `line_end` and
//! sending to the live followers is one step, which is what lets a
//! follower switch from catch-up to live without a gap or a duplicate, and
//! lets `unfollow` guarantee that no data follows `unfollowed`.

use super::lines::{data_json, next_line, notice_json, MAX_LINE};
use super::{epoch_of, identity};
use crate::ws::frame;
use crate::ws::Outbox;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// Bytes read at once.
pub const CHUNK: usize = 256 * 1024;

/// A follower of a tailer.
#[derive(Debug)]
pub struct Follower {
    /// Unique within the tailer.
    pub id: u64,
    /// Its connection.
    pub outbox: Arc<Outbox>,
    /// Receives lines from the tailer (else its catch-up thread sends).
    pub live: bool,
    /// A `truncated` or `rotated` that happened during its catch-up.
    pub reset: Option<&'static str>,
}

/// What the tailer knows of its file.
#[derive(Debug)]
pub struct State {
    /// The open file (the one the name pointed to when last checked).
    pub file: Arc<File>,
    id: (u64, u64),
    /// The file's identity, sent as `epoch`.
    pub epoch: String,
    /// Bytes of the file read so far.
    pub pos: u64,
    /// Offset just past the last complete line.
    pub line_end: u64,
    partial: Vec<u8>,
    /// Who follows.
    pub followers: Vec<Follower>,
}

/// A shared tail of one file.
pub struct Tailer {
    /// The name followers gave.
    pub name: String,
    /// The name of the file it resolves to (symlinks followed), so the
    /// watcher can wake it for events on either.
    pub target: String,
    dir: PathBuf,
    path: PathBuf,
    state: Mutex<State>,
    wake_tx: Sender<()>,
    stop: AtomicBool,
    next_id: AtomicU64,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Tailer {
    /// Opens `path` (`dir/name`, already checked) positioned at its end and
    /// starts the tailer thread, which also checks every `poll`.
    pub fn start(dir: &Path, name: &str, path: PathBuf, poll: Duration) -> io::Result<Arc<Tailer>> {
        let file = super::path::open_checked(dir, &path)?;
        let meta = file.metadata()?;
        let size = meta.len();
        // Hold the partial last line, if any, until its newline arrives.
        let tail = size.min(MAX_LINE as u64);
        let mut buf = vec![0; tail as usize];
        file.read_exact_at(&mut buf, size - tail)?;
        let (line_end, partial) = match buf.iter().rposition(|&b| b == b'\n') {
            Some(i) => (size - tail + i as u64 + 1, buf[i + 1..].to_vec()),
            None if size < MAX_LINE as u64 => (0, buf),
            None => (size, Vec::new()),
        };
        let target = std::fs::canonicalize(&path)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| name.to_string());
        let (wake_tx, wake_rx) = crossbeam_channel::bounded(1);
        let tailer = Arc::new(Tailer {
            name: name.to_string(),
            target,
            dir: dir.to_path_buf(),
            path,
            state: Mutex::new(State {
                file: Arc::new(file),
                id: identity(&meta),
                epoch: epoch_of(&meta),
                pos: size,
                line_end,
                partial,
                followers: Vec::new(),
            }),
            wake_tx,
            stop: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            thread: Mutex::new(None),
        });
        let me = tailer.clone();
        let handle = std::thread::Builder::new()
            .name("tailer".into())
            .stack_size(128 * 1024)
            .spawn(move || me.run(&wake_rx, poll))?;
        *tailer.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        Ok(tailer)
    }

    /// The state, locked.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh follower id.
    pub fn next_follower_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Asks the thread to look at the file now (coalesced).
    pub fn wake(&self) {
        let _ = self.wake_tx.try_send(());
    }

    /// Whether the tailer has been told to stop.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Stops the thread and waits for it.
    pub fn stop_and_join(&self) {
        self.stop.store(true, Ordering::Release);
        self.wake();
        let handle = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(handle) = handle {
            if handle.join().is_err() {
                log::error!("the tailer of {} panicked", self.name);
            }
        }
    }

    fn run(&self, wake: &Receiver<()>, poll: Duration) {
        loop {
            match wake.recv_timeout(poll) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            if self.stopping() {
                return;
            }
            if let Err(e) = self.step() {
                log::debug!("tail of {}: {e}", self.name);
            }
        }
    }

    /// Reads what is new; notices truncation and rotation. The tailer
    /// thread calls it when woken; `follow` too, so that "the end" a new
    /// follower starts at is the file's end now, not at the last wake-up.
    pub fn step(&self) -> io::Result<()> {
        let mut st = self.lock();
        let replaced = match std::fs::metadata(&self.path) {
            Ok(m) => identity(&m) != st.id,
            // Gone (mid-rotation): read the rest of the old file and wait
            // for the name to come back.
            Err(_) => false,
        };
        if replaced {
            // First the lines written to the old file before it was moved.
            self.read_new(&mut st)?;
            // Not (or no longer) a file we may follow: keep waiting.
            let file = super::path::open_checked(&self.dir, &self.path)?;
            // The old file's unfinished last line will never be finished.
            if !st.partial.is_empty() {
                let offset = st.line_end + st.partial.len() as u64;
                self.fan_out(&st, &st.partial, offset);
            }
            let meta = file.metadata()?;
            st.file = Arc::new(file);
            st.id = identity(&meta);
            st.epoch = epoch_of(&meta);
            self.reset(&mut st, "rotated");
        } else if st.file.metadata()?.len() < st.pos {
            self.reset(&mut st, "truncated");
        }
        self.read_new(&mut st)
    }

    /// Starts over at offset 0 and tells every follower why.
    fn reset(&self, st: &mut State, kind: &'static str) {
        log::debug!("tail of {}: {kind}", self.name);
        st.pos = 0;
        st.line_end = 0;
        st.partial.clear();
        let notice: Arc<[u8]> = frame::text(&notice_json(kind, &self.name)).into();
        for f in &mut st.followers {
            if f.live {
                f.outbox.send(notice.clone());
            } else {
                f.reset = Some(kind);
            }
        }
    }

    /// Queues one line to every live follower, encoded once.
    fn fan_out(&self, st: &State, line: &[u8], offset: u64) {
        let encoded: Arc<[u8]> =
            frame::text(&data_json(&self.name, line, offset, &st.epoch)).into();
        for f in st.followers.iter().filter(|f| f.live) {
            f.outbox.send(encoded.clone());
        }
    }

    fn read_new(&self, st: &mut State) -> io::Result<()> {
        let size = st.file.metadata()?.len();
        let mut buf = vec![0; CHUNK.min(size.saturating_sub(st.pos) as usize)];
        while st.pos < size {
            let want = ((size - st.pos) as usize).min(CHUNK);
            let n = st.file.read_at(&mut buf[..want], st.pos)?;
            if n == 0 {
                break;
            }
            st.pos += n as u64;
            st.partial.extend_from_slice(&buf[..n]);
            let mut used = 0;
            while let Some((body, len)) = next_line(&st.partial[used..]) {
                let offset = st.line_end + len as u64;
                self.fan_out(st, &st.partial[used..used + body], offset);
                st.line_end = offset;
                used += len;
            }
            st.partial.drain(..used);
        }
        // Keep no more than a line's worth of buffer between reads.
        if st.partial.capacity() > 2 * MAX_LINE {
            st.partial.shrink_to(MAX_LINE);
        }
        Ok(())
    }
}

//! `tail -F` following of files in the tail directory.
//!
//! [`Tails`] is the server-wide registry: one [`tailer::Tailer`] (and
//! thread) per followed file, shared by every follower of it, created by the
//! first `follow` and stopped by the last `unfollow`. One inotify watch on
//! the directory ([`watch`]) wakes the tailers; where inotify is missing
//! they poll. [`Follows`] is one connection's set of follows. Which names
//! may be followed is decided in [`path`] alone.

mod catchup;
mod follows;
mod lines;
mod path;
mod tailer;
mod watch;

pub use follows::Follows;

use crate::wire::{ErrorCode, WireError};
use crate::ws::Outbox;
use serde_json::json;
use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use tailer::{Follower, Tailer};

/// How often a tailer looks at its file anyway when inotify wakes it: a
/// safety net for events inotify cannot see (network file systems).
const SAFETY_POLL: Duration = Duration::from_secs(10);
/// How often a tailer polls when inotify is not available.
const FALLBACK_POLL: Duration = Duration::from_millis(250);

/// A file's identity: device and inode.
pub fn identity(meta: &Metadata) -> (u64, u64) {
    (meta.dev(), meta.ino())
}

/// A file's identity as an `epoch` string, `dev:inode`. It changes when the
/// file is replaced; an inode number freed by deleting a file may be reused
/// by a later one, so it names a file, not all of history.
pub fn epoch_of(meta: &Metadata) -> String {
    let (dev, ino) = identity(meta);
    format!("{dev}:{ino}")
}

/// Where a follower starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// After the last complete line (the default).
    End,
    /// At the beginning of the file.
    Start,
    /// After this byte offset.
    Offset(u64),
}

/// The tailers by followed name; the watcher wakes them by name.
#[derive(Default)]
pub struct Registry {
    tailers: Mutex<HashMap<String, Arc<Tailer>>>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Tailer>>> {
        self.tailers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes the tailers of the file named `name` in the directory.
    pub fn wake(&self, name: &str) {
        for t in self.lock().values() {
            if t.name == name || t.target == name {
                t.wake();
            }
        }
    }

    /// Wakes every tailer (after the watch lost events).
    pub fn wake_all(&self) {
        for t in self.lock().values() {
            t.wake();
        }
    }
}

/// One follower's hold on a tailer.
pub struct FollowHandle {
    tailer: Arc<Tailer>,
    id: u64,
    stop: Arc<AtomicBool>,
    catchup: Option<JoinHandle<()>>,
}

/// The shared tails of followed files.
pub struct Tails {
    dir: Option<PathBuf>,
    registry: Arc<Registry>,
    poll: Duration,
    watcher: Mutex<Option<watch::Watcher>>,
}

impl Tails {
    /// The tails of files in `dir` (none: following is off), watched with
    /// inotify when possible.
    pub fn new(dir: Option<PathBuf>) -> Tails {
        let registry = Arc::new(Registry::default());
        let mut poll = FALLBACK_POLL;
        let mut watcher = None;
        if let Some(dir) = &dir {
            match watch::Watcher::start(dir, registry.clone()) {
                Ok(w) => {
                    watcher = Some(w);
                    poll = SAFETY_POLL;
                }
                Err(e) => log::warn!(
                    "no inotify watch on {} ({e}); followed files are polled every {} ms",
                    dir.display(),
                    FALLBACK_POLL.as_millis()
                ),
            }
        }
        Tails {
            dir,
            registry,
            poll,
            watcher: Mutex::new(watcher),
        }
    }

    /// The files `follow` may name, sorted by name, with their sizes:
    /// every regular file in the tail directory (symlinks included when
    /// they resolve to one inside it) whose name is a valid name.
    pub fn files(&self) -> Vec<(String, u64)> {
        let mut files = Vec::new();
        let Some(dir) = &self.dir else {
            return files;
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return files;
        };
        for entry in entries.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if path::resolve(Some(dir), &name).is_err() {
                continue;
            }
            if let Ok(meta) = std::fs::metadata(entry.path()) {
                files.push((name, meta.len()));
            }
        }
        files.sort();
        files
    }

    /// Follows `name` for the client behind `outbox`: queues `following`
    /// (and `rotated` or `truncated` when the offset cannot be trusted),
    /// then the lines from the start point, then live lines.
    pub fn follow(
        &self,
        name: &str,
        from: StartAt,
        epoch: Option<&str>,
        outbox: &Arc<Outbox>,
    ) -> Result<FollowHandle, WireError> {
        let path = path::resolve(self.dir.as_deref(), name)?;
        let Some(dir) = self.dir.as_deref() else {
            return Err(WireError::new(ErrorCode::BadFile, "following is off"));
        };
        let mut tailers = self.registry.lock();
        let tailer = match tailers.get(name) {
            Some(t) if !t.stopping() => t.clone(),
            _ => {
                let t = Tailer::start(dir, name, path, self.poll).map_err(|e| {
                    // It changed since `resolve` looked: gone, or swapped
                    // for something that may not be followed.
                    // Or the OS refused the tailer's thread (EAGAIN).
                    let code = match e.kind() {
                        std::io::ErrorKind::NotFound => ErrorCode::NotFound,
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::OutOfMemory => {
                            ErrorCode::Unavailable
                        }
                        _ => ErrorCode::BadFile,
                    };
                    WireError::new(code, format!("cannot open {name:?}: {e}"))
                })?;
                tailers.insert(name.to_string(), t.clone());
                t
            }
        };
        if let Err(e) = tailer.step() {
            log::debug!("tail of {name}: {e}");
        }
        let id = tailer.next_follower_id();
        let start = {
            let mut st = tailer.lock();
            let stale = matches!(from, StartAt::Offset(_)) && epoch.is_some_and(|e| e != st.epoch);
            let (start, notice) = match from {
                StartAt::End => (st.line_end, None),
                StartAt::Start => (0, None),
                StartAt::Offset(_) if stale => (0, Some("rotated")),
                StartAt::Offset(n) if n > st.pos => (0, Some("truncated")),
                StartAt::Offset(n) => (n.min(st.line_end), None),
            };
            let following = json!({
                "type": "following", "file": name, "offset": start, "epoch": st.epoch,
            });
            outbox.send_text(&following.to_string());
            if let Some(kind) = notice {
                outbox.send_text(&lines::notice_json(kind, name));
            }
            let live = start >= st.line_end;
            st.followers.push(Follower {
                id,
                outbox: outbox.clone(),
                live,
                reset: None,
            });
            (!live).then_some(start)
        };
        drop(tailers);
        let stop = Arc::new(AtomicBool::new(false));
        let mut handle = FollowHandle {
            tailer: tailer.clone(),
            id,
            stop: stop.clone(),
            catchup: None,
        };
        if let Some(cursor) = start {
            match catchup::spawn(tailer, id, cursor, outbox.clone(), stop) {
                Ok(thread) => handle.catchup = Some(thread),
                Err(e) => {
                    self.unfollow(handle);
                    return Err(WireError::new(
                        ErrorCode::Unavailable,
                        format!("cannot follow {name:?} now: {e}"),
                    ));
                }
            }
        }
        Ok(handle)
    }

    /// Ends a follow: after this returns nothing more of it is queued.
    /// The last follower of a file stops its tailer.
    pub fn unfollow(&self, mut handle: FollowHandle) {
        handle.stop.store(true, Ordering::Release);
        if let Some(thread) = handle.catchup.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
        let tailer = handle.tailer;
        let last = {
            let mut tailers = self.registry.lock();
            let mut st = tailer.lock();
            st.followers.retain(|f| f.id != handle.id);
            let last = st.followers.is_empty();
            if last
                && tailers
                    .get(&tailer.name)
                    .is_some_and(|t| Arc::ptr_eq(t, &tailer))
            {
                tailers.remove(&tailer.name);
            }
            last
        };
        if last {
            tailer.stop_and_join();
        }
    }

    /// The `strand_tailers` and `strand_followers` gauges, as Prometheus text.
    pub fn metrics_text(&self) -> String {
        let tailers = self.registry.lock();
        let followers: usize = tailers.values().map(|t| t.lock().followers.len()).sum();
        format!(
            "# HELP strand_tailers Files followed now (one tailer thread each).\n\
             # TYPE strand_tailers gauge\nstrand_tailers {}\n\
             # HELP strand_followers Follows of files now.\n\
             # TYPE strand_followers gauge\nstrand_followers {followers}\n",
            tailers.len()
        )
    }

    /// Stops the watch and every tailer thread (server shutdown).
    pub fn shutdown(&self) {
        if let Some(mut w) = self
            .watcher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            w.stop();
        }
        let tailers: Vec<_> = self.registry.lock().drain().map(|(_, t)| t).collect();
        for t in tailers {
            t.stop_and_join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::ws::outbox::Outgoing;
    use std::io::Write;

    fn next_text(rx: &crossbeam_channel::Receiver<Outgoing>) -> String {
        match rx.recv_timeout(Duration::from_secs(5)) {
            // Short server frames: a two-byte header, then the text.
            Ok(Outgoing::Frame(f)) => String::from_utf8(f[2..].to_vec()).unwrap(),
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    #[test]
    fn without_inotify_the_tailer_polls() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().canonicalize().unwrap();
        let log = dir.join("a.log");
        std::fs::write(&log, "old\n").unwrap();
        let tails = Tails {
            dir: Some(dir),
            registry: Arc::default(),
            poll: Duration::from_millis(20),
            watcher: Mutex::new(None),
        };
        let (outbox, rx) = Outbox::new(1, 1 << 20, Arc::new(Metrics::default()));
        let handle = tails.follow("a.log", StartAt::End, None, &outbox).unwrap();
        assert!(next_text(&rx).contains(r#""type":"following""#));
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(b"new\n").unwrap();
        let data = next_text(&rx);
        assert!(data.contains(r#""payload":"new""#), "{data}");
        assert!(data.contains(r#""offset":8"#), "{data}");
        tails.unfollow(handle);
        assert!(tails.registry.lock().is_empty());
    }
}

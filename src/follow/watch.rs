//! The inotify watch on the tail directory: one thread that blocks on the
//! inotify descriptor and wakes the tailer of each file an event names, so
//! an appended line reaches followers within milliseconds and an idle file
//! costs nothing. Watching the directory, not the files, also sees a name
//! come back after a rotation (rename + create).

use super::Registry;
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};
use std::io::ErrorKind;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

/// A running watch; [`Watcher::stop`] ends its thread.
pub struct Watcher {
    watches: Watches,
    wd: WatchDescriptor,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    /// Watches `dir`, waking tailers in `registry`.
    pub fn start(dir: &Path, registry: Arc<Registry>) -> std::io::Result<Watcher> {
        let mut inotify = Inotify::init()?;
        let mask = WatchMask::MODIFY
            | WatchMask::CREATE
            | WatchMask::MOVED_TO
            | WatchMask::MOVED_FROM
            | WatchMask::DELETE
            | WatchMask::CLOSE_WRITE
            | WatchMask::ATTRIB;
        let mut watches = inotify.watches();
        let wd = watches.add(dir, mask)?;
        let thread = std::thread::Builder::new()
            .name("tail-watch".into())
            .stack_size(128 * 1024)
            .spawn(move || run(&mut inotify, &registry))?;
        Ok(Watcher {
            watches,
            wd,
            thread: Some(thread),
        })
    }

    /// Ends the thread: removing the watch queues `IN_IGNORED`, which wakes
    /// its blocking read.
    pub fn stop(&mut self) {
        let _ = self.watches.remove(self.wd.clone());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(inotify: &mut Inotify, registry: &Registry) {
    let mut buf = [0u8; 4096];
    loop {
        let events = match inotify.read_events_blocking(&mut buf) {
            Ok(events) => events,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                log::warn!("inotify read failed, falling back to polling: {e}");
                return;
            }
        };
        for event in events {
            if event.mask.contains(EventMask::IGNORED) {
                return;
            }
            if event.mask.contains(EventMask::Q_OVERFLOW) {
                registry.wake_all();
            } else if let Some(name) = event.name {
                registry.wake(&name.to_string_lossy());
            }
        }
    }
}

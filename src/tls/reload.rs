//! Reloading `--tls-cert`/`--tls-key` without a restart.
//!
//! A [`Reload`] loads the pair from its files and, when it loads, matches
//! and differs from the one serving, installs it in [`Certs`]: new
//! handshakes get it, open connections keep the session they have. A pair
//! that does not load or whose key is not the certificate's is logged and
//! the old pair keeps serving.
//!
//! Triggers: SIGHUP (the binary's signal thread calls [`Reload::now`]) and
//! a [`Watcher`]: one thread blocked on inotify over the files' directories
//! (and those of their targets when they are symlinks). Watching
//! directories, not files, sees the ways certificates are replaced in
//! practice: certbot swaps a symlink by rename, a Kubernetes secret renames
//! its `..data` link, an editor writes a new file and renames it over the
//! old. Events come in bursts (a certificate, then its key), so the watcher
//! waits for the burst to settle before it loads.
//!
//! It must not decide anything about sessions or sockets.

use super::certs::{load_pair, Certs};
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the watcher waits after an event for the rest of its burst.
const SETTLE: Duration = Duration::from_millis(200);

/// The files of the serving pair, and where a reload installs them.
#[derive(Clone)]
pub struct Reload {
    certs: Arc<Certs>,
    cert: PathBuf,
    key: PathBuf,
    /// One reload at a time (the watcher's and SIGHUP's).
    busy: Arc<Mutex<()>>,
}

impl Reload {
    /// Reloads `cert` and `key` into `certs`.
    pub fn new(certs: Arc<Certs>, cert: PathBuf, key: PathBuf) -> Reload {
        Reload {
            certs,
            cert,
            key,
            busy: Arc::default(),
        }
    }

    /// Loads the files and installs the pair if it loads, matches and is
    /// new; `why` names the trigger in the log. Returns whether a new pair
    /// now serves.
    pub fn now(&self, why: &str) -> bool {
        let _one = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        let pair = match load_pair(&self.cert, &self.key) {
            Ok(pair) => pair,
            Err(e) => {
                log::warn!("TLS reload ({why}): {e}; the current certificate keeps serving");
                return false;
            }
        };
        if self.certs.current().is_some_and(|c| c.cert == pair.cert) {
            log::debug!("TLS reload ({why}): the certificate did not change");
            return false;
        }
        let expires = pair
            .cert
            .first()
            .and_then(|leaf| super::validity::not_after(leaf))
            .map_or(String::new(), |at| format!(", notAfter {at} (Unix time)"));
        self.certs.install(pair);
        log::info!(
            "TLS reload ({why}): serving the new certificate from {}{expires}",
            self.cert.display()
        );
        true
    }
}

/// The inotify thread of a [`Reload`]; [`Watcher::stop`] ends it.
pub struct Watcher {
    watches: Watches,
    wds: Vec<WatchDescriptor>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    /// Watches the directories of `reload`'s files.
    pub fn start(reload: Reload) -> std::io::Result<Watcher> {
        let mut inotify = Inotify::init()?;
        let mask = WatchMask::CLOSE_WRITE
            | WatchMask::CREATE
            | WatchMask::MOVED_TO
            | WatchMask::DELETE
            | WatchMask::ATTRIB;
        let mut watches = inotify.watches();
        let mut wds = Vec::new();
        for dir in directories(&[&reload.cert, &reload.key]) {
            match watches.add(&dir, mask) {
                Ok(wd) => wds.push(wd),
                Err(e) => log::warn!(
                    "cannot watch {} for new certificates ({e}); SIGHUP still reloads",
                    dir.display()
                ),
            }
        }
        let thread = std::thread::Builder::new()
            .name("tls-watch".into())
            .stack_size(128 * 1024)
            .spawn(move || run(&mut inotify, &reload))?;
        Ok(Watcher {
            watches,
            wds,
            thread: Some(thread),
        })
    }

    /// Ends the thread: removing the watches queues `IN_IGNORED`, which
    /// wakes its blocking read.
    pub fn stop(&mut self) {
        for wd in self.wds.drain(..) {
            let _ = self.watches.remove(wd);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The directories holding `files`, and those of their targets when they
/// are symlinks, each once.
fn directories(files: &[&Path]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for file in files {
        let candidates = [Some(file.to_path_buf()), std::fs::canonicalize(file).ok()];
        for path in candidates.into_iter().flatten() {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            };
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
    }
    dirs
}

fn run(inotify: &mut Inotify, reload: &Reload) {
    let mut buf = [0u8; 4096];
    let mut watching = true;
    while watching {
        match inotify.read_events_blocking(&mut buf) {
            Ok(events) => {
                for event in events {
                    if event.mask.contains(EventMask::IGNORED) {
                        watching = false;
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                log::warn!("the certificate watch failed ({e}); SIGHUP still reloads");
                return;
            }
        }
        if !watching {
            return;
        }
        // Let the burst (a certificate, then its key) settle, and take the
        // rest of its events, before one reload.
        std::thread::sleep(SETTLE);
        while let Ok(events) = inotify.read_events(&mut buf) {
            if events
                .into_iter()
                .any(|e| e.mask.contains(EventMask::IGNORED))
            {
                return;
            }
        }
        reload.now("the files changed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair_pem() -> (String, String) {
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        (generated.cert.pem(), generated.signing_key.serialize_pem())
    }

    #[test]
    fn a_new_pair_is_installed_and_a_bad_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let (cert_path, key_path) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        let (cert, key) = pair_pem();
        std::fs::write(&cert_path, &cert).unwrap();
        std::fs::write(&key_path, &key).unwrap();
        let first = load_pair(&cert_path, &key_path).unwrap();
        let certs = Certs::with(first.clone());
        let reload = Reload::new(certs.clone(), cert_path.clone(), key_path.clone());
        assert!(!reload.now("test"), "the same pair is not reinstalled");
        let (cert2, key2) = pair_pem();
        std::fs::write(&cert_path, &cert2).unwrap();
        assert!(!reload.now("test"), "a certificate without its key");
        assert_eq!(certs.current().unwrap().cert, first.cert);
        std::fs::write(&key_path, &key2).unwrap();
        assert!(reload.now("test"));
        assert_ne!(certs.current().unwrap().cert, first.cert);
    }

    #[test]
    fn symlinked_files_add_their_targets_directories() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("archive")).unwrap();
        std::fs::write(dir.path().join("archive/c1.pem"), "x").unwrap();
        std::os::unix::fs::symlink("archive/c1.pem", dir.path().join("c.pem")).unwrap();
        let dirs = directories(&[&dir.path().join("c.pem"), &dir.path().join("k.pem")]);
        let root = dir.path().canonicalize().unwrap();
        assert!(dirs.contains(&dir.path().to_path_buf()));
        assert!(dirs.contains(&root.join("archive")), "{dirs:?}");
    }
}

//! The live state of a run: counters the clients bump (connected, messages,
//! errors by kind) and the progress line that shows them on stderr, in
//! place a few times a second on a terminal, else one line a second.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Counters shared by every client of a run.
pub struct Live {
    started: Instant,
    /// Clients currently connected.
    pub connected: AtomicU64,
    /// How many clients the run has.
    pub clients: u64,
    /// Messages exchanged (sent or received, as the scenario counts them).
    pub messages: AtomicU64,
    errors: AtomicU64,
    kinds: Mutex<BTreeMap<String, u64>>,
    /// The first body of a refused upgrade, per kind (`http 401`).
    samples: Mutex<BTreeMap<String, String>>,
}

impl Live {
    /// Counters for a run of `clients` clients.
    pub fn new(clients: u64) -> Arc<Live> {
        Arc::new(Live {
            started: Instant::now(),
            connected: AtomicU64::new(0),
            clients,
            messages: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            kinds: Mutex::new(BTreeMap::new()),
            samples: Mutex::new(BTreeMap::new()),
        })
    }

    /// Counts one client error of `kind` (e.g. `refused`, `closed`).
    pub fn error(&self, kind: impl Into<String>) {
        self.errors.fetch_add(1, Relaxed);
        let mut kinds = self.kinds.lock().unwrap_or_else(|e| e.into_inner());
        *kinds.entry(kind.into()).or_insert(0) += 1;
    }

    /// Counts a failed connection under its kind, keeping the first body
    /// of each kind of refused upgrade as its sample.
    pub fn connect_error(&self, e: &crate::bench::client::ConnectError) {
        if let Some(body) = &e.body {
            let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
            samples
                .entry(e.kind.clone())
                .or_insert_with(|| body.clone());
        }
        self.error(e.kind.clone());
    }

    /// One body per kind of refused upgrade.
    pub fn error_samples(&self) -> BTreeMap<String, String> {
        self.samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Errors so far.
    pub fn errors(&self) -> u64 {
        self.errors.load(Relaxed)
    }

    /// Errors so far by kind.
    pub fn error_kinds(&self) -> BTreeMap<String, u64> {
        self.kinds.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Adds `n` messages.
    pub fn add_messages(&self, n: u64) {
        self.messages.fetch_add(n, Relaxed);
    }

    fn line(&self) -> String {
        format!(
            "[{:6.1}s] connected {}/{}  messages {}  errors {}",
            self.started.elapsed().as_secs_f64(),
            self.connected.load(Relaxed),
            self.clients,
            self.messages.load(Relaxed),
            self.errors()
        )
    }
}

/// The progress line's thread; stopped (and its line ended) when dropped.
pub struct Progress {
    stop: Option<crossbeam_channel::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts showing `live` on stderr, unless `quiet`.
    pub fn start(live: &Arc<Live>, quiet: bool) -> Progress {
        if quiet {
            return Progress {
                stop: None,
                thread: None,
            };
        }
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let live = live.clone();
        let tty = std::io::stderr().is_terminal();
        let every = if tty {
            Duration::from_millis(250)
        } else {
            Duration::from_secs(1)
        };
        let thread = std::thread::Builder::new()
            .name("bench-progress".into())
            .spawn(move || {
                let show = |end: &str| {
                    let mut err = std::io::stderr().lock();
                    let _ = if tty {
                        write!(err, "\r{}\x1b[K{end}", live.line())
                    } else {
                        writeln!(err, "{}", live.line())
                    };
                };
                while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(every)
                {
                    show("");
                }
                show("\n");
            })
            .ok();
        Progress {
            stop: Some(stop),
            thread,
        }
    }

    /// Prints a note on its own line of stderr (between progress lines),
    /// even when quiet: scripts wait for them (e.g. `all 5000 connected`).
    pub fn note(&self, text: &str) {
        let mut err = std::io::stderr().lock();
        let _ = if err.is_terminal() {
            writeln!(err, "\r{text}\x1b[K")
        } else {
            writeln!(err, "{text}")
        };
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

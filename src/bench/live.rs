//! The live state of a run: counters the clients bump (connected, messages,
//! errors by kind), the progress line that shows them on stderr, in place
//! a few times a second on a terminal, else one line a second, and the
//! counters' values at the end of each second (the run's time series).

use crate::bench::stats::now_us;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Counters shared by every client of a run.
pub struct Live {
    started: Instant,
    /// When the run started ([`now_us`]).
    pub started_us: u64,
    /// Per second of [`now_us`]: the totals at its end (messages, errors,
    /// connected).
    seconds: Mutex<Vec<(u32, u64, u64, u64)>>,
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
            started_us: now_us(),
            seconds: Mutex::new(Vec::new()),
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
        self.refused_body(&e.kind, e.body.as_deref());
        self.error(e.kind.clone());
    }

    /// Keeps `body` as the sample of errors counted under `kind`, unless
    /// that kind has one already.
    pub fn refused_body(&self, kind: &str, body: Option<&str>) {
        if let Some(body) = body {
            let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
            if !samples.contains_key(kind) {
                samples.insert(kind.to_string(), body.to_string());
            }
        }
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

    /// Notes the totals at the end of `second` (of [`now_us`]).
    fn end_of_second(&self, second: u32) {
        let totals = (
            second,
            self.messages.load(Relaxed),
            self.errors(),
            self.connected.load(Relaxed),
        );
        self.seconds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(totals);
    }

    /// One entry per second of the run: `t` (seconds since its start),
    /// `messages` and `errors` in that second, `connections` open at its
    /// end, and `p99_us` from `p99` (by second of [`now_us`]) or null.
    pub fn series(&self, p99: &BTreeMap<u32, u64>) -> Vec<Value> {
        let first = (self.started_us / 1_000_000) as u32;
        let seconds = self.seconds.lock().unwrap_or_else(|e| e.into_inner());
        let (mut messages, mut errors) = (0, 0);
        seconds
            .iter()
            .map(|&(second, m, e, connected)| {
                let entry = json!({
                    "t": second.saturating_sub(first),
                    "messages": m.saturating_sub(messages),
                    "errors": e.saturating_sub(errors),
                    "connections": connected,
                    "p99_us": p99.get(&second),
                });
                (messages, errors) = (m, e);
                entry
            })
            .collect()
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

/// The progress line's thread, which also notes the totals at the end of
/// every second; stopped (its line ended, the last second noted) when
/// dropped.
pub struct Progress {
    stop: Option<crossbeam_channel::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts noting `live`'s seconds, and showing it on stderr unless
    /// `quiet`.
    pub fn start(live: &Arc<Live>, quiet: bool) -> Progress {
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
                    if quiet {
                        return;
                    }
                    let mut err = std::io::stderr().lock();
                    let _ = if tty {
                        write!(err, "\r{}\x1b[K{end}", live.line())
                    } else {
                        writeln!(err, "{}", live.line())
                    };
                };
                let mut second = now_us() / 1_000_000;
                let mut next_line = Instant::now() + every;
                loop {
                    let boundary =
                        Duration::from_micros(((second + 1) * 1_000_000).saturating_sub(now_us()));
                    let line = next_line.saturating_duration_since(Instant::now());
                    match stopped.recv_timeout(boundary.min(line)) {
                        Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                        _ => break,
                    }
                    while second < now_us() / 1_000_000 {
                        live.end_of_second(second as u32);
                        second += 1;
                    }
                    if Instant::now() >= next_line {
                        show("");
                        next_line += every;
                    }
                }
                live.end_of_second(second as u32);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_series_has_a_delta_per_second() {
        let live = Live::new(2);
        let first = (live.started_us / 1_000_000) as u32;
        live.add_messages(5);
        live.connected.fetch_add(2, Relaxed);
        live.end_of_second(first);
        live.add_messages(3);
        live.error("x");
        live.end_of_second(first + 1);
        let p99 = BTreeMap::from([(first + 1, 1500)]);
        assert_eq!(
            live.series(&p99),
            vec![
                json!({"t": 0, "messages": 5, "errors": 0, "connections": 2, "p99_us": null}),
                json!({"t": 1, "messages": 3, "errors": 1, "connections": 2, "p99_us": 1500}),
            ]
        );
    }

    #[test]
    fn progress_notes_the_last_second_when_stopped() {
        let live = Live::new(1);
        live.add_messages(7);
        drop(Progress::start(&live, true));
        let series = live.series(&BTreeMap::new());
        let total: u64 = series.iter().map(|s| s["messages"].as_u64().unwrap()).sum();
        assert_eq!(total, 7, "{series:?}");
    }
}

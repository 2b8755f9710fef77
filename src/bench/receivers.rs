//! Receivers of a stamped stream (fanout's subscribers, tail's followers):
//! the figures they share, the read loop that fills them, and the report
//! of them.

use crate::bench::client::{error_kind, is_timeout, set_read_timeout, Gate, Ready, Socket};
use crate::bench::echo;
use crate::bench::live::Live;
use crate::bench::report::Report;
use crate::bench::stats::{now_us, Delivery, Latencies, SeqTracker};
use crossbeam_channel::{Receiver, Sender};
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tungstenite::Message;

/// How often a waiting receiver looks at the stop gate.
pub const POLL: Duration = Duration::from_millis(200);
/// Receivers with loss listed one by one in the JSON (the rest are summed).
const LIST_LOSSY: usize = 100;

/// What receivers of a stamped stream share: latencies, loss counting and
/// the signals between them and the run.
pub struct Receivers {
    /// Messages each receiver expects.
    pub expected: u64,
    /// Delivery latencies.
    pub latency: Latencies,
    /// Loss and duplicates, summed as receivers finish.
    pub delivery: Mutex<Delivery>,
    /// Receivers that lost or duplicated messages: (index, lost, duplicates).
    pub lossy: Mutex<Vec<(usize, u64, u64)>>,
    /// Last delivery seen by any receiver (µs, [`now_us`]).
    pub last_delivery_us: AtomicU64,
    /// Opened when receivers should stop waiting and close.
    pub stop: Gate,
    /// A receiver sends its index once it has every message.
    pub complete: Sender<usize>,
}

impl Receivers {
    /// Shared state for receivers of `expected` messages each, and the
    /// channel on which completions arrive.
    pub fn new(expected: u64) -> (Receivers, Receiver<usize>) {
        let (complete, completions) = crossbeam_channel::unbounded();
        let r = Receivers {
            expected,
            latency: Latencies::new(),
            delivery: Mutex::new(Delivery::default()),
            lossy: Mutex::new(Vec::new()),
            last_delivery_us: AtomicU64::new(0),
            stop: Gate::new(),
            complete,
        };
        (r, completions)
    }

    /// Counts one receiver's tracker when it finishes.
    pub fn finish(&self, index: usize, t: &SeqTracker) {
        self.delivery
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .add(t);
        if t.lost() > 0 || t.duplicates() > 0 {
            self.lossy.lock().unwrap_or_else(|e| e.into_inner()).push((
                index,
                t.lost(),
                t.duplicates(),
            ));
        }
    }

    /// Receiver `index`, connected: counts it on `live`, tells `ready`,
    /// then reads until the stop gate opens or the connection ends.
    /// `stamp_of` gives a text's (sequence, send time in µs), or `None` for
    /// a text that is not data. Reports completion once (at once if
    /// `complete_at_start` and nothing is expected); at the end adds its
    /// tracker, closes `ws` and counts it off `live`.
    pub fn receive(
        &self,
        mut ws: Socket,
        index: usize,
        ready: Ready,
        live: &Live,
        complete_at_start: bool,
        mut stamp_of: impl FnMut(&str) -> Option<(u64, u64)>,
    ) {
        set_read_timeout(&ws, Some(POLL));
        live.connected.fetch_add(1, Relaxed);
        ready.connected();
        let mut tracker = SeqTracker::new(self.expected);
        let mut latency = self.latency.recorder();
        let mut completed = complete_at_start && tracker.complete();
        if completed {
            let _ = self.complete.send(index);
        }
        while !self.stop.is_open() {
            match ws.read() {
                Ok(Message::Text(text)) => {
                    let Some((seq, sent)) = stamp_of(&text) else {
                        continue;
                    };
                    let now = now_us();
                    latency.record(now.saturating_sub(sent));
                    tracker.record(seq);
                    live.add_messages(1);
                    self.last_delivery_us.fetch_max(now, Relaxed);
                    if !completed && tracker.complete() {
                        completed = true;
                        let _ = self.complete.send(index);
                    }
                }
                Ok(Message::Close(_)) => {
                    live.error("closed by server");
                    break;
                }
                Ok(_) => {}
                Err(e) if is_timeout(&e) => {}
                Err(e) => {
                    live.error(error_kind(&e));
                    break;
                }
            }
        }
        drop(latency);
        self.finish(index, &tracker);
        echo::close(&mut ws);
        live.connected.fetch_sub(1, Relaxed);
    }

    /// Waits until `receivers` have completed or `deadline` passes, then
    /// opens the stop gate.
    pub fn wait_complete(
        &self,
        completions: &Receiver<usize>,
        receivers: usize,
        deadline: Instant,
    ) {
        let mut complete = 0;
        while complete < receivers {
            match completions.recv_deadline(deadline) {
                Ok(_) => complete += 1,
                Err(_) => break,
            }
        }
        self.stop.open(None);
    }

    /// Adds delivery figures to `report`: deliveries/s from `first_send_us`.
    pub fn report(&self, report: &mut Report, first_send_us: u64) {
        let d = *self.delivery.lock().unwrap_or_else(|e| e.into_inner());
        let last = self.last_delivery_us.load(Relaxed);
        report.rate(
            "deliveries/s",
            "deliveries_per_s",
            "delivery.delivered",
            d.delivered,
            first_send_us,
            last.max(first_send_us),
        );
        report.latency("delivery latency", "latency", &self.latency.histogram());
        report.delivery(&d);
        let mut lossy = self.lossy.lock().unwrap_or_else(|e| e.into_inner()).clone();
        lossy.sort_unstable();
        lossy.truncate(LIST_LOSSY);
        let list: Vec<_> = lossy
            .iter()
            .map(|(i, lost, dup)| json!({"receiver": i, "lost": lost, "duplicates": dup}))
            .collect();
        report.add(
            "receivers with loss or duplicates",
            list.len().to_string(),
            "lossy_receivers",
            json!(list),
        );
    }
}

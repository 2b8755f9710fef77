//! The numbers of a benchmark, free of I/O: latency histograms and their
//! percentiles, per-receiver loss and duplicate counting, and the stamp
//! (`SEQ SEND_TIME_US` plus padding) that messages and appended lines carry.
//!
//! Clients record latencies into a thread-local batch that is merged into
//! one shared HDR histogram every few thousand samples: a histogram per
//! client would cost hundreds of KiB each, and a lock per sample would make
//! the clients contend on the same lock as often as they send. The merge
//! also files each sample under the second it was taken in, in a coarse
//! histogram per second (2 significant figures, ~13 KiB), for the p99 of
//! each second of the run.

use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Largest latency the histograms hold (an hour, in microseconds); larger
/// samples are clamped to it.
const MAX_US: u64 = 3_600_000_000;
/// Samples a [`Recorder`] keeps before merging them into the shared histogram.
const BATCH: usize = 4096;

/// Microseconds since the first call in this process: a monotonic clock that
/// every thread of the tool shares, so a stamp written by one thread can be
/// compared with the time another thread reads it.
pub fn now_us() -> u64 {
    epoch().0.elapsed().as_micros() as u64
}

/// The instant [`now_us`] counts from, and the wall clock then.
fn epoch() -> &'static (Instant, SystemTime) {
    static EPOCH: OnceLock<(Instant, SystemTime)> = OnceLock::new();
    EPOCH.get_or_init(|| (Instant::now(), SystemTime::now()))
}

/// The Unix time in milliseconds of the [`now_us`] instant `us`.
pub fn unix_ms(us: u64) -> f64 {
    let at = epoch().1.duration_since(UNIX_EPOCH).unwrap_or_default();
    at.as_secs_f64() * 1e3 + us as f64 / 1e3
}

/// A latency histogram shared by the clients of one run, with a coarse one
/// per second (of [`now_us`]) of the run.
#[derive(Clone)]
pub struct Latencies(Arc<Mutex<Shared>>);

struct Shared {
    all: Histogram<u64>,
    seconds: BTreeMap<u32, Histogram<u32>>,
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

/// An empty latency histogram: microseconds from 1 to an hour, 3
/// significant figures (every histogram of the tool has these bounds, so
/// any two merge exactly).
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds")
}

/// The recorded buckets of `h`, `[value_us, count]` each (the value is the
/// highest equivalent value of its bucket): recording each value `count`
/// times into a histogram of the same bounds rebuilds `h` exactly.
pub fn buckets(h: &Histogram<u64>) -> Vec<[u64; 2]> {
    h.iter_recorded()
        .map(|v| [v.value_iterated_to(), v.count_at_value()])
        .collect()
}

/// Adds `buckets` (from [`buckets`]) to `h`.
pub fn add_buckets(h: &mut Histogram<u64>, buckets: &[[u64; 2]]) {
    for &[us, n] in buckets {
        h.saturating_record_n(us.clamp(1, MAX_US), n);
    }
}

impl Latencies {
    /// An empty histogram (microseconds, 3 significant figures).
    pub fn new() -> Latencies {
        Latencies(Arc::new(Mutex::new(Shared {
            all: histogram(),
            seconds: BTreeMap::new(),
        })))
    }

    /// A per-thread recorder feeding this histogram.
    pub fn recorder(&self) -> Recorder {
        Recorder {
            batch: Vec::with_capacity(64),
            shared: self.clone(),
        }
    }

    /// Adds samples (microseconds) taken now.
    pub fn add(&self, samples: &[u64]) {
        let second = (now_us() / 1_000_000) as u32;
        let stamped: Vec<u64> = samples.iter().map(|&us| pack(second, us)).collect();
        self.add_stamped(&stamped);
    }

    /// Adds samples packed with the second they were taken in ([`pack`]).
    fn add_stamped(&self, samples: &[u64]) {
        let mut shared = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let Shared { all, seconds } = &mut *shared;
        let mut current: Option<(u32, &mut Histogram<u32>)> = None;
        for &packed in samples {
            let (second, us) = ((packed >> 32) as u32, packed & 0xffff_ffff);
            let us = us.clamp(1, MAX_US);
            all.saturating_record(us);
            // Batches are mostly of one second: look it up once.
            let h = match current {
                Some((s, ref mut h)) if s == second => h,
                _ => {
                    let h = seconds.entry(second).or_insert_with(second_histogram);
                    current = Some((second, h));
                    &mut current.as_mut().expect("just set").1
                }
            };
            h.saturating_record(us);
        }
    }

    /// The percentiles of everything recorded so far.
    pub fn summary(&self) -> Summary {
        Summary::of(&self.0.lock().unwrap_or_else(|e| e.into_inner()).all)
    }

    /// A copy of everything recorded so far.
    pub fn histogram(&self) -> Histogram<u64> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).all.clone()
    }

    /// The 99th percentile of each second (of [`now_us`]) that has samples.
    pub fn p99_by_second(&self) -> BTreeMap<u32, u64> {
        let shared = self.0.lock().unwrap_or_else(|e| e.into_inner());
        shared
            .seconds
            .iter()
            .map(|(s, h)| (*s, h.value_at_quantile(0.99)))
            .collect()
    }
}

/// Records one thread's latencies, merging them in batches; what is left
/// is merged when it is dropped.
pub struct Recorder {
    batch: Vec<u64>,
    shared: Latencies,
}

impl Recorder {
    /// Records one latency in microseconds, taken now.
    pub fn record(&mut self, us: u64) {
        self.batch.push(pack((now_us() / 1_000_000) as u32, us));
        if self.batch.len() >= BATCH {
            self.flush();
        }
    }

    /// Merges the batch into the shared histogram.
    pub fn flush(&mut self) {
        if !self.batch.is_empty() {
            self.shared.add_stamped(&self.batch);
            self.batch.clear();
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.flush();
    }
}

/// A sample of `us` (clamped to [`MAX_US`], which fits 32 bits) taken in
/// `second`, in one word.
fn pack(second: u32, us: u64) -> u64 {
    (u64::from(second) << 32) | us.min(MAX_US)
}

/// A histogram of one second's samples: coarse (2 significant figures,
/// 32-bit counts), so a long run's seconds stay cheap.
fn second_histogram() -> Histogram<u32> {
    Histogram::new_with_bounds(1, MAX_US, 2).expect("valid histogram bounds")
}

/// Percentiles of a latency histogram, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Summary {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest sample.
    pub max: u64,
    /// Mean (rounded).
    pub mean: u64,
}

impl Summary {
    /// The summary of `h` (all zeros when it is empty).
    pub fn of(h: &Histogram<u64>) -> Summary {
        if h.is_empty() {
            return Summary::default();
        }
        Summary {
            count: h.len(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean().round() as u64,
        }
    }
}

/// Formats microseconds for people: `38 µs`, `1.25 ms`, `2.500 s`.
pub fn human_us(us: u64) -> String {
    if us < 1_000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.2} ms", us as f64 / 1e3)
    } else {
        format!("{:.3} s", us as f64 / 1e6)
    }
}

/// What a receiver made of one sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// The first time.
    New,
    /// Already received.
    Duplicate,
    /// Not a number that was sent.
    OutOfRange,
}

/// Which of `expected` sequence numbers (0-based) one receiver got: lost
/// and duplicated messages, and how many arrived after a later one.
#[derive(Debug, Clone)]
pub struct SeqTracker {
    seen: Vec<bool>,
    distinct: u64,
    duplicates: u64,
    reordered: u64,
    out_of_range: u64,
    highest: Option<u64>,
}

impl SeqTracker {
    /// A tracker for sequence numbers `0..expected`.
    pub fn new(expected: u64) -> SeqTracker {
        SeqTracker {
            seen: vec![false; expected as usize],
            distinct: 0,
            duplicates: 0,
            reordered: 0,
            out_of_range: 0,
            highest: None,
        }
    }

    /// Counts the arrival of `seq`.
    pub fn record(&mut self, seq: u64) -> Seen {
        let Some(slot) = self.seen.get_mut(seq as usize) else {
            self.out_of_range += 1;
            return Seen::OutOfRange;
        };
        if *slot {
            self.duplicates += 1;
            return Seen::Duplicate;
        }
        *slot = true;
        self.distinct += 1;
        match self.highest {
            Some(h) if seq < h => self.reordered += 1,
            _ => self.highest = Some(seq),
        }
        Seen::New
    }

    /// Whether every expected number has arrived.
    pub fn complete(&self) -> bool {
        self.distinct == self.seen.len() as u64
    }

    /// Distinct numbers received.
    pub fn distinct(&self) -> u64 {
        self.distinct
    }

    /// Expected numbers that never arrived.
    pub fn lost(&self) -> u64 {
        self.seen.len() as u64 - self.distinct
    }

    /// Arrivals of a number already received.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Arrivals after a higher number had already arrived.
    pub fn reordered(&self) -> u64 {
        self.reordered
    }

    /// Arrivals of numbers that were never sent.
    pub fn out_of_range(&self) -> u64 {
        self.out_of_range
    }
}

/// Loss and duplicates over all receivers of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Delivery {
    /// Receivers counted.
    pub receivers: u64,
    /// Messages each receiver expected.
    pub expected_each: u64,
    /// Distinct deliveries, summed.
    pub delivered: u64,
    /// Lost messages, summed.
    pub lost: u64,
    /// Receivers that lost at least one message.
    pub receivers_with_loss: u64,
    /// Most messages one receiver lost.
    pub max_lost: u64,
    /// Duplicated deliveries, summed.
    pub duplicates: u64,
    /// Deliveries out of order, summed.
    pub reordered: u64,
}

impl Delivery {
    /// Adds one receiver's tracker.
    pub fn add(&mut self, t: &SeqTracker) {
        self.receivers += 1;
        self.expected_each = t.seen.len() as u64;
        self.delivered += t.distinct();
        self.lost += t.lost();
        if t.lost() > 0 {
            self.receivers_with_loss += 1;
        }
        self.max_lost = self.max_lost.max(t.lost());
        self.duplicates += t.duplicates();
        self.reordered += t.reordered();
    }
}

/// The text of message `seq` stamped with `sent_us`, padded with `x` to
/// `size` bytes (never shorter than the stamp itself).
pub fn stamp(seq: u64, sent_us: u64, size: usize) -> String {
    let mut s = format!("{seq} {sent_us} ");
    while s.len() < size {
        s.push('x');
    }
    s
}

/// The sequence number and send time of a stamped text, after `prefix`
/// (e.g. `bench-pub: ` in a room); `None` when it is not one.
pub fn parse_stamp(text: &str, prefix: &str) -> Option<(u64, u64)> {
    let rest = text.strip_prefix(prefix)?;
    let mut parts = rest.splitn(3, ' ');
    let seq = parts.next()?.parse().ok()?;
    let sent = parts.next()?.parse().ok()?;
    Some((seq, sent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let lat = Latencies::new();
        let samples: Vec<u64> = (1..=1000).collect();
        lat.add(&samples);
        let s = lat.summary();
        assert_eq!(s.count, 1000);
        assert_eq!(s.p50, 500);
        assert_eq!(s.p90, 900);
        assert_eq!(s.p99, 990);
        assert_eq!(s.p999, 999);
        assert_eq!(s.max, 1000);
        assert_eq!(s.mean, 501);
    }

    #[test]
    fn merging_buckets_equals_recording_every_sample() {
        // Two runs' samples, spread over many buckets and magnitudes.
        let (mut a, mut b, mut all) = (histogram(), histogram(), histogram());
        for i in 0..20_000u64 {
            let us = 1 + (i * 7919) % 2_000_000 + (i % 13) * 100_000;
            let h = if i % 3 == 0 { &mut a } else { &mut b };
            h.record(us).unwrap();
            all.record(us).unwrap();
        }
        let mut merged = histogram();
        add_buckets(&mut merged, &buckets(&a));
        add_buckets(&mut merged, &buckets(&b));
        assert_eq!(buckets(&merged), buckets(&all));
        assert_eq!(Summary::of(&merged), Summary::of(&all));
        assert_eq!(merged.min(), all.min());
    }

    #[test]
    fn an_empty_histogram_summarises_to_zeros() {
        assert_eq!(Latencies::new().summary(), Summary::default());
    }

    #[test]
    fn recorders_merge_in_batches_and_on_drop() {
        let lat = Latencies::new();
        let mut a = lat.recorder();
        let mut b = lat.recorder();
        for i in 0..(BATCH as u64 + 10) {
            a.record(i % 100 + 1);
        }
        b.record(5_000);
        assert_eq!(lat.summary().count, BATCH as u64, "one full batch merged");
        drop(a);
        drop(b);
        let s = lat.summary();
        assert_eq!(s.count, BATCH as u64 + 11);
        // 3 significant figures: 5000 lands in a bucket of width 4.
        assert!((5_000..5_008).contains(&s.max), "max {}", s.max);
    }

    #[test]
    fn zero_and_huge_latencies_are_clamped_not_lost() {
        let lat = Latencies::new();
        lat.add(&[0, u64::MAX]);
        let s = lat.summary();
        assert_eq!(s.count, 2);
        assert!(s.max >= MAX_US);
    }

    #[test]
    fn tracker_counts_loss_duplicates_and_reordering() {
        let mut t = SeqTracker::new(5);
        assert_eq!(t.record(0), Seen::New);
        assert_eq!(t.record(2), Seen::New);
        assert_eq!(t.record(1), Seen::New);
        assert_eq!(t.record(2), Seen::Duplicate);
        assert_eq!(t.record(9), Seen::OutOfRange);
        assert_eq!(t.distinct(), 3);
        assert_eq!(t.lost(), 2);
        assert_eq!(t.duplicates(), 1);
        assert_eq!(t.reordered(), 1);
        assert_eq!(t.out_of_range(), 1);
        assert!(!t.complete());
        t.record(3);
        t.record(4);
        assert!(t.complete());
        assert_eq!(t.lost(), 0);
    }

    #[test]
    fn delivery_sums_receivers() {
        let mut full = SeqTracker::new(3);
        for s in [0, 1, 2, 1] {
            full.record(s);
        }
        let mut partial = SeqTracker::new(3);
        partial.record(2);
        let mut d = Delivery::default();
        d.add(&full);
        d.add(&partial);
        assert_eq!(
            d,
            Delivery {
                receivers: 2,
                expected_each: 3,
                delivered: 4,
                lost: 2,
                receivers_with_loss: 1,
                max_lost: 2,
                duplicates: 1,
                reordered: 0,
            }
        );
    }

    #[test]
    fn stamps_round_trip_and_pad_to_size() {
        let s = stamp(42, 123_456, 64);
        assert_eq!(s.len(), 64);
        assert_eq!(parse_stamp(&s, ""), Some((42, 123_456)));
        let short = stamp(7, 1, 2);
        assert_eq!(short, "7 1 ");
        assert_eq!(
            parse_stamp(&format!("bench-pub: {s}"), "bench-pub: "),
            Some((42, 123_456))
        );
        assert_eq!(parse_stamp("system: a joined r", "bench-pub: "), None);
        assert_eq!(parse_stamp("bench-pub: hello", "bench-pub: "), None);
    }

    #[test]
    fn human_units() {
        assert_eq!(human_us(38), "38 µs");
        assert_eq!(human_us(1_250), "1.25 ms");
        assert_eq!(human_us(2_500_000), "2.500 s");
    }
}

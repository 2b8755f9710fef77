//! Process-wide counters, rendered as Prometheus text (format 0.0.4) by
//! `GET /metrics`. Counters are relaxed atomics: cheap on the hot path and
//! exact enough for monitoring. Beside them, the ring of recent events
//! the operator view names ([`crate::activity::Events`]), since everything
//! that counts one of those counters also records its event here.

use crate::activity::Events;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Close codes counted individually in `strand_close_codes_sent_total`.
const TRACKED_CLOSE_CODES: [u16; 8] = [1000, 1001, 1002, 1007, 1008, 1009, 1011, 4001];

/// The server's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// WebSocket connections open now.
    pub connections_current: AtomicU64,
    /// WebSocket connections accepted since start.
    pub connections_total: AtomicU64,
    /// Upgrades refused with 503 (over the limit, or the OS refused a thread).
    pub connections_rejected: AtomicU64,
    /// Plain HTTP requests answered.
    pub http_requests: AtomicU64,
    /// Data messages received from clients.
    pub messages_in: AtomicU64,
    /// Frames written to clients.
    pub messages_out: AtomicU64,
    /// Payload bytes received from clients.
    pub bytes_in: AtomicU64,
    /// Bytes written to clients (frame headers included).
    pub bytes_out: AtomicU64,
    /// Messages dropped because a client's outbound queue was full.
    pub dropped_messages: AtomicU64,
    /// Connections closed with 1008 as slow consumers.
    pub slow_consumer_closes: AtomicU64,
    /// Connection threads that panicked (each ended only its connection).
    pub panics: AtomicU64,
    /// Messages refused by `--max-messages-per-second` (each answered with
    /// `rate_limited`, or with the connection's close).
    pub rate_limited: AtomicU64,
    /// Connections closed with 1008 `rate limited`.
    pub rate_limit_closes: AtomicU64,
    /// Connections accepted whose request head is not complete yet.
    pub heads_pending: AtomicU64,
    /// Connections cut because their head was not complete in time (408).
    pub heads_timed_out: AtomicU64,
    /// Connections still reading their head cut to make room for a new one.
    pub heads_evicted: AtomicU64,
    /// Connections refused at accept: over `--max-connections-per-ip`.
    pub per_ip_refused: AtomicU64,
    close_codes: [AtomicU64; TRACKED_CLOSE_CODES.len()],
    close_other: AtomicU64,
    /// Recent events with the clients' names, for `GET /admin/stats`.
    pub events: Arc<Events>,
}

impl Metrics {
    /// Counts one close frame sent with `code`.
    pub fn close_sent(&self, code: u16) {
        match TRACKED_CLOSE_CODES.iter().position(|&c| c == code) {
            Some(i) => self.close_codes[i].fetch_add(1, Relaxed),
            None => self.close_other.fetch_add(1, Relaxed),
        };
    }

    /// How many close frames with `code` were sent.
    pub fn closes_sent(&self, code: u16) -> u64 {
        TRACKED_CLOSE_CODES
            .iter()
            .position(|&c| c == code)
            .map_or(0, |i| self.close_codes[i].load(Relaxed))
    }

    /// The Prometheus exposition of every counter; `extra` is appended
    /// verbatim (other modules' families, already formatted).
    pub fn render(&self, uptime_s: u64, extra: &str) -> String {
        let mut out = String::with_capacity(2048);
        let mut family = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        family(
            "strand_connections_current",
            "gauge",
            "WebSocket connections open now.",
            self.connections_current.load(Relaxed),
        );
        family(
            "strand_connections_total",
            "counter",
            "WebSocket connections accepted.",
            self.connections_total.load(Relaxed),
        );
        family(
            "strand_connections_rejected_total",
            "counter",
            "Upgrades refused with 503.",
            self.connections_rejected.load(Relaxed),
        );
        family(
            "strand_http_requests_total",
            "counter",
            "Plain HTTP requests answered.",
            self.http_requests.load(Relaxed),
        );
        family(
            "strand_messages_in_total",
            "counter",
            "Data messages received.",
            self.messages_in.load(Relaxed),
        );
        family(
            "strand_messages_out_total",
            "counter",
            "Frames sent.",
            self.messages_out.load(Relaxed),
        );
        family(
            "strand_bytes_in_total",
            "counter",
            "Payload bytes received.",
            self.bytes_in.load(Relaxed),
        );
        family(
            "strand_bytes_out_total",
            "counter",
            "Bytes written to sockets.",
            self.bytes_out.load(Relaxed),
        );
        family(
            "strand_dropped_messages_total",
            "counter",
            "Messages dropped at a full outbound queue.",
            self.dropped_messages.load(Relaxed),
        );
        family(
            "strand_slow_consumer_closes_total",
            "counter",
            "Connections closed as slow consumers.",
            self.slow_consumer_closes.load(Relaxed),
        );
        family(
            "strand_panics_total",
            "counter",
            "Connection threads that panicked.",
            self.panics.load(Relaxed),
        );
        family(
            "strand_rate_limited_messages_total",
            "counter",
            "Messages refused by --max-messages-per-second.",
            self.rate_limited.load(Relaxed),
        );
        family(
            "strand_rate_limit_closes_total",
            "counter",
            "Connections closed with 1008 rate limited.",
            self.rate_limit_closes.load(Relaxed),
        );
        family(
            "strand_heads_pending",
            "gauge",
            "Connections still sending their request head.",
            self.heads_pending.load(Relaxed),
        );
        family(
            "strand_heads_timed_out_total",
            "counter",
            "Connections whose head was not complete within 10 s (408).",
            self.heads_timed_out.load(Relaxed),
        );
        family(
            "strand_heads_evicted_total",
            "counter",
            "Connections still sending their head cut to admit a new one.",
            self.heads_evicted.load(Relaxed),
        );
        family(
            "strand_per_ip_refused_total",
            "counter",
            "Connections refused over --max-connections-per-ip.",
            self.per_ip_refused.load(Relaxed),
        );
        family(
            "strand_threads",
            "gauge",
            "Threads of the process.",
            process_threads(),
        );
        if let Some(heap) = crate::memory::heap() {
            family(
                "strand_heap_in_use_bytes",
                "gauge",
                "Bytes of the heap in live allocations (glibc's mallinfo2).",
                heap.in_use,
            );
            family(
                "strand_heap_free_bytes",
                "gauge",
                "Bytes of the heap the allocator keeps free for reuse.",
                heap.free,
            );
        }
        family(
            "strand_uptime_seconds",
            "gauge",
            "Seconds since start.",
            uptime_s,
        );
        out.push_str("# HELP strand_close_codes_sent_total Close frames sent, by code.\n");
        out.push_str("# TYPE strand_close_codes_sent_total counter\n");
        for (code, n) in TRACKED_CLOSE_CODES.iter().zip(&self.close_codes) {
            let _ = writeln!(
                out,
                "strand_close_codes_sent_total{{code=\"{code}\"}} {}",
                n.load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "strand_close_codes_sent_total{{code=\"other\"}} {}",
            self.close_other.load(Relaxed)
        );
        out.push_str(extra);
        out
    }
}

/// Appends one Prometheus family of one sample (`kind` is `counter` or
/// `gauge`) to `out`.
pub fn family(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

/// The number of threads of this process, from `/proc/self/status`.
pub fn process_threads() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_help_and_type() {
        let m = Metrics::default();
        m.close_sent(1001);
        m.close_sent(3000);
        let text = m.render(5, "");
        assert!(text.contains("# TYPE strand_connections_current gauge"));
        assert!(text.contains("strand_close_codes_sent_total{code=\"1001\"} 1"));
        assert!(text.contains("strand_close_codes_sent_total{code=\"other\"} 1"));
        assert!(text.contains("strand_uptime_seconds 5"));
        assert!(process_threads() >= 1);
    }
}

//! The operator view: `GET /admin` (the page, no token needed: it asks
//! for one) and `GET /admin/stats` (its JSON, behind [`operator`]'s rule).
//! Only renders: the counters, the events and the series are kept below
//! (`metrics`, `activity`), the rooms and the broker's state come from the
//! broker. What one request costs: a few atomic loads, copies of two small
//! rings, one read of `/proc/self/status`, a `stat` of `/proc/self/fd`
//! (never a listing on every request, see [`open_fds`]), the broker's room
//! list (one Redis query with `--redis`), and a sort.

use super::{operator, Request, Response};
use crate::activity::{Event, Sample};
use crate::shared::Shared;
use serde_json::{json, Value};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Rooms listed, largest first.
pub const TOP_ROOMS: usize = 20;

/// `GET /admin`.
pub fn page() -> Response {
    Response::with_status(
        200,
        "text/html; charset=utf-8",
        crate::web::ADMIN_PAGE.as_bytes().to_vec(),
    )
}

/// `GET /admin/stats`.
pub fn stats(shared: &Shared, request: &Request) -> Response {
    if let Err(refused) = operator::admit(
        shared.config.admin_token.as_deref(),
        request,
        "GET /admin/stats",
    ) {
        return refused;
    }
    Response::json(&body(shared)).header("Cache-Control: no-store")
}

/// The JSON of `/admin/stats` (the contract's fields, and more).
pub fn body(shared: &Shared) -> Value {
    let m = &shared.metrics;
    let now_ms = crate::wire::unix_millis();
    let process = Process::read();
    let broker = &shared.broker;
    let (rooms, rooms_total) = match broker.rooms() {
        Ok(all) => (largest_rooms(shared, all.clone()), Some(all.len())),
        Err(_) => (Vec::new(), None),
    };
    let series: Vec<Value> = shared
        .series
        .last_five_minutes(now_ms / 1000)
        .iter()
        .map(sample_json)
        .collect();
    let recent: Vec<Value> = m.events.recent().iter().map(event_json).collect();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "now": now_ms,
        "uptime_s": shared.uptime_s(),
        "connections": m.connections_current.load(Relaxed),
        "max_connections": shared.config.max_connections,
        "connections_total": m.connections_total.load(Relaxed),
        "heads_pending": m.heads_pending.load(Relaxed),
        "threads": process.threads,
        "rss_bytes": process.rss_bytes,
        "open_fds": process.open_fds,
        "messages_in_total": m.messages_in.load(Relaxed),
        "messages_out_total": m.messages_out.load(Relaxed),
        "slow_consumer_closes_total": m.slow_consumer_closes.load(Relaxed),
        "rate_limited_total": m.rate_limited.load(Relaxed),
        "refused_total": m.connections_rejected.load(Relaxed) + m.per_ip_refused.load(Relaxed),
        "heads_timed_out_total": m.heads_timed_out.load(Relaxed),
        "broker": broker.name(),
        "broker_state": broker.state(),
        "rooms_total": rooms_total,
        "rooms": rooms,
        "recent": recent,
        "series": series,
    })
}

/// The [`TOP_ROOMS`] rooms with the most connections, with their message
/// rates.
fn largest_rooms(shared: &Shared, mut all: Vec<(String, usize)>) -> Vec<Value> {
    all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    all.truncate(TOP_ROOMS);
    let totals: Vec<(&str, u64)> = all
        .iter()
        .map(|(room, _)| {
            (
                room.as_str(),
                shared.broker.room_messages(room).unwrap_or(0),
            )
        })
        .collect();
    let rates = shared.room_rates.rates(Instant::now(), &totals);
    all.iter()
        .zip(&totals)
        .zip(rates)
        .map(|(((room, online), (_, total)), rate)| {
            json!({
                "room": room,
                "online": online,
                "messages_total": total,
                "messages_per_second": (rate * 10.0).round() / 10.0,
            })
        })
        .collect()
}

fn sample_json(s: &Sample) -> Value {
    json!({
        "t": s.t,
        "connections": s.connections,
        "messages_in": s.messages_in,
        "messages_out": s.messages_out,
    })
}

fn event_json(e: &Event) -> Value {
    json!({
        "at": e.at,
        "kind": e.kind.as_str(),
        "client": e.client,
        "detail": e.detail,
    })
}

/// What the kernel says of this process.
#[derive(Debug, Default)]
struct Process {
    threads: u64,
    rss_bytes: u64,
    open_fds: Option<u64>,
}

impl Process {
    fn read() -> Process {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        Process {
            threads: field("Threads:"),
            rss_bytes: field("VmRSS:") * 1024,
            open_fds: open_fds(),
        }
    }
}

/// How long a counted listing of `/proc/self/fd` is reused.
const LISTING_KEPT: Duration = Duration::from_secs(10);

/// The last listing's count, on kernels that need one (a memo of the
/// process's own state, shared by every request).
static LISTED: Mutex<Option<(Instant, u64)>> = Mutex::new(None);

/// Open descriptors of this process. Since Linux 6.2 the size of
/// `/proc/self/fd` is their count: one `stat`, 0.05 ms. Before that only
/// a listing counts them, which took 12 ms with 6,000 descriptors (a
/// whole fan-out's p99 when done every second), so a listing is reused
/// for [`LISTING_KEPT`].
fn open_fds() -> Option<u64> {
    let size = std::fs::metadata("/proc/self/fd").ok()?.len();
    if size > 0 {
        return Some(size);
    }
    let mut listed = LISTED.lock().unwrap_or_else(|e| e.into_inner());
    match *listed {
        Some((at, n)) if at.elapsed() < LISTING_KEPT => Some(n),
        _ => {
            let n = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
            *listed = Some((Instant::now(), n));
            Some(n)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_reads_itself() {
        let p = Process::read();
        assert!(p.threads >= 1 && p.rss_bytes > 0, "{p:?}");
        assert!(p.open_fds.unwrap_or(0) >= 3, "{p:?}");
        let listed = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
        let counted = open_fds().unwrap();
        // Other tests' threads open and close files meanwhile.
        assert!(counted.abs_diff(listed) < 20, "{counted} vs {listed}");
    }
}

//! `strand bench echo`: each client sends a message, waits for it to come
//! back, and again, M times (or until `--duration`). Works against any RFC
//! 6455 echo server. Reports echoed messages per second and round-trip
//! percentiles; a payload that comes back different counts as an error.
//!
//! By default the loop is closed: the next message goes when the reply
//! arrives, so a server that stalls delays the messages too and its stall
//! shows as one slow round trip. With `--rate N` the loop is open: each
//! client's messages are due N per second on a fixed schedule, and each
//! round trip is measured from when its message was *due*, not when it
//! could be sent (coordinated omission corrected, as wrk2 does): a stall
//! shows in every message it held up.

use crate::bench::client::{self, is_timeout, Connector, Fleet, Gate, Limiter, Socket};
use crate::bench::live::{Live, Progress};
use crate::bench::report::Report;
use crate::bench::stats::{now_us, Latencies};
use crate::bench::{secs, Common};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tungstenite::{Bytes, Message};

/// Messages a client counts locally before adding them to the live total.
const COUNT_BATCH: u64 = 64;
/// A run with neither `--messages` nor `--duration` sends this many.
const DEFAULT_MESSAGES: u64 = 1000;

/// The flags of `strand bench echo`.
#[derive(Debug, Clone, clap::Args)]
pub struct EchoArgs {
    /// The shared flags.
    #[command(flatten)]
    pub common: Common,
    /// Concurrent clients, one thread each.
    #[arg(long, default_value_t = 10)]
    pub clients: usize,
    /// Messages per client (1000 when neither this nor --duration is given).
    #[arg(long)]
    pub messages: Option<u64>,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Stop after this many seconds of exchange.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Send binary messages (default: text).
    #[arg(long)]
    pub binary: bool,
    /// Open loop: each client's messages are due N per second, and each
    /// round trip is timed from when its message was due.
    #[arg(long, value_name = "N")]
    pub rate: Option<f64>,
}

struct Run {
    connector: Connector,
    path: String,
    timeout: Duration,
    messages: u64,
    message: Message,
    limiter: Limiter,
    gate: Gate,
    live: Arc<Live>,
    rtt: Latencies,
    /// Open loop: the time between two messages of one client.
    interval: Option<Duration>,
    /// Clients in the run (their schedules are staggered over one interval).
    clients: usize,
    /// When the last client finished its last round trip (µs, [`now_us`]).
    finished_us: AtomicU64,
}

/// Runs the scenario.
pub fn run(a: &EchoArgs) -> Result<Report, String> {
    let connector = a.common.connector()?;
    let path = connector.target.path_or("/ws");
    let messages = match (a.messages, a.duration) {
        (Some(m), _) => m,
        (None, Some(_)) => u64::MAX,
        (None, None) => DEFAULT_MESSAGES,
    };
    let payload = vec![b'x'; a.size];
    let message = if a.binary {
        Message::Binary(Bytes::from(payload))
    } else {
        Message::text(String::from_utf8(payload).unwrap_or_default())
    };
    let interval = match a.rate {
        Some(r) if r > 0.0 && r.is_finite() => Some(Duration::from_secs_f64(1.0 / r)),
        Some(r) => return Err(format!("--rate {r}: expected messages per second above 0")),
        None => None,
    };
    let share = a.common.share(a.clients);
    let clients = share.len();
    let live = Live::new(clients as u64);
    let run = Arc::new(Run {
        interval,
        clients: a.clients,
        connector,
        path,
        timeout: a.common.timeout(),
        messages,
        message,
        limiter: Limiter::new(a.common.connect_concurrency),
        gate: Gate::new(),
        live: live.clone(),
        rtt: Latencies::new(),
        finished_us: AtomicU64::new(0),
    });
    let progress = Progress::start(&live, a.common.quiet);
    let r = run.clone();
    let fleet = Fleet::spawn_range(share, "bench-echo", &live, move |i, ready| {
        client(&r, i, ready)
    });
    let connected = fleet.wait_ready();
    progress.note(&format!("{connected} of {clients} connected"));
    let start = Instant::now();
    let start_us = now_us();
    let deadline = a
        .duration
        .and_then(|d| start.checked_add(secs(d)))
        .unwrap_or_else(|| far_future(start));
    run.gate.open(Some(deadline));
    fleet.join();
    drop(progress);

    let end_us = run.finished_us.load(Relaxed).max(start_us);
    let elapsed = (end_us - start_us) as f64 / 1e6;
    let total = live.messages.load(Relaxed);
    let mut report = Report::new("echo", &run.connector.target.url(&run.path));
    report.count("clients", "clients", clients as u64);
    report.count("connected", "connected", connected as u64);
    report.set_connected(connected as u64);
    report.subprotocol(&run.connector);
    report.setting("message size (bytes)", "size", a.size as u64);
    report.count("messages echoed", "messages", total);
    if let Some(rate) = a.rate {
        report.real("offered rate per client (msg/s)", "offered_rate", rate, 1);
    }
    report.real("elapsed (s)", "elapsed_s", elapsed, 3);
    report.rate(
        "messages/s",
        "msgs_per_s",
        "messages",
        total,
        start_us,
        end_us,
    );
    let label = if run.interval.is_some() {
        "round trip (from when due)"
    } else {
        "round trip"
    };
    report.latency(label, "rtt", &run.rtt.histogram());
    report.run_of(&live, Some(&run.rtt));
    Ok(report)
}

/// An instant later than any run (no `--duration`).
pub fn far_future(from: Instant) -> Instant {
    from.checked_add(Duration::from_secs(100 * 365 * 86_400))
        .unwrap_or(from)
}

fn client(run: &Run, index: usize, ready: crate::bench::client::Ready) {
    let connected = {
        let _permit = run.limiter.acquire();
        run.connector.connect(&run.path, run.timeout)
    };
    let mut ws = match connected {
        Ok(ws) => ws,
        Err(e) => {
            run.live.connect_error(&e);
            return ready.failed();
        }
    };
    run.live.connected.fetch_add(1, Relaxed);
    ready.connected();
    let deadline = run.gate.wait();
    let schedule = run
        .interval
        .map(|every| Schedule::new(Instant::now(), every, index, run.clients));
    let mut rtt = run.rtt.recorder();
    let mut counted = 0;
    let mut second = now_us() / 1_000_000;
    for k in 0..run.messages {
        // Open loop: wait for the message's due time (none if late), and
        // time the round trip from it.
        let t0 = match &schedule {
            Some(s) => s.wait(k),
            None => Instant::now(),
        };
        if t0 >= deadline {
            break;
        }
        if let Err(kind) = round_trip(&mut ws, &run.message) {
            run.live.error(kind);
            break;
        }
        rtt.record(t0.elapsed().as_micros() as u64);
        counted += 1;
        // Counted in batches, and at each second's end for the series.
        let now = now_us() / 1_000_000;
        if counted == COUNT_BATCH || now != second {
            run.live.add_messages(counted);
            (counted, second) = (0, now);
        }
    }
    run.live.add_messages(counted);
    run.finished_us.fetch_max(now_us(), Relaxed);
    drop(rtt);
    close(&mut ws);
    run.live.connected.fetch_sub(1, Relaxed);
}

/// When one client's messages are due in an open loop: every `every` from
/// `start`, offset by the client's share of one interval so the clients'
/// sends do not all fall at the same instant.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    first: Instant,
    every: Duration,
}

impl Schedule {
    /// Client `index` of `clients`, starting at `start`.
    pub fn new(start: Instant, every: Duration, index: usize, clients: usize) -> Schedule {
        let offset = every.mul_f64((index % clients.max(1)) as f64 / clients.max(1) as f64);
        Schedule {
            first: start + offset,
            every,
        }
    }

    /// When message `k` (from 0) is due.
    pub fn due(&self, k: u64) -> Instant {
        self.first + self.every.mul_f64(k as f64)
    }

    /// Sleeps until message `k` is due (not at all when it is late);
    /// returns its due time.
    pub fn wait(&self, k: u64) -> Instant {
        let due = self.due(k);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        due
    }
}

/// Sends `message` and reads until a data message comes back; an error
/// names what went wrong.
fn round_trip(ws: &mut Socket, message: &Message) -> Result<(), String> {
    ws.send(message.clone())
        .map_err(|e| crate::bench::client::error_kind(&e))?;
    loop {
        match ws.read() {
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                return if m == *message {
                    Ok(())
                } else {
                    Err("mismatch".into())
                };
            }
            Ok(Message::Close(_)) => return Err("closed by server".into()),
            Ok(_) => continue,
            Err(e) => return Err(crate::bench::client::error_kind(&e)),
        }
    }
}

/// Closes politely: our close frame, then the server's reply (bounded by
/// the socket's read timeout) so the server sees a clean close.
pub fn close(ws: &mut Socket) {
    if ws.close(None).is_err() {
        return;
    }
    client::set_read_timeout(ws, Some(Duration::from_secs(1)));
    loop {
        match ws.read() {
            Ok(_) => continue,
            Err(e) if is_timeout(&e) => return,
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_is_fixed_and_staggered_over_clients() {
        let start = Instant::now();
        let every = Duration::from_millis(10);
        let first = Schedule::new(start, every, 0, 4);
        assert_eq!(first.due(0), start);
        assert_eq!(first.due(3), start + Duration::from_millis(30));
        let third = Schedule::new(start, every, 2, 4);
        assert_eq!(third.due(0), start + Duration::from_millis(5));
        // A late message is due when it was due, not when it is sent.
        let late = Schedule::new(start - Duration::from_secs(1), every, 0, 1);
        assert_eq!(late.wait(0), start - Duration::from_secs(1));
    }
}

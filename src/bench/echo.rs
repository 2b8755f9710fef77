//! `strand bench echo`: each client sends a message, waits for it to come
//! back, and again, M times (or until `--duration`). Works against any RFC
//! 6455 echo server. Reports echoed messages per second and round-trip
//! percentiles; a payload that comes back different counts as an error.

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
    let live = Live::new(a.clients as u64);
    let run = Arc::new(Run {
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
    let fleet = Fleet::spawn(a.clients, "bench-echo", &live, move |_, ready| {
        client(&r, ready)
    });
    let connected = fleet.wait_ready();
    progress.note(&format!("{connected} of {} connected", a.clients));
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
    report.count("clients", "clients", a.clients as u64);
    report.count("connected", "connected", connected as u64);
    report.set_connected(connected as u64);
    report.subprotocol(&run.connector);
    report.count("message size (bytes)", "size", a.size as u64);
    report.count("messages echoed", "messages", total);
    report.real("elapsed (s)", "elapsed_s", elapsed, 3);
    report.rate("messages/s", "msgs_per_s", total as f64 / elapsed);
    report.latency("round trip", "rtt", &run.rtt.histogram());
    report.errors(&live);
    Ok(report)
}

/// An instant later than any run (no `--duration`).
pub fn far_future(from: Instant) -> Instant {
    from.checked_add(Duration::from_secs(100 * 365 * 86_400))
        .unwrap_or(from)
}

fn client(run: &Run, ready: crate::bench::client::Ready) {
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
    let mut rtt = run.rtt.recorder();
    let mut counted = 0;
    for _ in 0..run.messages {
        if Instant::now() >= deadline {
            break;
        }
        let t0 = Instant::now();
        if let Err(kind) = round_trip(&mut ws, &run.message) {
            run.live.error(kind);
            break;
        }
        rtt.record(t0.elapsed().as_micros() as u64);
        counted += 1;
        if counted == COUNT_BATCH {
            run.live.add_messages(counted);
            counted = 0;
        }
    }
    run.live.add_messages(counted);
    run.finished_us.fetch_max(now_us(), Relaxed);
    drop(rtt);
    close(&mut ws);
    run.live.connected.fetch_sub(1, Relaxed);
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

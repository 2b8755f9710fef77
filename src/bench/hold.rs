//! `strand bench hold`: N idle connections held open for `--duration`
//! seconds once all are connected, then each echoes one message: connect
//! times (TCP connect plus handshake) and how many connections survived.
//!
//! While holding, each client blocks in one read until the end (answering
//! the server's pings meanwhile), so the tool adds no wake-ups of its own
//! to the idle server it measures. Once all are connected it prints
//! `all N connected; holding for T s` on stderr for scripts that sample the
//! server then.
//!
//! What a held client costs the tool is what one process can hold, so the
//! connecting is done by `--connect-concurrency` connector threads, which
//! then hand each open socket to a holding thread of its own: the
//! handshake's deep stack is touched on a few connectors, not on every
//! holder, a holder waits for bytes on the socket itself before it reads
//! through tungstenite, and it reads with a small buffer (pings and one
//! probe are all it receives).

use crate::bench::client::{
    self, error_kind, is_timeout, set_read_timeout, Connector, Gate, Socket,
};
use crate::bench::live::{Live, Progress};
use crate::bench::report::Report;
use crate::bench::stats::Latencies;
use crate::bench::{echo, secs, Common};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tungstenite::Message;

/// A holder's read buffer: it reads pings and one probe, never more than a
/// few dozen bytes at once (tungstenite zero-fills the whole buffer).
const HOLD_READ_BUFFER: usize = 256;

/// The flags of `strand bench hold`.
#[derive(Debug, Clone, clap::Args)]
pub struct HoldArgs {
    /// The shared flags.
    #[command(flatten)]
    pub common: Common,
    /// Connections to hold, one thread each.
    #[arg(long, default_value_t = 100)]
    pub clients: usize,
    /// Seconds to hold them once all are connected.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    pub duration: f64,
}

struct Run {
    connector: Connector,
    path: String,
    timeout: Duration,
    clients: usize,
    /// How many clients the connectors have taken.
    next: AtomicUsize,
    gate: Gate,
    live: Arc<Live>,
    connect: Latencies,
    survivors: AtomicU64,
}

/// Runs the scenario.
pub fn run(a: &HoldArgs) -> Result<Report, String> {
    let connector = a.common.connector()?;
    let path = connector.target.path_or("/ws");
    let share = a.common.share(a.clients);
    let clients = share.len();
    let live = Live::new(clients as u64);
    let run = Arc::new(Run {
        connector,
        path,
        timeout: a.common.timeout(),
        clients,
        next: AtomicUsize::new(0),
        gate: Gate::new(),
        live: live.clone(),
        connect: Latencies::new(),
        survivors: AtomicU64::new(0),
    });
    let progress = Progress::start(&live, a.common.quiet);
    let started = Instant::now();
    // One word per client: its holding thread, or None when it failed.
    let (tx, rx) = crossbeam_channel::unbounded::<Option<JoinHandle<()>>>();
    let mut connectors = Vec::new();
    for _ in 0..a.common.connect_concurrency.clamp(1, clients.max(1)) {
        let (r, tx) = (run.clone(), tx.clone());
        match client::spawn("bench-connect", move || connect_all(&r, &tx)) {
            Ok(h) => connectors.push(h),
            Err(_) => live.error("spawn"),
        }
    }
    drop(tx);
    let mut holders = Vec::with_capacity(clients);
    for _ in 0..clients {
        match rx.recv() {
            Ok(Some(h)) => holders.push(h),
            Ok(None) => {}
            // Every connector has ended.
            Err(_) => break,
        }
    }
    for c in connectors {
        let _ = c.join();
    }
    let connected = holders.len();
    let connecting = started.elapsed();
    let hold = secs(a.duration);
    progress.note(&format!(
        "all {connected} connected (of {}); holding for {} s",
        clients, a.duration
    ));
    run.gate.open(Some(Instant::now() + hold));
    for h in holders {
        let _ = h.join();
    }
    drop(progress);

    let mut report = Report::new("hold", &run.connector.target.url(&run.path));
    report.count("clients", "clients", clients as u64);
    report.count("connected", "connected", connected as u64);
    report.set_connected(connected as u64);
    report.subprotocol(&run.connector);
    report.real(
        "connecting took (s)",
        "connect_phase_s",
        connecting.as_secs_f64(),
        3,
    );
    report.latency("connect time", "connect", &run.connect.histogram());
    report.real("held (s)", "held_s", a.duration, 1);
    report.count("survivors", "survivors", run.survivors.load(Relaxed));
    report.run_of(&live, Some(&run.connect));
    Ok(report)
}

/// Opens clients until every one has been tried; each open socket goes to
/// a holding thread of its own.
fn connect_all(run: &Arc<Run>, tx: &crossbeam_channel::Sender<Option<JoinHandle<()>>>) {
    while run.next.fetch_add(1, Relaxed) < run.clients {
        let _ = tx.send(open(run));
    }
}

/// Opens one client and starts its holder; None when either failed (the
/// error is counted).
fn open(run: &Arc<Run>) -> Option<JoinHandle<()>> {
    let t0 = Instant::now();
    let ws = match run
        .connector
        .connect_with_buffer(&run.path, run.timeout, HOLD_READ_BUFFER)
    {
        Ok(ws) => ws,
        Err(e) => {
            run.live.connect_error(&e);
            return None;
        }
    };
    run.connect.add(&[t0.elapsed().as_micros() as u64]);
    run.live.connected.fetch_add(1, Relaxed);
    // Boxed: a socket is 1.3 KiB (the TLS variant's state is inline), and
    // moved onto each holder's stack by value it took a third stack page.
    let ws = Box::new(ws);
    let r = run.clone();
    match client::spawn("bench-hold", move || holder(&r, ws)) {
        Ok(h) => Some(h),
        Err(_) => {
            run.live.error("spawn");
            run.live.connected.fetch_sub(1, Relaxed);
            None
        }
    }
}

/// Holds one open client until the end, then checks it still echoes.
fn holder(run: &Run, mut ws: Box<Socket>) {
    let end = run.gate.wait();
    // Hold: one blocking read until the end; pings are answered inside it.
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        set_read_timeout(&ws, Some(left));
        // Wait on the socket itself, a shallow call, and enter
        // tungstenite's deeper read path only once bytes came: stack pages
        // a holder touches stay resident for the rest of the run.
        if let Err(e) = client::tcp(&ws).peek(&mut [0u8; 1]) {
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) {
                break;
            }
        }
        match ws.read() {
            Ok(Message::Close(_)) => {
                run.live.error("closed by server");
                run.live.connected.fetch_sub(1, Relaxed);
                return;
            }
            // A ping: its pong is queued; send it now, not at the next read.
            Ok(_) => {
                let _ = ws.flush();
            }
            Err(e) if is_timeout(&e) => break,
            Err(e) => {
                run.live.error(error_kind(&e));
                run.live.connected.fetch_sub(1, Relaxed);
                return;
            }
        }
    }
    set_read_timeout(&ws, Some(run.timeout));
    let probe = Message::text("still here");
    let survived = ws.send(probe.clone()).is_ok()
        && loop {
            match ws.read() {
                Ok(m @ (Message::Text(_) | Message::Binary(_))) => break m == probe,
                Ok(Message::Close(_)) => break false,
                Ok(_) => continue,
                Err(e) => {
                    run.live.error(error_kind(&e));
                    break false;
                }
            }
        };
    if survived {
        run.survivors.fetch_add(1, Relaxed);
    }
    echo::close(&mut ws);
    run.live.connected.fetch_sub(1, Relaxed);
}

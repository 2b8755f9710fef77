//! `strand bench hold`: N idle connections held open for `--duration`
//! seconds once all are connected, then each echoes one message: connect
//! times (TCP connect plus handshake) and how many connections survived.
//!
//! While holding, each client blocks in one read until the end (answering
//! the server's pings meanwhile), so the tool adds no wake-ups of its own
//! to the idle server it measures. Once all are connected it prints
//! `all N connected; holding for T s` on stderr for scripts that sample the
//! server then.

use crate::bench::client::{
    error_kind, is_timeout, set_read_timeout, Connector, Fleet, Gate, Limiter, Ready,
};
use crate::bench::live::{Live, Progress};
use crate::bench::report::Report;
use crate::bench::stats::Latencies;
use crate::bench::{echo, secs, Common};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tungstenite::Message;

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
    limiter: Limiter,
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
        limiter: Limiter::new(a.common.connect_concurrency),
        gate: Gate::new(),
        live: live.clone(),
        connect: Latencies::new(),
        survivors: AtomicU64::new(0),
    });
    let progress = Progress::start(&live, a.common.quiet);
    let started = Instant::now();
    let r = run.clone();
    let fleet = Fleet::spawn_range(share, "bench-hold", &live, move |_, ready| {
        client(&r, ready)
    });
    let connected = fleet.wait_ready();
    let connecting = started.elapsed();
    let hold = secs(a.duration);
    progress.note(&format!(
        "all {connected} connected (of {}); holding for {} s",
        clients, a.duration
    ));
    run.gate.open(Some(Instant::now() + hold));
    fleet.join();
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

fn client(run: &Run, ready: Ready) {
    let connected = {
        let _permit = run.limiter.acquire();
        let t0 = Instant::now();
        run.connector
            .connect(&run.path, run.timeout)
            .map(|ws| (ws, t0.elapsed()))
    };
    let mut ws = match connected {
        Ok((ws, took)) => {
            run.connect.add(&[took.as_micros() as u64]);
            ws
        }
        Err(e) => {
            run.live.connect_error(&e);
            return ready.failed();
        }
    };
    run.live.connected.fetch_add(1, Relaxed);
    ready.connected();
    let end = run.gate.wait();
    // Hold: one blocking read until the end; pings are answered inside it.
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        set_read_timeout(&ws, Some(left));
        match ws.read() {
            Ok(Message::Close(_)) => {
                run.live.error("closed by server");
                run.live.connected.fetch_sub(1, Relaxed);
                return;
            }
            Ok(_) => continue,
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

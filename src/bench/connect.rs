//! `strand bench connect`: K threads each open a connection, complete the
//! WebSocket handshake, send a close frame and hang up, again and again
//! for `--duration` seconds. Reports handshakes per second and the time of
//! one connect (TCP connect plus handshake).
//!
//! The client does not wait for the server's close reply: what is measured
//! is how fast the server accepts and upgrades. A client closing first keeps
//! its port in TIME_WAIT; Linux reuses those on loopback
//! (`net.ipv4.tcp_tw_reuse`), elsewhere long runs may run out of local
//! ports (counted as `no local port`).

use crate::bench::client::Fleet;
use crate::bench::live::{Live, Progress};
use crate::bench::report::Report;
use crate::bench::stats::{now_us, Latencies};
use crate::bench::{secs, Common};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Pause after a failed attempt, so a refusing server is not spun on.
const BACKOFF: Duration = Duration::from_millis(5);

/// The flags of `strand bench connect`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectArgs {
    /// The shared flags.
    #[command(flatten)]
    pub common: Common,
    /// Client threads, each connecting in a loop.
    #[arg(long, default_value_t = 4)]
    pub threads: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    pub duration: f64,
}

/// Runs the scenario.
pub fn run(a: &ConnectArgs) -> Result<Report, String> {
    let target = Arc::new(a.common.connector()?);
    let path = target.target.path_or("/ws");
    let share = a.common.share(a.threads);
    let threads = share.len();
    let live = Live::new(threads as u64);
    let latencies = Latencies::new();
    let timeout = a.common.timeout();
    let progress = Progress::start(&live, a.common.quiet);
    let start = Instant::now();
    let start_us = now_us();
    let deadline = start + secs(a.duration);
    let (t, l, lat, p) = (
        target.clone(),
        live.clone(),
        latencies.clone(),
        path.clone(),
    );
    let fleet = Fleet::spawn_range(share, "bench-connect", &live, move |_, ready| {
        ready.connected();
        let mut rec = lat.recorder();
        while Instant::now() < deadline {
            let t0 = Instant::now();
            match t.connect(&p, timeout) {
                Ok(mut ws) => {
                    rec.record(t0.elapsed().as_micros() as u64);
                    l.add_messages(1);
                    let _ = ws.close(None);
                }
                Err(e) => {
                    l.connect_error(&e);
                    std::thread::sleep(BACKOFF);
                }
            }
        }
    });
    fleet.wait_ready();
    fleet.join();
    let elapsed = start.elapsed().as_secs_f64();
    let end_us = now_us();
    drop(progress);

    let handshakes = live.messages.load(Relaxed);
    let mut report = Report::new("connect", &target.target.url(&path));
    report.count("threads", "threads", threads as u64);
    report.count("handshakes", "handshakes", handshakes);
    report.set_connected(handshakes);
    report.subprotocol(&target);
    report.real("elapsed (s)", "elapsed_s", elapsed, 3);
    report.rate(
        "handshakes/s",
        "handshakes_per_s",
        "handshakes",
        handshakes,
        start_us,
        end_us,
    );
    report.latency("connect time", "connect", &latencies.histogram());
    report.run_of(&live, Some(&latencies));
    Ok(report)
}

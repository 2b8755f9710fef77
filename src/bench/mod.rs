//! `strand bench`: a load generator whose clients are OS threads.
//!
//! Each scenario (echo, fanout, hold, connect, tail) lives in its own module
//! and runs one blocking tungstenite client per thread, with small stacks.
//! The shared pieces are here and in the helper modules: [`client`]
//! (URLs, connecting, thread spawning, gates), [`stats`] (latency
//! histograms, loss and duplicate counting, message stamps: pure logic,
//! unit-tested), [`receivers`] (what the receivers of a stamped stream
//! share: their read loop and figures), [`live`] (the counters and the
//! progress line on stderr), [`report`] (the summary table on stdout
//! and `--json`) and [`html`] with [`svg`] (the report to look at:
//! `--html` and `strand bench report`).
//!
//! Every run is bounded by a message count or a duration and stops by
//! itself; a refused connection or a client error is counted and shown,
//! never a crash of the tool. This module must not depend on the server's
//! internals: it speaks to any server over the wire only.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

pub mod client;
pub mod connect;
pub mod echo;
pub mod fanout;
pub mod hold;
pub mod html;
pub mod live;
pub mod preflight;
pub mod receivers;
pub mod report;
pub mod stats;
pub mod svg;
pub mod tail;

/// The arguments of `strand bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// The scenario to run.
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// The scenarios of `strand bench`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Scenario {
    /// Each client ping-pongs messages with an echo server: msgs/s and RTT.
    Echo(echo::EchoArgs),
    /// Subscribers in a text room, one publisher: deliveries/s, latency, loss.
    Fanout(fanout::FanoutArgs),
    /// Idle connections held open: connect times and survivors.
    Hold(hold::HoldArgs),
    /// Threads opening and closing connections: handshakes/s.
    Connect(connect::ConnectArgs),
    /// Followers of a file the tool appends to: append-to-delivery latency.
    Tail(tail::TailArgs),
    /// Draws the `--json` results of one or more runs as an HTML report.
    Report(html::ReportArgs),
}

/// Flags every scenario takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// The server's URL: `ws://HOST:PORT` (scenarios add their path) or, for
    /// echo and hold, a full `ws://HOST:PORT/PATH`.
    #[arg(long)]
    pub url: String,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Also write the results as a self-contained HTML report (charts
    /// drawn in SVG, no script) to this file.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Give up on a connect, handshake or read after this many seconds.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    pub timeout: f64,
    /// Most connection attempts in flight at once (a burst of thousands of
    /// SYNs overflows the listen backlog and measures retransmits instead).
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub connect_concurrency: usize,
    /// No progress line on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    /// Open the clients' connections from this local address (repeatable:
    /// clients take them in turn, each address has its own ephemeral ports;
    /// on loopback any 127.x.y.z works).
    #[arg(long = "local-ip", value_name = "ADDR")]
    pub local_ip: Vec<std::net::IpAddr>,
}

impl Common {
    /// `--timeout` as a duration (at least 1 ms).
    pub fn timeout(&self) -> Duration {
        secs(self.timeout).max(Duration::from_millis(1))
    }
}

/// Seconds from the command line as a duration (negative or NaN: zero).
pub fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::ZERO)
}

impl Scenario {
    /// The client threads the scenario opens (for the pre-flight check).
    fn clients(&self) -> u64 {
        match self {
            Scenario::Echo(a) => a.clients as u64,
            Scenario::Fanout(a) => a.subscribers as u64 + 1,
            Scenario::Hold(a) => a.clients as u64,
            Scenario::Connect(a) => a.threads as u64,
            Scenario::Tail(a) => a.clients as u64,
            Scenario::Report(_) => 0,
        }
    }

    fn common(&self) -> Option<&Common> {
        match self {
            Scenario::Echo(a) => Some(&a.common),
            Scenario::Fanout(a) => Some(&a.common),
            Scenario::Hold(a) => Some(&a.common),
            Scenario::Connect(a) => Some(&a.common),
            Scenario::Tail(a) => Some(&a.common),
            Scenario::Report(_) => None,
        }
    }
}

/// Says on stderr which of the host's limits the run's clients would
/// cross (false: one that would abort the run), and sets the clients'
/// source addresses.
fn prepare(scenario: &Scenario) -> bool {
    let Some(common) = scenario.common() else {
        return true;
    };
    client::set_local_addrs(common.local_ip.clone());
    let host = preflight::Host::read();
    let mut go = true;
    for problem in preflight::problems(scenario.clients(), common.local_ip.len(), &host) {
        let what = if problem.stops { "error" } else { "warning" };
        eprintln!("strand bench: {what}: {}", problem.text);
        go &= !problem.stops;
    }
    go
}

/// Runs a benchmark: prints its table on stdout, and writes `--json`.
pub fn run(args: BenchArgs) -> ExitCode {
    if !prepare(&args.scenario) {
        return ExitCode::FAILURE;
    }
    let (common, outcome) = match &args.scenario {
        Scenario::Echo(a) => (&a.common, echo::run(a)),
        Scenario::Fanout(a) => (&a.common, fanout::run(a)),
        Scenario::Hold(a) => (&a.common, hold::run(a)),
        Scenario::Connect(a) => (&a.common, connect::run(a)),
        Scenario::Tail(a) => (&a.common, tail::run(a)),
        Scenario::Report(a) => return html::report(a),
    };
    let report = match outcome {
        Ok(r) => r,
        Err(message) => {
            eprintln!("strand bench: {message}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", report.table());
    if let Some(path) = &common.json {
        if let Err(e) = std::fs::write(path, report.json_text()) {
            eprintln!("strand bench: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if let Some(path) = &common.html {
        let run = html::Run::new(
            serde_json::Value::Object(report.json().clone()),
            None,
            "run",
        );
        if let Err(e) = html::write(path, &html::page(&[run], None)) {
            eprintln!("strand bench: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

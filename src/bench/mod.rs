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
//! and `--json`), [`html`] with [`svg`] (the report to look at: `--html`
//! and `strand bench report`) and [`preflight`] (the host's limits, said
//! before a run).
//!
//! Every run is bounded by a message count or a duration and stops by
//! itself; a refused connection or a client error is counted and shown,
//! never a crash of the tool. This module must not depend on the server's
//! internals: it speaks to any server over the wire only.

use report::Report;
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
pub mod merge;
pub mod post;
pub mod preflight;
pub mod pubsub;
pub mod receivers;
pub mod report;
pub mod script;
pub mod segment;
pub mod stats;
pub mod svg;
pub mod tail;
pub mod threshold;
pub mod tls;

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
    /// Fan-out through any pub/sub server: subscribers, one publisher
    /// (WebSocket or HTTP POST), delivery latency, loss, duplicates.
    Pubsub(pubsub::PubsubArgs),
    /// Scripted exchanges from a scenario file: named latencies, stages.
    Run(script::RunArgs),
    /// Merges the `--json` results of several runs (segments) exactly.
    Merge(merge::MergeArgs),
    /// Draws the `--json` results of one or more runs as an HTML report.
    Report(html::ReportArgs),
}

/// Flags every scenario takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// The server's URL: `ws://HOST:PORT` or `wss://HOST:PORT` (scenarios
    /// add their path) or, for echo, hold and connect, a full
    /// `ws[s]://HOST:PORT/PATH`.
    #[arg(long)]
    pub url: String,
    /// `wss://` trust, headers, origin and subprotocols.
    #[command(flatten)]
    pub connect: client::ConnectOptions,
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
    /// A pass/fail condition on the run's figures in k6's forms
    /// (repeatable): `p(99)<50ms`, `p(99.9)<=200ms`, `avg<10ms`, `max<1s`,
    /// `errors==0`, `rate>=1000`, or on a named latency, `connect:p(99)<20ms`.
    /// A crossed one makes the exit status 99.
    #[arg(long = "threshold", value_name = "EXPR")]
    pub thresholds: Vec<String>,
    /// A name for this run in the JSON (default: `SCENARIO URL`).
    #[arg(long, value_name = "TEXT")]
    pub label: Option<String>,
    /// Run the I-th of N shares of the clients (echo, hold, connect; their
    /// indices stay those of the whole run), e.g. 2/3 on the second of
    /// three machines; merge the results with `strand bench merge`.
    #[arg(long, value_name = "I/N")]
    pub segment: Option<segment::Segment>,
    /// Start at this Unix time (seconds), so that every machine's share
    /// starts together.
    #[arg(long, value_name = "UNIX_TIME")]
    pub start_at: Option<f64>,
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
    /// How the clients connect, from these flags.
    pub fn connect_options(&self) -> client::ConnectOptions {
        self.connect.clone()
    }

    /// The connector of `--url` with these flags.
    pub fn connector(&self) -> Result<client::Connector, String> {
        client::Connector::new(&self.url, &self.connect_options())
    }

    /// The client indices this process runs of `total`.
    pub fn share(&self, total: usize) -> std::ops::Range<usize> {
        segment::share(self.segment, total)
    }

    /// Refuses `--segment` for a scenario that cannot be split.
    pub fn unsegmented(&self, scenario: &str) -> Result<(), String> {
        match self.segment {
            Some(_) => Err(format!(
                "--segment applies to echo, hold and connect, not {scenario}"
            )),
            None => Ok(()),
        }
    }

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
    /// The client threads this process opens (for the pre-flight check).
    fn clients(&self) -> u64 {
        let (common, n) = match self {
            Scenario::Echo(a) => (&a.common, a.clients),
            Scenario::Fanout(a) => (&a.common, a.subscribers + 1),
            Scenario::Hold(a) => (&a.common, a.clients),
            Scenario::Connect(a) => (&a.common, a.threads),
            Scenario::Tail(a) => (&a.common, a.clients),
            Scenario::Pubsub(a) => (&a.common, a.subscribers + 1),
            // A script's clients come from its file's stages.
            Scenario::Run(_) | Scenario::Merge(_) | Scenario::Report(_) => return 0,
        };
        common.share(n).len() as u64
    }
}

/// Says on stderr which of the host's limits the run's clients would
/// cross (false: one that would abort the run), and sets the clients'
/// source addresses.
fn prepare(scenario: &Scenario, common: &Common) -> bool {
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

/// Exit status of a run in which a threshold was crossed (k6's).
const THRESHOLD_CROSSED: u8 = 99;

/// Runs a benchmark: prints its table on stdout, and writes `--json`.
/// Exit status: 0 when it completed and every threshold held, 99 when one
/// was crossed, 1 when it could not start or no client connected.
pub fn run(args: BenchArgs) -> ExitCode {
    let common = match &args.scenario {
        Scenario::Run(a) => return script::main(a),
        Scenario::Echo(a) => &a.common,
        Scenario::Fanout(a) => &a.common,
        Scenario::Hold(a) => &a.common,
        Scenario::Connect(a) => &a.common,
        Scenario::Tail(a) => &a.common,
        Scenario::Pubsub(a) => &a.common,
        Scenario::Merge(a) => return merge::run(a),
        Scenario::Report(a) => return html::report(a),
    };
    if !prepare(&args.scenario, common) {
        return ExitCode::FAILURE;
    }
    let thresholds = match threshold::parse_all(&common.thresholds) {
        Ok(t) => t,
        Err(message) => {
            eprintln!("strand bench: {message}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(at) = common.start_at {
        let wait = segment::until(at);
        if !wait.is_zero() {
            eprintln!(
                "strand bench: waiting {:.1} s for --start-at {at}",
                wait.as_secs_f64()
            );
            std::thread::sleep(wait);
        }
    }
    let outcome = match &args.scenario {
        Scenario::Echo(a) => echo::run(a),
        Scenario::Fanout(a) => fanout::run(a),
        Scenario::Hold(a) => hold::run(a),
        Scenario::Connect(a) => connect::run(a),
        Scenario::Tail(a) => tail::run(a),
        Scenario::Pubsub(a) => pubsub::run(a),
        Scenario::Merge(a) => return merge::run(a),
        Scenario::Run(a) => return script::main(a),
        Scenario::Report(a) => return html::report(a),
    };
    let mut report = match outcome {
        Ok(r) => r,
        Err(message) => {
            eprintln!("strand bench: {message}");
            return ExitCode::FAILURE;
        }
    };
    report.set_run(common);
    let verdicts = threshold::evaluate(&thresholds, report.figures());
    report.thresholds(&verdicts);
    let out = Output {
        json: common.json.as_deref(),
        html: common.html.as_deref(),
    };
    finish(&report, &verdicts, out)
}

/// Where a result is written besides the table on stdout.
#[derive(Debug, Clone, Copy, Default)]
pub struct Output<'a> {
    /// `--json FILE`.
    pub json: Option<&'a std::path::Path>,
    /// `--html FILE`: the report of this one result.
    pub html: Option<&'a std::path::Path>,
}

/// Prints `report`, writes it where `out` says, and gives the exit status.
pub fn finish(report: &Report, verdicts: &[threshold::Verdict], out: Output<'_>) -> ExitCode {
    print!("{}", report.table());
    if let Some(path) = out.json {
        if let Err(e) = std::fs::write(path, report.json_text()) {
            eprintln!("strand bench: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if let Some(path) = out.html {
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
    if report.none_connected() {
        eprintln!("strand bench: no client connected");
        return ExitCode::FAILURE;
    }
    let crossed: Vec<_> = verdicts.iter().filter(|v| !v.ok).collect();
    for v in &crossed {
        eprintln!("strand bench: threshold crossed: {} ({})", v.expr, v.metric);
    }
    if crossed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(THRESHOLD_CROSSED)
    }
}

//! `strand bench run FILE`: scripted exchanges. A scenario file (TOML,
//! see docs/LOAD-TESTING.md, "Scripted scenarios") lists the steps every
//! client runs: connect, send, expect, capture, think, loop, close; how
//! many clients run (a fixed count, or ramping stages as in k6); and
//! thresholds on the named metrics its expect steps measure.
//!
//! The pieces: [`file`] reads and validates the file (refused before the
//! run, with its line), [`template`], [`matcher`], [`duration`],
//! [`feeder`] and [`stages`] are the pure parts it is built of,
//! [`player`] runs one client's steps on its thread, [`schedule`] starts
//! and stops the clients over time. This module wires them and reports;
//! like the rest of `strand bench`, it speaks to the server over the wire
//! only.

pub mod dial;
pub mod duration;
pub mod feeder;
pub mod file;
pub mod matcher;
pub mod player;
pub mod schedule;
pub mod stages;
pub mod template;

use crate::bench::client::ConnectOptions;
use crate::bench::live::{Live, Progress};
use crate::bench::report::Report;
use crate::bench::{secs, segment, threshold};
use player::Shared;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

/// The flags of `strand bench run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// The scenario file (TOML).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The base URL of connect steps that give a path (replaces the file's
    /// `url`).
    #[arg(long)]
    pub url: Option<String>,
    /// `wss://` trust, headers, origin and subprotocols.
    #[command(flatten)]
    pub connect: ConnectOptions,
    /// A threshold added to the file's (repeatable): `join:p(99)<50ms`,
    /// `errors==0`. A crossed one makes the exit status 99.
    #[arg(long = "threshold", value_name = "EXPR")]
    pub thresholds: Vec<String>,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Also write the results as a self-contained HTML report to this file.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// The run's name in the JSON (`label`; the scenario's `name` by default).
    #[arg(long)]
    pub label: Option<String>,
    /// Run the I-th of N shares of the clients (of each stage's target
    /// with stages; `{{client}}` stays the whole run's index), e.g. 2/3 on
    /// the second of three machines; merge with `strand bench merge`.
    #[arg(long, value_name = "I/N")]
    pub segment: Option<segment::Segment>,
    /// Start at this Unix time (seconds), so that every machine's share
    /// starts together.
    #[arg(long, value_name = "UNIX_TIME")]
    pub start_at: Option<f64>,
    /// Give up on a connect or handshake after this many seconds.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    pub timeout: f64,
    /// Most connection attempts in flight at once.
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub connect_concurrency: usize,
    /// No progress line on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Runs `strand bench run`: exit 1 for a faulty file (with its line) or a
/// run in which no client connected, 99 when a threshold was crossed.
pub fn main(a: &RunArgs) -> ExitCode {
    match run(a) {
        Ok((report, verdicts)) => {
            let out = crate::bench::Output {
                json: a.json.as_deref(),
                html: a.html.as_deref(),
            };
            crate::bench::finish(&report, &verdicts, out)
        }
        Err(message) => {
            eprintln!("strand bench: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Loads the scenario (refusing a faulty one with its line), runs it, and
/// reports every named metric and the thresholds' verdicts.
pub fn run(a: &RunArgs) -> Result<(Report, Vec<threshold::Verdict>), String> {
    let extra = threshold::parse_all(&a.thresholds)?;
    let script = file::load(&a.file, a.url.as_deref(), &extra)
        .map_err(|e| format!("{}: {e}", a.file.display()))?;
    let dialer = dial::Dialer::new(a.connect.clone())?;
    if let Some(at) = a.start_at {
        let wait = segment::until(at);
        if !wait.is_zero() {
            eprintln!(
                "strand bench: waiting {:.1} s for --start-at {at}",
                wait.as_secs_f64()
            );
            std::thread::sleep(wait);
        }
    }
    let live = Live::new(segment::share(a.segment, script.load.peak()).len() as u64);
    let timeout = secs(a.timeout).max(std::time::Duration::from_millis(1));
    let shared = Shared::new(script, live.clone(), dialer, a.connect_concurrency, timeout);
    let shared = Arc::new(shared);
    let progress = Progress::start(&live, a.quiet);
    let started = Instant::now();
    let most = schedule::run(&shared, a.segment);
    let elapsed = started.elapsed().as_secs_f64();
    drop(progress);
    let mut report = report(&shared, &a.file.display().to_string(), most, elapsed);
    let label = a.label.as_ref().unwrap_or(&shared.script.name);
    report.set_json("label", json!(label));
    if let Some(s) = a.segment {
        report.set_json("segment", json!(s.to_string()));
    }
    let verdicts = threshold::evaluate(&shared.script.thresholds, report.figures());
    report.thresholds(&verdicts);
    Ok((report, verdicts))
}

fn report(shared: &Shared, file: &str, most: usize, elapsed: f64) -> Report {
    let mut r = Report::new("run", file);
    let name = &shared.script.name;
    r.add("scenario", name.clone(), "name", json!(name));
    r.count("clients (most at once)", "clients", most as u64);
    r.real("elapsed (s)", "elapsed_s", elapsed, 3);
    let connects = shared.metrics[0].latency.summary().count;
    r.count("connections opened", "connections", connects);
    r.set_connected(connects);
    r.count("iterations", "iterations", shared.iterations.load(Relaxed));
    r.count(
        "failed iterations",
        "failed_iterations",
        shared.failed.load(Relaxed),
    );
    r.count("messages sent", "sent", shared.sent.load(Relaxed));
    r.count(
        "messages received",
        "received",
        shared.received.load(Relaxed),
    );
    for (name, m) in shared.script.metrics.iter().zip(&shared.metrics) {
        r.latency(name, name, &m.latency.histogram());
        let errors = m.errors.load(Relaxed);
        r.count(&format!("{name} errors"), &format!("{name}_errors"), errors);
    }
    // The series' p99 is the first expect's metric (connect without one).
    let main = shared.metrics.get(1).unwrap_or(&shared.metrics[0]);
    r.run_of(&shared.live, Some(&main.latency));
    r
}

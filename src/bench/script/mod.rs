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

pub mod duration;
pub mod feeder;
pub mod file;
pub mod matcher;
pub mod player;
pub mod schedule;
pub mod stages;
pub mod template;

use crate::bench::live::{Live, Progress};
use crate::bench::report::Report;
use crate::bench::secs;
use crate::bench::stats::{human_us, Summary};
use player::Shared;
use serde_json::{json, Map, Value};
use std::path::PathBuf;
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
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
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

/// Loads the scenario (refusing a faulty one with its line), runs it, and
/// reports every named metric.
pub fn run(a: &RunArgs) -> Result<Report, String> {
    let script = file::load(&a.file, a.url.as_deref(), &[])
        .map_err(|e| format!("{}: {e}", a.file.display()))?;
    let peak = script.load.peak();
    let live = Live::new(peak as u64);
    let timeout = secs(a.timeout).max(std::time::Duration::from_millis(1));
    let shared = Arc::new(Shared::new(
        script,
        live.clone(),
        a.connect_concurrency,
        timeout,
    ));
    let progress = Progress::start(&live, a.quiet);
    let started = Instant::now();
    let most = schedule::run(&shared);
    let elapsed = started.elapsed().as_secs_f64();
    drop(progress);
    Ok(report(
        &shared,
        &a.file.display().to_string(),
        most,
        elapsed,
    ))
}

fn report(shared: &Shared, file: &str, most: usize, elapsed: f64) -> Report {
    let mut r = Report::new("run", file);
    r.add(
        "scenario",
        shared.script.name.clone(),
        "name",
        json!(shared.script.name),
    );
    r.count("clients (most at once)", "clients", most as u64);
    r.real("elapsed (s)", "elapsed_s", elapsed, 3);
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
    let mut metrics = Map::new();
    for (name, m) in shared.script.metrics.iter().zip(&shared.metrics) {
        let s = m.latency.summary();
        let errors = m.errors.load(Relaxed);
        if s.count == 0 && errors == 0 && name == file::CONNECT_METRIC {
            continue;
        }
        r.row(name, format!("{}  errors {errors}", latency_text(&s)));
        let mut value = serde_json::to_value(s).unwrap_or(Value::Null);
        if let Value::Object(o) = &mut value {
            o.insert("errors".into(), json!(errors));
        }
        metrics.insert(name.clone(), value);
    }
    r.insert("metrics_us", Value::Object(metrics));
    r.errors(&shared.live);
    r
}

fn latency_text(s: &Summary) -> String {
    if s.count == 0 {
        return "no samples".into();
    }
    format!(
        "p50 {}  p90 {}  p99 {}  max {}  (n={})",
        human_us(s.p50),
        human_us(s.p90),
        human_us(s.p99),
        human_us(s.max),
        s.count
    )
}

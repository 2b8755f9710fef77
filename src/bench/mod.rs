//! `strand bench`: a load generator whose clients are threads (placeholder).

use std::process::ExitCode;

/// The arguments of `strand bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// The scenario to run.
    pub scenario: String,
    /// The server's WebSocket URL.
    #[arg(long)]
    pub url: String,
}

/// Runs a benchmark.
pub fn run(_args: BenchArgs) -> ExitCode {
    eprintln!("strand bench is not built yet");
    ExitCode::FAILURE
}

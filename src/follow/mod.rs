//! `tail -F` following of files in the tail directory (placeholder).

use crate::config::Config;

pub mod api;

/// The shared tails of followed files.
pub struct Tails {}

impl Tails {
    /// No tails yet.
    pub fn new(_config: &Config) -> Tails {
        Tails {}
    }

    /// Stops every tailer thread.
    pub fn shutdown(&self) {}
}

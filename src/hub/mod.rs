//! Rooms and the JSON hub's clients (placeholder until the rooms issue).

use crate::config::Config;
use crate::metrics::Metrics;
use std::sync::Arc;

pub mod api;

/// Rooms, presence and hub clients.
pub struct Hub {}

impl Hub {
    /// An empty hub.
    pub fn new(_config: &Config, _metrics: Arc<Metrics>) -> Hub {
        Hub {}
    }

    /// The hub's Prometheus families.
    pub fn metrics_text(&self) -> String {
        String::new()
    }

    /// Stops the hub's helper threads.
    pub fn shutdown(&self) {}
}

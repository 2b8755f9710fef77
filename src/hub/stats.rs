//! The hub's counters, rendered as Prometheus families for `/metrics`.
//! Relaxed atomics; a fan-out adds its totals once, not once per member.

use crate::activity::{Events, Kind};
use crate::hub::member::Fanout;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Counters of rooms and hub traffic.
#[derive(Debug, Default)]
pub struct HubStats {
    /// Room messages numbered (both dialects).
    pub room_messages: AtomicU64,
    /// Frames queued to members and clients by the hub.
    pub deliveries: AtomicU64,
    /// Frames the hub could not queue (full or closing outbox).
    pub drops: AtomicU64,
    /// Global (`room_name` null) messages.
    pub global_messages: AtomicU64,
    /// Direct messages delivered.
    pub direct_messages: AtomicU64,
    /// `POST /broadcast`s.
    pub broadcasts: AtomicU64,
    /// `system_notification`s sent (one per tick).
    pub notifications: AtomicU64,
    /// Hub connections replaced by a newer one with the same id (4001).
    pub replacements: AtomicU64,
    /// Where replacements are named for the operator view (the server's
    /// own ring, [`crate::metrics::Metrics::events`]).
    pub events: Arc<Events>,
}

/// Gauges read at render time.
#[derive(Debug, Clone, Copy)]
pub struct Gauges {
    /// Rooms with at least one member.
    pub rooms: usize,
    /// Connected hub clients.
    pub hub_clients: usize,
}

impl HubStats {
    /// Adds a fan-out's counts.
    pub fn count(&self, fanout: Fanout) {
        if fanout.queued > 0 {
            self.deliveries.fetch_add(fanout.queued, Relaxed);
        }
        if fanout.dropped > 0 {
            self.drops.fetch_add(fanout.dropped, Relaxed);
        }
    }

    /// Counts hub client `client_id`'s connection replaced by a newer one
    /// (closed with 4001) and names it in the recent events.
    pub fn replaced(&self, client_id: &str) {
        self.replacements.fetch_add(1, Relaxed);
        self.events.record(
            Kind::Replaced,
            client_id,
            "replaced by a newer connection with its id (4001)",
        );
    }

    /// The Prometheus text of the hub's families.
    pub fn render(&self, gauges: Gauges) -> String {
        let mut out = String::with_capacity(1024);
        let mut family = |name: &str, kind: &str, help: &str, value: u64| {
            crate::metrics::family(&mut out, name, kind, help, value)
        };
        family(
            "strand_rooms",
            "gauge",
            "Rooms with at least one member.",
            gauges.rooms as u64,
        );
        family(
            "strand_hub_clients",
            "gauge",
            "Connected JSON hub clients.",
            gauges.hub_clients as u64,
        );
        let counters = [
            (
                "strand_room_messages_total",
                "Room messages published.",
                &self.room_messages,
            ),
            (
                "strand_room_deliveries_total",
                "Frames queued by rooms and the hub.",
                &self.deliveries,
            ),
            (
                "strand_room_drops_total",
                "Hub frames dropped at a full or closing outbound queue.",
                &self.drops,
            ),
            (
                "strand_global_messages_total",
                "Global hub messages.",
                &self.global_messages,
            ),
            (
                "strand_direct_messages_total",
                "Direct messages delivered.",
                &self.direct_messages,
            ),
            (
                "strand_broadcasts_total",
                "POST /broadcast requests served.",
                &self.broadcasts,
            ),
            (
                "strand_notifications_total",
                "system_notification ticks.",
                &self.notifications,
            ),
            (
                "strand_hub_replacements_total",
                "Hub connections replaced (4001).",
                &self.replacements,
            ),
        ];
        for (name, help, value) in counters {
            family(name, "counter", help, value.load(Relaxed));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_gauges() {
        let stats = HubStats::default();
        stats.count(Fanout {
            queued: 3,
            dropped: 1,
        });
        let text = stats.render(Gauges {
            rooms: 2,
            hub_clients: 5,
        });
        assert!(text.contains("strand_rooms 2\n"));
        assert!(text.contains("strand_hub_clients 5\n"));
        assert!(text.contains("strand_room_deliveries_total 3\n"));
        assert!(
            text.contains("# TYPE strand_room_drops_total counter\nstrand_room_drops_total 1\n")
        );
    }
}

//! Messages per second of the rooms the operator view lists, worked out
//! when someone asks (nothing is counted per room for it): each room's
//! message total (its sequence here) against the total seen at least a
//! second before. The first look at a room gives 0.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The shortest time a rate is measured over; a look sooner gets the
/// rate measured last.
pub const WINDOW: Duration = Duration::from_secs(1);

/// The baselines of the rooms last listed.
#[derive(Debug, Default)]
pub struct RoomRates {
    seen: Mutex<HashMap<String, Baseline>>,
}

#[derive(Debug, Clone, Copy)]
struct Baseline {
    at: Instant,
    total: u64,
    rate: f64,
}

impl RoomRates {
    /// The rate of each of `rooms` (name, message total) at `now`, in
    /// order. Rooms not listed are forgotten.
    pub fn rates(&self, now: Instant, rooms: &[(&str, u64)]) -> Vec<f64> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let mut kept = HashMap::with_capacity(rooms.len());
        let rates = rooms
            .iter()
            .map(|&(room, total)| {
                let baseline = match seen.remove(room) {
                    None => Baseline {
                        at: now,
                        total,
                        rate: 0.0,
                    },
                    Some(b) if now.saturating_duration_since(b.at) < WINDOW => b,
                    Some(b) => {
                        let secs = now.saturating_duration_since(b.at).as_secs_f64();
                        Baseline {
                            at: now,
                            total,
                            // A total that went back (a new epoch) counts from 0.
                            rate: total.checked_sub(b.total).unwrap_or(total) as f64 / secs,
                        }
                    }
                };
                kept.insert(room.to_string(), baseline);
                baseline.rate
            })
            .collect();
        *seen = kept;
        rates
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_over_at_least_a_second() {
        let r = RoomRates::default();
        let t = Instant::now();
        assert_eq!(r.rates(t, &[("a", 100), ("b", 5)]), [0.0, 0.0]);
        // Too soon: still the last rate.
        assert_eq!(
            r.rates(t + Duration::from_millis(300), &[("a", 150)]),
            [0.0]
        );
        assert_eq!(r.rates(t + Duration::from_secs(2), &[("a", 300)]), [100.0]);
        assert_eq!(
            r.rates(t + Duration::from_millis(2500), &[("a", 900)]),
            [100.0]
        );
        // b was forgotten when it was not listed.
        assert_eq!(r.rates(t + Duration::from_secs(3), &[("b", 50)]), [0.0]);
        // A sequence that restarted counts from zero.
        assert_eq!(r.rates(t + Duration::from_secs(4), &[("b", 10)]), [10.0]);
    }
}

//! When to order: renewal 30 days before expiry (at 2/3 of the lifetime
//! for shorter certificates), and the backoff after a failure (1 minute,
//! doubling to 1 day, jittered so that many hosts do not retry in step).
//!
//! Pure functions of times and counts: it must not read the clock.

use std::time::{Duration, SystemTime};

/// How long before expiry renewal starts for a long-lived certificate.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 86_400);
/// The first wait after a failure.
const BACKOFF_FIRST: Duration = Duration::from_secs(60);
/// The longest wait after failures.
const BACKOFF_MAX: Duration = Duration::from_secs(86_400);
/// After a `rateLimited` answer, never less than this.
pub const RATE_LIMITED_WAIT: Duration = Duration::from_secs(3600);

/// When a certificate valid from `not_before` to `not_after` should be
/// renewed: 30 days before expiry, or at 2/3 of its lifetime when that is
/// later (a 90-day certificate: both at day 60; a 6-day one: day 4).
pub fn renew_at(not_before: SystemTime, not_after: SystemTime) -> SystemTime {
    let lifetime = not_after.duration_since(not_before).unwrap_or_default();
    let two_thirds = not_before + lifetime * 2 / 3;
    let month_before = not_after.checked_sub(RENEW_BEFORE).unwrap_or(not_before);
    two_thirds.max(month_before)
}

/// The wait after `failures` failures in a row (at least 1), scaled by
/// `jitter` in [0, 1) to between 75 % and 125 %.
pub fn backoff(failures: u32, jitter: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    let base = BACKOFF_FIRST
        .saturating_mul(1 << doublings)
        .min(BACKOFF_MAX);
    base.mul_f64(0.75 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// A jitter in [0, 1) from the clock's nanoseconds: enough to spread
/// retries, with no random-number crate.
pub fn clock_jitter() -> f64 {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    f64::from(nanos % 1_000_000) / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn renewal_is_a_month_ahead_or_at_two_thirds() {
        let start = SystemTime::UNIX_EPOCH + 1000 * DAY;
        assert_eq!(renew_at(start, start + 90 * DAY), start + 60 * DAY);
        assert_eq!(renew_at(start, start + 365 * DAY), start + 335 * DAY);
        assert_eq!(renew_at(start, start + 6 * DAY), start + 4 * DAY);
        assert_eq!(
            renew_at(start, start + Duration::from_secs(30)),
            start + Duration::from_secs(20)
        );
        assert_eq!(
            renew_at(start, start),
            start,
            "an odd certificate renews now"
        );
    }

    #[test]
    fn backoff_doubles_from_a_minute_to_a_day_with_jitter() {
        assert_eq!(backoff(1, 0.5), Duration::from_secs(60));
        assert_eq!(backoff(2, 0.5), Duration::from_secs(120));
        assert_eq!(backoff(3, 0.5), Duration::from_secs(240));
        assert_eq!(backoff(30, 0.5), DAY);
        assert_eq!(backoff(1, 0.0), Duration::from_secs(45));
        assert_eq!(backoff(1, 0.999_999).as_secs(), 74);
        assert_eq!(backoff(0, 0.5), Duration::from_secs(60));
    }
}

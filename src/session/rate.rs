//! `--max-messages-per-second`: each connection's message rate, as a token
//! bucket (bursts of N, refilled at N per second).
//!
//! [`RateLimit`] is the pure arithmetic (time is passed in); [`Throttle`]
//! applies its verdict to a connection the way the contract says: on the
//! JSON hub a message over the rate gets the error `rate_limited` and is
//! dropped, and a client that *stays* over the rate is closed with 1008
//! `rate limited`; on `/ws` and text rooms the first message over the rate
//! closes the connection. Control frames (ping, pong, close) are the
//! engine's and are not counted here.
//!
//! "Stays over the rate", precisely: refused messages draw on a second
//! bucket of N tokens refilled at N per [`STRIKE_WINDOW`] (10 s). A refusal
//! that finds it empty closes the connection. So a client may have N
//! messages refused in a burst, and on average N per 10 s, before it is
//! closed: one a little over the rate is told and kept, a flooder is closed
//! after about 2 N messages.

use crate::activity::events::{address, client_name};
use crate::activity::Kind;
use crate::metrics::Metrics;
use crate::wire::{ErrorCode, WireError};
use crate::ws::Conn;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The window over which a hub client may have N messages refused.
pub const STRIKE_WINDOW: Duration = Duration::from_secs(10);

/// What to do with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the rate.
    Allow,
    /// Over the rate: refuse this message.
    Refuse,
    /// Over the rate and out of refusals: close the connection.
    Close,
}

/// One connection's token buckets. Pure: the caller passes the time.
#[derive(Debug, Clone)]
pub struct RateLimit {
    per_second: f64,
    tokens: f64,
    strikes: f64,
    last: Instant,
}

impl RateLimit {
    /// A limit of `per_second` messages (bursts of as many), full at `now`;
    /// `None` for 0 (no limit).
    pub fn new(per_second: u32, now: Instant) -> Option<RateLimit> {
        (per_second > 0).then(|| RateLimit {
            per_second: f64::from(per_second),
            tokens: f64::from(per_second),
            strikes: f64::from(per_second),
            last: now,
        })
    }

    /// The verdict on one message arriving at `now`.
    pub fn check(&mut self, now: Instant) -> Verdict {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        let burst = self.per_second;
        self.tokens = (self.tokens + elapsed * self.per_second).min(burst);
        let strike_rate = self.per_second / STRIKE_WINDOW.as_secs_f64();
        self.strikes = (self.strikes + elapsed * strike_rate).min(burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Verdict::Allow
        } else if self.strikes >= 1.0 {
            self.strikes -= 1.0;
            Verdict::Refuse
        } else {
            Verdict::Close
        }
    }
}

/// How a session answers a message over the rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `/ws` and text rooms: close at once.
    Strict,
    /// The JSON hub: `rate_limited` errors, close when it stays over.
    Hub,
}

/// A session's rate limit, applied to its connection and counted; its
/// first refusal and its close are named in the operator view's events.
pub struct Throttle {
    limit: Option<RateLimit>,
    dialect: Dialect,
    metrics: Arc<Metrics>,
    /// The client's name for the events (`None`: its address).
    client: Option<Box<str>>,
    /// The first refusal was recorded: later ones are only counted.
    reported: bool,
}

impl Throttle {
    /// `per_second` messages per second (0: unlimited) for a `dialect`
    /// session, counted in `metrics`.
    pub fn new(per_second: u32, dialect: Dialect, metrics: Arc<Metrics>) -> Throttle {
        Throttle {
            limit: RateLimit::new(per_second, Instant::now()),
            dialect,
            metrics,
            client: None,
            reported: false,
        }
    }

    /// Names the client in the events (kept only when there is a limit).
    pub fn for_client(mut self, client: &str) -> Throttle {
        if self.limit.is_some() {
            self.client = Some(client.into());
        }
        self
    }

    /// Whether the message that just arrived may be handled. When not, the
    /// connection has been answered: an error queued, or a close asked for.
    pub fn admit(&mut self, conn: &mut Conn<'_>) -> bool {
        let Some(limit) = self.limit.as_mut() else {
            return true;
        };
        let verdict = match (limit.check(Instant::now()), self.dialect) {
            (Verdict::Allow, _) => return true,
            (Verdict::Refuse, Dialect::Hub) => Verdict::Refuse,
            _ => Verdict::Close,
        };
        self.metrics.rate_limited.fetch_add(1, Relaxed);
        if !self.reported || verdict == Verdict::Close {
            self.reported = true;
            self.record(conn, verdict);
        }
        if verdict == Verdict::Refuse {
            let error = WireError::new(
                ErrorCode::RateLimited,
                "over --max-messages-per-second: this message was dropped",
            );
            conn.send_text(&error.to_json());
        } else {
            self.metrics.rate_limit_closes.fetch_add(1, Relaxed);
            conn.close(1008, "rate limited");
        }
        false
    }

    /// Names the client in the events: its first refusal, and its close.
    #[cold]
    fn record(&self, conn: &Conn<'_>, verdict: Verdict) {
        let peer = conn.peer();
        let what = match verdict {
            Verdict::Close => "closed with 1008 rate limited",
            _ => "a message refused (rate_limited)",
        };
        self.metrics.events.record(
            Kind::RateLimited,
            client_name(self.client.as_deref(), peer),
            format!(
                "connection {} from {}: over --max-messages-per-second; {what}",
                conn.id(),
                address(peer)
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn zero_means_no_limit() {
        assert!(RateLimit::new(0, Instant::now()).is_none());
    }

    #[test]
    fn a_burst_of_n_then_one_per_refill() {
        let t = Instant::now();
        let mut r = RateLimit::new(10, t).unwrap();
        for _ in 0..10 {
            assert_eq!(r.check(t), Verdict::Allow);
        }
        assert_eq!(r.check(t), Verdict::Refuse);
        // 100 ms later one more token has come back, and only one.
        assert_eq!(r.check(at(t, 100)), Verdict::Allow);
        assert_eq!(r.check(at(t, 100)), Verdict::Refuse);
    }

    #[test]
    fn a_steady_client_at_the_rate_is_never_refused() {
        let t = Instant::now();
        let mut r = RateLimit::new(5, t).unwrap();
        for i in 0..1000 {
            assert_eq!(r.check(at(t, i * 200)), Verdict::Allow, "message {i}");
        }
    }

    #[test]
    fn a_flooder_is_closed_after_n_refusals() {
        let t = Instant::now();
        let mut r = RateLimit::new(10, t).unwrap();
        let verdicts: Vec<Verdict> = (0..21).map(|_| r.check(t)).collect();
        assert!(verdicts[..10].iter().all(|v| *v == Verdict::Allow));
        assert!(verdicts[10..20].iter().all(|v| *v == Verdict::Refuse));
        assert_eq!(verdicts[20], Verdict::Close);
    }

    #[test]
    fn slightly_over_the_rate_is_refused_but_kept() {
        // 10/s allowed, 11/s sent for a minute: one refusal a second, and
        // refusals come back at 1 per second: never closed.
        let t = Instant::now();
        let mut r = RateLimit::new(10, t).unwrap();
        let mut refused = 0;
        for i in 0..660u64 {
            match r.check(at(t, i * 1000 / 11)) {
                Verdict::Allow => {}
                Verdict::Refuse => refused += 1,
                Verdict::Close => panic!("closed at message {i}"),
            }
        }
        assert!((50..=70).contains(&refused), "{refused} refused");
    }

    #[test]
    fn staying_well_over_the_rate_closes_within_the_window() {
        // 10/s allowed, 20/s sent: 10 refusals a second against a budget of
        // 10 plus 1 a second: closed in about a second.
        let t = Instant::now();
        let mut r = RateLimit::new(10, t).unwrap();
        let closed_at = (0..400u64)
            .find(|i| r.check(at(t, i * 50)) == Verdict::Close)
            .expect("closed");
        assert!(
            (30..=60).contains(&closed_at),
            "closed at message {closed_at}"
        );
    }

    #[test]
    fn time_going_backwards_does_not_mint_tokens() {
        let t = at(Instant::now(), 10_000);
        let mut r = RateLimit::new(1, t).unwrap();
        assert_eq!(r.check(t), Verdict::Allow);
        assert_eq!(r.check(at(t, 0) - Duration::from_secs(5)), Verdict::Refuse);
    }
}

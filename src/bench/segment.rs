//! Runs over several machines: `--segment I/N` gives this process the I-th
//! of N shares of a run's clients (their indices stay those of the whole
//! run, so names and schedules do not collide), and `--start-at` holds the
//! start until a Unix time every machine shares.
//!
//! Pure arithmetic and one wait; it knows nothing of sockets or reports.

use std::ops::Range;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The I-th (from 1) of N shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Which share, from 1.
    pub index: usize,
    /// How many shares.
    pub of: usize,
}

impl std::str::FromStr for Segment {
    type Err = String;

    /// `I/N` with 1 <= I <= N.
    fn from_str(s: &str) -> Result<Segment, String> {
        let bad = || format!("expected I/N with 1 <= I <= N (e.g. 2/3), got {s:?}");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, of) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if index == 0 || index > of {
            return Err(bad());
        }
        Ok(Segment { index, of })
    }
}

impl std::fmt::Display for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.of)
    }
}

impl Segment {
    /// The indices of this share of `total` clients: the N shares cover
    /// `0..total` exactly, their sizes differing by one at most.
    pub fn share(&self, total: usize) -> Range<usize> {
        let at = |k: usize| k * total / self.of;
        at(self.index - 1)..at(self.index)
    }
}

/// The clients `segment` runs of `total` (all of them without one).
pub fn share(segment: Option<Segment>, total: usize) -> Range<usize> {
    segment.map_or(0..total, |s| s.share(total))
}

/// How long until Unix time `at` (seconds); zero when it has passed.
pub fn until(at: f64) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    Duration::try_from_secs_f64(at - now).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_parse_and_say_why_not() {
        let s: Segment = "2/3".parse().unwrap();
        assert_eq!(s, Segment { index: 2, of: 3 });
        assert_eq!(s.to_string(), "2/3");
        for bad in ["0/3", "4/3", "3", "a/b", "1/0", ""] {
            assert!(bad.parse::<Segment>().is_err(), "{bad}");
        }
    }

    #[test]
    fn shares_cover_every_client_once() {
        for total in [0, 1, 2, 7, 10, 1000] {
            for of in 1..=5 {
                let mut next = 0;
                for index in 1..=of {
                    let r = Segment { index, of }.share(total);
                    assert_eq!(r.start, next, "{index}/{of} of {total}");
                    assert!(r.len() <= total / of + 1);
                    next = r.end;
                }
                assert_eq!(next, total);
            }
        }
        assert_eq!(share(None, 5), 0..5);
    }

    #[test]
    fn a_past_start_is_now() {
        assert_eq!(until(0.0), Duration::ZERO);
        let soon = until(1e12);
        assert!(soon > Duration::from_secs(86_400));
    }
}

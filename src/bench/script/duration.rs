//! Durations as a scenario file writes them: `250ms`, `1.5s`, `2m`, `1h`,
//! and ranges `500ms..1500ms` for think times with jitter. Pure parsing.

use std::time::Duration;

/// The longest duration a file may give: deadlines are instants, and an
/// absurd duration must be refused, not overflow one.
const LONGEST: Duration = Duration::from_secs(10 * 366 * 86_400);

/// Parses `N` followed by `us`, `ms`, `s`, `m` or `h` (a bare number is
/// seconds). The number may have a fraction; it must not be negative.
pub fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (like 250ms, 1.5s, 2m)"))?;
    let scale = match unit.trim() {
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?} (us, ms, s, m, h)"
            ))
        }
    };
    Duration::try_from_secs_f64(value * scale)
        .ok()
        .filter(|d| *d <= LONGEST)
        .ok_or_else(|| format!("{text:?} is out of range (at most 10 years)"))
}

/// A duration or a range of them, drawn uniformly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// The shortest.
    pub low: Duration,
    /// The longest (equal to `low` for a fixed duration).
    pub high: Duration,
}

impl Span {
    /// Parses `1s` or `500ms..1500ms`.
    pub fn parse(text: &str) -> Result<Span, String> {
        let Some((a, b)) = text.split_once("..") else {
            let d = parse(text)?;
            return Ok(Span { low: d, high: d });
        };
        let (low, high) = (parse(a)?, parse(b)?);
        if high < low {
            return Err(format!("{text:?}: the range ends before it starts"));
        }
        Ok(Span { low, high })
    }

    /// The duration for a draw `unit` in `[0, 1)`.
    pub fn at(&self, unit: f64) -> Duration {
        self.low + (self.high - self.low).mul_f64(unit.clamp(0.0, 1.0))
    }
}

/// A small per-client random source (xorshift64*): think-time jitter needs
/// no cryptographic quality, and no crate.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    /// A source seeded by `seed` (a client's index and the clock).
    pub fn new(seed: u64) -> Jitter {
        Jitter(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next draw in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse("40us").unwrap(), Duration::from_micros(40));
        assert!(parse("fast").is_err());
        assert!(parse("3 days").is_err());
        assert!(parse("-1s").is_err());
        assert!(parse("99999999999h").is_err());
        assert!(parse("3650d").is_err());
    }

    #[test]
    fn ranges_and_draws() {
        let s = Span::parse("500ms..1500ms").unwrap();
        assert_eq!(s.at(0.0), Duration::from_millis(500));
        assert_eq!(s.at(0.5), Duration::from_millis(1000));
        assert!(Span::parse("2s..1s").is_err());
        assert_eq!(Span::parse("1s").unwrap().at(0.7), Duration::from_secs(1));
        let mut j = Jitter::new(7);
        let draws: Vec<f64> = (0..1000).map(|_| j.unit()).collect();
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
        let mean = draws.iter().sum::<f64>() / 1000.0;
        assert!((0.4..0.6).contains(&mean), "mean {mean}");
    }
}

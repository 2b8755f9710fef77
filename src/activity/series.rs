//! The last five minutes, one sample a second: connections open and
//! messages in and out during that second. The housekeeping thread
//! ([`crate::housekeeping`]) calls [`Series::sample`] once a second with
//! the counters' totals; a request only copies the ring. 300 samples of 32
//! bytes: under 10 KB, whatever the load.

use std::collections::VecDeque;
use std::sync::Mutex;

/// Seconds kept.
pub const SECONDS: usize = 300;

/// One second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    /// Unix time in seconds (the end of the second it covers).
    pub t: u64,
    /// WebSocket connections open at `t`.
    pub connections: u64,
    /// Messages received since the previous sample.
    pub messages_in: u64,
    /// Messages sent since the previous sample.
    pub messages_out: u64,
}

/// The ring of samples.
#[derive(Debug, Default)]
pub struct Series {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    ring: VecDeque<Sample>,
    /// The totals at the previous sample.
    last_totals: Option<(u64, u64)>,
}

impl Series {
    /// Records second `t`: `connections` open, and the message counters'
    /// totals (`messages_in`, `messages_out`), of which the sample keeps
    /// the difference from the previous call. A second sampled twice
    /// keeps its first sample and adds the second's messages to it.
    pub fn sample(&self, t: u64, connections: u64, messages_in: u64, messages_out: u64) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (last_in, last_out) = state
            .last_totals
            .replace((messages_in, messages_out))
            .unwrap_or((messages_in, messages_out));
        let delta_in = messages_in.saturating_sub(last_in);
        let delta_out = messages_out.saturating_sub(last_out);
        if let Some(last) = state.ring.back_mut().filter(|s| s.t >= t) {
            last.messages_in += delta_in;
            last.messages_out += delta_out;
            return;
        }
        if state.ring.len() == SECONDS {
            state.ring.pop_front();
        }
        state.ring.push_back(Sample {
            t,
            connections,
            messages_in: delta_in,
            messages_out: delta_out,
        });
    }

    /// Exactly [`SECONDS`] samples, oldest first, ending at `now` (Unix
    /// seconds; at `now - 1` when that is the newest sample, so a look
    /// just before this second's sample shows no false dip): a second before the server started (or before the
    /// first sample) is all zeros; a second the thread missed (a stalled
    /// machine) repeats the connections before it, with no messages
    /// (they are counted in the next sample).
    pub fn last_five_minutes(&self, now: u64) -> Vec<Sample> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let end = match state.ring.back() {
            Some(s) if s.t + 1 == now => s.t,
            _ => now,
        };
        let first_t = end.saturating_sub(SECONDS as u64 - 1);
        let mut kept = state.ring.iter().peekable();
        let mut out = Vec::with_capacity(SECONDS);
        let mut connections = None;
        for i in 0..SECONDS as u64 {
            let t = first_t + i;
            while kept.peek().is_some_and(|s| s.t < t) {
                connections = kept.next().map(|s| s.connections);
            }
            match kept.peek() {
                Some(s) if s.t == t => {
                    connections = Some(s.connections);
                    out.push(**s);
                    kept.next();
                }
                _ => out.push(Sample {
                    t,
                    connections: connections.unwrap_or(0),
                    ..Sample::default()
                }),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_per_second_differences() {
        let series = Series::default();
        series.sample(1000, 3, 50, 70);
        series.sample(1001, 4, 60, 100);
        series.sample(1002, 2, 60, 101);
        assert_eq!(
            series.last_five_minutes(1003),
            series.last_five_minutes(1002)
        );
        let got = series.last_five_minutes(1002);
        assert_eq!(got.len(), SECONDS);
        assert_eq!(got[0].t, 1002 - 299);
        let tail: Vec<(u64, u64, u64, u64)> = got[SECONDS - 3..]
            .iter()
            .map(|s| (s.t, s.connections, s.messages_in, s.messages_out))
            .collect();
        assert_eq!(tail, [(1000, 3, 0, 0), (1001, 4, 10, 30), (1002, 2, 0, 1)]);
        assert!(got[..SECONDS - 3].iter().all(|s| *s
            == Sample {
                t: s.t,
                ..Sample::default()
            }));
    }

    #[test]
    fn a_missed_second_keeps_the_connections_and_the_ring_stays_bounded() {
        let series = Series::default();
        for t in 0..1000u64 {
            if t != 998 {
                series.sample(t, t, t * 10, t * 20);
            }
        }
        let got = series.last_five_minutes(999);
        assert_eq!(got.len(), SECONDS);
        assert_eq!(
            got[SECONDS - 2],
            Sample {
                t: 998,
                connections: 997,
                messages_in: 0,
                messages_out: 0
            }
        );
        assert_eq!(got[SECONDS - 1].messages_in, 20);
        assert_eq!(series.state.lock().unwrap().ring.len(), SECONDS);
    }

    #[test]
    fn the_same_second_twice_adds_up() {
        let series = Series::default();
        series.sample(1005, 1, 0, 0);
        series.sample(1006, 1, 10, 10);
        series.sample(1006, 2, 15, 12);
        let last = series.last_five_minutes(1006)[SECONDS - 1];
        assert_eq!(
            (last.connections, last.messages_in, last.messages_out),
            (1, 15, 12)
        );
    }
}

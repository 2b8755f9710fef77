//! How many clients a scripted run wants over time, with k6's semantics for
//! ramping stages: each stage moves the target linearly from the previous
//! stage's target (0 before the first) to its own over its duration; a
//! client asked to stop finishes its iteration (its steps, once through)
//! and is interrupted only when that takes longer than the graceful
//! ramp-down. Also which client slots to start, resume or stop to meet a
//! target. Pure: the run applies the actions.

use std::time::Duration;

/// One stage: reach `target` clients over `duration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stage {
    /// Clients at the end of the stage.
    pub target: usize,
    /// How long the stage lasts.
    pub duration: Duration,
}

/// Ramping stages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The stages, in order.
    pub stages: Vec<Stage>,
}

impl Plan {
    /// The target at `t` from the start (the last stage's after the end).
    pub fn target_at(&self, t: Duration) -> usize {
        let mut from = 0usize;
        let mut start = Duration::ZERO;
        for s in &self.stages {
            let end = start + s.duration;
            if t < end {
                let done = (t - start).as_secs_f64() / s.duration.as_secs_f64();
                let x = from as f64 + (s.target as f64 - from as f64) * done;
                return x.round() as usize;
            }
            from = s.target;
            start = end;
        }
        from
    }

    /// The whole plan's length.
    pub fn total(&self) -> Duration {
        self.stages.iter().map(|s| s.duration).sum()
    }

    /// The most clients wanted at once.
    pub fn peak(&self) -> usize {
        self.stages.iter().map(|s| s.target).max().unwrap_or(0)
    }
}

/// What a client slot is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// No thread (never started, or it ended).
    Idle,
    /// Running its iterations.
    Running,
    /// Asked to stop, finishing its iteration.
    Stopping,
}

/// What to do to a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Start a client thread in this idle slot.
    Start(usize),
    /// Let a stopping client go on running.
    Resume(usize),
    /// Ask a running client to stop after its iteration.
    Stop(usize),
}

/// The actions that bring the running slots to `target`: resume stopping
/// slots first (their connections are open), then start idle ones, lowest
/// index first; stop the highest running slots first.
pub fn actions(slots: &[Slot], target: usize) -> Vec<Action> {
    let running = slots.iter().filter(|s| **s == Slot::Running).count();
    let mut out = Vec::new();
    if running < target {
        let mut need = target - running;
        for (want, act) in [
            (Slot::Stopping, Action::Resume as fn(usize) -> Action),
            (Slot::Idle, Action::Start),
        ] {
            for (i, _) in slots.iter().enumerate().filter(|(_, s)| **s == want) {
                if need == 0 {
                    break;
                }
                out.push(act(i));
                need -= 1;
            }
        }
    } else {
        let excess = running - target;
        let stops = slots
            .iter()
            .enumerate()
            .rev()
            .filter(|(_, s)| **s == Slot::Running)
            .take(excess)
            .map(|(i, _)| Action::Stop(i));
        out.extend(stops);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;
    use Slot::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn targets_ramp_linearly_like_k6() {
        let plan = Plan {
            stages: vec![
                Stage {
                    target: 1000,
                    duration: secs(60),
                },
                Stage {
                    target: 1000,
                    duration: secs(120),
                },
                Stage {
                    target: 0,
                    duration: secs(10),
                },
            ],
        };
        assert_eq!(plan.target_at(secs(0)), 0);
        assert_eq!(plan.target_at(secs(30)), 500);
        assert_eq!(plan.target_at(secs(60)), 1000);
        assert_eq!(plan.target_at(secs(179)), 1000);
        assert_eq!(plan.target_at(secs(185)), 500);
        assert_eq!(plan.target_at(secs(190)), 0);
        assert_eq!(plan.target_at(secs(999)), 0);
        assert_eq!(plan.total(), secs(190));
        assert_eq!(plan.peak(), 1000);
    }

    #[test]
    fn a_zero_length_stage_jumps() {
        let plan = Plan {
            stages: vec![
                Stage {
                    target: 5,
                    duration: Duration::ZERO,
                },
                Stage {
                    target: 5,
                    duration: secs(1),
                },
            ],
        };
        assert_eq!(plan.target_at(Duration::ZERO), 5);
    }

    #[test]
    fn slots_meet_the_target() {
        assert_eq!(actions(&[Idle, Idle, Idle], 2), vec![Start(0), Start(1)]);
        assert_eq!(
            actions(&[Running, Stopping, Idle, Stopping], 3),
            vec![Resume(1), Resume(3)]
        );
        assert_eq!(
            actions(&[Running, Stopping, Idle], 3),
            vec![Resume(1), Start(2)]
        );
        assert_eq!(
            actions(&[Running, Running, Stopping, Running], 1),
            vec![Stop(3), Stop(1)]
        );
        assert_eq!(actions(&[Running, Idle], 1), vec![]);
        assert_eq!(actions(&[Idle, Idle], 5), vec![Start(0), Start(1)]);
    }
}

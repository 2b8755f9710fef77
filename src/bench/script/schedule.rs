//! The clients of a scripted run over time: starts client threads (small
//! stacks, like every strand bench client) in slots, asks them to stop
//! after their iteration and interrupts those that overrun the graceful
//! ramp-down, following [`stages`](crate::bench::script::stages) or a fixed
//! count of clients with a fixed number of iterations. Returns when every
//! client thread has ended.

use crate::bench::client;
use crate::bench::script::file::Load;
use crate::bench::script::player::{self, Control, Shared};
use crate::bench::script::stages::{actions, Action, Plan, Slot};
use crate::bench::segment::{share, Segment};
use crossbeam_channel::Sender;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the schedule looks at the target and its clients.
const TICK: Duration = Duration::from_millis(20);

/// One client slot's thread and the handles that stop it.
#[derive(Default)]
struct Lane {
    state: Option<Running>,
    stopping_since: Option<Instant>,
}

struct Running {
    thread: JoinHandle<()>,
    finish: Arc<AtomicBool>,
    /// Dropped to interrupt the client.
    interrupt: Option<Sender<()>>,
}

impl Lane {
    fn slot(&self) -> Slot {
        match (&self.state, self.stopping_since) {
            (None, _) => Slot::Idle,
            (Some(_), None) => Slot::Running,
            (Some(_), Some(_)) => Slot::Stopping,
        }
    }

    /// Starts client `index` in this lane.
    fn start(&mut self, shared: &Arc<Shared>, index: usize, iterations: Option<u64>) -> bool {
        let finish = Arc::new(AtomicBool::new(false));
        let (interrupt, interrupted) = crossbeam_channel::bounded(0);
        let control = Control {
            finish: finish.clone(),
            interrupt: interrupted,
        };
        let s = shared.clone();
        match client::spawn("bench-script", move || {
            player::run(&s, index, &control, iterations)
        }) {
            Ok(thread) => {
                self.state = Some(Running {
                    thread,
                    finish,
                    interrupt: Some(interrupt),
                });
                self.stopping_since = None;
                true
            }
            Err(_) => {
                shared.live.error("spawn");
                false
            }
        }
    }

    fn stop(&mut self, now: Instant) {
        if let Some(r) = &self.state {
            r.finish.store(true, Relaxed);
            self.stopping_since.get_or_insert(now);
        }
    }

    fn resume(&mut self) {
        if let Some(r) = &self.state {
            r.finish.store(false, Relaxed);
            self.stopping_since = None;
        }
    }

    /// Joins an ended thread and interrupts one past `graceful`; true
    /// while a thread remains.
    fn tend(&mut self, now: Instant, graceful: Duration) -> bool {
        let Some(r) = &mut self.state else {
            return false;
        };
        if r.thread.is_finished() {
            if let Some(r) = self.state.take() {
                let _ = r.thread.join();
            }
            self.stopping_since = None;
            return false;
        }
        if self
            .stopping_since
            .is_some_and(|since| now.duration_since(since) >= graceful)
        {
            r.interrupt.take();
        }
        true
    }
}

/// Runs the clients `shared.script.load` asks for, or this process's
/// `segment` of them (their indices, as `{{client}}` and the CSV row,
/// stay those of the whole run); returns the most that ran at once.
pub fn run(shared: &Arc<Shared>, segment: Option<Segment>) -> usize {
    let graceful = shared.script.graceful_ramp_down;
    match shared.script.load.clone() {
        Load::Iterations {
            clients,
            iterations,
        } => {
            let mine = share(segment, clients);
            let mut lanes: Vec<Lane> = mine.clone().map(|_| Lane::default()).collect();
            let mut started = 0;
            for (lane, i) in lanes.iter_mut().zip(mine) {
                started += usize::from(lane.start(shared, i, Some(iterations)));
            }
            drain(&mut lanes, graceful);
            started
        }
        Load::Stages(plan) => ramp(shared, &plan, segment, graceful),
    }
}

/// Follows `plan`: a segment runs its share of each moment's target, in
/// its share of the peak's slots.
fn ramp(shared: &Arc<Shared>, plan: &Plan, segment: Option<Segment>, graceful: Duration) -> usize {
    let slots = share(segment, plan.peak());
    let mut lanes: Vec<Lane> = slots.clone().map(|_| Lane::default()).collect();
    let start = Instant::now();
    let total = plan.total();
    let mut peak = 0;
    loop {
        let now = Instant::now();
        let t = now - start;
        if t >= total {
            break;
        }
        for lane in lanes.iter_mut() {
            lane.tend(now, graceful);
        }
        let states: Vec<Slot> = lanes.iter().map(Lane::slot).collect();
        let target = share(segment, plan.target_at(t)).len();
        for action in actions(&states, target) {
            match action {
                Action::Start(i) => {
                    lanes[i].start(shared, slots.start + i, None);
                }
                Action::Resume(i) => lanes[i].resume(),
                Action::Stop(i) => lanes[i].stop(now),
            }
        }
        let running = lanes.iter().filter(|l| l.slot() == Slot::Running).count();
        peak = peak.max(running);
        std::thread::sleep(TICK.min(total - t));
    }
    let now = Instant::now();
    for lane in lanes.iter_mut() {
        lane.stop(now);
    }
    drain(&mut lanes, graceful);
    peak
}

/// Waits for every client thread to end, interrupting those asked to stop
/// more than `graceful` ago.
fn drain(lanes: &mut [Lane], graceful: Duration) {
    loop {
        let now = Instant::now();
        let mut alive = 0;
        for lane in lanes.iter_mut() {
            if lane.tend(now, graceful) {
                alive += 1;
            }
        }
        if alive == 0 {
            return;
        }
        std::thread::sleep(TICK);
    }
}

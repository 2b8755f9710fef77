//! `strand bench fanout`: N subscribers join a plain-text room as
//! `/ws/ROOM/sub-I`, then one publisher (`/ws/ROOM/bench-pub`) sends K
//! messages at R per second, each stamped with its sequence number and send
//! time. Every subscriber counts what it receives: delivery latency, lost,
//! duplicated and reordered messages. The room's formation (all joins and
//! the N(N-1)/2 join notices they cause) is timed as well.
//!
//! The text dialect delivers a text `T` from `bench-pub` as
//! `bench-pub: T`; `system: ...` notices (joins, leaves) are counted or
//! ignored, never mistaken for data. The publisher also receives its own
//! messages; a second thread drains its socket so it never becomes a slow
//! consumer, while the publishing thread only writes.

use crate::bench::client::{error_kind, is_timeout, Fleet, Gate, Limiter, Ready, Target};
use crate::bench::echo;
use crate::bench::live::{Live, Progress};
use crate::bench::report::Report;
use crate::bench::stats::{now_us, parse_stamp, stamp, Delivery, Latencies, SeqTracker};
use crate::bench::{secs, Common};
use crossbeam_channel::{Receiver, Sender};
use serde_json::json;
use std::io::Read;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tungstenite::Message;

/// The publisher's name in the room.
const PUBLISHER: &str = "bench-pub";
/// How often a waiting receiver looks at the stop gate.
pub const POLL: Duration = Duration::from_millis(200);
/// Receivers with loss listed one by one in the JSON (the rest are summed).
const LIST_LOSSY: usize = 100;

/// The flags of `strand bench fanout`.
#[derive(Debug, Clone, clap::Args)]
pub struct FanoutArgs {
    /// The shared flags.
    #[command(flatten)]
    pub common: Common,
    /// Subscribers in the room, one thread each.
    #[arg(long, default_value_t = 100)]
    pub subscribers: usize,
    /// Messages the publisher sends.
    #[arg(long, default_value_t = 100)]
    pub messages: u64,
    /// Messages per second the publisher sends (0: as fast as it can).
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Bytes of each published text.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// The room.
    #[arg(long, default_value = "bench")]
    pub room: String,
    /// Seconds to wait for late deliveries after the last message is sent.
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    pub grace: f64,
}

/// What receivers of a stamped stream share: latencies, loss counting and
/// the signals between them and the run.
pub struct Receivers {
    /// Messages each receiver expects.
    pub expected: u64,
    /// Delivery latencies.
    pub latency: Latencies,
    /// Loss and duplicates, summed as receivers finish.
    pub delivery: Mutex<Delivery>,
    /// Receivers that lost or duplicated messages: (index, lost, duplicates).
    pub lossy: Mutex<Vec<(usize, u64, u64)>>,
    /// Last delivery seen by any receiver (µs, [`now_us`]).
    pub last_delivery_us: AtomicU64,
    /// Opened when receivers should stop waiting and close.
    pub stop: Gate,
    /// A receiver sends its index once it has every message.
    pub complete: Sender<usize>,
}

impl Receivers {
    /// Shared state for receivers of `expected` messages each, and the
    /// channel on which completions arrive.
    pub fn new(expected: u64) -> (Receivers, Receiver<usize>) {
        let (complete, completions) = crossbeam_channel::unbounded();
        let r = Receivers {
            expected,
            latency: Latencies::new(),
            delivery: Mutex::new(Delivery::default()),
            lossy: Mutex::new(Vec::new()),
            last_delivery_us: AtomicU64::new(0),
            stop: Gate::new(),
            complete,
        };
        (r, completions)
    }

    /// Counts one receiver's tracker when it finishes.
    pub fn finish(&self, index: usize, t: &SeqTracker) {
        self.delivery
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .add(t);
        if t.lost() > 0 || t.duplicates() > 0 {
            self.lossy.lock().unwrap_or_else(|e| e.into_inner()).push((
                index,
                t.lost(),
                t.duplicates(),
            ));
        }
    }

    /// Waits until `receivers` have completed or `deadline` passes, then
    /// opens the stop gate.
    pub fn wait_complete(
        &self,
        completions: &Receiver<usize>,
        receivers: usize,
        deadline: Instant,
    ) {
        let mut complete = 0;
        while complete < receivers {
            match completions.recv_deadline(deadline) {
                Ok(_) => complete += 1,
                Err(_) => break,
            }
        }
        self.stop.open(None);
    }

    /// Adds delivery figures to `report`: deliveries/s from `first_send_us`.
    pub fn report(&self, report: &mut Report, first_send_us: u64) {
        let d = *self.delivery.lock().unwrap_or_else(|e| e.into_inner());
        let last = self.last_delivery_us.load(Relaxed);
        let span = last.saturating_sub(first_send_us) as f64 / 1e6;
        let rate = if span > 0.0 {
            d.delivered as f64 / span
        } else {
            0.0
        };
        report.real("deliveries/s", "deliveries_per_s", rate, 0);
        report.latency("delivery latency", "latency", &self.latency.summary());
        report.delivery(&d);
        let mut lossy = self.lossy.lock().unwrap_or_else(|e| e.into_inner()).clone();
        lossy.sort_unstable();
        lossy.truncate(LIST_LOSSY);
        let list: Vec<_> = lossy
            .iter()
            .map(|(i, lost, dup)| json!({"receiver": i, "lost": lost, "duplicates": dup}))
            .collect();
        report.add(
            "receivers with loss or duplicates",
            list.len().to_string(),
            "lossy_receivers",
            json!(list),
        );
    }
}

struct Run {
    target: Target,
    room: String,
    timeout: Duration,
    limiter: Limiter,
    live: Arc<Live>,
    rx: Receivers,
    /// Join notices of other subscribers received, summed.
    joins: AtomicU64,
    /// Subscriber threads still running.
    alive: AtomicU64,
}

/// Runs the scenario.
pub fn run(a: &FanoutArgs) -> Result<Report, String> {
    let target = Target::parse(&a.common.url)?;
    if !crate::names::is_valid(&a.room) || a.room == "chat" {
        return Err(format!("{:?} cannot name a text room", a.room));
    }
    let live = Live::new(a.subscribers as u64);
    let (rx, completions) = Receivers::new(a.messages);
    let run = Arc::new(Run {
        target,
        room: a.room.clone(),
        timeout: a.common.timeout(),
        limiter: Limiter::new(a.common.connect_concurrency),
        live: live.clone(),
        rx,
        joins: AtomicU64::new(0),
        alive: AtomicU64::new(a.subscribers as u64),
    });
    let progress = Progress::start(&live, a.common.quiet);

    // The room forms: every subscriber joins, every earlier member hears it.
    let formation = Instant::now();
    let r = run.clone();
    let fleet = Fleet::spawn(a.subscribers, "bench-sub", &live, move |i, ready| {
        subscriber(&r, i, ready);
        r.alive.fetch_sub(1, Relaxed);
    });
    let connected = fleet.wait_ready() as u64;
    let expected_joins = connected * connected.saturating_sub(1) / 2;
    let formed = wait_for(formation + run.timeout.max(Duration::from_secs(30)), || {
        run.joins.load(Relaxed) >= expected_joins || run.alive.load(Relaxed) == 0
    });
    let formation_s = formation.elapsed().as_secs_f64();
    progress.note(&format!(
        "room {} formed: {connected} members, {} of {expected_joins} join notices in {formation_s:.3} s",
        a.room,
        run.joins.load(Relaxed)
    ));

    // One publisher at the given rate.
    let first_send_us = now_us();
    // Publish only to a room that formed and still has members.
    let sent = if formed && run.alive.load(Relaxed) > 0 {
        publish(&run, a)
    } else {
        0
    };
    let deadline = Instant::now() + secs(a.grace);
    run.rx
        .wait_complete(&completions, connected as usize, deadline);
    fleet.join();
    drop(progress);

    let mut report = Report::new("fanout", &run.target.url(&format!("/ws/{}/sub-N", a.room)));
    report.count("subscribers", "subscribers", a.subscribers as u64);
    report.count("connected", "connected", connected);
    report.real("room formed in (s)", "formation_s", formation_s, 3);
    report.add(
        "join notices",
        format!("{} of {expected_joins}", run.joins.load(Relaxed)),
        "join_notices",
        json!({"received": run.joins.load(Relaxed), "expected": expected_joins}),
    );
    report.count("messages sent", "sent", sent);
    report.real("offered rate (msg/s)", "rate", a.rate, 1);
    run.rx.report(&mut report, first_send_us);
    report.errors(&live);
    Ok(report)
}

/// Polls `done` every millisecond until it holds or `deadline` passes;
/// returns whether it held.
pub fn wait_for(deadline: Instant, mut done: impl FnMut() -> bool) -> bool {
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Sleeps until message `seq` is due at `rate` per second from `start`.
pub fn pace(start: Instant, seq: u64, rate: f64) {
    if rate > 0.0 {
        let due = start + Duration::from_secs_f64(seq as f64 / rate);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
    }
}

fn subscriber(run: &Run, index: usize, ready: Ready) {
    let path = format!("/ws/{}/sub-{index}", run.room);
    let connected = {
        let _permit = run.limiter.acquire();
        run.target.connect(&path, run.timeout)
    };
    let mut ws = match connected {
        Ok(ws) => ws,
        Err(kind) => {
            run.live.error(kind);
            return ready.failed();
        }
    };
    let _ = ws.get_ref().set_read_timeout(Some(POLL));
    run.live.connected.fetch_add(1, Relaxed);
    ready.connected();
    let prefix = format!("{PUBLISHER}: ");
    let joined = format!(" joined {}", run.room);
    let mut tracker = SeqTracker::new(run.rx.expected);
    let mut latency = run.rx.latency.recorder();
    let mut completed = tracker.complete();
    if completed {
        let _ = run.rx.complete.send(index);
    }
    while !run.rx.stop.is_open() {
        match ws.read() {
            Ok(Message::Text(text)) => {
                if let Some((seq, sent)) = parse_stamp(&text, &prefix) {
                    let now = now_us();
                    latency.record(now.saturating_sub(sent));
                    tracker.record(seq);
                    run.live.add_messages(1);
                    run.rx.last_delivery_us.fetch_max(now, Relaxed);
                    if !completed && tracker.complete() {
                        completed = true;
                        let _ = run.rx.complete.send(index);
                    }
                } else if text.starts_with("system: sub-") && text.ends_with(&joined) {
                    run.joins.fetch_add(1, Relaxed);
                }
            }
            Ok(Message::Close(_)) => {
                run.live.error("closed by server");
                break;
            }
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {}
            Err(e) => {
                run.live.error(error_kind(&e));
                break;
            }
        }
    }
    drop(latency);
    run.rx.finish(index, &tracker);
    echo::close(&mut ws);
    run.live.connected.fetch_sub(1, Relaxed);
}

/// Connects the publisher and sends the messages; returns how many it sent.
fn publish(run: &Run, a: &FanoutArgs) -> u64 {
    let path = format!("/ws/{}/{PUBLISHER}", run.room);
    let mut ws = match run.target.connect(&path, run.timeout) {
        Ok(ws) => ws,
        Err(kind) => {
            run.live.error(format!("publisher: {kind}"));
            return 0;
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let drain = ws
        .get_ref()
        .try_clone()
        .ok()
        .and_then(|s| spawn_drain(s, stop.clone()));
    let start = Instant::now();
    let mut sent = 0;
    for seq in 0..a.messages {
        pace(start, seq, a.rate);
        let text = stamp(seq, now_us(), a.size);
        if let Err(e) = ws.send(Message::text(text)) {
            run.live.error(format!("publisher: {}", error_kind(&e)));
            break;
        }
        sent += 1;
    }
    let _ = ws.close(None);
    stop.store(true, Relaxed);
    if let Some(d) = drain {
        let _ = d.join();
    }
    sent
}

/// Reads and discards everything the server sends the publisher, until it
/// closes or `stop` is set.
fn spawn_drain(
    mut socket: TcpStream,
    stop: Arc<AtomicBool>,
) -> Option<std::thread::JoinHandle<()>> {
    let _ = socket.set_read_timeout(Some(POLL));
    crate::bench::client::spawn("bench-pub-drain", move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match socket.read(&mut buf) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if stop.load(Relaxed) {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    })
    .ok()
}

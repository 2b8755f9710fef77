//! `strand bench fanout`: N subscribers join a plain-text room as
//! `/ws/ROOM/sub-I`, then one publisher (`/ws/ROOM/bench-pub`) sends K
//! messages at R per second, each stamped with its sequence number and send
//! time. With `--spread-url`, the subscribers are spread round-robin over
//! `--url` and those servers (instances sharing one Redis); the publisher
//! stays on `--url`. Every subscriber counts what it receives: delivery latency, lost,
//! duplicated and reordered messages. The room's formation (all joins and
//! the N(N-1)/2 join notices they cause) is timed as well.
//!
//! The text dialect delivers a text `T` from `bench-pub` as
//! `bench-pub: T`; `system: ...` notices (joins, leaves) are counted or
//! ignored, never mistaken for data. The publisher also receives its own
//! messages; a second thread drains its socket so it never becomes a slow
//! consumer, while the publishing thread only writes.

use crate::bench::client::{error_kind, Connector, Fleet, Limiter, Ready};
use crate::bench::live::{Live, Progress};
use crate::bench::receivers::{Receivers, POLL};
use crate::bench::report::Report;
use crate::bench::stats::{now_us, parse_stamp, stamp};
use crate::bench::{secs, Common};
use serde_json::json;
use std::io::Read;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tungstenite::Message;

/// The publisher's name in the room.
const PUBLISHER: &str = "bench-pub";

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
    /// Another server (`ws://HOST:PORT`) to connect subscribers to
    /// (repeatable): subscribers go round-robin to `--url` and these.
    #[arg(long = "spread-url", value_name = "URL")]
    pub spread_urls: Vec<String>,
}

struct Run {
    /// Where subscriber I connects: `spread[I % len]`; the first is
    /// `--url`, where the publisher connects too.
    spread: Vec<Connector>,
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
    a.common.unsegmented("fanout")?;
    let first = a.common.connector()?;
    let mut spread = Vec::new();
    for url in &a.spread_urls {
        spread.push(first.to(url)?);
    }
    spread.insert(0, first);
    if !crate::names::is_valid(&a.room) || a.room == "chat" {
        return Err(format!("{:?} cannot name a text room", a.room));
    }
    let live = Live::new(a.subscribers as u64);
    let (rx, completions) = Receivers::new(a.messages);
    let run = Arc::new(Run {
        spread,
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
    if !formed {
        progress.note("the room did not form in time; publishing to it anyway");
    }
    // Publish while members remain: behind an unfinished formation the
    // latency then shows the backlog of join notices.
    let sent = if run.alive.load(Relaxed) > 0 {
        publish(&run, a)
    } else {
        0
    };
    let deadline = Instant::now() + secs(a.grace);
    run.rx
        .wait_complete(&completions, connected as usize, deadline);
    fleet.join();
    drop(progress);

    let mut report = Report::new(
        "fanout",
        &run.spread[0].target.url(&format!("/ws/{}/sub-N", a.room)),
    );
    report.count("subscribers", "subscribers", a.subscribers as u64);
    report.setting("servers", "servers", run.spread.len() as u64);
    report.count("connected", "connected", connected);
    report.set_connected(connected);
    report.subprotocol(&run.spread[0]);
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
    report.run_of(&live, Some(&run.rx.latency));
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
        run.spread[index % run.spread.len()].connect(&path, run.timeout)
    };
    let ws = match connected {
        Ok(ws) => ws,
        Err(e) => {
            run.live.connect_error(&e);
            return ready.failed();
        }
    };
    let prefix = format!("{PUBLISHER}: ");
    let joined = format!(" joined {}", run.room);
    run.rx.receive(ws, index, ready, &run.live, true, |text| {
        let stamped = parse_stamp(text, &prefix);
        if stamped.is_none() && text.starts_with("system: sub-") && text.ends_with(&joined) {
            run.joins.fetch_add(1, Relaxed);
        }
        stamped
    });
}

/// Connects the publisher and sends the messages; returns how many it sent.
fn publish(run: &Run, a: &FanoutArgs) -> u64 {
    let path = format!("/ws/{}/{PUBLISHER}", run.room);
    let mut ws = match run.spread[0].connect(&path, run.timeout) {
        Ok(ws) => ws,
        Err(e) => {
            run.live.error(format!("publisher: {}", e.kind));
            return 0;
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    // Under TLS the drain discards records unread: the publisher only writes.
    let drain = crate::bench::client::tcp(&ws)
        .and_then(|s| s.try_clone().ok())
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

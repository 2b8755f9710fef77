//! The churn soak: for a given time, clients connect and leave on every
//! endpoint (echo, text room, hub, hub with a stream and a follow) in every
//! way a connection can end (close handshake, reset mid-frame, reset while
//! flooding, half-close, idle timeout, slow consumer), at most ~220 at
//! once; then threads, descriptors, child processes and RSS must be back
//! at their baseline, and SIGTERM with clients connected (some flooding)
//! must exit 0 within 5 s. Prints a table of figures for docs/.
//!
//! In the suite it churns for 10 s (about 30 s in all). The long run is
//! one command:
//!
//! ```sh
//! STRAND_SOAK_SECS=1800 cargo test --release --test soak -- --nocapture
//! ```
//!
//! A thread parked in the engine's thread cache is not a leak: the
//! baseline check counts the threads that are not parked.
mod support;

use serde_json::{json, Value};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{RawClient, Server};

const TEXT: u8 = 0x1;
/// Client threads; each runs batches of connections.
const WORKERS: usize = 20;
/// Connections per batch: WORKERS x BATCH is the most at once.
const BATCH: usize = 10;
/// How long a client may wait for the server to end a connection.
const END_WAIT: Duration = Duration::from_secs(20);
/// The server's idle timeout here: short, but long enough that a loaded
/// 2-core machine answers every live client within it.
const IDLE_TIMEOUT: &str = "5";
/// How long a flood's writes must be refused to count as pushed back.
const PUSHED_BACK: Duration = Duration::from_millis(300);
/// How long a slow consumer stays still: the engine's 5 s write timeout
/// (the server is stuck writing to it), and a second.
const SLOW_HOLD: Duration = Duration::from_secs(6);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Echo,
    TextRoom,
    Hub,
    HubStream,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The client's close handshake.
    Close,
    /// Half a frame, then an RST.
    ResetMidFrame,
    /// Flooding without reading until the server pushes back, then an RST.
    ResetFlooded,
    /// The client shuts its sending side (FIN) and waits.
    HalfClose,
    /// The client goes silent (and answers no ping) until the server's
    /// idle timeout closes it.
    IdleTimeout,
    /// The client sends and never reads until the server gives up on it.
    SlowConsumer,
}

const ENDPOINTS: [Endpoint; 4] = [
    Endpoint::Echo,
    Endpoint::TextRoom,
    Endpoint::Hub,
    Endpoint::HubStream,
];
const ENDINGS: [Ending; 6] = [
    Ending::Close,
    Ending::ResetMidFrame,
    Ending::ResetFlooded,
    Ending::HalfClose,
    Ending::IdleTimeout,
    Ending::SlowConsumer,
];

/// One figure sampled over the run.
#[derive(Debug, Default, Clone, Copy)]
struct Sample {
    rss_kib: u64,
    threads: u64,
    fds: u64,
    children: u64,
    connections: u64,
}

fn sample(server: &Server) -> Sample {
    let alive = std::fs::read_to_string(format!("/proc/{}/status", server.pid()))
        .is_ok_and(|s| s.contains("VmRSS:"));
    assert!(alive, "the server died; log:\n{}", server.log_text());
    // The most of a few reads: a read of /proc/PID/fd racing the fd
    // table's changes has been seen to miss an entry.
    let fds = (0..3).map(|_| server.fds() as u64).max().unwrap_or(0);
    // The least of a few reads: each probe of /healthz or /metrics is
    // served by a thread of its own, which may be still ending.
    let threads = (0..3)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(5));
            server.threads() as u64
        })
        .min()
        .unwrap_or(0);
    Sample {
        rss_kib: server.rss_kib(),
        threads,
        fds,
        children: support::children(server.pid()) as u64,
        connections: 0,
    }
}

/// Threads parked in the engine's thread cache (named `parked`). Read
/// from /proc, not /metrics: the request that reads /metrics takes a
/// parked thread itself.
fn parked(server: &Server) -> u64 {
    server.parked_threads() as u64
}

/// Bytes in the server's live heap allocations (`/metrics`).
fn heap_in_use(server: &Server) -> u64 {
    server.metric("strand_heap_in_use_bytes") as u64
}

fn connections(server: &Server) -> u64 {
    server.get_json("/healthz").1["connections"]
        .as_u64()
        .unwrap()
}

/// Small socket buffers, so that floods and slow consumers push back
/// after kilobytes rather than megabytes.
fn small_buffers(stream: &TcpStream) {
    let size: libc::c_int = 32 * 1024;
    for option in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
        // SAFETY: setsockopt on a socket we own, with a valid int.
        unsafe {
            libc::setsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

fn text_payload(f: &support::RawFrame) -> String {
    String::from_utf8_lossy(&f.payload).into_owned()
}

/// Reads data frames until one contains `needle`.
fn read_until(c: &mut RawClient, needle: &str) {
    let mut seen = Vec::new();
    loop {
        let f = c
            .read_data_frame()
            .unwrap_or_else(|| panic!("closed before {needle:?}; after {seen:?}"));
        let text = text_payload(&f);
        assert!(
            f.opcode != 0x8,
            "closed ({}) before {needle:?}; after {seen:?}",
            f.close_code()
        );
        if text.contains(needle) {
            return;
        }
        seen.push(text);
    }
}

/// Opens a connection of `endpoint` for client `id` and checks it serves.
fn open(server: &Server, endpoint: Endpoint, id: &str) -> RawClient {
    // One room per worker: a batch that floods its room floods only
    // itself, not another worker's clients waiting for a clean close.
    let room = format!("soak-{}", id.split('s').next().unwrap_or(id));
    let path = match endpoint {
        Endpoint::Echo => "/ws".to_string(),
        Endpoint::TextRoom => format!("/ws/{room}/{id}"),
        Endpoint::Hub | Endpoint::HubStream => format!("/ws/chat/{id}"),
    };
    let mut c = RawClient::connect(server, &path);
    small_buffers(&c.stream);
    match endpoint {
        Endpoint::Echo => {
            c.send(true, TEXT, b"hello");
            read_until(&mut c, "hello");
        }
        Endpoint::TextRoom => {
            c.send(true, TEXT, b"hello");
            read_until(&mut c, &format!("{id}: hello"));
        }
        Endpoint::Hub => {
            read_until(&mut c, "welcome");
            let join = json!({"type": "join_room", "room_name": room});
            c.send(true, TEXT, join.to_string().as_bytes());
            let msg = json!({"type": "message", "room_name": room, "content": id});
            c.send(true, TEXT, msg.to_string().as_bytes());
            read_until(&mut c, &format!(r#""content":"{id}""#));
        }
        Endpoint::HubStream => {
            read_until(&mut c, "welcome");
            let start: Value = if id.contains("s0r") {
                json!({"type": "start", "producer": "tick"})
            } else {
                json!({"type": "start", "interval_ms": 20})
            };
            c.send(true, TEXT, start.to_string().as_bytes());
            read_until(&mut c, r#""type":"started""#);
            let follow = json!({"type": "follow", "file": "app.log", "from": "start"});
            c.send(true, TEXT, follow.to_string().as_bytes());
            read_until(&mut c, r#""type":"following""#);
            read_until(&mut c, r#""type":"data""#);
        }
    }
    c
}

/// A message the endpoint answers (so that flooding it makes work).
fn flood_unit(endpoint: Endpoint) -> Vec<u8> {
    let text = match endpoint {
        Endpoint::Echo | Endpoint::TextRoom => "x".repeat(200),
        Endpoint::Hub | Endpoint::HubStream => {
            json!({"type": "echo", "pad": "x".repeat(180)}).to_string()
        }
    };
    RawClient::frame(true, 0, TEXT, text.as_bytes()).repeat(32)
}

/// Writes `unit` without reading until the server stops taking it: until
/// writes have been refused for [`PUSHED_BACK`] in a row, so the server is
/// really stuck writing to us (its own buffers full), not just behind.
fn flood_until_pushed_back(c: &mut RawClient, unit: &[u8]) {
    c.stream.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + END_WAIT;
    let mut refused_since: Option<Instant> = None;
    loop {
        match c.stream.write(unit) {
            Ok(_) => refused_since = None,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let since = *refused_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= PUSHED_BACK {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => break, // the server already gave up
        }
        assert!(Instant::now() < deadline, "the server never pushed back");
    }
    c.stream.set_nonblocking(false).unwrap();
}

/// Reads whatever the server sent until it ends the connection.
fn drain_to_eof(c: &mut RawClient, what: &str) {
    let mut sink = [0u8; 65536];
    c.stream.set_read_timeout(Some(END_WAIT)).unwrap();
    loop {
        match c.stream.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                panic!("{what}: the server kept the connection")
            }
            Err(_) => return, // reset
        }
    }
}

/// Ends `c` in the given way, checking the server's side of it.
fn end(mut c: RawClient, endpoint: Endpoint, ending: Ending) {
    match ending {
        Ending::Close => {
            c.send_close(1000, b"bye");
            assert_eq!(c.expect_close(), 1000);
            c.expect_eof();
        }
        Ending::ResetMidFrame => {
            let frame = RawClient::frame(true, 0, TEXT, &[b'y'; 100]);
            c.send_bytes(&frame[..40]);
            c.reset();
        }
        Ending::ResetFlooded => {
            flood_until_pushed_back(&mut c, &flood_unit(endpoint));
            c.reset();
        }
        Ending::HalfClose => {
            c.stream.shutdown(Shutdown::Write).unwrap();
            // The server ends its side too; whatever it sent first is read.
            drain_to_eof(&mut c, "half-closed");
        }
        Ending::IdleTimeout => {
            // Pings arrive and go unanswered; the idle timeout closes with
            // 1000 (streams and follows keep sending data meanwhile).
            c.stream.set_read_timeout(Some(END_WAIT)).unwrap();
            loop {
                match c.read_frame() {
                    Some(f) if f.opcode == 0x8 => {
                        assert_eq!(f.close_code(), 1000);
                        assert_eq!(&f.payload[2..], b"idle timeout");
                        break;
                    }
                    Some(_) => continue,
                    None => panic!("no idle-timeout close"),
                }
            }
        }
        Ending::SlowConsumer => {
            // A client cannot see the server let go without reading: the
            // server's FIN waits behind the data it could not deliver. So
            // it stays still for as long as the server may take (its
            // write timeout), then reads to the end.
            // That the server let go meanwhile is what the soak's baseline
            // checks (threads, descriptors) show.
            flood_until_pushed_back(&mut c, &flood_unit(endpoint));
            std::thread::sleep(SLOW_HOLD);
            drain_to_eof(&mut c, &format!("slow consumer of {endpoint:?}"));
        }
    }
}

/// What the workers counted.
#[derive(Default)]
struct Counts {
    cycles: AtomicU64,
    connections: AtomicU64,
    per_kind: Mutex<std::collections::BTreeMap<String, u64>>,
}

/// Runs batches until `until`; `worker` picks which combination comes next.
fn work(server: &Server, phase: char, worker: usize, until: Instant, counts: &Counts) {
    let mut round = 0usize;
    while Instant::now() < until {
        let combo = worker + round * WORKERS;
        let endpoint = ENDPOINTS[combo % ENDPOINTS.len()];
        let ending = ENDINGS[(combo / ENDPOINTS.len()) % ENDINGS.len()];
        // Fresh ids each round: a new stream of the same client would wait
        // for the old one's spool (up to 2 s, then `already_running`).
        let clients: Vec<RawClient> = (0..BATCH)
            .map(|slot| {
                open(
                    server,
                    endpoint,
                    &format!("{phase}w{worker}s{slot}r{round}"),
                )
            })
            .collect();
        counts.connections.fetch_add(BATCH as u64, Relaxed);
        std::thread::scope(|s| {
            for c in clients {
                s.spawn(move || end(c, endpoint, ending));
            }
        });
        counts.cycles.fetch_add(1, Relaxed);
        round += 1;
        *counts
            .per_kind
            .lock()
            .unwrap()
            .entry(format!("{endpoint:?}/{ending:?}"))
            .or_default() += 1;
    }
}

/// Appends a line to the followed file every 10 ms, replacing the file
/// (a rotation) every 2 s, until `stop`. (`.next` and `.1` are not valid
/// names to follow... `app.log.1` is, and is followed by nobody.)
fn appender(tail: std::path::PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let log = tail.join("app.log");
        let mut n = 0u64;
        let mut rotated = Instant::now();
        while !stop.load(Relaxed) {
            if rotated.elapsed() > Duration::from_secs(2) {
                // Replaced atomically (the old file kept as app.log.1), so
                // a `follow` never finds the name missing.
                let old = tail.join("app.log.1");
                let _ = std::fs::remove_file(&old);
                let _ = std::fs::hard_link(&log, &old);
                let next = tail.join("app.log.next");
                std::fs::write(&next, format!("rotated at line {n}\n")).unwrap();
                std::fs::rename(&next, &log).unwrap();
                rotated = Instant::now();
            }
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .unwrap();
            writeln!(f, "line {n}").unwrap();
            n += 1;
            std::thread::sleep(Duration::from_millis(10));
        }
    })
}

/// Runs the churn for `secs` with every worker; returns the peak sample.
fn churn(server: &Arc<Server>, phase: char, secs: f64, counts: &Arc<Counts>) -> Sample {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (server, done) = (server.clone(), done.clone());
        std::thread::spawn(move || {
            let mut peak = Sample::default();
            while !done.load(Relaxed) {
                let now = sample(&server);
                let conns = connections(&server);
                peak = Sample {
                    rss_kib: peak.rss_kib.max(now.rss_kib),
                    threads: peak.threads.max(now.threads),
                    fds: peak.fds.max(now.fds),
                    children: peak.children.max(now.children),
                    connections: peak.connections.max(conns),
                };
                std::thread::sleep(Duration::from_millis(100));
            }
            peak
        })
    };
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (server, counts) = (server.clone(), counts.clone());
            std::thread::Builder::new()
                .name(format!("soak-{w}"))
                .spawn(move || work(&server, phase, w, until, &counts))
                .unwrap()
        })
        .collect();
    for w in workers {
        w.join().expect("a soak worker failed");
    }
    done.store(true, Relaxed);
    sampler.join().unwrap()
}

/// Waits until no connection is left and the server's threads,
/// descriptors and children are back at `base`.
fn settle(server: &Server, base: Sample, base_parked: u64) -> Sample {
    server.wait_until("no connection left", || connections(server) == 0);
    server.wait_until("threads back to the baseline", || {
        server.threads() as u64 - parked(server) <= base.threads - base_parked
    });
    let deadline = Instant::now() + support::WAIT;
    while server.fds() as u64 > base.fds {
        assert!(
            Instant::now() < deadline,
            "{} descriptors, baseline {}: {:?}",
            server.fds(),
            base.fds,
            server.fd_list()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    server.wait_until("no child process left", || {
        support::children(server.pid()) == 0
    });
    sample(server)
}

#[test]
fn heavy_churn_soak() {
    let secs: f64 = std::env::var("STRAND_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10.0);
    let dir = tempfile::tempdir().unwrap();
    let tail = dir.path().join("tail");
    std::fs::create_dir(&tail).unwrap();
    std::fs::write(tail.join("app.log"), "first\n").unwrap();
    let tick = format!("tick=exec tail -n 1 -F {}", tail.join("app.log").display());
    let server = Arc::new(Server::start_in_logging(
        dir,
        "info",
        &[
            "--tail-dir",
            tail.to_str().unwrap(),
            "--producer",
            &tick,
            "--idle-timeout",
            IDLE_TIMEOUT,
            "--ping-interval",
            "1",
            "--max-queue-bytes",
            "65536",
            "--spool-max-bytes",
            "65536",
            // Every round's stream clients are new: the janitor keeps the
            // data directory at 4 MiB meanwhile.
            "--data-max-bytes",
            "4194304",
        ],
    ));
    let stop_appending = Arc::new(AtomicBool::new(false));
    let appending = appender(tail.clone(), stop_appending.clone());

    // A short warm-up: the allocator's arenas and the server's helper
    // threads exist before the baseline is taken.
    let warm_counts = Arc::new(Counts::default());
    let started = sample(&server);
    churn(&server, 'a', 1.0, &warm_counts);
    let base_parked = parked(&server);
    // Descriptors are not compared with the start: the accept loop opens
    // its reserve descriptor just after the server says it listens.
    let any_fds = Sample {
        fds: u64::MAX,
        ..started
    };
    let base = settle(&server, any_fds, 0);
    let base_heap = heap_in_use(&server);

    let counts = Arc::new(Counts::default());
    let run = Instant::now();
    let peak = churn(&server, 'b', secs, &counts);
    let churned = run.elapsed();
    let after = settle(&server, base, base_parked);
    let final_parked = parked(&server);

    // Live allocations back at the baseline: nothing kept per connection.
    let after_heap = heap_in_use(&server);
    // RSS: back near the warm baseline (the allocator keeps some); the
    // server hands free pages back once per memory::EVERY (10 s).
    let rss_bound = base.rss_kib + base.rss_kib / 2 + 8 * 1024;
    let trimmed = Instant::now() + Duration::from_secs(25);
    let mut after = after;
    while after.rss_kib > rss_bound && Instant::now() < trimmed {
        std::thread::sleep(Duration::from_millis(500));
        after.rss_kib = server.rss_kib();
    }
    assert!(
        after.rss_kib <= rss_bound,
        "RSS {} KiB after the soak, baseline {} KiB",
        after.rss_kib,
        base.rss_kib
    );

    // SIGTERM with clients on every endpoint, a few of them flooding.
    let mut held = Vec::new();
    for (i, endpoint) in ENDPOINTS.iter().enumerate() {
        for slot in 0..5 {
            let mut c = open(&server, *endpoint, &format!("term{i}x{slot}"));
            if slot == 0 {
                flood_until_pushed_back(&mut c, &flood_unit(*endpoint));
            }
            held.push(c);
        }
    }
    let asked = Instant::now();
    server.signal(libc::SIGTERM);
    let mut server = Arc::try_unwrap(server).ok().expect("the only owner");
    let status = server.wait_exit();
    let exit_after = asked.elapsed();
    stop_appending.store(true, Relaxed);
    appending.join().unwrap();
    drop(held);
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    assert!(
        exit_after < Duration::from_secs(5),
        "SIGTERM took {exit_after:?}"
    );

    let kinds = counts.per_kind.lock().unwrap();
    let combos = ENDPOINTS.len() * ENDINGS.len();
    if secs >= 10.0 {
        assert_eq!(
            kinds.len(),
            combos,
            "every endpoint x ending ran: {kinds:?}"
        );
    }
    let mb = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
    println!("\n| churn soak | |");
    println!("|---|---|");
    println!("| duration | {:.0} s of churn ({} endpoint x ending combinations, {} workers x {} connections) |", churned.as_secs_f64(), kinds.len(), WORKERS, BATCH);
    println!("| cycles (batches) | {} |", counts.cycles.load(Relaxed));
    println!(
        "| connections | {} opened and ended; peak {} at once |",
        counts.connections.load(Relaxed),
        peak.connections
    );
    println!(
        "| RSS | baseline {}, peak {}, final {} |",
        mb(base.rss_kib),
        mb(peak.rss_kib),
        mb(after.rss_kib)
    );
    println!(
        "| heap in live allocations (mallinfo2) | baseline {}, final {} |",
        mb(base_heap / 1024),
        mb(after_heap / 1024)
    );
    println!(
        "| threads | baseline {} ({} parked), peak {}, final {} ({} parked) |",
        base.threads, base_parked, peak.threads, after.threads, final_parked
    );
    println!(
        "| descriptors | baseline {}, peak {}, final {} |",
        base.fds, peak.fds, after.fds
    );
    println!(
        "| child processes | baseline {}, peak {}, final {} |",
        base.children, peak.children, after.children
    );
    println!(
        "| SIGTERM with {} clients (4 flooding) | exit 0 after {:.2} s |",
        held_len(),
        exit_after.as_secs_f64()
    );
    println!("\nbatches per endpoint/ending: {kinds:?}");
}

fn held_len() -> usize {
    ENDPOINTS.len() * 5
}

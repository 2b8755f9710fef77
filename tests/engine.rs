//! The connection engine over real sockets: the write gate (frames from
//! many writers never interleave, each connection's order holds, a stalled
//! socket never blocks a writer to another connection), the thread cache
//! (reused, trimmed by bound and idle time) and slow consumers (they leave
//! their room at once and their socket is closed within a second).
mod hub_util;
mod support;

use hub_util::text_member;
use std::io::Write;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use support::{RawClient, Server};
use tungstenite::Message;

/// A message of `len` bytes whose every payload byte is derived from the
/// publisher and its sequence number, so a frame cut into or spliced with
/// another cannot pass [`check`].
fn message(publisher: usize, seq: usize, len: usize) -> String {
    let fill = (b'a' + ((publisher * 7 + seq) % 26) as u8) as char;
    let head = format!("{publisher}:{seq}:");
    let mut text = head.clone();
    text.extend(std::iter::repeat(fill).take(len - head.len()));
    text
}

/// Checks a received room line `p{N}: {N}:{seq}:{fill...}` and returns
/// (publisher, seq).
fn check(line: &str, len: usize) -> (usize, usize) {
    let (_, body) = line.split_once(": ").expect("a room line");
    let mut parts = body.splitn(3, ':');
    let publisher: usize = parts.next().unwrap().parse().unwrap();
    let seq: usize = parts.next().unwrap().parse().unwrap();
    assert_eq!(body, message(publisher, seq, len), "a corrupted message");
    (publisher, seq)
}

#[test]
fn frames_from_many_writers_never_interleave_and_keep_their_order() {
    const PUBLISHERS: usize = 6;
    const MESSAGES: usize = 30;
    // Larger than a socket buffer takes in one write, so that writes are
    // partial and frames wait in the gate's queue.
    const LEN: usize = 100_000;
    let server = Server::start(&["--max-queue-bytes", "268435456"]);
    let mut reader = text_member(&server, "gate", "reader", 1);
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| text_member(&server, "gate", &format!("p{p}"), p as u64 + 2))
        .collect();
    // The publishers' own copies are read and dropped on threads, so they
    // never stall.
    let start = Arc::new(Barrier::new(PUBLISHERS));
    let threads: Vec<_> = publishers
        .into_iter()
        .enumerate()
        .map(|(p, ws)| {
            let start = start.clone();
            std::thread::spawn(move || {
                let mut out = ws.get_ref().try_clone().unwrap();
                let mut ws = ws;
                let drain = std::thread::spawn(move || {
                    let mut got = 0;
                    while got < PUBLISHERS * MESSAGES {
                        if let Message::Text(t) = ws.read().unwrap() {
                            if !t.starts_with("system:") {
                                got += 1;
                            }
                        }
                    }
                });
                start.wait();
                for seq in 0..MESSAGES {
                    let text = message(p, seq, LEN);
                    out.write_all(&RawClient::frame(true, 0, 0x1, text.as_bytes()))
                        .unwrap();
                }
                drain.join().unwrap();
            })
        })
        .collect();
    // The reader lags at first, so its queue fills while six threads write.
    std::thread::sleep(Duration::from_millis(300));
    let mut next = [0usize; PUBLISHERS];
    let mut got = 0;
    while got < PUBLISHERS * MESSAGES {
        let Message::Text(text) = reader.read().expect("read") else {
            continue;
        };
        if text.starts_with("system:") {
            continue;
        }
        let (p, seq) = check(&text, LEN);
        assert_eq!(seq, next[p], "publisher {p}'s messages in order");
        next[p] += 1;
        got += 1;
    }
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn a_stalled_socket_never_blocks_a_writer_to_another_connection() {
    // A queue limit far above what the stalled member's socket takes, so
    // the publisher's sends must queue for it rather than wait on it.
    let server = Server::start(&["--max-queue-bytes", "268435456"]);
    let stalled = RawClient::connect(&server, "/ws/stall/stalled");
    let mut healthy = text_member(&server, "stall", "healthy", 2);
    let mut publisher = RawClient::connect(&server, "/ws/stall/pub");
    server.wait_until("three members", || {
        server.get_json("/rooms/stall/count").1["online"] == 3
    });
    const MESSAGES: usize = 400;
    const LEN: usize = 50_000;
    let mut out = publisher.stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        for seq in 0..MESSAGES {
            let text = message(0, seq, LEN);
            out.write_all(&RawClient::frame(true, 0, 0x1, text.as_bytes()))
                .unwrap();
        }
    });
    // The publisher's own copies, so it never stalls itself.
    let echo = std::thread::spawn(move || {
        let mut got = 0;
        while got < MESSAGES {
            let f = publisher.read_frame().expect("publisher copy");
            if f.opcode == 0x1 && !f.payload.starts_with(b"system:") {
                got += 1;
            }
        }
    });
    // 20 MB for the stalled member, far over its socket buffers: the
    // healthy member still gets every message, in order.
    let mut seq = 0;
    while seq < MESSAGES {
        let Message::Text(text) = healthy.read().expect("healthy read") else {
            continue;
        };
        if text.starts_with("system:") {
            continue;
        }
        assert_eq!(check(&text, LEN), (0, seq));
        seq += 1;
    }
    writer.join().unwrap();
    echo.join().unwrap();
    assert!(
        server.metric("strand_slow_consumer_closes_total") == 0.0,
        "nobody overflowed"
    );
    drop(stalled);
}

#[test]
fn cached_threads_are_reused_and_trimmed() {
    let server = Server::start(&["--thread-cache", "2", "--thread-cache-idle", "4"]);
    let metric = |name: &str| server.metric(&format!("strand_thread_cache_{name}")) as usize;
    // Five connections at once: five threads.
    let mut clients: Vec<_> = (0..5).map(|_| server.ws("/ws")).collect();
    for ws in &mut clients {
        ws.send(Message::text("hi")).unwrap();
        assert_eq!(ws.read().unwrap(), Message::text("hi"));
    }
    let spawned = metric("spawned_total");
    assert!(spawned >= 5, "{spawned}");
    drop(clients);
    // Two stay parked (the bound), the others exit.
    server.wait_until("three threads over the bound to exit", || {
        metric("trimmed_total") >= 3
    });
    // The next connection runs on one of them (a /metrics request takes
    // a parked thread too, and parks it again after answering). Wait for
    // every connection thread to settle: one closing a dropped client, or
    // answering a /metrics request, is still named "conn" for a moment.
    server.wait_until("two parked threads and none running", || {
        server.parked_threads() == 2 && threads_named(&server, "conn").is_empty()
    });
    let parked = threads_named(&server, "parked");
    let mut ws = server.ws("/ws");
    ws.send(Message::text("again")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("again"));
    let running = threads_named(&server, "conn");
    assert_eq!(running.len(), 1);
    // The thread ids prove the reuse; the spawned counter is not compared
    // here, as the /metrics request that reads it may find its parked
    // thread just aged out on a loaded machine and start one.
    assert!(parked.contains(&running[0]), "{parked:?} {running:?}");
    assert!(metric("reused_total") >= 1);
    drop(ws);
    // Idle for four seconds (long enough that none ages out above on a
    // loaded machine): every parked thread exits.
    server.wait_until("parked threads to age out", || server.parked_threads() == 0);
}

/// The kernel ids of the server's threads named `name`.
fn threads_named(server: &Server, name: &str) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{}/task", server.pid()))
        .unwrap()
        .flatten()
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|n| n.trim() == name))
        .map(|t| t.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn a_slow_consumer_leaves_its_room_at_once_and_is_closed_within_a_second() {
    let server = Server::start(&["--max-queue-bytes", "65536", "--ping-interval", "600"]);
    let slow = RawClient::connect(&server, "/ws/flood/slow");
    let mut watcher = text_member(&server, "flood", "watch", 2);
    let mut publisher = RawClient::connect(&server, "/ws/flood/pub");
    server.wait_until("three members", || {
        server.get_json("/rooms/flood/count").1["online"] == 3
    });
    let connections = || server.metric("strand_connections_current");
    assert_eq!(connections(), 3.0);
    // The publisher's own copies and the watcher's are read on threads.
    let mut out = publisher.stream.try_clone().unwrap();
    let copies = std::thread::spawn(move || while publisher.read_frame().is_some() {});
    let (left_tx, left_rx) = crossbeam_channel::bounded(1);
    let watch = std::thread::spawn(move || loop {
        match watcher.read() {
            Ok(Message::Text(t)) if t.as_str() == "system: slow left flood" => {
                left_tx.send(Instant::now()).unwrap();
                return watcher;
            }
            Ok(_) => continue,
            Err(e) => panic!("watcher: {e}"),
        }
    });
    let frame = RawClient::frame(true, 0, 0x1, "z".repeat(4000).as_bytes());
    let mut sent = 0;
    while server.metric("strand_slow_consumer_closes_total") == 0.0 {
        for _ in 0..50 {
            out.write_all(&frame).unwrap();
            sent += 1;
        }
        assert!(sent < 100_000, "the slow member never overflowed");
    }
    let overflowed = Instant::now();
    let line = server.wait_log("slow consumer");
    assert!(
        line.contains("slow in room flood") && line.contains("bytes queued"),
        "{line}"
    );
    // Members see it leave at once, not after its socket is closed.
    let left = left_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the watcher saw the slow member leave");
    assert!(
        left.saturating_duration_since(overflowed) < Duration::from_millis(500),
        "left {:?} after the overflow",
        left.saturating_duration_since(overflowed)
    );
    // Its connection is gone within a second (the socket closed, the
    // thread back in the cache).
    server.wait_until("the slow connection to end", || connections() <= 2.0);
    assert!(
        overflowed.elapsed() < Duration::from_millis(1500),
        "closed {:?} after the overflow",
        overflowed.elapsed()
    );
    drop(slow);
    out.shutdown(std::net::Shutdown::Both).unwrap();
    copies.join().unwrap();
    let _watcher = watch.join().unwrap();
}

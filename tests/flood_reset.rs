//! A client that floods while reading too slowly, then resets its socket
//! mid-frame, leaves nothing behind on any endpoint: threads, descriptors
//! and `/healthz` connections return to their baseline, and SIGTERM
//! afterwards still exits promptly. Rooms are flooded on the in-process
//! hub and on a Redis shared by instances.
mod redis_util;
mod support;

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};
use support::{RawClient, Server};

/// One flood: messages of 64 bytes, 256 per write.
fn batch(message: &str) -> Vec<u8> {
    let one = RawClient::frame(true, 0, 0x1, message.as_bytes());
    one.repeat(256)
}

/// Floods `client` with `batch` while reading a little, then stops reading
/// and writes until the server pushes back, then resets the connection in
/// the middle of a frame.
fn flood_then_reset(mut client: RawClient, batch: &[u8]) {
    let stream = &mut client.stream;
    stream.set_nonblocking(true).unwrap();
    let mut sink = vec![0u8; 64 * 1024];
    // A while of flooding and reading, so every thread of the connection is busy.
    for _ in 0..200 {
        let _ = stream.write(batch);
        let _ = stream.read(&mut sink);
    }
    // Then only writing, until the client's own send buffer is full: the
    // server has stopped reading because its writes to us are blocked.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match stream.write(batch) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(_) => break,
        }
        assert!(Instant::now() < deadline, "the server never pushed back");
    }
    // Half a frame header, then a reset (SO_LINGER 0): the kernel sends RST.
    let _ = stream.write(&[0x81]);
    client.reset();
}

fn connections(server: &Server) -> u64 {
    server.get_json("/healthz").1["connections"]
        .as_u64()
        .unwrap()
}

/// Runs `rounds` floods against a fresh server; each round's client is
/// made by `open`. Checks the baseline after all of them, then SIGTERM.
fn leaves_nothing(args: &[&str], open: impl Fn(&Server, usize) -> (RawClient, Vec<u8>)) {
    let mut server = Server::start(args);
    server.wait_until("the broker up", || {
        server.get_json("/healthz").1["broker"] != "redis-down"
    });
    let (warm, _) = open(&server, 1000);
    drop(warm);
    server.wait_until("the warm-up connection to end", || {
        connections(&server) == 0
    });
    let threads = server.settled_threads();
    // The server's own Redis connections are not the clients': its pool
    // for queries opens a second one (of at most 4) when two threads ask
    // at once, and keeps it.
    let to_redis = args
        .iter()
        .position(|a| *a == "--redis")
        .and_then(|i| args[i + 1].rsplit(':').next()?.parse::<u16>().ok())
        .map(|port| format!("->0100007F:{port:04X} "));
    let fd_list = server.fd_list();
    for round in 0..4 {
        let (client, batch) = open(&server, round);
        flood_then_reset(client, &batch);
    }
    server.wait_until("no connection left", || connections(&server) == 0);
    server.wait_threads(threads);
    server.wait_fd_list(&fd_list, |fd| {
        !to_redis.as_ref().is_some_and(|r| fd.contains(r))
    });
    // And a client that is mid-flood at shutdown does not hold up the exit.
    let (client, batch) = open(&server, 99);
    let mut stuck = client;
    stuck.stream.set_nonblocking(true).unwrap();
    while stuck.stream.write(&batch).is_ok() {}
    let asked = Instant::now();
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit().code(), Some(0));
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "SIGTERM took {:?}; log:\n{}",
        asked.elapsed(),
        server.log_text()
    );
}

/// A hub client `id`, past its welcome, as a raw client.
fn hub_client(server: &Server, id: &str) -> RawClient {
    let mut client = RawClient::connect(server, &format!("/ws/chat/{id}"));
    let welcome = client.read_data_frame().unwrap();
    assert!(String::from_utf8_lossy(&welcome.payload).contains("welcome"));
    client
}

#[test]
fn heavy_echo_flood_and_reset() {
    leaves_nothing(&[], |server, _| {
        (RawClient::connect(server, "/ws"), batch(&"e".repeat(64)))
    });
}

#[test]
fn heavy_text_room_flood_and_reset() {
    leaves_nothing(&[], |server, round| {
        let client = RawClient::connect(server, &format!("/ws/room/u{round}"));
        (client, batch(&"t".repeat(64)))
    });
}

#[test]
fn heavy_hub_flood_and_reset() {
    // 64 bytes: {"type":"echo","pad":"xxx..."}
    let message = format!(r#"{{"type":"echo","pad":"{}"}}"#, "x".repeat(40));
    assert_eq!(message.len(), 64);
    leaves_nothing(&[], move |server, round| {
        (hub_client(server, &format!("h{round}")), batch(&message))
    });
}

#[test]
fn heavy_hub_with_stream_and_follow_flood_and_reset() {
    let dir = tempfile::tempdir().unwrap();
    let tail = dir.path().join("tail");
    std::fs::create_dir(&tail).unwrap();
    std::fs::write(tail.join("app.log"), "one\ntwo\n").unwrap();
    let tail_arg = tail.to_str().unwrap().to_string();
    let message = format!(r#"{{"type":"echo","pad":"{}"}}"#, "x".repeat(40));
    leaves_nothing(&["--tail-dir", &tail_arg], move |server, round| {
        let mut client = hub_client(server, &format!("s{round}"));
        let start = r#"{"type":"start","interval_ms":1}"#;
        let follow = r#"{"type":"follow","file":"app.log","from":"start"}"#;
        client.send(true, 0x1, start.as_bytes());
        client.send(true, 0x1, follow.as_bytes());
        for reply in ["started", "following"] {
            loop {
                let frame = client.read_data_frame().unwrap();
                if String::from_utf8_lossy(&frame.payload).contains(reply) {
                    break;
                }
            }
        }
        (client, batch(&message))
    });
}

#[test]
fn heavy_text_room_flood_and_reset_on_redis() {
    let redis = redis_util::Redis::start();
    let url = redis.url();
    leaves_nothing(&["--redis", &url], |server, round| {
        let client = RawClient::connect(server, &format!("/ws/room/u{round}"));
        (client, batch(&"t".repeat(64)))
    });
}

#[test]
fn heavy_hub_room_flood_and_reset_on_redis() {
    let redis = redis_util::Redis::start();
    let url = redis.url();
    // 64 bytes: {"type":"message","room_name":"r","content":"xxx..."}
    let message = format!(
        r#"{{"type":"message","room_name":"r","content":"{}"}}"#,
        "x".repeat(17)
    );
    assert_eq!(message.len(), 64);
    leaves_nothing(&["--redis", &url], move |server, round| {
        let mut client = hub_client(server, &format!("h{round}"));
        client.send(true, 0x1, br#"{"type":"join_room","room_name":"r"}"#);
        loop {
            let frame = client.read_data_frame().unwrap();
            if String::from_utf8_lossy(&frame.payload).contains("room_join") {
                break;
            }
        }
        (client, batch(&message))
    });
}

//! Named producers over real sockets: start, stop, stderr logging, exit on
//! their own, and reaping: no child, zombie or process-group member of a
//! producer outlives its stream.
mod follow_util;
mod support;

use follow_util::{hub, next_msg};
use serde_json::json;
use std::time::Duration;
use support::{children, next_of_type, processes, send_json, Server};

/// Live members of process group `pgid`.
fn group_members(pgid: u32) -> usize {
    processes()
        .iter()
        .filter(|p| p.2 == pgid && p.3 != "Z")
        .count()
}

const TICK: &str =
    "tick=echo pid_$$; i=0; while true; do i=$((i+1)); echo tick_$i; sleep 0.02; done";

#[test]
fn a_producer_streams_its_stdout_and_is_reaped_on_stop() {
    let server = Server::start(&["--producer", TICK]);
    let mut ws = hub(&server, "p1");
    send_json(&mut ws, json!({"type": "start", "producer": "tick"}));
    let started = next_msg(&mut ws);
    assert_eq!(started["type"], "started");
    assert_eq!(started["producer"], "tick");
    let first = next_msg(&mut ws);
    let pgid: u32 = first["payload"]
        .as_str()
        .unwrap()
        .strip_prefix("pid_")
        .unwrap()
        .parse()
        .unwrap();
    for i in 1..=5 {
        let data = next_msg(&mut ws);
        assert_eq!(data["payload"], format!("tick_{i}"));
    }
    assert!(children(server.pid()) >= 1, "the producer runs as a child");
    send_json(&mut ws, json!({"type": "stop"}));
    let stopped = next_of_type(&mut ws, "stopped");
    assert!(stopped["lines"].as_u64().unwrap() >= 6, "{stopped}");
    // `stopped` comes after the reaping: nothing is left at that moment.
    assert_eq!(children(server.pid()), 0, "a child or zombie remains");
    server.wait_until("the producer's group to die", || group_members(pgid) == 0);
}

#[test]
fn disconnect_reaps_even_a_producer_that_ignores_sigterm() {
    let server = Server::start(&[
        "--producer",
        "stubborn=trap '' TERM; echo pid_$$; echo x; while true; do sleep 0.05; done",
    ]);
    let mut ws = hub(&server, "p2");
    send_json(&mut ws, json!({"type": "start", "producer": "stubborn"}));
    assert_eq!(next_msg(&mut ws)["type"], "started");
    let first = next_msg(&mut ws);
    let pgid: u32 = first["payload"].as_str().unwrap()[4..].parse().unwrap();
    assert_eq!(next_msg(&mut ws)["payload"], "x");
    assert!(group_members(pgid) >= 1);
    let t = std::time::Instant::now();
    drop(ws);
    server.wait_until("no children", || children(server.pid()) == 0);
    server.wait_until("the group to die", || group_members(pgid) == 0);
    eprintln!("reaped {:?} after the disconnect", t.elapsed());
}

#[test]
fn a_producer_that_exits_ends_the_stream_and_says_so() {
    let server = Server::start(&[
        "--producer",
        "once=echo one; echo two >&2; echo three; printf partial; exit 3",
    ]);
    let mut ws = hub(&server, "p3");
    send_json(&mut ws, json!({"type": "start", "producer": "once"}));
    assert_eq!(next_msg(&mut ws)["type"], "started");
    let payloads: Vec<_> = (0..3)
        .map(|_| next_msg(&mut ws)["payload"].clone())
        .collect();
    assert_eq!(payloads, [json!("one"), json!("three"), json!("partial")]);
    let stopped = next_msg(&mut ws);
    assert_eq!(stopped["type"], "stopped", "{stopped}");
    assert_eq!(stopped["lines"], 3);
    assert_eq!(stopped["reason"], "producer_exited");
    assert!(
        stopped["message"].as_str().unwrap().contains("status 3"),
        "{stopped}"
    );
    server.wait_log("producer once of p3: two");
    assert_eq!(children(server.pid()), 0);
    // The stream is over: stop says so, and start works again.
    send_json(&mut ws, json!({"type": "stop"}));
    assert_eq!(next_msg(&mut ws)["code"], "not_running");
    send_json(&mut ws, json!({"type": "start", "producer": "once"}));
    assert_eq!(next_msg(&mut ws)["type"], "started");
    assert_eq!(next_msg(&mut ws)["payload"], "one");
    assert_eq!(
        next_of_type(&mut ws, "stopped")["reason"],
        "producer_exited"
    );
}

#[test]
fn a_second_start_while_a_producer_runs_is_already_running() {
    let server = Server::start(&["--producer", TICK]);
    let mut ws = hub(&server, "p4");
    send_json(&mut ws, json!({"type": "start", "producer": "tick"}));
    assert_eq!(next_msg(&mut ws)["type"], "started");
    send_json(&mut ws, json!({"type": "start", "producer": "tick"}));
    assert_eq!(next_of_type(&mut ws, "error")["code"], "already_running");
    send_json(&mut ws, json!({"type": "stop"}));
    next_of_type(&mut ws, "stopped");
    std::thread::sleep(Duration::from_millis(0));
    assert_eq!(children(server.pid()), 0);
}

#[test]
fn sigterm_stops_streams_and_producers_before_exit() {
    let dir = tempfile::tempdir().unwrap();
    let tail = dir.path().join("tail");
    std::fs::create_dir(&tail).unwrap();
    std::fs::write(tail.join("a.log"), "").unwrap();
    let mut server = Server::start_in(
        dir,
        &["--producer", TICK, "--tail-dir", tail.to_str().unwrap()],
    );
    let mut ws = hub(&server, "p5");
    send_json(&mut ws, json!({"type": "start", "producer": "tick"}));
    assert_eq!(next_msg(&mut ws)["type"], "started");
    let pgid: u32 = next_msg(&mut ws)["payload"].as_str().unwrap()[4..]
        .parse()
        .unwrap();
    send_json(&mut ws, json!({"type": "follow", "file": "a.log"}));
    next_of_type(&mut ws, "following");
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit().success());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while group_members(pgid) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the producer outlived the server"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

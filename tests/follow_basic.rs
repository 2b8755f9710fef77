//! `follow` over real sockets: from end, start and an offset, partial
//! lines held, one shared tailer per file, `unfollow`, and `GET /files`.
mod follow_util;
mod support;

use follow_util::{append, data, epoch, follow, hub, next_msg, server_with_tail};
use serde_json::json;
use support::{send_json, Server};

#[test]
fn from_end_sends_only_new_lines_and_completes_the_partial_one() {
    let (server, tail) = server_with_tail();
    let log = tail.join("app.log");
    append(&log, "old1\nold2\npart");
    let mut ws = hub(&server, "f1");
    let reply = follow(
        &mut ws,
        json!({"type": "follow", "file": "app.log", "from": "end"}),
    );
    assert_eq!(reply["file"], "app.log");
    assert_eq!(
        reply["offset"], 10,
        "the end is after the last complete line"
    );
    assert_eq!(reply["epoch"], epoch(&log));
    append(&log, "ial\nnew\n");
    assert_eq!(data(&mut ws), ("partial".to_string(), 18));
    let d = next_msg(&mut ws);
    assert_eq!(
        d,
        json!({"type": "data", "file": "app.log", "payload": "new", "offset": 22, "epoch": epoch(&log)})
    );
}

#[test]
fn from_start_and_from_an_offset_replay_then_go_live() {
    let (server, tail) = server_with_tail();
    let log = tail.join("app.log");
    append(&log, "one\ntwo\nthree\n");
    let mut ws = hub(&server, "f2");
    assert_eq!(
        follow(
            &mut ws,
            json!({"type": "follow", "file": "app.log", "from": "start"})
        )["offset"],
        0
    );
    assert_eq!(data(&mut ws), ("one".into(), 4));
    assert_eq!(data(&mut ws), ("two".into(), 8));
    assert_eq!(data(&mut ws), ("three".into(), 14));
    append(&log, "four\n");
    assert_eq!(data(&mut ws), ("four".into(), 19));

    let mut ws2 = hub(&server, "f3");
    let e = epoch(&log);
    let reply = follow(
        &mut ws2,
        json!({"type": "follow", "file": "app.log", "from": 8, "epoch": e}),
    );
    assert_eq!(reply["offset"], 8);
    assert_eq!(data(&mut ws2), ("three".into(), 14));
    assert_eq!(data(&mut ws2), ("four".into(), 19));
    append(&log, "five\n");
    assert_eq!(data(&mut ws2), ("five".into(), 24));
    assert_eq!(data(&mut ws), ("five".into(), 24));
}

#[test]
fn a_big_replay_waits_for_the_client_instead_of_overflowing() {
    let dir = tempfile::tempdir().unwrap();
    let tail = dir.path().join("tail");
    std::fs::create_dir(&tail).unwrap();
    let log = tail.join("big.log");
    let line = "x".repeat(99);
    let mut text = String::new();
    for _ in 0..50_000 {
        text.push_str(&line);
        text.push('\n');
    }
    std::fs::write(&log, &text).unwrap();
    // 5 MB of replay through a 64 KiB queue.
    let server = Server::start_in(
        dir,
        &[
            "--tail-dir",
            tail.to_str().unwrap(),
            "--max-queue-bytes",
            "65536",
        ],
    );
    let mut ws = hub(&server, "big");
    follow(
        &mut ws,
        json!({"type": "follow", "file": "big.log", "from": "start"}),
    );
    let mut last = 0;
    for _ in 0..50_000 {
        let (_, offset) = data(&mut ws);
        assert_eq!(offset, last + 100);
        last = offset;
    }
    append(&log, "live\n");
    assert_eq!(data(&mut ws), ("live".into(), 5_000_005));
}

#[test]
fn a_partial_line_is_held_until_its_newline() {
    let (server, tail) = server_with_tail();
    let log = tail.join("p.log");
    append(&log, "");
    let mut ws = hub(&server, "f4");
    follow(&mut ws, json!({"type": "follow", "file": "p.log"}));
    append(&log, "abc");
    // Give the tailer time to see the partial line (nothing to wait on:
    // the point is that nothing is sent).
    std::thread::sleep(std::time::Duration::from_millis(100));
    append(&log, "def\nghi");
    assert_eq!(data(&mut ws), ("abcdef".into(), 7));
    append(&log, "\n");
    assert_eq!(data(&mut ws), ("ghi".into(), 11));
}

#[test]
fn followers_of_one_file_share_one_tailer() {
    let (server, tail) = server_with_tail();
    let log = tail.join("shared.log");
    append(&log, "");
    let mut clients: Vec<_> = (0..5).map(|i| hub(&server, &format!("s{i}"))).collect();
    let before = server.live_threads();
    for ws in &mut clients {
        follow(ws, json!({"type": "follow", "file": "shared.log"}));
    }
    assert_eq!(
        server.live_threads(),
        before + 1,
        "one tailer thread for five followers"
    );
    append(&log, "hello\n");
    for ws in &mut clients {
        assert_eq!(data(ws), ("hello".into(), 6));
    }
    for ws in &mut clients {
        send_json(ws, json!({"type": "unfollow", "file": "shared.log"}));
        assert_eq!(
            next_msg(ws),
            json!({"type": "unfollowed", "file": "shared.log"})
        );
    }
    server.wait_until("the tailer to stop", || server.live_threads() == before);
    assert_eq!(server.metric("strand_tailers"), 0.0);
}

#[test]
fn no_data_after_unfollowed() {
    let (server, tail) = server_with_tail();
    let (a, b) = (tail.join("a.log"), tail.join("b.log"));
    append(&a, "");
    append(&b, "");
    let mut ws = hub(&server, "f5");
    follow(&mut ws, json!({"type": "follow", "file": "a.log"}));
    follow(&mut ws, json!({"type": "follow", "file": "b.log"}));
    append(&a, "a1\n");
    assert_eq!(data(&mut ws), ("a1".into(), 3));
    send_json(&mut ws, json!({"type": "unfollow", "file": "a.log"}));
    assert_eq!(next_msg(&mut ws)["type"], "unfollowed");
    append(&a, "a2\n");
    std::thread::sleep(std::time::Duration::from_millis(50));
    append(&b, "b1\n");
    let d = next_msg(&mut ws);
    assert_eq!((&d["file"], &d["payload"]), (&json!("b.log"), &json!("b1")));
    // Unfollowing what is not followed is answered the same way.
    send_json(&mut ws, json!({"type": "unfollow", "file": "a.log"}));
    assert_eq!(
        next_msg(&mut ws),
        json!({"type": "unfollowed", "file": "a.log"})
    );
}

#[test]
fn files_lists_what_follow_may_name() {
    let (server, tail) = server_with_tail();
    append(&tail.join("b.log"), "12345");
    append(&tail.join("a.log"), "1");
    append(&tail.join(".hidden"), "x");
    std::fs::create_dir(tail.join("sub")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", tail.join("outside")).unwrap();
    let (status, body) = server.get_json("/files");
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"files": [{"name": "a.log", "size": 1}, {"name": "b.log", "size": 5}]})
    );
}

#[test]
fn a_follower_that_does_not_read_is_cut_off_without_slowing_the_others() {
    let (server, tail) = server_with_tail();
    let log = tail.join("fast.log");
    append(&log, "");
    let mut slow = hub(&server, "slow");
    follow(&mut slow, json!({"type": "follow", "file": "fast.log"}));
    let mut fast = hub(&server, "fast");
    follow(&mut fast, json!({"type": "follow", "file": "fast.log"}));
    let line = "y".repeat(60_000);
    // In step with the reading follower: 36 MB in all, far more than the
    // socket buffers and the 1 MiB queue of the one that does not read.
    for i in 0..600u64 {
        append(&log, &format!("{line}\n"));
        assert_eq!(data(&mut fast).1, (i + 1) * 60_001);
    }
    // A slow consumer's socket is closed within a second: with a 1008
    // close frame when it fits behind what the kernel holds, else cut.
    loop {
        match slow.read() {
            Ok(tungstenite::Message::Close(frame)) => {
                assert_eq!(frame.map(|f| u16::from(f.code)), Some(1008));
                break;
            }
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    assert!(server.metric("strand_slow_consumer_closes_total") >= 1.0);
    append(&log, "after\n");
    assert_eq!(data(&mut fast).0, "after");
}

#[test]
fn from_end_is_the_end_of_the_file_now_even_on_a_shared_tailer() {
    let (server, tail) = server_with_tail();
    let log = tail.join("e.log");
    append(&log, "");
    let mut first = hub(&server, "e1");
    follow(&mut first, json!({"type": "follow", "file": "e.log"}));
    let mut second = hub(&server, "e2");
    // Appended just before the second follow, with no time for the
    // tailer's wake-up: still before "the end".
    append(&log, "before\n");
    let reply = follow(&mut second, json!({"type": "follow", "file": "e.log"}));
    assert_eq!(reply["offset"], 7);
    append(&log, "after\n");
    assert_eq!(data(&mut second), ("after".into(), 13));
    assert_eq!(data(&mut first), ("before".into(), 7));
}

//! 1,000 follow/unfollow cycles, with disconnects between them, leave the
//! server with the threads and descriptors it had before.
mod follow_util;
mod support;

use follow_util::{leave_one_of_three_ways, next_msg};
use serde_json::json;
use std::io::Write;
use support::{next_of_type, send_json, Server};

#[test]
fn heavy_follow_unfollow_cycles_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let tail = dir.path().join("tail");
    std::fs::create_dir(&tail).unwrap();
    for name in ["a.log", "b.log"] {
        std::fs::write(tail.join(name), "one\ntwo\n").unwrap();
    }
    let server = Server::start_in(dir, &["--tail-dir", tail.to_str().unwrap()]);
    let mut ws = server.ws("/ws/chat/warm");
    next_of_type(&mut ws, "welcome");
    drop(ws);
    // The baseline is taken once no connection thread is left: a count
    // taken while the warm-up connection's threads exit would be too high.
    let threads = server.settled_threads();
    let fds = server.fds();
    let mut writer = std::fs::OpenOptions::new()
        .append(true)
        .open(tail.join("a.log"))
        .unwrap();
    // A follower that stays throughout, so the tailer of a.log is shared
    // with the cycling ones.
    let mut steady = server.ws("/ws/chat/steady");
    next_of_type(&mut steady, "welcome");
    send_json(&mut steady, json!({"type": "follow", "file": "a.log"}));
    assert_eq!(next_msg(&mut steady)["type"], "following");
    for i in 0..1000 {
        let mut ws = server.ws(&format!("/ws/chat/f{}", i % 50));
        next_of_type(&mut ws, "welcome");
        let file = if i % 2 == 0 { "a.log" } else { "b.log" };
        let from = if i % 4 < 2 {
            json!("start")
        } else {
            json!("end")
        };
        send_json(
            &mut ws,
            json!({"type": "follow", "file": file, "from": from}),
        );
        assert_eq!(next_msg(&mut ws)["type"], "following");
        if from == "start" {
            assert_eq!(next_msg(&mut ws)["payload"], "one");
        }
        if i % 10 == 0 {
            writeln!(writer, "line {i}").unwrap();
        }
        let unfollow = json!({"type": "unfollow", "file": file});
        leave_one_of_three_ways(ws, i, unfollow, "unfollowed");
    }
    // The steady follower saw every appended line, in order.
    for i in (0..1000).step_by(10) {
        let d = next_of_type(&mut steady, "data");
        assert_eq!(d["payload"], format!("line {i}"));
    }
    drop(steady);
    server.wait_threads(threads);
    server.wait_until("descriptors back to the baseline", || server.fds() == fds);
    eprintln!(
        "after 1000 cycles: {} threads, {} fds",
        server.threads(),
        server.fds()
    );
}

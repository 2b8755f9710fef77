//! `tail -F` semantics over real sockets: truncation, rotation by rename
//! and create, deletion and re-creation, and a `follow` whose epoch is
//! stale.
mod follow_util;
mod support;

use follow_util::{append, epoch, expect, follow, hub, next_msg, server_with_tail};
use serde_json::json;

#[test]
fn truncation_is_announced_and_following_restarts_at_zero() {
    let (server, tail) = server_with_tail();
    let log = tail.join("t.log");
    append(&log, "a\nb\n");
    let mut ws = hub(&server, "t1");
    follow(&mut ws, json!({"type": "follow", "file": "t.log"}));
    append(&log, "c\n");
    assert_eq!(expect(&mut ws, "data")["offset"], 6);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    assert_eq!(
        expect(&mut ws, "truncated"),
        json!({"type": "truncated", "file": "t.log"})
    );
    append(&log, "fresh\n");
    let d = expect(&mut ws, "data");
    assert_eq!((&d["payload"], &d["offset"]), (&json!("fresh"), &json!(6)));
    assert_eq!(
        d["epoch"],
        epoch(&log),
        "truncation keeps the file's identity"
    );
}

#[test]
fn rotation_by_rename_and_create_is_followed() {
    let (server, tail) = server_with_tail();
    let log = tail.join("r.log");
    append(&log, "");
    let old_epoch = epoch(&log);
    let mut ws = hub(&server, "r1");
    let f = follow(&mut ws, json!({"type": "follow", "file": "r.log"}));
    assert_eq!(f["epoch"], old_epoch);
    append(&log, "before\n");
    assert_eq!(expect(&mut ws, "data")["payload"], "before");
    // The writer's last lines land in the old file just before the move.
    append(&log, "last-old\nunfinished");
    std::fs::rename(&log, tail.join("r.log.1")).unwrap();
    append(&log, "first-new\n");
    let d = expect(&mut ws, "data");
    assert_eq!(
        (&d["payload"], &d["epoch"]),
        (&json!("last-old"), &json!(old_epoch))
    );
    // The old file's unfinished line is sent as it is, not lost.
    let d = expect(&mut ws, "data");
    assert_eq!(
        (&d["payload"], &d["offset"]),
        (&json!("unfinished"), &json!(26))
    );
    assert_eq!(
        expect(&mut ws, "rotated"),
        json!({"type": "rotated", "file": "r.log"})
    );
    let new_epoch = epoch(&log);
    assert_ne!(new_epoch, old_epoch);
    let d = expect(&mut ws, "data");
    assert_eq!(
        d,
        json!({"type": "data", "file": "r.log", "payload": "first-new", "offset": 10, "epoch": new_epoch})
    );
    append(&log, "second-new\n");
    assert_eq!(expect(&mut ws, "data")["offset"], 21);
}

#[test]
fn a_deleted_file_is_waited_for_until_it_comes_back() {
    let (server, tail) = server_with_tail();
    let log = tail.join("d.log");
    append(&log, "");
    let mut ws = hub(&server, "d1");
    follow(&mut ws, json!({"type": "follow", "file": "d.log"}));
    std::fs::remove_file(&log).unwrap();
    // Nothing to wait on: give the tailer a moment to see the name gone.
    std::thread::sleep(std::time::Duration::from_millis(50));
    append(&log, "back\n");
    expect(&mut ws, "rotated");
    assert_eq!(expect(&mut ws, "data")["payload"], "back");
}

#[test]
fn a_stale_epoch_starts_over_from_the_start_and_says_rotated() {
    let (server, tail) = server_with_tail();
    let log = tail.join("s.log");
    append(&log, "one\ntwo\n");
    let mut ws = hub(&server, "s1");
    let f = follow(
        &mut ws,
        json!({"type": "follow", "file": "s.log", "from": 4, "epoch": "0:0"}),
    );
    assert_eq!(
        (&f["offset"], &f["epoch"]),
        (&json!(0), &json!(epoch(&log)))
    );
    expect(&mut ws, "rotated");
    assert_eq!(expect(&mut ws, "data")["payload"], "one");
    assert_eq!(expect(&mut ws, "data")["payload"], "two");
    // An offset past the end of the file (same epoch) was truncated away.
    let mut ws2 = hub(&server, "s2");
    let f = follow(
        &mut ws2,
        json!({"type": "follow", "file": "s.log", "from": 100, "epoch": epoch(&log)}),
    );
    assert_eq!(f["offset"], 0);
    expect(&mut ws2, "truncated");
    assert_eq!(expect(&mut ws2, "data")["payload"], "one");
}

#[test]
fn a_rotation_during_a_catch_up_restarts_it_on_the_new_file() {
    let (server, tail) = server_with_tail();
    let log = tail.join("c.log");
    let mut text = String::new();
    for i in 0..20_000 {
        text.push_str(&format!("line {i:05}\n"));
    }
    std::fs::write(&log, &text).unwrap();
    let mut ws = hub(&server, "c1");
    follow(
        &mut ws,
        json!({"type": "follow", "file": "c.log", "from": "start"}),
    );
    // Rotate before reading anything, while the replay is under way.
    std::fs::rename(&log, tail.join("c.log.1")).unwrap();
    append(&log, "new\n");
    let mut saw_rotated = false;
    let mut last = 0;
    loop {
        let v = next_msg(&mut ws);
        match v["type"].as_str().unwrap() {
            "rotated" => {
                assert!(!saw_rotated);
                saw_rotated = true;
                last = 0;
            }
            "data" => {
                let offset = v["offset"].as_u64().unwrap();
                assert!(offset > last, "offsets go forward within a file: {v}");
                last = offset;
                if v["payload"] == "new" {
                    assert!(saw_rotated);
                    assert_eq!(offset, 4);
                    break;
                }
            }
            _ => panic!("{v}"),
        }
    }
}

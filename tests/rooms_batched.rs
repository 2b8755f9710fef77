//! Rooms whose publishers send bursts: the messages a connection reads at
//! one wake-up reach each member together at the end of that batch. Every
//! member still sees one `seq` order, whoever published, and a member that
//! joins in the middle of the bursts with `since` gets every message
//! exactly once (its replay, then live).
mod hub_util;
mod support;

use hub_util::{hub, join, text_member, Ws};
use serde_json::{json, Value};
use support::{next_json, next_text, send_json, RawClient, Server};

/// Messages each publisher sends, in bursts of [`BURST`] frames per write.
const EACH: usize = 600;
const BURST: usize = 50;

/// A hub client that has joined `room`, driven with raw frames so that a
/// whole burst goes out in one write (and so is read in one batch).
fn raw_member(server: &Server, id: &str, room: &str) -> RawClient {
    let mut raw = RawClient::connect(server, &format!("/ws/chat/{id}"));
    let welcome = raw.read_data_frame().expect("welcome");
    assert!(String::from_utf8_lossy(&welcome.payload).contains("welcome"));
    let join = json!({"type": "join_room", "room_name": room}).to_string();
    raw.send(true, 0x1, join.as_bytes());
    loop {
        let f = raw.read_data_frame().expect("room_join");
        let v: Value = serde_json::from_slice(&f.payload).unwrap();
        if v["type"] == "room_join" && v["client_id"] == id {
            return raw;
        }
    }
}

/// Sends `EACH` room messages `"{tag} {i}"` in bursts; text members'
/// lines when `text`.
fn publish_bursts(mut raw: RawClient, room: &str, tag: &str, text: bool) -> RawClient {
    for start in (0..EACH).step_by(BURST) {
        let mut burst = Vec::new();
        for i in start..start + BURST {
            let content = format!("{tag} {i}");
            let payload = if text {
                content
            } else {
                json!({"type": "message", "room_name": room, "content": content}).to_string()
            };
            burst.extend(RawClient::frame(true, 0, 0x1, payload.as_bytes()));
        }
        raw.send_bytes(&burst);
    }
    raw
}

/// Reads `n` room messages of `room`, checking that their `seq`s count up
/// by one from `first`; returns their contents.
fn room_messages(ws: &mut Ws, room: &str, first: u64, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    while got.len() < n {
        let v = next_json(ws);
        if v["type"] != "message" || v["room_name"] != room {
            continue;
        }
        let want = first + got.len() as u64;
        assert_eq!(v["seq"], want, "a gap, a duplicate or a reordering: {v}");
        got.push(v["content"].as_str().unwrap().to_string());
    }
    got
}

/// Each publisher's messages in the order it sent them.
fn assert_each_in_order(contents: &[String], tags: &[&str]) {
    for tag in tags {
        let mine: Vec<usize> = contents
            .iter()
            .filter_map(|c| c.strip_prefix(&format!("{tag} ")))
            .map(|i| i.parse().unwrap())
            .collect();
        assert_eq!(mine, (0..EACH).collect::<Vec<_>>(), "{tag}'s messages");
    }
}

#[test]
fn two_bursting_publishers_and_a_joiner_in_the_middle_see_one_order() {
    let server = Server::start(&["--room-history", "2000"]);
    let room = "bursts";
    let mut watcher = hub(&server, "watcher");
    join(&mut watcher, "watcher", room);
    let a = raw_member(&server, "a", room);
    let b = raw_member(&server, "b", room);
    let total = 2 * EACH;

    let pa = std::thread::spawn(move || publish_bursts(a, room, "a", false));
    let pb = std::thread::spawn(move || publish_bursts(b, room, "b", false));
    // A joiner in the middle of the bursts asks for everything since the
    // start: its replay and the live messages after it must be 1..total,
    // each once. The history must hold what it missed.
    let seen = room_messages(&mut watcher, room, 1, EACH / 2);
    let mut joiner = hub(&server, "joiner");
    send_json(
        &mut joiner,
        json!({"type": "join_room", "room_name": room, "since": 0}),
    );
    let recovery = next_json(&mut joiner);
    assert_eq!(recovery["type"], "recovery", "{recovery}");
    assert_eq!(recovery["recovered"], true, "{recovery}");
    let mut joiner_got: Vec<u64> = Vec::new();
    while joiner_got.len() < total {
        let v = next_json(&mut joiner);
        if v["type"] == "message" {
            let seq = v["seq"].as_u64().unwrap();
            assert_eq!(
                seq,
                joiner_got.len() as u64 + 1,
                "the joiner saw a gap or a duplicate: {v}"
            );
            joiner_got.push(seq);
        }
    }
    let mut all = seen;
    all.extend(room_messages(
        &mut watcher,
        room,
        EACH as u64 / 2 + 1,
        total - EACH / 2,
    ));
    assert_each_in_order(&all, &["a", "b"]);
    pa.join().unwrap();
    pb.join().unwrap();
}

#[test]
fn text_publishers_bursts_reach_both_dialects_in_one_order() {
    let server = Server::start(&[]);
    let room = "lines";
    let mut hub_watcher = hub(&server, "hw");
    join(&mut hub_watcher, "hw", room);
    let mut text_watcher = text_member(&server, room, "tw", 2);
    let a = RawClient::connect(&server, &format!("/ws/{room}/a"));
    let b = RawClient::connect(&server, &format!("/ws/{room}/b"));
    server.wait_until("both publishers in the room", || {
        server.get_json(&format!("/rooms/{room}/count")).1["online"] == 4
    });
    let pa = std::thread::spawn(move || publish_bursts(a, room, "a", true));
    let pb = std::thread::spawn(move || publish_bursts(b, room, "b", true));
    let total = 2 * EACH;
    let from_hub = room_messages(&mut hub_watcher, room, 1, total);
    let mut from_text = Vec::new();
    while from_text.len() < total {
        let line = next_text(&mut text_watcher);
        if let Some((user, said)) = line.split_once(": ") {
            if user == "a" || user == "b" {
                from_text.push(said.to_string());
            }
        }
    }
    assert_eq!(from_text, from_hub, "both dialects hear one order");
    assert_each_in_order(&from_hub, &["a", "b"]);
    pa.join().unwrap();
    pb.join().unwrap();
}

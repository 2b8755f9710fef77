//! `join_room` with `since`: the recovery answer is honest, and the replay
//! joined with live messages has no gap and no duplicate, even while
//! another client keeps publishing during the join.
mod hub_util;
mod support;

use hub_util::{drain, hub, join, Ws};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use support::{next_json, send_json, Server};

fn say(ws: &mut Ws, room: &str, n: usize) {
    send_json(
        ws,
        json!({"type": "message", "content": format!("m{n}"), "room_name": room}),
    );
}

/// Joins `room` with `since` (and `epoch`) and returns the recovery flag
/// and the seqs replayed before `room_join`.
fn rejoin(ws: &mut Ws, room: &str, since: u64, epoch: Option<&str>) -> (bool, String, Vec<u64>) {
    let mut ask = json!({"type": "join_room", "room_name": room, "since": since});
    if let Some(e) = epoch {
        ask["epoch"] = json!(e);
    }
    send_json(ws, ask);
    let recovery = next_json(ws);
    assert_eq!(recovery["type"], "recovery", "{recovery}");
    assert_eq!(recovery["room_name"], room);
    let mut seqs = Vec::new();
    loop {
        let v = next_json(ws);
        match v["type"].as_str() {
            Some("message") => seqs.push(v["seq"].as_u64().unwrap()),
            Some("room_join") => break,
            _ => panic!("unexpected before room_join: {v}"),
        }
    }
    (
        recovery["recovered"].as_bool().unwrap(),
        recovery["epoch"].as_str().unwrap().to_string(),
        seqs,
    )
}

#[test]
fn recovered_is_true_inside_the_history_and_false_outside_it() {
    let server = Server::start(&["--room-history", "5"]);
    let mut p = hub(&server, "p");
    join(&mut p, "p", "r");
    for n in 1..=8 {
        say(&mut p, "r", n);
    }
    let epoch = drain(&mut p, "p")[0]["epoch"].as_str().unwrap().to_string();
    let mut c = hub(&server, "c");

    let (ok, e, seqs) = rejoin(&mut c, "r", 3, Some(&epoch));
    assert_eq!((ok, seqs), (true, vec![4, 5, 6, 7, 8]), "4..8 are all held");
    assert_eq!(e, epoch);
    send_json(&mut c, json!({"type": "leave_room", "room_name": "r"}));
    next_json(&mut c);

    let (ok, _, seqs) = rejoin(&mut c, "r", 2, Some(&epoch));
    assert_eq!(
        (ok, seqs),
        (false, vec![4, 5, 6, 7, 8]),
        "3 has left the history"
    );
    send_json(&mut c, json!({"type": "leave_room", "room_name": "r"}));
    next_json(&mut c);

    let (ok, _, seqs) = rejoin(&mut c, "r", 6, Some("another-life"));
    assert_eq!((ok, seqs), (false, vec![7, 8]), "a seq from another epoch");
    send_json(&mut c, json!({"type": "leave_room", "room_name": "r"}));
    next_json(&mut c);

    let (ok, _, seqs) = rejoin(&mut c, "r", 8, None);
    assert_eq!((ok, seqs), (true, vec![]), "up to date, epoch not given");
    send_json(&mut c, json!({"type": "leave_room", "room_name": "r"}));
    next_json(&mut c);

    let (ok, _, seqs) = rejoin(&mut c, "fresh", 0, None);
    assert_eq!(
        (ok, seqs),
        (true, vec![]),
        "nothing was ever said in a new room"
    );
}

#[test]
fn a_new_server_life_has_a_new_epoch() {
    let first = {
        let server = Server::start(&[]);
        let mut p = hub(&server, "p");
        join(&mut p, "p", "r");
        say(&mut p, "r", 1);
        drain(&mut p, "p")[0]["epoch"].as_str().unwrap().to_string()
    };
    let server = Server::start(&[]);
    let mut p = hub(&server, "p");
    join(&mut p, "p", "r");
    say(&mut p, "r", 1);
    let m = &drain(&mut p, "p")[0];
    assert_eq!(m["seq"], 1);
    assert_ne!(m["epoch"].as_str().unwrap(), first);
    let mut c = hub(&server, "c");
    let (ok, _, seqs) = rejoin(&mut c, "r", 1, Some(&first));
    assert_eq!((ok, seqs), (false, vec![]));
}

#[test]
fn a_reconnecting_client_loses_nothing_while_a_publisher_keeps_sending() {
    let server = Server::start(&["--room-history", "100000"]);
    let mut p = hub(&server, "pub");
    join(&mut p, "pub", "r");
    // A listener that stays, to know what was published.
    let mut c = hub(&server, "c");
    join(&mut c, "c", "r");
    say(&mut p, "r", 0);
    let first = next_of(&mut c, "message");
    let epoch = first["epoch"].as_str().unwrap().to_string();

    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 1;
            while !stop.load(Ordering::Relaxed) {
                say(&mut p, "r", n);
                n += 1;
                // Read what the room sends back so this client never stalls.
                while p.can_read() {
                    let v = next_json(&mut p);
                    if v["type"] == "message" && v["seq"] == n as u64 {
                        break;
                    }
                }
            }
            p
        })
    };
    // Drop and rejoin several times while messages keep flowing; each time
    // the replay plus the live messages must continue exactly where the
    // last seen seq left off.
    let mut last = first["seq"].as_u64().unwrap();
    for round in 0..5 {
        for _ in 0..20 {
            last = expect_seq(&mut c, last + 1);
        }
        c.close(None).unwrap();
        drop(c);
        c = hub(&server, "c");
        let (ok, _, seqs) = rejoin(&mut c, "r", last, Some(&epoch));
        assert!(ok, "round {round}: within the history");
        for s in seqs {
            assert_eq!(s, last + 1, "round {round}: replay in order");
            last = s;
        }
    }
    for _ in 0..20 {
        last = expect_seq(&mut c, last + 1);
    }
    stop.store(true, Ordering::Relaxed);
    publisher.join().unwrap();
}

fn next_of(ws: &mut Ws, ty: &str) -> Value {
    support::next_of_type(ws, ty)
}

fn expect_seq(ws: &mut Ws, want: u64) -> u64 {
    loop {
        let v = next_json(ws);
        if v["type"] == "message" {
            assert_eq!(v["seq"], want, "no gap, no duplicate: {v}");
            return want;
        }
    }
}

//! The room's order and settling, driven event by event without Redis.

use super::*;
use crate::broker::redis::event::{Notice, RoomEvent};
use crate::hub::testing::{member, texts};
use crossbeam_channel::Receiver;
use serde_json::json;

const ME: &str = "inst";

fn room() -> Arc<Room> {
    let ctx = RoomCtx {
        instance: ME.into(),
        window: Duration::ZERO,
        stats: Arc::new(HubStats::default()),
        flusher: Flusher::immediate(),
    };
    Arc::new(Room::new("r", Arc::new(ctx)))
}

fn said(name: &str, content: &str) -> Said {
    Said {
        name: name.into(),
        content: content.into(),
        timestamp: json!(0),
    }
}

fn message(seq: u64, epoch: &str) -> RoomEvent {
    RoomEvent::Message {
        seq,
        epoch: epoch.into(),
        said: said("x", &format!("m{seq}")),
    }
}

fn joined(name: &str, conn: u64) -> RoomEvent {
    RoomEvent::Notice(Notice::Joined {
        name: name.into(),
        who: format!("{ME}:{conn}"),
    })
}

fn answer(last: u64) -> JoinAnswer {
    JoinAnswer {
        epoch: "E".into(),
        last,
        held: Vec::new(),
    }
}

/// Joins hub member `name` (connection `conn`) with its answer first
/// or its notice first; returns its queue.
fn join(
    room: &Arc<Room>,
    conn: u64,
    name: &str,
    notice_first: bool,
) -> Receiver<crate::ws::Outgoing> {
    let (m, rx) = member(conn, name, Dialect::Json);
    room.begin_join(m, None).unwrap().unwrap();
    if notice_first {
        room.on_event(&joined(name, conn));
        room.finish_join(conn, answer(0), None, false);
    } else {
        room.finish_join(conn, answer(0), None, false);
        room.on_event(&joined(name, conn));
    }
    rx
}

fn kinds(rx: &Receiver<crate::ws::Outgoing>) -> Vec<String> {
    texts(rx)
        .iter()
        .map(|t| {
            let v: serde_json::Value = serde_json::from_str(t).unwrap();
            match v["type"].as_str().unwrap() {
                "message" => format!("message {}", v["seq"]),
                "recovery" => format!("recovery {}", v["recovered"]),
                kind => format!("{kind} {}", v["client_id"].as_str().unwrap_or("")),
            }
        })
        .collect()
}

#[test]
fn a_joiner_hears_its_join_once_and_then_the_room_whichever_comes_first() {
    for notice_first in [true, false] {
        let room = room();
        let a = join(&room, 1, "a", !notice_first);
        let (b, b_rx) = member(2, "b", Dialect::Json);
        room.begin_join(b, None).unwrap().unwrap();
        if notice_first {
            room.on_event(&joined("b", 2));
            // Heard, not answered yet: what follows waits for b.
            room.on_event(&message(1, "E"));
            assert!(texts(&b_rx).is_empty());
            room.finish_join(2, answer(0), None, false);
        } else {
            room.finish_join(2, answer(0), None, false);
            room.on_event(&joined("b", 2));
            room.on_event(&message(1, "E"));
        }
        assert_eq!(kinds(&b_rx), ["room_join b", "message 1"]);
        assert_eq!(kinds(&a), ["room_join a", "room_join b", "message 1"]);
    }
}

#[test]
fn joiners_waiting_for_their_answer_hear_joins_settled_meanwhile() {
    let room = room();
    let (a, a_rx) = member(1, "a", Dialect::Json);
    let (b, b_rx) = member(2, "b", Dialect::Json);
    room.begin_join(a, None).unwrap().unwrap();
    room.begin_join(b, None).unwrap().unwrap();
    room.on_event(&joined("a", 1)); // a heard, not answered
    room.finish_join(2, answer(0), None, false); // b answered first
    room.on_event(&joined("b", 2)); // b settles: a must hear it
    room.finish_join(1, answer(0), None, false);
    assert_eq!(kinds(&a_rx), ["room_join a", "room_join b"]);
    assert_eq!(kinds(&b_rx), ["room_join b"]);
}

#[test]
fn a_leaver_hears_the_room_until_its_own_leave_notice() {
    let room = room();
    let a = join(&room, 1, "a", false);
    let _ = texts(&a);
    room.leave(1, true).unwrap();
    room.on_event(&message(1, "E"));
    room.on_event(&RoomEvent::Notice(Notice::Left {
        name: "a".into(),
        who: format!("{ME}:1"),
    }));
    room.on_event(&message(2, "E"));
    assert_eq!(kinds(&a), ["message 1", "room_leave a"]);
    assert!(room.retire_if_empty());
}

#[test]
fn a_joiner_may_send_and_leave_before_its_notice_is_back() {
    let room = room();
    let (a, a_rx) = member(1, "a", Dialect::Json);
    room.begin_join(a, None).unwrap().unwrap();
    room.finish_join(1, answer(0), None, false);
    assert!(room.member(1).is_some(), "joined once answered");
    assert!(room
        .begin_join(member(1, "a", Dialect::Json).0, None)
        .unwrap()
        .is_err());
    room.leave(1, true).unwrap();
    assert!(room.member(1).is_none());
    room.on_event(&joined("a", 1));
    room.on_event(&message(1, "E"));
    room.on_event(&RoomEvent::Notice(Notice::Left {
        name: "a".into(),
        who: format!("{ME}:1"),
    }));
    assert_eq!(kinds(&a_rx), ["room_join a", "message 1", "room_leave a"]);
    assert!(room.retire_if_empty());
}

#[test]
fn a_gap_is_asked_for_and_repaired_in_order() {
    let room = room();
    let a = join(&room, 1, "a", false);
    room.on_event(&message(1, "E"));
    assert_eq!(
        room.on_event(&message(4, "E")),
        Next::Gap {
            after: 1,
            epoch: "E".into()
        }
    );
    let held = vec![(2, said("x", "m2")), (3, said("x", "m3"))];
    room.repair(Some(("E".into(), 4)), &held, Some(4));
    assert_eq!(room.on_event(&message(4, "E")), Next::Done);
    room.on_event(&message(4, "E")); // a duplicate
    assert_eq!(
        kinds(&a),
        [
            "room_join a",
            "message 1",
            "message 2",
            "message 3",
            "message 4"
        ]
    );
}

#[test]
fn what_left_the_history_or_a_new_epoch_is_told_as_not_recovered() {
    let room = room();
    let a = join(&room, 1, "a", false);
    room.on_event(&message(1, "E"));
    let _ = texts(&a);
    // 2 and 3 were trimmed; 4 and 5 are held.
    let held = vec![(4, said("x", "m4")), (5, said("x", "m5"))];
    room.repair(Some(("E".into(), 5)), &held, None);
    room.on_event(&message(6, "F"));
    assert_eq!(
        kinds(&a),
        [
            "recovery false",
            "message 4",
            "message 5",
            "recovery false",
            "message 6"
        ]
    );
}

#[test]
fn a_room_restarted_in_redis_goes_on_from_its_new_first_message() {
    let room = room();
    let a = join(&room, 1, "a", false);
    for seq in 1..=5 {
        room.on_event(&message(seq, "E"));
    }
    let _ = texts(&a);
    // Redis came back empty; another instance sent 1 and 2 meanwhile.
    let held = vec![(1, said("x", "m1")), (2, said("x", "m2"))];
    room.repair(Some(("F".into(), 2)), &held, None);
    room.on_event(&message(3, "F"));
    assert_eq!(
        kinds(&a),
        ["recovery false", "message 1", "message 2", "message 3"]
    );
}

#[test]
fn a_join_whose_notice_may_be_lost_is_settled_once() {
    let room = room();
    let (a, a_rx) = member(1, "a", Dialect::Text);
    room.begin_join(a, None).unwrap().unwrap();
    room.finish_join(1, answer(0), None, true);
    room.on_event(&joined("a", 1)); // it came after all
    let (b, b_rx) = member(2, "b", Dialect::Text);
    room.begin_join(b, None).unwrap().unwrap();
    room.finish_join(2, answer(0), None, false);
    room.on_event(&joined("b", 2));
    assert_eq!(texts(&a_rx), ["system: b joined r"]);
    assert!(texts(&b_rx).is_empty());
}

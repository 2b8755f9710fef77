//! `--notify-interval`: every hub client receives `system_notification`s;
//! text rooms do not.
mod hub_util;
mod support;

use hub_util::{hub, text_member};
use support::{next_of_type, next_text, Server};
use tungstenite::Message;

#[test]
fn hub_clients_receive_periodic_notifications() {
    let server = Server::start(&["--notify-interval", "0.2"]);
    let mut a = hub(&server, "a");
    let mut b = hub(&server, "b");
    let mut t = text_member(&server, "r", "bob", 1);
    for ws in [&mut a, &mut b] {
        for _ in 0..2 {
            let n = next_of_type(ws, "system_notification");
            assert_eq!(n["priority"], "info");
            assert!(!n["message"].as_str().unwrap().is_empty());
            assert!(n["timestamp"].as_u64().unwrap() > 1_600_000_000_000);
        }
    }
    assert!(server.metric("strand_notifications_total") >= 2.0);
    t.send(Message::text("x")).unwrap();
    assert_eq!(
        next_text(&mut t),
        "bob: x",
        "no notification reached the text room"
    );
}

#[test]
fn no_interval_no_notifications() {
    let server = Server::start(&[]);
    let _a = hub(&server, "a");
    assert_eq!(server.metric("strand_notifications_total"), 0.0);
}

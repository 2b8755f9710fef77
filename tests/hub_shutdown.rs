//! SIGTERM with hub and text members in rooms, notifications on: every
//! client gets 1001 and the server exits 0 (the hub's notifier and notice
//! flusher threads do not hold it up).
mod hub_util;
mod support;

use hub_util::{hub, join, text_member};
use support::{close_code, Server};

#[test]
fn shutdown_closes_room_members_with_1001_and_exits() {
    let mut server = Server::start(&["--notify-interval", "0.05"]);
    let mut a = hub(&server, "a");
    join(&mut a, "a", "r");
    let mut t = text_member(&server, "r", "bob", 2);
    server.signal(libc::SIGTERM);
    assert_eq!(close_code(&mut a), 1001);
    assert_eq!(close_code(&mut t), 1001);
    let _ = a.flush();
    let _ = t.flush();
    assert!(server.wait_exit().success(), "{}", server.log_text());
}

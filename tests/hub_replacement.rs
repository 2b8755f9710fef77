//! A second connection with a connected `client_id` replaces the first,
//! which is closed with 4001; the id stays connected throughout.
mod hub_util;
mod support;

use hub_util::{drain, hub, join};
use serde_json::json;
use support::{close_code, next_json, next_of_type, send_json, Server};

#[test]
fn the_older_connection_is_closed_with_4001() {
    let server = Server::start(&[]);
    let mut watcher = hub(&server, "w");
    let mut first = hub(&server, "a");
    join(&mut first, "a", "r");
    assert_eq!(next_json(&mut watcher)["type"], "user_joined");

    let mut second = hub(&server, "a");
    assert_eq!(close_code(&mut first), 4001);
    let _ = first.flush(); // send the close reply tungstenite queued
    server.wait_until("the 4001 is counted", || {
        server.metric("strand_close_codes_sent_total{code=\"4001\"}") == 1.0
    });

    // Others see the id join again but never leave; direct messages reach
    // the new connection.
    let seen = drain(&mut watcher, "w");
    let types: Vec<_> = seen.iter().map(|v| v["type"].as_str().unwrap()).collect();
    assert_eq!(types, vec!["user_joined"], "{seen:?}");
    send_json(
        &mut watcher,
        json!({"type": "direct", "to": "a", "content": "still you?"}),
    );
    assert_eq!(next_of_type(&mut second, "direct")["content"], "still you?");

    // The old connection's room membership ended with it.
    server.wait_until("r is empty", || {
        server.get_json("/rooms/r/count").1["online"] == 0
    });
    second.close(None).unwrap();
    assert_eq!(next_of_type(&mut watcher, "user_left")["client_id"], "a");
}

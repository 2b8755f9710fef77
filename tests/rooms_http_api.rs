//! The HTTP room API: `GET /rooms`, `GET /rooms/{room}/count` and
//! `POST /broadcast`, with and without an admin token.
mod hub_util;
mod support;

use hub_util::{hub, join, text_member};
use serde_json::{json, Value};
use support::{next_json, next_of_type, next_text, Server};

#[test]
fn rooms_and_counts_cover_both_dialects() {
    let server = Server::start(&[]);
    assert_eq!(server.get_json("/rooms"), (200, json!({"rooms": []})));
    assert_eq!(
        server.get_json("/rooms/nowhere/count"),
        (200, json!({"room": "nowhere", "online": 0}))
    );
    let mut a = hub(&server, "a");
    join(&mut a, "a", "zeta");
    join(&mut a, "a", "alpha");
    let _t1 = text_member(&server, "alpha", "bob", 2);
    let _t2 = text_member(&server, "alpha", "cy", 3);
    assert_eq!(
        server.get_json("/rooms").1,
        json!({"rooms": [{"room": "alpha", "online": 3}, {"room": "zeta", "online": 1}]})
    );
    assert_eq!(server.get_json("/rooms/zeta/count").1["online"], 1);
    assert_eq!(
        server.http("GET", "/rooms/bad%20name/count", &[], "").0,
        400
    );
}

#[test]
fn broadcast_to_a_room_and_to_everyone() {
    let server = Server::start(&[]);
    let mut h = hub(&server, "h");
    join(&mut h, "h", "r");
    let mut out = hub(&server, "out");
    let mut t = text_member(&server, "r", "bob", 2);
    let mut other = text_member(&server, "elsewhere", "eve", 1);
    next_of_type(&mut h, "room_join");

    let (status, body) = post(&server, &[], r#"{"room":"r","message":"hi r"}"#);
    assert_eq!((status, body), (200, json!({"sent_to": "r", "online": 2})));
    assert_eq!(
        next_json(&mut h),
        json!({"type": "broadcast", "room_name": "r", "message": "hi r"})
    );
    assert_eq!(next_text(&mut t), "[broadcast] hi r");

    let (status, body) = post(&server, &[], r#"{"message":"hi all"}"#);
    assert_eq!((status, body), (200, json!({"sent_to": "*", "online": 4})));
    for ws in [&mut h, &mut out] {
        assert_eq!(
            next_of_type(ws, "broadcast"),
            json!({"type": "broadcast", "room_name": null, "message": "hi all"})
        );
    }
    assert_eq!(next_text(&mut t), "[broadcast] hi all");
    assert_eq!(next_text(&mut other), "[broadcast] hi all");
    assert_eq!(server.metric("strand_broadcasts_total"), 2.0);
}

#[test]
fn malformed_bodies_get_400_with_a_json_error() {
    let server = Server::start(&[]);
    for body in [
        "",
        "nope",
        "[]",
        r#"{"room":"r"}"#,
        r#"{"message":1}"#,
        r#"{"room":"a/b","message":"x"}"#,
    ] {
        let (status, reply) = server.http("POST", "/broadcast", &[], body);
        assert_eq!(status, 400, "{body:?}");
        let v: Value = serde_json::from_str(&reply).unwrap();
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{reply}"
        );
    }
    assert_eq!(server.http("GET", "/broadcast", &[], "").0, 405);
}

#[test]
fn an_admin_token_is_required_when_configured() {
    let server = Server::start(&["--admin-token", "s3cret"]);
    let body = r#"{"message":"hi"}"#;
    for headers in [
        &[][..],
        &["Authorization: Bearer wrong"][..],
        &["Authorization: Basic s3cret"][..],
        &["Authorization: Bearer s3cre"][..],
    ] {
        let (status, reply) = server.http("POST", "/broadcast", headers, body);
        assert_eq!(status, 401, "{headers:?}");
        assert!(serde_json::from_str::<Value>(&reply).unwrap()["error"].is_string());
    }
    let (status, reply) = post(&server, &["Authorization: Bearer s3cret"], body);
    assert_eq!((status, reply["sent_to"].clone()), (200, json!("*")));
    // Authorized but malformed is still a 400.
    let (status, _) = post(&server, &["Authorization: Bearer s3cret"], "{");
    assert_eq!(status, 400);
}

fn post(server: &Server, headers: &[&str], body: &str) -> (u16, Value) {
    let (status, reply) = server.http("POST", "/broadcast", headers, body);
    (status, serde_json::from_str(&reply).unwrap_or(Value::Null))
}

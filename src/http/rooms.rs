//! The HTTP room API: `GET /rooms`, `GET /rooms/{room}/count`,
//! `POST /broadcast`. The router has already checked the path, the method
//! and the room name in the path; who may broadcast is [`operator`]'s rule.

use super::{operator, Request, Response};
use crate::names;
use crate::shared::Shared;
use serde_json::{json, Value};

/// Answers a room API request.
pub fn handle(shared: &Shared, request: &Request) -> Response {
    let broker = &shared.broker;
    let segments: Vec<&str> = request.path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["rooms"] => match broker.rooms() {
            Ok(rooms) => {
                let rooms: Vec<Value> = rooms
                    .into_iter()
                    .map(|(room, online)| json!({"room": room, "online": online}))
                    .collect();
                Response::json(&json!({ "rooms": rooms }))
            }
            Err(_) => unavailable(),
        },
        ["rooms", room, "count"] => match broker.online(room) {
            Ok(online) => Response::json(&json!({"room": room, "online": online})),
            Err(_) => unavailable(),
        },
        ["broadcast"] => broadcast(shared, request),
        _ => Response::error(404, &format!("no such path: {}", request.path)),
    }
}

fn broadcast(shared: &Shared, request: &Request) -> Response {
    if let Err(refused) = operator::admit(
        shared.config.admin_token.as_deref(),
        request,
        "POST /broadcast",
    ) {
        return refused;
    }
    let (room, message) = match parse(&request.body) {
        Ok(parsed) => parsed,
        Err(why) => return Response::error(400, &why),
    };
    match shared.broker.broadcast(room.as_deref(), &message) {
        Ok(online) => {
            Response::json(&json!({"sent_to": room.as_deref().unwrap_or("*"), "online": online}))
        }
        Err(_) => unavailable(),
    }
}

/// A room API request that needs Redis while it cannot be reached.
fn unavailable() -> Response {
    Response::error(503, "rooms are unavailable: Redis cannot be reached").header("Retry-After: 1")
}

/// The `room` (optional) and `message` of a broadcast body.
fn parse(body: &[u8]) -> Result<(Option<String>, String), String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let object = value
        .as_object()
        .ok_or("the body must be a JSON object {\"room\":...,\"message\":...}")?;
    let message = object
        .get("message")
        .and_then(Value::as_str)
        .ok_or("`message` (a string) is required")?
        .to_string();
    let room = match object.get("room") {
        None | Some(Value::Null) => None,
        Some(Value::String(room)) if names::is_valid(room) => Some(room.clone()),
        Some(Value::String(room)) => {
            return Err(format!(
                "bad room name {room:?}: use 1-64 of A-Z a-z 0-9 _ . - (not starting with .)"
            ))
        }
        Some(_) => return Err("`room` must be a string".into()),
    };
    Ok((room, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_parse_or_say_why() {
        assert_eq!(
            parse(br#"{"room":"r","message":"hi"}"#),
            Ok((Some("r".into()), "hi".into()))
        );
        assert_eq!(parse(br#"{"message":"hi"}"#), Ok((None, "hi".into())));
        for bad in [
            &b"nope"[..],
            br#"[1]"#,
            br#"{"room":"r"}"#,
            br#"{"message":5}"#,
            br#"{"room":"a b","message":"x"}"#,
            br#"{"room":3,"message":"x"}"#,
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}

//! `--max-messages-per-second`: a hub message over the rate gets
//! `rate_limited` and is dropped, a hub client that stays over it is closed
//! with 1008 `rate limited`, and `/ws` and text rooms close at their first
//! message over it; counted in /metrics. Each flood is sent in one write,
//! far faster than the bucket refills, so the counts below do not depend
//! on timing beyond a token or two.
mod support;

use serde_json::{json, Value};
use support::{next_json, RawClient, Server};
use tungstenite::Message;

const TEXT: u8 = 0x1;

/// `n` masked text frames of `text`, in one buffer.
fn burst(text: &str, n: usize) -> Vec<u8> {
    RawClient::frame(true, 0, TEXT, text.as_bytes()).repeat(n)
}

/// Reads data frames until the close; returns the texts and the close
/// frame's code and reason.
fn read_to_close(client: &mut RawClient) -> (Vec<String>, u16, String) {
    let mut texts = Vec::new();
    loop {
        let f = client.read_data_frame().expect("a close frame before EOF");
        if f.opcode == 0x8 {
            let reason = String::from_utf8_lossy(&f.payload[2..]).into_owned();
            return (texts, f.close_code(), reason);
        }
        texts.push(String::from_utf8(f.payload).unwrap());
    }
}

#[test]
fn a_hub_flooder_gets_rate_limited_errors_then_1008() {
    let server = Server::start(&["--max-messages-per-second", "5"]);
    let mut quiet = server.ws("/ws/chat/quiet");
    next_json(&mut quiet);
    let mut c = RawClient::connect(&server, "/ws/chat/flood");
    assert!(String::from_utf8_lossy(&c.read_data_frame().unwrap().payload).contains("welcome"));
    c.send_bytes(&burst(r#"{"type":"echo","n":1}"#, 40));
    let (texts, code, reason) = read_to_close(&mut c);
    assert_eq!((code, reason.as_str()), (1008, "rate limited"));
    let replies: Vec<Value> = texts
        .iter()
        .map(|t| serde_json::from_str(t).unwrap())
        .collect();
    let echoes = replies.iter().filter(|v| v["type"] == "echo").count();
    let limited = replies
        .iter()
        .filter(|v| v["type"] == "error" && v["code"] == "rate_limited")
        .count();
    // The burst of 5 passes, the next 5 are refused, then it is closed.
    assert!((5..=6).contains(&echoes), "{echoes} echoes: {texts:?}");
    assert!((5..=6).contains(&limited), "{limited} refusals: {texts:?}");
    assert_eq!(echoes + limited, replies.len(), "{texts:?}");
    // Errors come after the echoes: nothing over the rate was handled.
    assert!(replies[..echoes].iter().all(|v| v["type"] == "echo"));
    c.expect_eof();
    // The quiet client next door is unaffected.
    quiet
        .send(Message::text(json!({"type": "echo"}).to_string()))
        .unwrap();
    let replies: Vec<Value> = (0..3).map(|_| next_json(&mut quiet)).collect();
    let types: Vec<&str> = replies
        .iter()
        .map(|v| v["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["user_joined", "user_left", "echo"], "{replies:?}");
    assert_eq!(server.metric("strand_rate_limit_closes_total"), 1.0);
    let refused = server.metric("strand_rate_limited_messages_total");
    assert_eq!(refused, (limited + 1) as f64);
    assert_eq!(
        server.metric("strand_close_codes_sent_total{code=\"1008\"}"),
        1.0
    );
}

#[test]
fn a_hub_client_just_over_the_rate_is_told_and_kept() {
    let server = Server::start(&["--max-messages-per-second", "3"]);
    let mut c = RawClient::connect(&server, "/ws/chat/eager");
    c.read_data_frame().unwrap();
    // 3 pass, the 4th is refused: well inside the refusal budget.
    c.send_bytes(&burst(r#"{"type":"echo"}"#, 4));
    let mut kinds = Vec::new();
    for _ in 0..4 {
        let f = c.read_data_frame().unwrap();
        let v: Value = serde_json::from_slice(&f.payload).unwrap();
        kinds.push(
            v["code"]
                .as_str()
                .unwrap_or(v["type"].as_str().unwrap())
                .to_string(),
        );
    }
    assert_eq!(kinds, ["echo", "echo", "echo", "rate_limited"]);
    // Still open: a close handshake of the client's own is answered.
    c.send_close(1000, b"");
    assert_eq!(c.read_data_frame().unwrap().close_code(), 1000);
}

#[test]
fn echo_closes_at_the_first_message_over_the_rate() {
    let server = Server::start_env(&[("STRAND_MAX_MESSAGES_PER_SECOND", "4")], &[]);
    let mut c = RawClient::connect(&server, "/ws");
    c.send_bytes(&burst("e", 20));
    let (texts, code, reason) = read_to_close(&mut c);
    assert_eq!((code, reason.as_str()), (1008, "rate limited"));
    assert!((4..=5).contains(&texts.len()), "{texts:?}");
    assert_eq!(server.metric("strand_rate_limit_closes_total"), 1.0);
    // Binary messages count too.
    let mut c = RawClient::connect(&server, "/ws");
    c.send_bytes(&RawClient::frame(true, 0, 0x2, b"b").repeat(20));
    assert_eq!(read_to_close(&mut c).1, 1008);
}

#[test]
fn a_text_room_flooder_is_closed_and_the_room_hears_only_its_burst() {
    let server = Server::start(&["--max-messages-per-second", "3"]);
    let mut other = server.ws("/ws/lobby/other");
    // "other" hears flood join only if it joined first (its handshake
    // comes back before its join is done).
    server.wait_until("other in lobby", || {
        server.get_json("/rooms/lobby/count").1["online"] == 1
    });
    let mut c = RawClient::connect(&server, "/ws/lobby/flood");
    assert_eq!(support::next_text(&mut other), "system: flood joined lobby");
    c.send_bytes(&burst("spam", 30));
    let (_, code, reason) = read_to_close(&mut c);
    assert_eq!((code, reason.as_str()), (1008, "rate limited"));
    let mut heard = Vec::new();
    loop {
        let line = support::next_text(&mut other);
        if line == "system: flood left lobby" {
            break;
        }
        heard.push(line);
    }
    assert!((3..=4).contains(&heard.len()), "{heard:?}");
    assert!(heard.iter().all(|l| l == "flood: spam"), "{heard:?}");
}

#[test]
fn without_the_flag_nothing_is_limited() {
    let server = Server::start(&[]);
    let mut c = RawClient::connect(&server, "/ws/chat/free");
    c.read_data_frame().unwrap();
    c.send_bytes(&burst(r#"{"type":"echo"}"#, 500));
    for _ in 0..500 {
        let f = c.read_data_frame().unwrap();
        assert!(String::from_utf8_lossy(&f.payload).contains(r#""type":"echo""#));
    }
    assert_eq!(server.metric("strand_rate_limited_messages_total"), 0.0);
}

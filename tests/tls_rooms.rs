//! A large room over `wss://`: every member's copy is sealed for it, and a
//! member's queued frames leave together (one record for several frames,
//! notices coalesced longer in a room whose flushes take long). What a
//! client can see of that is order and completeness: each member gets
//! every later member's join exactly once and every message of a
//! publisher that sends as fast as it can, in order, with nothing lost.
mod support;
mod tls_util;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::Server;
use tls_util::{https, metric_in, wss, TestCa};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// Members: enough that the room coalesces busy traffic (100 or more).
const MEMBERS: usize = 120;
/// Messages the first member publishes without pausing.
const MESSAGES: usize = 300;

type Wss = WebSocket<MaybeTlsStream<TcpStream>>;

fn read_line(ws: &mut WebSocket<impl Read + Write>, member: usize) -> String {
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => return t.to_string(),
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            Ok(other) => panic!("member {member}: expected text, got {other:?}"),
            Err(e) => panic!("member {member}: read: {e}"),
        }
    }
}

/// Reads member `i`'s stream until the publisher's last message: join
/// notices (each at most once, before the messages: the room was formed
/// before the first), then `m0..` in order, none missing. Returns whose
/// joins it heard.
fn read_member(ws: &mut Wss, i: usize) -> HashSet<usize> {
    let mut joins = HashSet::new();
    let mut next = 0;
    while next < MESSAGES {
        let line = read_line(ws, i);
        if let Some(who) = line
            .strip_prefix("system: u")
            .and_then(|l| l.strip_suffix(" joined big"))
        {
            let j: usize = who.parse().unwrap_or_else(|_| panic!("{line:?}"));
            assert_eq!(next, 0, "member {i}: {line:?} after a message");
            assert!(j != i && joins.insert(j), "member {i}: {line:?} twice");
            continue;
        }
        assert_eq!(
            line,
            format!("u0: m{next}"),
            "member {i}: out of order or lost"
        );
        next += 1;
    }
    joins
}

#[test]
fn heavy_a_large_room_over_wss_gets_every_join_and_a_fast_publisher_in_order() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ca.leaf().write(dir.path());
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let server = Server::start_in(dir, &["--tls-cert", &cert, "--tls-key", &key]);
    let config = ca.client(&[]);

    let mut members: Vec<Wss> = (0..MEMBERS)
        .map(|i| wss(server.addr, config.clone(), &format!("/ws/big/u{i}")))
        .collect();
    // Every member is in the room before the first message: the messages
    // then follow every join notice in every member's stream.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = https(
            server.addr,
            config.clone(),
            "GET",
            "/rooms/big/count",
            &[],
            "",
        );
        assert_eq!(status, 200, "{body}");
        let count: serde_json::Value = serde_json::from_str(&body).unwrap();
        if count["online"] == MEMBERS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the room did not form in 60 s: {body}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let mut publisher = members.remove(0);
    let readers: Vec<_> = members
        .into_iter()
        .enumerate()
        .map(|(k, mut ws)| std::thread::spawn(move || read_member(&mut ws, k + 1)))
        .collect();
    for n in 0..MESSAGES {
        publisher.send(Message::text(format!("m{n}"))).unwrap();
    }
    let mut heard = vec![read_member(&mut publisher, 0)];
    for reader in readers {
        heard.push(
            reader
                .join()
                .expect("a member saw a gap, a duplicate or a stall"),
        );
    }
    // Of any two members, the one that joined later was announced to the
    // other: exactly one of them heard the other's join.
    for i in 0..MEMBERS {
        for j in i + 1..MEMBERS {
            assert!(
                heard[i].contains(&j) != heard[j].contains(&i),
                "members {i} and {j}: {} and {}",
                heard[i].contains(&j),
                heard[j].contains(&i)
            );
        }
    }
    let (status, metrics) = https(server.addr, config, "GET", "/metrics", &[], "");
    assert_eq!(status, 200);
    for name in [
        "strand_dropped_messages_total",
        "strand_slow_consumer_closes_total",
    ] {
        assert_eq!(metric_in(&metrics, name), Some(0.0), "{name}");
    }
}

//! One order per room across instances, and nothing lost or repeated when
//! pub/sub connections drop or go silent: concurrent senders on two
//! instances, `CLIENT KILL TYPE pubsub` while messages are published, and
//! a pub/sub connection that stays open but delivers nothing.
mod hub_util;
mod redis_util;
mod support;

use hub_util::{drain, hub, join, text_member, Ws};
use redis_util::{instance, instance_on, Proxy, Redis};
use serde_json::{json, Value};
use support::{next_json, next_of_type, send_json};

/// Reads `n` room messages (skipping notices), failing on a `recovery`.
fn messages(ws: &mut Ws, n: usize) -> Vec<Value> {
    let mut got = Vec::new();
    while got.len() < n {
        let v = match ws.read() {
            Ok(tungstenite::Message::Text(t)) => serde_json::from_str::<Value>(&t).unwrap(),
            Ok(_) => continue,
            Err(e) => panic!("after {} of {n} ({:?}): {e}", got.len(), got.last()),
        };
        assert_ne!(v["type"], "recovery", "nothing was lost: {v}");
        if v["type"] == "message" {
            got.push(v);
        }
    }
    got
}

/// The `seq`s of `messages`.
fn seqs(messages: &[Value]) -> Vec<u64> {
    messages
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect()
}

#[test]
fn concurrent_senders_on_two_instances_make_one_order() {
    const EACH: usize = 150;
    let redis = Redis::start();
    let (one, two) = (instance(&redis, &[]), instance(&redis, &[]));
    let mut watchers = [hub(&one, "w1"), hub(&two, "w2")];
    join(&mut watchers[0], "w1", "r");
    join(&mut watchers[1], "w2", "r");
    // Both senders are members before either sends.
    let joined: Vec<(Ws, &str)> = [(&one, "s1"), (&two, "s2")]
        .into_iter()
        .map(|(server, id)| {
            let mut ws = hub(server, id);
            join(&mut ws, id, "r");
            (ws, id)
        })
        .collect();
    let senders: Vec<_> = joined
        .into_iter()
        .map(|(mut ws, id)| {
            std::thread::spawn(move || {
                for i in 0..EACH {
                    let content = format!("{id}-{i}");
                    send_json(
                        &mut ws,
                        json!({"type": "message", "room_name": "r", "content": content}),
                    );
                }
                messages(&mut ws, 2 * EACH)
            })
        })
        .collect();
    let mut heard: Vec<Vec<Value>> = watchers.iter_mut().map(|w| messages(w, 2 * EACH)).collect();
    heard.extend(senders.into_iter().map(|t| t.join().unwrap()));
    let expected: Vec<u64> = (1..=2 * EACH as u64).collect();
    for got in &heard {
        assert_eq!(seqs(got), expected, "every seq once, in order");
        assert_eq!(got, &heard[0], "one order for every member");
    }
    // Each sender's own messages keep their order within the one order.
    for id in ["s1", "s2"] {
        let mine: Vec<String> = heard[0]
            .iter()
            .filter(|m| m["client_id"] == id)
            .map(|m| m["content"].as_str().unwrap().to_string())
            .collect();
        let sent: Vec<String> = (0..EACH).map(|i| format!("{id}-{i}")).collect();
        assert_eq!(mine, sent);
    }
    for (w, id) in watchers.iter_mut().zip(["w1", "w2"]) {
        let rest = drain(w, id);
        assert!(
            rest.iter().all(|v| v["type"] != "message"),
            "nothing twice: {rest:?}"
        );
    }
}

#[test]
fn killed_pubsub_connections_lose_and_repeat_nothing() {
    const BURSTS: usize = 8;
    const BURST: usize = 25;
    let redis = Redis::start();
    let (one, two) = (instance(&redis, &[]), instance(&redis, &[]));
    let mut m1 = hub(&one, "m1");
    join(&mut m1, "m1", "r");
    let mut m2 = hub(&two, "m2");
    join(&mut m2, "m2", "r");
    let mut t = text_member(&two, "r", "tom", 3);
    let mut sender = hub(&one, "s");
    join(&mut sender, "s", "r");
    let total = BURSTS * BURST;
    for burst in 0..BURSTS {
        for i in 0..BURST {
            let n = burst * BURST + i;
            send_json(
                &mut sender,
                json!({"type": "message", "room_name": "r", "content": format!("m{n}")}),
            );
        }
        // Both instances' subscribers drop while the burst is published
        // (once both are back from the last time).
        one.wait_until("both subscribers back", || {
            let list: String = redis.cmd(&["CLIENT", "LIST", "TYPE", "pubsub"]);
            list.lines().count() == 2
        });
        let killed: i64 = redis.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"]);
        assert_eq!(killed, 2);
    }
    let expected: Vec<u64> = (1..=total as u64).collect();
    for (ws, id) in [(&mut m1, "m1"), (&mut m2, "m2"), (&mut sender, "s")] {
        let got = messages(ws, total);
        assert_eq!(seqs(&got), expected, "{id}: every message once, in order");
        let contents: Vec<&str> = got.iter().map(|m| m["content"].as_str().unwrap()).collect();
        let sent: Vec<String> = (0..total).map(|n| format!("m{n}")).collect();
        assert_eq!(contents, sent);
        assert!(drain(ws, id).is_empty(), "{id}: nothing twice");
    }
    let mut lines = Vec::new();
    while lines.len() < total {
        let line = match t.read() {
            Ok(tungstenite::Message::Text(l)) => l.to_string(),
            Ok(_) => continue,
            Err(e) => panic!("after {} lines ({:?}): {e}", lines.len(), lines.last()),
        };
        if !line.starts_with("system: ") {
            lines.push(line);
        }
    }
    let sent: Vec<String> = (0..total).map(|n| format!("s: m{n}")).collect();
    assert_eq!(lines, sent, "the text member too");
    // The last burst may be delivered before its kill: each subscriber
    // comes back once per kill, then stays.
    for server in [&one, &two] {
        server.wait_until("the last reconnect", || {
            server.metric("strand_redis_connects_total") >= BURSTS as f64 + 1.0
        });
        assert_eq!(
            server.metric("strand_redis_connects_total"),
            BURSTS as f64 + 1.0
        );
    }
}

#[test]
fn a_silent_pubsub_connection_is_replaced_and_the_gap_told() {
    let redis = Redis::start();
    let proxy = Proxy::start(&redis);
    let args = ["--room-history", "5", "--redis-presence-ttl", "30"];
    let direct = instance_on(&redis.url(), &args);
    let behind = instance_on(&proxy.url(), &args);
    let mut s = hub(&direct, "s");
    join(&mut s, "s", "r");
    let mut m = hub(&behind, "m");
    join(&mut m, "m", "r");
    send_json(
        &mut s,
        json!({"type": "message", "room_name": "r", "content": "first"}),
    );
    let first = next_of_type(&mut m, "message");
    assert_eq!(first["seq"], 1);

    // Every connection of `behind` goes silent; 10 more messages, of
    // which the history keeps the last 5.
    proxy.freeze();
    for i in 2..=11 {
        send_json(
            &mut s,
            json!({"type": "message", "room_name": "r", "content": format!("m{i}")}),
        );
    }
    // The probe finds the silence; the new connection repairs the room:
    // 2..6 are gone (recovered false), 7..11 arrive in order.
    let v = next_json(&mut m);
    assert_eq!(
        v,
        json!({"type": "recovery", "room_name": "r", "epoch": first["epoch"], "recovered": false})
    );
    let got = messages(&mut m, 5);
    assert_eq!(seqs(&got), [7, 8, 9, 10, 11]);
    send_json(
        &mut s,
        json!({"type": "message", "room_name": "r", "content": "after"}),
    );
    assert_eq!(next_of_type(&mut m, "message")["seq"], 12);
    assert_eq!(behind.metric("strand_redis_connects_total"), 2.0);
}

#[test]
fn concurrent_joins_on_two_instances_make_one_order_of_notices() {
    const N: usize = 48;
    let redis = Redis::start();
    let servers = [instance(&redis, &[]), instance(&redis, &[])];
    // Half text members, half hub members, spread over both instances,
    // all joining at once.
    let members: Vec<(String, Ws)> = std::thread::scope(|s| {
        let joining: Vec<_> = (0..N)
            .map(|i| {
                let server = &servers[i % 2];
                s.spawn(move || {
                    let name = format!("u{i}");
                    let ws = if i % 4 < 2 {
                        server.ws(&format!("/ws/r/{name}"))
                    } else {
                        let mut ws = hub(server, &name);
                        send_json(&mut ws, json!({"type": "join_room", "room_name": "r"}));
                        ws
                    };
                    (name, ws)
                })
            })
            .collect();
        joining.into_iter().map(|j| j.join().unwrap()).collect()
    });
    servers[0].wait_until("everyone in the room", || {
        servers[0].get_json("/rooms/r/count").1["online"] == N as u64
    });
    // A message after every join: what each member heard before it is
    // every join notice it will ever hear.
    let mut members = members;
    send_json(
        &mut members[2].1,
        json!({"type": "message", "room_name": "r", "content": "end"}),
    );
    let heard: Vec<Vec<String>> = members
        .iter_mut()
        .map(|(_, ws)| {
            let mut joins = Vec::new();
            loop {
                let text = match ws.read().unwrap() {
                    tungstenite::Message::Text(t) => t.to_string(),
                    _ => continue,
                };
                if let Some(line) = text.strip_prefix("system: ") {
                    joins.push(line.split(' ').next().unwrap().to_string());
                } else if text.ends_with(": end") {
                    break;
                } else if let Ok(v) = serde_json::from_str::<Value>(&text) {
                    match v["type"].as_str() {
                        Some("room_join") => joins.push(v["client_id"].as_str().unwrap().into()),
                        Some("message") => break,
                        _ => {}
                    }
                }
            }
            joins
        })
        .collect();
    // Of any two members, exactly one heard the other join (the earlier
    // one heard the later); a hub member also heard its own.
    for i in 0..N {
        for j in (i + 1)..N {
            let i_heard_j = heard[i].contains(&members[j].0);
            let j_heard_i = heard[j].contains(&members[i].0);
            assert!(
                i_heard_j != j_heard_i,
                "u{i} and u{j}: {i_heard_j} {j_heard_i}"
            );
        }
        let own = heard[i].iter().filter(|n| **n == members[i].0).count();
        assert_eq!(
            own,
            usize::from(i % 4 >= 2),
            "u{i} hears its own join once if a hub member"
        );
    }
}

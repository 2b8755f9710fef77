//! What happens when things fail: an instance killed with -9 (its clients
//! are announced gone everywhere within --redis-presence-ttl), Redis away
//! at start-up and stopped mid-conversation (`unavailable`, degraded
//! health, echo/streams unaffected, everything resumes by itself), a
//! master that refuses writes for want of replicas (`unavailable`), and a
//! clean stop that leaves no thread, connection or Redis registration.
mod hub_util;
mod redis_util;
mod support;

use hub_util::{drain, expect_error, hub, join, text_member};
use redis_util::{instance, wait_broker, Redis};
use serde_json::json;
use std::time::{Duration, Instant};
use support::{next_json, next_of_type, next_text, send_json, Server};
use tungstenite::Message;

#[test]
fn a_killed_instances_clients_are_announced_gone_within_the_ttl() {
    let redis = Redis::start();
    let ttl = ["--redis-presence-ttl", "3"];
    let (mut doomed, survivor) = (instance(&redis, &ttl), instance(&redis, &ttl));
    let mut b = hub(&survivor, "b");
    join(&mut b, "b", "r");
    let mut t = text_member(&survivor, "r", "tess", 2);
    let mut a = hub(&doomed, "a");
    join(&mut a, "a", "r");
    let _u = text_member(&doomed, "r", "ulla", 4);
    // Room notices are coalesced for up to 2 ms and `user_joined` is not a
    // room event, so only the room's own order is fixed.
    let mut heard = Vec::new();
    while heard.len() < 4 {
        let v = next_json(&mut b);
        heard.push(format!(
            "{} {}",
            v["type"].as_str().unwrap(),
            v["client_id"].as_str().unwrap()
        ));
    }
    let joins: Vec<_> = heard
        .iter()
        .filter(|h| h.starts_with("room_join"))
        .collect();
    assert_eq!(
        joins,
        ["room_join tess", "room_join a", "room_join ulla"],
        "{heard:?}"
    );
    assert!(heard.contains(&"user_joined a".to_string()), "{heard:?}");
    assert_eq!(survivor.get_json("/rooms/r/count").1["online"], 4);
    assert!(next_text(&mut t).ends_with("a joined r"));
    assert!(next_text(&mut t).ends_with("ulla joined r"));

    doomed.signal(libc::SIGKILL);
    doomed.wait_exit();
    let killed = Instant::now();
    // The same notices as if they had disconnected: each member's leave,
    // then the hub client's user_left.
    let mut leaves = Vec::new();
    let mut user_left = false;
    while leaves.len() < 2 || !user_left {
        let v = next_json(&mut b);
        match v["type"].as_str() {
            Some("room_leave") => leaves.push(v["client_id"].as_str().unwrap().to_string()),
            Some("user_left") => {
                assert_eq!(v["client_id"], "a");
                user_left = true;
            }
            _ => panic!("unexpected {v}"),
        }
    }
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?} (TTL 3 s)");
    leaves.sort();
    assert_eq!(leaves, ["a", "ulla"]);
    let mut lines = vec![next_text(&mut t), next_text(&mut t)];
    lines.sort();
    assert_eq!(lines, ["system: a left r", "system: ulla left r"]);
    send_json(&mut b, json!({"type": "presence", "room_name": "r"}));
    assert_eq!(next_json(&mut b)["members"], json!(["b", "tess"]));
    assert_eq!(
        survivor.get_json("/rooms").1["rooms"],
        json!([{"room": "r", "online": 2}])
    );
    send_json(&mut b, json!({"type": "direct", "to": "a", "content": "?"}));
    expect_error(&mut b, "unknown_client");
    assert_eq!(survivor.metric("strand_redis_reaped_total"), 1.0);
}

#[test]
fn an_instance_starts_without_redis_and_resumes_when_it_comes() {
    let mut redis = Redis::start();
    redis.stop();
    let url = redis.url();
    let tail = tempfile::tempdir().unwrap();
    std::fs::write(tail.path().join("app.log"), "one\ntwo\n").unwrap();
    let tail_dir = tail.path().to_str().unwrap();
    let server = Server::start(&["--redis", &url, "--tail-dir", tail_dir]);
    let (status, health) = server.get_json("/healthz");
    assert_eq!(status, 200);
    assert_eq!(
        (health["status"].as_str(), health["broker"].as_str()),
        (Some("degraded"), Some("redis-down"))
    );

    // Requests that need Redis answer `unavailable`; the connection stays.
    let mut a = hub(&server, "a");
    for ask in [
        json!({"type": "join_room", "room_name": "r"}),
        json!({"type": "message", "content": "hi"}),
        json!({"type": "direct", "to": "a", "content": "hi"}),
        json!({"type": "presence", "room_name": "r"}),
    ] {
        send_json(&mut a, ask);
        expect_error(&mut a, "unavailable");
    }
    let (status, _) = server.get_json("/rooms");
    assert_eq!(status, 503);
    // Echo, streams and following do not need Redis.
    send_json(
        &mut a,
        json!({"type": "follow", "file": "app.log", "from": "start"}),
    );
    assert_eq!(next_json(&mut a)["type"], "following");
    assert_eq!(next_json(&mut a)["payload"], "one");
    assert_eq!(next_json(&mut a)["payload"], "two");
    send_json(&mut a, json!({"type": "echo", "x": 1}));
    assert_eq!(next_json(&mut a)["original"]["x"], 1);
    send_json(&mut a, json!({"type": "start", "interval_ms": 10}));
    assert_eq!(next_json(&mut a)["type"], "started");
    assert_eq!(next_json(&mut a)["type"], "data");
    send_json(&mut a, json!({"type": "stop"}));
    assert_eq!(next_of_type(&mut a, "stopped")["type"], "stopped");
    let mut echo = server.ws("/ws");
    echo.send(Message::text("e")).unwrap();
    assert_eq!(next_text(&mut echo), "e");
    // A text member is in its room here at once, and told why it hears
    // nobody else yet.
    let mut t = server.ws("/ws/r/tom");
    assert!(next_text(&mut t).contains("unavailable"));

    redis.restart();
    wait_broker(&server, "redis");
    assert_eq!(server.get_json("/healthz").1["status"], "ok");
    // Everything held here was registered: the hub client and the text
    // member are seen from another instance.
    let other = instance(&redis, &[]);
    let mut b = hub(&other, "b");
    send_json(&mut b, json!({"type": "presence", "room_name": "r"}));
    assert_eq!(next_json(&mut b)["members"], json!(["tom"]));
    send_json(
        &mut b,
        json!({"type": "direct", "to": "a", "content": "found you"}),
    );
    assert_eq!(next_of_type(&mut a, "direct")["content"], "found you");
    join(&mut a, "a", "r");
    assert!(next_text(&mut t).contains("a joined r"));
}

#[test]
fn redis_stopped_and_restarted_mid_conversation() {
    let mut redis = Redis::start();
    let (one, two) = (instance(&redis, &[]), instance(&redis, &[]));
    let mut a = hub(&one, "a");
    join(&mut a, "a", "r");
    let mut b = hub(&two, "b");
    join(&mut b, "b", "r");
    let mut t = text_member(&two, "r", "tom", 3);
    send_json(
        &mut a,
        json!({"type": "message", "room_name": "r", "content": "before"}),
    );
    let before = next_of_type(&mut b, "message");
    assert_eq!(next_of_type(&mut a, "message"), before);
    assert_eq!(next_text(&mut t), "a: before");

    redis.stop();
    for server in [&one, &two] {
        wait_broker(server, "redis-down");
        assert_eq!(server.get_json("/healthz").1["status"], "degraded");
    }
    send_json(
        &mut a,
        json!({"type": "message", "room_name": "r", "content": "lost"}),
    );
    expect_error(&mut a, "unavailable");
    t.send(Message::text("also lost")).unwrap();
    assert!(next_text(&mut t).starts_with("system: not delivered"));

    // Back, empty: both instances register their clients again, and the
    // room goes on in a new epoch, which every member is told of.
    redis.restart();
    wait_broker(&one, "redis");
    wait_broker(&two, "redis");
    send_json(&mut b, json!({"type": "presence", "room_name": "r"}));
    assert_eq!(
        next_of_type(&mut b, "presence")["members"],
        json!(["a", "b", "tom"])
    );
    send_json(
        &mut a,
        json!({"type": "message", "room_name": "r", "content": "after"}),
    );
    for ws in [&mut a, &mut b] {
        let v = next_json(ws);
        assert_eq!(v["type"], "recovery", "{v}");
        assert_eq!(v["recovered"], false);
        assert_ne!(v["epoch"], before["epoch"]);
        let m = next_json(ws);
        assert_eq!(
            (m["seq"].as_u64(), m["content"].as_str()),
            (Some(1), Some("after"))
        );
        assert_eq!(m["epoch"], v["epoch"]);
    }
    assert_eq!(
        next_text(&mut t),
        "system: some messages of r could not be recovered"
    );
    assert_eq!(next_text(&mut t), "a: after");
    assert!(drain(&mut b, "b").iter().all(|v| v["type"] != "message"));
}

#[test]
fn a_clean_stop_leaves_no_thread_connection_or_registration() {
    let redis = Redis::start();
    let (mut one, two) = (instance(&redis, &[]), instance(&redis, &[]));
    let baseline = one.settled_threads();
    let instance_id = one
        .wait_log("redis broker: instance ")
        .split("instance ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap()
        .to_string();
    let queries = || {
        redis
            .strand_connections()
            .iter()
            .filter(|n| n.contains(&instance_id) && n.ends_with(":query"))
            .count()
    };
    // Clients come and go, ask questions from many threads at once.
    let askers: Vec<_> = (0..16)
        .map(|i| {
            let mut ws = hub(&one, &format!("c{i}"));
            join(&mut ws, &format!("c{i}"), "r");
            ws
        })
        .collect();
    std::thread::scope(|s| {
        for mut ws in askers {
            s.spawn(move || {
                for _ in 0..5 {
                    send_json(&mut ws, json!({"type": "presence", "room_name": "r"}));
                    next_of_type(&mut ws, "presence");
                }
            });
        }
    });
    let mut watcher = hub(&two, "w");
    join(&mut watcher, "w", "r");
    assert!(
        queries() <= 4,
        "the query pool is bounded: {:?}",
        redis.strand_connections()
    );
    one.wait_threads(baseline);
    assert_eq!(one.get_json("/rooms/r/count").1["online"], 1);

    one.signal(libc::SIGTERM);
    assert!(one.wait_exit().success());
    let mine = |names: Vec<String>| {
        names
            .into_iter()
            .filter(|n| n.contains(&instance_id))
            .count()
    };
    assert_eq!(
        mine(redis.strand_connections()),
        0,
        "no Redis connection left"
    );
    let keys: Vec<String> = redis.cmd(&["KEYS", &format!("*{instance_id}*")]);
    assert!(keys.is_empty(), "{keys:?}");
    let live: Vec<String> = redis.cmd(&["ZRANGE", "strand:instances", "0", "-1"]);
    assert!(!live.contains(&instance_id));
    assert_eq!(two.get_json("/rooms/r/count").1["online"], 1);
}

#[test]
fn a_master_refusing_writes_for_want_of_replicas_answers_unavailable() {
    // `min-replicas-to-write`, the Redis setting that bounds what a
    // failover can lose: without a replica in sync, the master refuses
    // writes (NOREPLICAS), and a sender hears `unavailable`, never nothing.
    let redis = Redis::start();
    let server = instance(&redis, &[]);
    let mut a = hub(&server, "a");
    join(&mut a, "a", "r");
    let _: String = redis.cmd(&["CONFIG", "SET", "min-replicas-to-write", "1"]);
    send_json(
        &mut a,
        json!({"type": "message", "room_name": "r", "content": "refused"}),
    );
    expect_error(&mut a, "unavailable");
    let _: String = redis.cmd(&["CONFIG", "SET", "min-replicas-to-write", "0"]);
    send_json(
        &mut a,
        json!({"type": "message", "room_name": "r", "content": "taken"}),
    );
    let m = next_of_type(&mut a, "message");
    assert_eq!(
        (m["seq"].as_u64(), m["content"].as_str()),
        (Some(1), Some("taken"))
    );
}

#[test]
fn a_redis_that_is_a_replica_refuses_and_the_reason_is_logged() {
    // `--redis` pointing at a replica (a demoted master, before anything
    // moves): every write is refused with READONLY, answered
    // `unavailable`, and the log says why; the server keeps serving.
    let master = Redis::start();
    let replica = Redis::start();
    let port = master.port.to_string();
    let _: String = replica.cmd(&["REPLICAOF", "127.0.0.1", &port]);
    let server = Server::start(&["--redis", &replica.url()]);
    let mut a = hub(&server, "a");
    send_json(&mut a, json!({"type": "join_room", "room_name": "r"}));
    expect_error(&mut a, "unavailable");
    server.wait_log("read only replica");
    assert_ne!(server.get_json("/healthz").1["broker"], "redis");
}

//! Redis behind Sentinel (`redis+sentinel://`): a master, a replica and
//! three sentinels started by the test, two strand instances with a room
//! in common. The master killed with -9, or failed over by `SENTINEL
//! FAILOVER` while frozen (`kill -STOP`): messages flow again across the
//! instances within 15 s of the promotion, every message sent meanwhile is
//! delivered or answered `unavailable`, and nothing lost keeps the epoch.
//! A failover that lost acknowledged messages (the replica cut off, then
//! the master killed) gives the room a new epoch: a client resuming inside
//! the lost range gets `recovered:false`, and no client sees two messages
//! with one `(epoch, seq)`. A clean stop ends the sentinel watcher too.
//! The same failover with TLS everywhere (`rediss+sentinel://`,
//! `--redis-ca`).
mod hub_util;
mod redis_util;
mod support;

use hub_util::{first_message_across, hub, Ws};
use redis_util::sentinel::{Cluster, MASTER};
use redis_util::tls::{write, Ca};
use redis_util::{instance_on, wait_broker};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::{next_json, next_of_type, send_json, Server};

/// Reads every JSON message `ws` gets into a channel until it sees a
/// message whose content is `until`.
fn reader(mut ws: Ws, until: &'static str) -> mpsc::Receiver<Value> {
    let (tx, rx) = mpsc::channel();
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    std::thread::spawn(move || loop {
        let v = match ws.read() {
            Ok(tungstenite::Message::Text(t)) => serde_json::from_str::<Value>(&t).unwrap(),
            Ok(_) => continue,
            Err(_) => return,
        };
        let done = v["content"] == until;
        if tx.send(v).is_err() || done {
            return;
        }
    });
    rx
}

/// What a sender saw while it sent until the other side heard it.
struct Switch {
    sent: usize,
    unavailable: usize,
    /// When the first message sent after the failure reached the other
    /// instance's client.
    first_heard: Instant,
    /// What the other instance's client got, in order.
    heard: Vec<Value>,
}

/// `a` sends `during-N` every 100 ms until `b`'s reader hears one (or 40 s
/// pass), then `final`; collects what `b` heard up to `final`.
fn send_through_the_switch(a: &mut Ws, b: &mpsc::Receiver<Value>) -> Switch {
    a.get_mut()
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(40);
    let (mut sent, mut unavailable) = (0, 0);
    let mut heard = Vec::new();
    let first_heard = loop {
        assert!(
            Instant::now() < deadline,
            "no message got through the failover"
        );
        send_json(
            a,
            json!({"type": "message", "room_name": "r", "content": format!("during-{sent}")}),
        );
        sent += 1;
        let until = Instant::now() + Duration::from_millis(100);
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match a.read() {
                Ok(tungstenite::Message::Text(t)) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["type"] == "error" {
                        assert_eq!(v["code"], "unavailable", "{v}");
                        unavailable += 1;
                    }
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    std::thread::sleep(left.min(Duration::from_millis(5)));
                }
                Err(e) => panic!("the sender's connection failed: {e}"),
            }
        }
        let mut got = false;
        while let Ok(v) = b.try_recv() {
            got |= v["type"] == "message";
            heard.push(v);
        }
        if got {
            break Instant::now();
        }
    };
    // Whatever is still on its way is answered before `final` is.
    a.get_mut().set_read_timeout(Some(support::WAIT)).unwrap();
    send_json(
        a,
        json!({"type": "message", "room_name": "r", "content": "final"}),
    );
    loop {
        let v = next_json(a);
        if v["type"] == "error" {
            assert_eq!(v["code"], "unavailable", "{v}");
            unavailable += 1;
        }
        if v["content"] == "final" {
            break;
        }
    }
    loop {
        let v = b
            .recv_timeout(support::WAIT)
            .expect("the other instance hears `final`");
        let done = v["content"] == "final";
        heard.push(v);
        if done {
            break;
        }
    }
    Switch {
        sent,
        unavailable,
        first_heard,
        heard,
    }
}

/// The room messages among `heard`.
fn messages(heard: &[Value]) -> Vec<&Value> {
    heard.iter().filter(|v| v["type"] == "message").collect()
}

/// No two different messages with one `(epoch, seq)`, and each content
/// once.
fn assert_unique(heard: &[&Value]) {
    let mut ids = HashSet::new();
    let mut contents = HashSet::new();
    for m in heard {
        let id = (m["epoch"].to_string(), m["seq"].as_u64().unwrap());
        assert!(ids.insert(id), "one (epoch, seq) twice: {m}");
        assert!(
            contents.insert(m["content"].to_string()),
            "heard twice: {m}"
        );
    }
}

/// Two instances on `cluster` with hub clients `a` (on the first) and `b`
/// (on the second) in room `r`, and the epoch of the message `before`
/// that both heard.
fn two_instances(cluster: &Cluster) -> (Server, Server, Ws, Ws, String) {
    two_instances_with(cluster, &[])
}

/// As [`two_instances`], with more arguments for the instances.
fn two_instances_with(cluster: &Cluster, args: &[&str]) -> (Server, Server, Ws, Ws, String) {
    let url = cluster.url();
    let (one, two) = (instance_on(&url, args), instance_on(&url, args));
    let (mut a, b, m) = first_message_across(&one, &two, "before");
    assert_eq!(next_of_type(&mut a, "message")["content"], "before");
    let epoch = m["epoch"].as_str().unwrap().to_string();
    (one, two, a, b, epoch)
}

/// A client on `server` resuming room `r` after `since` in `epoch`:
/// whether it was told `recovered`.
fn resume(server: &Server, id: &str, since: u64, epoch: &str) -> bool {
    let mut c = hub(server, id);
    send_json(
        &mut c,
        json!({"type": "join_room", "room_name": "r", "since": since, "epoch": epoch}),
    );
    let v = next_of_type(&mut c, "recovery");
    v["recovered"].as_bool().unwrap()
}

/// Sent during the switch: each delivered or answered `unavailable`, and
/// the instances back to a healthy broker.
fn assert_nothing_dropped(switch: &Switch, one: &Server, two: &Server) {
    let heard = messages(&switch.heard);
    let during = heard
        .iter()
        .filter(|m| m["content"].as_str().unwrap().starts_with("during-"))
        .count();
    assert!(
        during + switch.unavailable >= switch.sent,
        "sent {}, heard {during}, answered unavailable {}",
        switch.sent,
        switch.unavailable
    );
    assert_unique(&heard);
    wait_broker(one, "redis");
    wait_broker(two, "redis");
}

#[test]
fn heavy_a_killed_master_is_followed_by_every_instance() {
    let mut cluster = Cluster::start();
    let (mut one, two, mut a, b, epoch) = two_instances(&cluster);
    assert!(
        one.thread_names().iter().any(|n| n == "redis-sentinel"),
        "the watcher runs: {:?}",
        one.thread_names()
    );
    let old = cluster.master_port().unwrap();
    cluster.sync_replica(old);
    let b = reader(b, "final");

    let killed = Instant::now();
    cluster.node(old).kill();
    let (_, promoted) = cluster.wait_promoted(old, Duration::from_secs(30));
    let switch = send_through_the_switch(&mut a, &b);
    eprintln!(
        "kill -9 of the master: promoted after {:?}, first message delivered {:?} after the kill \
         ({:?} after the promotion); {} sent, {} answered unavailable",
        promoted - killed,
        switch.first_heard - killed,
        switch.first_heard.saturating_duration_since(promoted),
        switch.sent,
        switch.unavailable
    );
    assert!(
        switch.first_heard.saturating_duration_since(promoted) < Duration::from_secs(15),
        "messages flow again within 15 s of the promotion"
    );
    assert_nothing_dropped(&switch, &one, &two);
    // Nothing was lost: same epoch, the count goes on, resumes recover.
    let heard = messages(&switch.heard);
    assert!(
        heard.iter().all(|m| m["epoch"] == epoch.as_str()),
        "{heard:?}"
    );
    let seqs: Vec<u64> = heard.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (2..2 + seqs.len() as u64).collect::<Vec<_>>());
    assert!(!switch.heard.iter().any(|v| v["type"] == "recovery"));
    assert!(
        resume(&one, "c", 1, &epoch),
        "a resume across the failover recovers"
    );
    assert!(one.metric("strand_redis_master_lost_total") >= 1.0);
    // A clean stop ends the watcher with the rest.
    one.signal(libc::SIGTERM);
    assert!(one.wait_exit().success());
}

#[test]
fn heavy_sentinel_failover_with_the_old_master_frozen() {
    let mut cluster = Cluster::start();
    let (one, two, mut a, b, epoch) = two_instances(&cluster);
    let old = cluster.master_port().unwrap();
    cluster.sync_replica(old);
    let b = reader(b, "final");

    cluster.node(old).freeze();
    let asked = Instant::now();
    cluster
        .dial
        .query(cluster.sentinels[0].port, &["SENTINEL", "FAILOVER", MASTER])
        .unwrap();
    let (_, promoted) = cluster.wait_promoted(old, Duration::from_secs(30));
    let switch = send_through_the_switch(&mut a, &b);
    eprintln!(
        "SENTINEL FAILOVER, old master frozen: promoted after {:?}, first message delivered \
         {:?} after the promotion; {} sent, {} answered unavailable",
        promoted - asked,
        switch.first_heard.saturating_duration_since(promoted),
        switch.sent,
        switch.unavailable
    );
    assert!(
        switch.first_heard.saturating_duration_since(promoted) < Duration::from_secs(15),
        "messages flow again within 15 s of the promotion"
    );
    assert_nothing_dropped(&switch, &one, &two);
    assert!(resume(&two, "c", 1, &epoch), "nothing was lost");
    cluster.node(old).thaw();
}

#[test]
fn heavy_a_failover_that_lost_messages_gives_the_room_a_new_epoch() {
    let mut cluster = Cluster::start();
    let (one, two, mut a, b, epoch) = two_instances(&cluster);
    let old = cluster.master_port().unwrap();
    cluster.sync_replica(old);
    // The replica gets nothing more: 2..=6 are acknowledged, delivered,
    // and lost with the master.
    cluster.cut_replica(old);
    let b = reader(b, "final");
    for i in 2..=6 {
        send_json(
            &mut a,
            json!({"type": "message", "room_name": "r", "content": format!("lost-{i}")}),
        );
        let m = b.recv_timeout(support::WAIT).unwrap();
        assert_eq!(
            (m["seq"].as_u64(), m["epoch"].as_str()),
            (Some(i), Some(epoch.as_str()))
        );
    }
    cluster.node(old).kill();
    cluster.wait_promoted(old, Duration::from_secs(30));
    wait_broker(&one, "redis");
    wait_broker(&two, "redis");

    // Inside the lost range: an honest `recovered:false`, on either
    // instance, before and after new messages.
    assert!(!resume(&two, "c", 4, &epoch));
    let switch = send_through_the_switch(&mut a, &b);
    assert_nothing_dropped(&switch, &one, &two);
    assert!(!resume(&one, "d", 3, &epoch));
    let heard = messages(&switch.heard);
    let new_epoch = heard[0]["epoch"].as_str().unwrap();
    assert_ne!(new_epoch, epoch, "the room has a new epoch");
    assert!(heard.iter().all(|m| m["epoch"] == new_epoch));
    // b was told before the new epoch's first message.
    let told = switch
        .heard
        .iter()
        .position(|v| v["type"] == "recovery" && v["recovered"] == false)
        .expect("b hears recovered:false");
    let first = switch
        .heard
        .iter()
        .position(|v| v["type"] == "message")
        .unwrap();
    assert!(told < first, "{:?}", switch.heard);
    // Everything b ever heard: no (epoch, seq) twice.
    let mut all: Vec<Value> = (1..=6)
        .map(|seq| json!({"epoch": epoch, "seq": seq, "content": format!("old-{seq}")}))
        .collect();
    all.extend(heard.iter().map(|v| (*v).clone()));
    assert_unique(&all.iter().collect::<Vec<_>>());
}

#[test]
fn heavy_rediss_sentinel_follows_a_killed_master_over_tls() {
    let ca = Ca::new("strand test CA");
    let mut cluster = Cluster::start_tls(&ca);
    let dir = tempfile::tempdir().unwrap();
    let roots = write(dir.path(), "ca.pem", &ca.pem);
    let (one, two, mut a, b, epoch) =
        two_instances_with(&cluster, &["--redis-ca", roots.to_str().unwrap()]);
    assert!(cluster.url().starts_with("rediss+sentinel://"));
    let old = cluster.master_port().unwrap();
    cluster.sync_replica(old);
    let b = reader(b, "final");
    cluster.node(old).kill();
    let (_, promoted) = cluster.wait_promoted(old, Duration::from_secs(30));
    let switch = send_through_the_switch(&mut a, &b);
    assert!(
        switch.first_heard.saturating_duration_since(promoted) < Duration::from_secs(15),
        "messages flow again within 15 s of the promotion"
    );
    assert_nothing_dropped(&switch, &one, &two);
    assert!(messages(&switch.heard)
        .iter()
        .all(|m| m["epoch"] == epoch.as_str()));
}

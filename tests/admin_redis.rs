//! The operator view with `--redis`: the broker's state (instances seen,
//! connects, last error) in `/admin/stats`, a Redis stopped and started
//! again named as `broker_down` and `broker_up` in `recent`, and a 4001
//! across instances named on the instance that held the old connection.
mod hub_util;
mod redis_util;
mod support;

use hub_util::hub;
use redis_util::{instance, wait_broker, Redis};
use serde_json::Value;
use std::time::{Duration, Instant};
use support::{Server, WAIT};

fn wait_stats(server: &Server, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT * 2;
    loop {
        let (status, stats) = server.get_json("/admin/stats");
        assert_eq!(status, 200, "{stats}");
        if f(&stats) {
            return stats;
        }
        assert!(Instant::now() < deadline, "never {what}: {stats:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn has_event(s: &Value, kind: &str, client: &str) -> bool {
    s["recent"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == kind && e["client"] == client)
}

#[test]
fn the_broker_state_and_redis_going_down_and_back() {
    let mut redis = Redis::start();
    let a = instance(&redis, &[]);
    let b = instance(&redis, &[]);
    wait_broker(&a, "redis");
    wait_broker(&b, "redis");
    let s = wait_stats(&a, "two instances seen", |s| {
        s["broker_state"]["instances"] == 2
    });
    assert_eq!(s["broker"], "redis");
    let state = &s["broker_state"];
    assert!(state["instance"].is_string(), "{state}");
    assert!(state["reconnects"].as_u64().unwrap() >= 1, "{state}");
    assert_eq!(state["last_error"], Value::Null);

    // 4001 across instances: named where the old connection was.
    let _old = hub(&a, "roamer");
    let _new = hub(&b, "roamer");
    wait_stats(&a, "roamer replaced on a", |s| {
        has_event(s, "replaced", "roamer")
    });

    redis.stop();
    let s = wait_stats(&a, "broker_down", |s| has_event(s, "broker_down", ""));
    assert_eq!(s["broker"], "redis-down");
    assert_eq!(s["broker_state"]["instances"], Value::Null);
    assert!(s["broker_state"]["last_error"]["error"].is_string(), "{s}");
    redis.restart();
    wait_stats(&a, "broker_up after the restart", |s| {
        s["broker"] == "redis"
            && s["recent"][0]["kind"] == "broker_up"
            && has_event(s, "broker_down", "")
    });
}

//! Helpers for the tests of several instances on one Redis: a private
//! `redis-server` on a free port (killed when dropped), strand instances
//! started with `--redis` against it, and Redis commands from the test.
#![allow(dead_code)]

use crate::support::{Server, WAIT};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A private Redis, killed when dropped.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
}

impl Redis {
    /// Starts `redis-server` on a free port without persistence and waits
    /// until it answers PING.
    pub fn start() -> Redis {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = Redis { child: None, port };
        redis.launch();
        redis
    }

    fn launch(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (install it: apt-get install redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + WAIT;
        while self.try_cmd(&["PING"]).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills Redis (its data is gone: no persistence).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts Redis again on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Runs one command and returns its answer.
    pub fn try_cmd(&self, args: &[&str]) -> redis::RedisResult<redis::Value> {
        let client = redis::Client::open(self.url())?;
        let mut con = client.get_connection_with_timeout(Duration::from_secs(1))?;
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query(&mut con)
    }

    /// Runs one command, converting its answer.
    pub fn cmd<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        let value = self
            .try_cmd(args)
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        redis::from_redis_value(&value).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    /// Names of the connections of strand instances (`strand:ID:ROLE`).
    pub fn strand_connections(&self) -> Vec<String> {
        let list: String = self.cmd(&["CLIENT", "LIST"]);
        list.lines()
            .filter_map(|l| l.split_whitespace().find_map(|f| f.strip_prefix("name=")))
            .filter(|n| n.starts_with("strand:"))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts a strand instance on `redis` with a 2 s presence TTL and
/// `args`, and waits until it reports the broker healthy.
pub fn instance(redis: &Redis, args: &[&str]) -> Server {
    let url = redis.url();
    let mut all = vec!["--redis", url.as_str(), "--redis-presence-ttl", "2"];
    all.extend_from_slice(args);
    let server = Server::start(&all);
    wait_broker(&server, "redis");
    server
}

/// Waits until `/healthz` says `"broker": broker`.
pub fn wait_broker(server: &Server, broker: &str) {
    server.wait_until(&format!("broker {broker}"), || {
        server.get_json("/healthz").1["broker"] == broker
    });
}

//! Helpers for the tests of several instances on one Redis: a private
//! `redis-server` on a free port (killed when dropped), strand instances
//! started with `--redis` against it, and Redis commands from the test.
#![allow(dead_code)]

pub mod sentinel;
pub mod tls;

use crate::support::{Server, WAIT};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A private Redis, killed when dropped.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    /// Its working directory: an RDB made for a replica's full sync goes
    /// there, not into the source tree.
    dir: tempfile::TempDir,
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
        let mut redis = Redis {
            child: None,
            port,
            dir: tempfile::tempdir().unwrap(),
        };
        redis.launch();
        redis
    }

    fn launch(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
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

/// Starts a strand instance on `redis` with `args`, and waits until it
/// reports the broker healthy.
pub fn instance(redis: &Redis, args: &[&str]) -> Server {
    let url = redis.url();
    let mut all = vec!["--redis", url.as_str()];
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

/// A TCP proxy in front of Redis whose connections can be made to go
/// silent: they stay open, and nothing passes either way (as after a
/// failover behind a proxy). Connections made later pass again.
pub struct Proxy {
    pub port: u16,
    /// Connections made so far.
    made: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Connections up to this one are silent.
    frozen: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Proxy {
    /// Proxies a free port to `redis`.
    pub fn start(redis: &Redis) -> Proxy {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::Arc;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let target = format!("127.0.0.1:{}", redis.port);
        let frozen = Arc::new(AtomicU64::new(0));
        let made = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (f, s, m) = (frozen.clone(), stop.clone(), made.clone());
        std::thread::spawn(move || {
            let mut generation = 0u64;
            while !s.load(Ordering::Relaxed) {
                let client = match listener.accept() {
                    Ok((c, _)) => c,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                };
                generation += 1;
                let Ok(server) = std::net::TcpStream::connect(&target) else {
                    continue;
                };
                client.set_nonblocking(false).unwrap();
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let (f, s, mine) = (f.clone(), s.clone(), generation);
                    from.set_read_timeout(Some(Duration::from_millis(100)))
                        .unwrap();
                    std::thread::spawn(move || {
                        use std::io::{Read, Write};
                        let mut buf = [0u8; 16384];
                        while !s.load(Ordering::Relaxed) {
                            match from.read(&mut buf) {
                                Ok(0) => break,
                                // Frozen: swallowed, so the other side hears nothing.
                                Ok(_) if mine <= f.load(Ordering::Relaxed) => {}
                                Ok(n) => {
                                    if to.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                }
                                Err(e)
                                    if e.kind() == std::io::ErrorKind::WouldBlock
                                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                                Err(_) => break,
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
                m.store(generation, Ordering::Relaxed);
            }
        });
        Proxy {
            port,
            made,
            frozen,
            stop,
        }
    }

    /// `redis://127.0.0.1:PORT` of the proxy.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Every connection made so far goes silent.
    pub fn freeze(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        self.frozen.store(self.made.load(Relaxed), Relaxed);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Starts a strand instance with `--redis URL` and `args` (no defaults
/// added) and waits until its broker is healthy.
pub fn instance_on(url: &str, args: &[&str]) -> Server {
    let mut all = vec!["--redis", url];
    all.extend_from_slice(args);
    let server = Server::start(&all);
    wait_broker(&server, "redis");
    server
}

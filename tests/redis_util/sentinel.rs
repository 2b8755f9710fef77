//! A Redis master, its replica and three sentinels on free ports, all
//! started by the test and killed when dropped (and with the test process:
//! `PR_SET_PDEATHSIG`). Sentinels judge a master down after 1 s of silence.
//! The replica logs in as user `repl`, so a test can cut it off from the
//! master for good ([`Cluster::cut_replica`]) and make the master hold
//! writes the replica never gets.

use crate::support::WAIT;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The master's name in the sentinels' configuration.
pub const MASTER: &str = "main";

/// One process of the cluster.
pub struct Node {
    child: Option<Child>,
    pub port: u16,
    stopped: bool,
}

impl Node {
    fn spawn(program: &str, args: &[String], port: u16) -> Node {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: prctl is async-signal-safe; nothing else runs in the child.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("{program} (apt-get install redis-server redis-sentinel): {e}")
        });
        let node = Node {
            child: Some(child),
            port,
            stopped: false,
        };
        let deadline = Instant::now() + WAIT;
        while query(port, &["PING"]).is_err() {
            assert!(
                Instant::now() < deadline,
                "{program} on {port} did not answer PING"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        node
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `kill -STOP`: the process keeps its sockets and answers nothing.
    pub fn freeze(&mut self) {
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(self.pid(), libc::SIGSTOP) };
        self.stopped = true;
    }

    /// `kill -CONT`.
    pub fn thaw(&mut self) {
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(self.pid(), libc::SIGCONT) };
        self.stopped = false;
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.stopped {
            self.thaw();
        }
        self.kill();
    }
}

/// A master, a replica and three sentinels.
pub struct Cluster {
    /// The data nodes, the first master at first.
    pub nodes: Vec<Node>,
    pub sentinels: Vec<Node>,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn data_node(port: u16, replica_of: Option<u16>) -> Node {
    let mut args: Vec<String> = [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--user",
        "repl",
        "on",
        ">replpw",
        "~*",
        "&*",
        "+@all",
        "--masteruser",
        "repl",
        "--masterauth",
        "replpw",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(master) = replica_of {
        args.extend(["--replicaof".into(), "127.0.0.1".into(), master.to_string()]);
    }
    Node::spawn("redis-server", &args, port)
}

impl Cluster {
    /// Starts everything and waits until the sentinels know the master,
    /// its replica (in sync) and each other.
    pub fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let master = data_node(free_port(), None);
        let replica = data_node(free_port(), Some(master.port));
        let mut sentinels = Vec::new();
        for i in 0..3 {
            let port = free_port();
            let conf = dir.path().join(format!("sentinel-{i}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                     sentinel monitor {MASTER} 127.0.0.1 {m} 2\n\
                     sentinel down-after-milliseconds {MASTER} 1000\n\
                     sentinel failover-timeout {MASTER} 5000\n\
                     sentinel parallel-syncs {MASTER} 1\n",
                    dir = dir.path().display(),
                    m = master.port
                ),
            )
            .unwrap();
            sentinels.push(Node::spawn(
                "redis-sentinel",
                &[conf.display().to_string()],
                port,
            ));
        }
        let cluster = Cluster {
            nodes: vec![master, replica],
            sentinels,
            dir,
        };
        cluster.wait("the sentinels to know the replica and each other", || {
            cluster.sentinels.iter().all(|s| {
                let info = sentinel_master_info(s.port);
                info.get("num-slaves").map(String::as_str) == Some("1")
                    && info.get("num-other-sentinels").map(String::as_str) == Some("2")
            })
        });
        cluster.wait("the replica to be in sync", || {
            info_field(cluster.nodes[1].port, "master_link_status").as_deref() == Some("up")
        });
        let _ = &cluster.dir;
        cluster
    }

    /// `redis+sentinel://` URL of the three sentinels.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!("redis+sentinel://{}/{MASTER}", hosts.join(","))
    }

    /// The master's port as the first sentinel that answers says.
    pub fn master_port(&self) -> Option<u16> {
        self.sentinels.iter().find_map(|s| {
            let v = query(s.port, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER]).ok()?;
            let (_, port): (String, u16) = redis::from_redis_value(&v).ok()?;
            Some(port)
        })
    }

    /// The data node on `port`.
    pub fn node(&mut self, port: u16) -> &mut Node {
        self.nodes.iter_mut().find(|n| n.port == port).unwrap()
    }

    /// Waits until the sentinels name a master other than `old` and it
    /// says it is one; returns its port and when that was first seen.
    pub fn wait_promoted(&self, old: u16, within: Duration) -> (u16, Instant) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(port) = self.master_port().filter(|p| *p != old) {
                if role(port).as_deref() == Some("master") {
                    return (port, Instant::now());
                }
            }
            assert!(Instant::now() < deadline, "no new master within {within:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The replica can no longer log in to the master, and its link is
    /// cut: what the master writes from now on the replica never gets.
    pub fn cut_replica(&self, master: u16) {
        query(master, &["ACL", "SETUSER", "repl", "off"]).unwrap();
        query(master, &["CLIENT", "KILL", "TYPE", "replica"]).unwrap();
        self.wait("the replica to be cut off", || {
            info_field(master, "connected_slaves").as_deref() == Some("0")
        });
    }

    /// Waits until every write the master took so far is on the replica.
    pub fn sync_replica(&self, master: u16) {
        let con = redis::Client::open(format!("redis://127.0.0.1:{master}")).unwrap();
        let mut con = con
            .get_connection_with_timeout(Duration::from_secs(1))
            .unwrap();
        redis::cmd("SET")
            .arg("test:sync")
            .arg("1")
            .exec(&mut con)
            .unwrap();
        let acked: i64 = redis::cmd("WAIT").arg(1).arg(5000).query(&mut con).unwrap();
        assert_eq!(acked, 1, "the replica acknowledged");
    }

    fn wait(&self, what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !f() {
            assert!(Instant::now() < deadline, "waited too long for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// One command on a new connection to `port`.
pub fn query(port: u16, args: &[&str]) -> redis::RedisResult<redis::Value> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let mut con = client.get_connection_with_timeout(Duration::from_millis(500))?;
    con.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(&mut con)
}

/// The first element of `ROLE`.
pub fn role(port: u16) -> Option<String> {
    let v = query(port, &["ROLE"]).ok()?;
    let parts: Vec<redis::Value> = redis::from_redis_value(&v).ok()?;
    redis::from_redis_value(parts.first()?).ok()
}

fn info_field(port: u16, field: &str) -> Option<String> {
    let v = query(port, &["INFO", "replication"]).ok()?;
    let text: String = redis::from_redis_value(&v).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
}

fn sentinel_master_info(port: u16) -> std::collections::HashMap<String, String> {
    let Ok(v) = query(port, &["SENTINEL", "MASTER", MASTER]) else {
        return Default::default();
    };
    let flat: Vec<String> = redis::from_redis_value(&v).unwrap_or_default();
    flat.chunks(2)
        .filter(|c| c.len() == 2)
        .map(|c| (c[0].clone(), c[1].clone()))
        .collect()
}

//! A Redis master, its replica and three sentinels on free ports, all
//! started by the test and killed when dropped (and with the test process:
//! `PR_SET_PDEATHSIG`), speaking plain TCP or only TLS
//! ([`Cluster::start_tls`]). Sentinels judge a master down after 1 s of
//! silence.
//! The replica logs in as user `repl`, so a test can cut it off from the
//! master for good ([`Cluster::cut_replica`]) and make the master hold
//! writes the replica never gets.

use crate::redis_util::tls::Ca;
use crate::support::WAIT;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The master's name in the sentinels' configuration.
pub const MASTER: &str = "main";

/// How the test reaches the cluster's processes: plain, or TLS trusting
/// a CA.
#[derive(Clone, Default)]
pub struct Dial {
    ca: Option<Vec<u8>>,
}

impl Dial {
    /// One command on a new connection to `port`.
    pub fn query(&self, port: u16, args: &[&str]) -> redis::RedisResult<redis::Value> {
        let client = match &self.ca {
            None => redis::Client::open(format!("redis://127.0.0.1:{port}"))?,
            Some(ca) => redis::Client::build_with_tls(
                format!("rediss://127.0.0.1:{port}"),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca.clone()),
                },
            )?,
        };
        let mut con = client.get_connection_with_timeout(Duration::from_millis(500))?;
        con.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query(&mut con)
    }

    /// The first element of `ROLE`.
    pub fn role(&self, port: u16) -> Option<String> {
        let v = self.query(port, &["ROLE"]).ok()?;
        let parts: Vec<redis::Value> = redis::from_redis_value(&v).ok()?;
        redis::from_redis_value(parts.first()?).ok()
    }

    fn info_field(&self, port: u16, field: &str) -> Option<String> {
        let v = self.query(port, &["INFO", "replication"]).ok()?;
        let text: String = redis::from_redis_value(&v).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .map(|v| v.trim().to_string())
    }

    fn sentinel_master_info(&self, port: u16) -> std::collections::HashMap<String, String> {
        let Ok(v) = self.query(port, &["SENTINEL", "MASTER", MASTER]) else {
            return Default::default();
        };
        let flat: Vec<String> = redis::from_redis_value(&v).unwrap_or_default();
        flat.chunks(2)
            .filter(|c| c.len() == 2)
            .map(|c| (c[0].clone(), c[1].clone()))
            .collect()
    }
}

/// One process of the cluster.
pub struct Node {
    child: Option<Child>,
    pub port: u16,
    stopped: bool,
}

impl Node {
    fn spawn(dial: &Dial, program: &str, args: &[String], port: u16) -> Node {
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
        while dial.query(port, &["PING"]).is_err() {
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
    /// How the test reaches them.
    pub dial: Dial,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `port P`, or with TLS `port 0`, `tls-port P` and the TLS files (for
/// clients, replication and sentinels alike), as command-line arguments.
fn listen_args(port: u16, tls: Option<&[String]>) -> Vec<String> {
    match tls {
        None => vec!["--port".into(), port.to_string()],
        Some(tls) => {
            let mut args = vec![
                "--port".into(),
                "0".into(),
                "--tls-port".into(),
                port.to_string(),
                "--tls-replication".into(),
                "yes".into(),
            ];
            args.extend(tls.iter().cloned());
            args
        }
    }
}

fn data_node(
    dial: &Dial,
    dir: &std::path::Path,
    tls: Option<&[String]>,
    port: u16,
    replica_of: Option<u16>,
) -> Node {
    // Its own directory: the RDB of a replica's full sync goes there.
    let dir = dir.join(format!("node-{port}"));
    std::fs::create_dir(&dir).unwrap();
    let mut args = listen_args(port, tls);
    args.extend(["--dir".to_string(), dir.display().to_string()]);
    args.extend(
        [
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
        .map(|s| s.to_string()),
    );
    if let Some(master) = replica_of {
        args.extend(["--replicaof".into(), "127.0.0.1".into(), master.to_string()]);
    }
    Node::spawn(dial, "redis-server", &args, port)
}

impl Cluster {
    /// Starts everything and waits until the sentinels know the master,
    /// its replica (in sync) and each other.
    pub fn start() -> Cluster {
        Cluster::start_with(None)
    }

    /// As [`Cluster::start`], every process speaking only TLS with a
    /// certificate `ca` signs.
    pub fn start_tls(ca: &Ca) -> Cluster {
        Cluster::start_with(Some(ca))
    }

    fn start_with(ca: Option<&Ca>) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let tls = ca.map(|ca| ca.server_args(dir.path()));
        let tls = tls.as_deref();
        let dial = Dial {
            ca: ca.map(|ca| ca.pem.clone().into_bytes()),
        };
        let master = data_node(&dial, dir.path(), tls, free_port(), None);
        let replica = data_node(&dial, dir.path(), tls, free_port(), Some(master.port));
        let mut sentinels = Vec::new();
        for i in 0..3 {
            let port = free_port();
            let conf = dir.path().join(format!("sentinel-{i}.conf"));
            // Config lines from the command-line form of the same flags.
            let listen = listen_args(port, tls)
                .chunks(2)
                .map(|kv| format!("{} {}\n", kv[0].trim_start_matches("--"), kv[1]))
                .collect::<String>();
            std::fs::write(
                &conf,
                format!(
                    "{listen}bind 127.0.0.1\ndir {dir}\n\
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
                &dial,
                "redis-sentinel",
                &[conf.display().to_string()],
                port,
            ));
        }
        let cluster = Cluster {
            nodes: vec![master, replica],
            sentinels,
            dial,
            dir,
        };
        cluster.wait("the sentinels to know the replica and each other", || {
            cluster.sentinels.iter().all(|s| {
                let info = cluster.dial.sentinel_master_info(s.port);
                info.get("num-slaves").map(String::as_str) == Some("1")
                    && info.get("num-other-sentinels").map(String::as_str) == Some("2")
            })
        });
        cluster.wait("the replica to be in sync", || {
            cluster
                .dial
                .info_field(cluster.nodes[1].port, "master_link_status")
                .as_deref()
                == Some("up")
        });
        let _ = &cluster.dir;
        cluster
    }

    /// `redis+sentinel://` (with TLS `rediss+sentinel://`) URL of the
    /// three sentinels.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        let scheme = if self.dial.ca.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}+sentinel://{}/{MASTER}", hosts.join(","))
    }

    /// The master's port as the first sentinel that answers says.
    pub fn master_port(&self) -> Option<u16> {
        self.sentinels.iter().find_map(|s| {
            let v = self
                .dial
                .query(s.port, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER])
                .ok()?;
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
                if self.dial.role(port).as_deref() == Some("master") {
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
        self.dial
            .query(master, &["ACL", "SETUSER", "repl", "off"])
            .unwrap();
        self.dial
            .query(master, &["CLIENT", "KILL", "TYPE", "replica"])
            .unwrap();
        self.wait("the replica to be cut off", || {
            self.dial.info_field(master, "connected_slaves").as_deref() == Some("0")
        });
    }

    /// Waits until every write the master took so far is on the replica
    /// (its replication offset reached the master's).
    pub fn sync_replica(&self, master: u16) {
        let replica = self.nodes.iter().find(|n| n.port != master).unwrap().port;
        self.wait("the replica to catch up", || {
            let offset = self.dial.info_field(master, "master_repl_offset");
            offset.is_some() && offset == self.dial.info_field(replica, "slave_repl_offset")
        });
    }

    fn wait(&self, what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !f() {
            assert!(Instant::now() < deadline, "waited too long for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

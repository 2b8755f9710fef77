//! TLS to Redis (`rediss://`): a `redis-server` that speaks only TLS, with
//! a certificate from a CA made by the test (rcgen). Two instances trusting
//! that CA (`--redis-ca`) share a room; one trusting another CA is
//! `redis-down`, with the reason in its log, and never kills the server.
//! A `--redis-ca` without a `rediss://` URL, or a file with no certificate
//! in it, is refused at start. A Redis that asks for a client certificate
//! (`tls-auth-clients yes`) gets `--redis-cert`/`--redis-key`, and refuses
//! an instance without one.
mod hub_util;
mod redis_util;
mod support;

use hub_util::{first_message_across, hub};
use redis_util::tls::{write, Ca};
use redis_util::{instance_on, wait_broker};
use serde_json::json;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{send_json, Server};

/// A `redis-server` that speaks only TLS on a free port, killed when
/// dropped.
struct TlsRedis {
    child: Child,
    port: u16,
}

impl TlsRedis {
    fn start(dir: &Path, ca: &Ca) -> TlsRedis {
        TlsRedis::start_with(dir, ca, false)
    }

    /// With `require_clients`, a client must show a certificate `ca` signed.
    fn start_with(dir: &Path, ca: &Ca, require_clients: bool) -> TlsRedis {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--tls-port", &port.to_string()])
        .args(ca.server_args_with(dir, require_clients))
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
        let child = cmd.spawn().expect("redis-server");
        let deadline = Instant::now() + support::WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(10));
        }
        TlsRedis { child, port }
    }

    fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port)
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn instances_share_a_room_over_tls_with_the_given_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("strand test CA");
    let redis = TlsRedis::start(dir.path(), &ca);
    let roots = write(dir.path(), "ca.pem", &ca.pem);
    let roots = roots.to_str().unwrap();
    share_a_room(&redis.url(), &["--redis-ca", roots]);
}

/// Two instances on `url` with `args`: a message sent on one reaches a
/// member of the same room on the other, as the room's first.
fn share_a_room(url: &str, args: &[&str]) {
    let (one, two) = (instance_on(url, args), instance_on(url, args));
    first_message_across(&one, &two, "over TLS");
}

#[test]
fn a_redis_that_asks_for_a_client_certificate_gets_the_given_one() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("strand test CA");
    let redis = TlsRedis::start_with(dir.path(), &ca, true);
    let roots = write(dir.path(), "ca.pem", &ca.pem);
    let (cert, key) = ca.leaf();
    let cert = write(dir.path(), "client.crt", &cert);
    let key = write(dir.path(), "client.key", &key);
    let url = redis.url();
    let mutual = [
        "--redis-ca",
        roots.to_str().unwrap(),
        "--redis-cert",
        cert.to_str().unwrap(),
        "--redis-key",
        key.to_str().unwrap(),
    ];
    share_a_room(&url, &mutual);
    // Without a client certificate the same Redis refuses the handshake:
    // redis-down with the reason, and still serving.
    let anonymous = Server::start(&["--redis", &url, "--redis-ca", roots.to_str().unwrap()]);
    anonymous.wait_log("redis: cannot be reached (");
    wait_broker(&anonymous, "redis-down");
    let mut ws = hub(&anonymous, "c");
    send_json(&mut ws, json!({"type": "join_room", "room_name": "r"}));
    hub_util::expect_error(&mut ws, "unavailable");
}

#[test]
fn a_client_certificate_is_refused_at_start_alone_without_tls_or_not_matching_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("a CA");
    let (cert, _) = ca.leaf();
    let (_, other_key) = ca.leaf();
    let (cert, other_key) = (
        write(dir.path(), "c.crt", &cert),
        write(dir.path(), "other.key", &other_key),
    );
    let (cert, other_key) = (cert.to_str().unwrap(), other_key.to_str().unwrap());
    for (url, args, says) in [
        (
            "rediss://127.0.0.1:1",
            vec!["--redis-cert", cert],
            "go together",
        ),
        (
            "rediss://127.0.0.1:1",
            vec!["--redis-key", other_key],
            "go together",
        ),
        (
            "redis://127.0.0.1:1",
            vec!["--redis-cert", cert, "--redis-key", other_key],
            "needs a rediss://",
        ),
        (
            "rediss://127.0.0.1:1",
            vec!["--redis-cert", cert, "--redis-key", other_key],
            "does not match",
        ),
        (
            "rediss://127.0.0.1:1",
            vec!["--redis-cert", cert, "--redis-key", "/nonexistent/c.key"],
            "No such file",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_strand"))
            .args(["--bind", "127.0.0.1:0", "--redis", url])
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: refused");
        assert!(err.contains(says), "{url} {args:?}: {err}");
    }
}

#[test]
fn a_redis_whose_certificate_is_not_trusted_is_redis_down_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let redis = TlsRedis::start(dir.path(), &Ca::new("the server's CA"));
    let other = write(dir.path(), "other.pem", &Ca::new("another CA").pem);
    let server = Server::start(&[
        "--redis",
        &redis.url(),
        "--redis-ca",
        other.to_str().unwrap(),
    ]);
    let line = server.wait_log("redis: cannot be reached (");
    assert!(
        line.to_lowercase().contains("certificate"),
        "the reason is in the log: {line}"
    );
    wait_broker(&server, "redis-down");
    let (status, health) = server.get_json("/healthz");
    assert_eq!((status, health["status"].as_str()), (200, Some("degraded")));
    // Still serving: echo works, a join is answered `unavailable`.
    let mut ws = hub(&server, "a");
    send_json(&mut ws, json!({"type": "join_room", "room_name": "r"}));
    hub_util::expect_error(&mut ws, "unavailable");
}

#[test]
fn a_redis_ca_is_refused_at_start_without_tls_or_without_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = write(dir.path(), "ca.pem", &Ca::new("a CA").pem);
    let empty = write(dir.path(), "empty.pem", "not a certificate\n");
    for (url, file, says) in [
        ("redis://127.0.0.1:1", ca.as_path(), "needs a rediss://"),
        (
            "rediss://127.0.0.1:1",
            empty.as_path(),
            "no PEM certificate",
        ),
        (
            "rediss://127.0.0.1:1",
            Path::new("/nonexistent/ca.pem"),
            "No such file",
        ),
        (
            "redis+sentinel://127.0.0.1:1",
            ca.as_path(),
            "master's name",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_strand"))
            .args(["--bind", "127.0.0.1:0", "--redis", url, "--redis-ca"])
            .arg(file)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{url}: refused");
        assert!(err.contains(says), "{url} {file:?}: {err}");
    }
}

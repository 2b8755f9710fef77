//! Socket activation and readiness, driven by systemd's own launcher.
//!
//! The test plays systemd's socket unit: it binds the listening socket and
//! holds it for the whole test, as PID 1 does. Each strand generation is
//! started by `systemd-socket-activate` (Debian's systemd package) in its
//! default mode, which is given that socket through `LISTEN_FDS` and, on
//! the first waiting connection, execs strand with it: a stopped strand is
//! replaced on the next connection, as a socket unit does. Strand's
//! `READY=1` and `STOPPING=1` arrive on a notify socket the test binds.
mod support;
mod tls_util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use support::{Server, WAIT};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;

const ACTIVATE: &str = "/usr/bin/systemd-socket-activate";

/// The service manager's side: the held listening socket and the notify
/// socket strand reports to.
struct Manager {
    listener: TcpListener,
    addr: SocketAddr,
    notify: UnixDatagram,
    notify_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Manager {
    fn new() -> Manager {
        assert!(
            Path::new(ACTIVATE).exists(),
            "{ACTIVATE} is missing: `apt-get install systemd` (.ci/test does)"
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let notify_path = dir.path().join("notify");
        let notify = UnixDatagram::bind(&notify_path).unwrap();
        notify.set_read_timeout(Some(WAIT)).unwrap();
        Manager {
            listener,
            addr,
            notify,
            notify_path,
            _dir: dir,
        }
    }

    /// Starts `systemd-socket-activate strand serve ...` with the held
    /// socket; strand itself starts once a connection waits. `--bind
    /// 127.0.0.1:0` is passed too and must lose to the socket.
    fn start(&self, args: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let activate = self.activate_command(Some(self.listener.as_raw_fd()));
        Server::start_command(dir, activate, &data, args)
    }

    /// `sh` sets LISTEN_FDS and LISTEN_PID (its own pid, which exec keeps)
    /// for systemd-socket-activate, which passes them on to strand; `fd`
    /// becomes descriptor 3.
    fn activate_command(&self, fd: Option<i32>) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(r#"a=$0 n=$1; shift; LISTEN_FDS=1 LISTEN_PID=$$ exec "$a" -E NOTIFY_SOCKET="$n" "$@""#)
            .arg(ACTIVATE)
            .arg(&self.notify_path)
            .arg(env!("CARGO_BIN_EXE_strand"));
        pass_as_fd_3(&mut cmd, fd);
        cmd
    }

    /// The next notice strand sent; fails unless it contains `what`.
    fn expect_notice(&self, what: &str) -> String {
        let mut buf = [0u8; 4096];
        let n = self
            .notify
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no notice with {what:?}: {e}"));
        let notice = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(notice.contains(what), "expected {what:?}, got {notice:?}");
        notice
    }
}

/// Makes `fd` descriptor 3 of the child, open across exec (or closes 3).
fn pass_as_fd_3(cmd: &mut Command, fd: Option<i32>) {
    // SAFETY: dup2, fcntl and close are async-signal-safe; nothing else
    // runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let ok = match fd {
                Some(3) => libc::fcntl(3, libc::F_SETFD, 0) == 0,
                Some(fd) => libc::dup2(fd, 3) == 3,
                None => {
                    libc::close(3);
                    true
                }
            };
            if ok {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

#[test]
fn strand_serves_the_passed_socket_and_tells_when_ready_and_stopping() {
    let manager = Manager::new();
    // The connection that makes systemd-socket-activate start strand.
    let mut first = TcpStream::connect(manager.addr).unwrap();
    let mut server = manager.start(&[]);
    assert_eq!(
        server.addr, manager.addr,
        "--bind won over the passed socket"
    );
    server.wait_log("serving the socket passed by the service manager");
    let ready = manager.expect_notice("READY=1");
    assert!(
        ready.contains(&format!("STATUS=listening on {}", manager.addr)),
        "{ready:?}"
    );

    first.set_read_timeout(Some(WAIT)).unwrap();
    first
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    first.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let mut ws = server.ws("/ws");
    ws.send(Message::text("activated")).unwrap();
    assert_eq!(support::next_text(&mut ws), "activated");

    server.signal(libc::SIGTERM);
    manager.expect_notice("STOPPING=1");
    assert_eq!(support::close_code(&mut ws), 1001);
    finish_close(&mut ws);
    assert_eq!(server.wait_exit().code(), Some(0), "{}", server.log_text());

    // The socket outlived strand, untouched: a client that comes now waits
    // in its queue for the next process.
    let _late = TcpStream::connect(manager.addr).expect("the held socket refused a client");
    manager.listener.set_nonblocking(false).unwrap();
    manager
        .listener
        .accept()
        .expect("the late client is queued");
}

#[test]
fn the_passed_socket_serves_tls_with_the_given_pair() {
    // As a socket unit on port 443 would: systemd binds, strand speaks TLS.
    let manager = Manager::new();
    let ca = tls_util::TestCa::new();
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = ca.leaf().write(certs.path());
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let first = TcpStream::connect(manager.addr).unwrap();
    let server = manager.start(&["--tls-cert", &cert, "--tls-key", &key]);
    assert_eq!(server.addr, manager.addr);
    manager.expect_notice("READY=1");
    drop(first);
    let mut ws = tls_util::wss(manager.addr, ca.client(&[]), "/ws");
    ws.send(Message::text("activated over TLS")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("activated over TLS"));
    let (status, _) = tls_util::https(manager.addr, ca.client(&[]), "GET", "/healthz", &[], "");
    assert_eq!(status, 200);
}

#[test]
fn a_listen_pid_of_another_process_is_ignored() {
    // Inherited from a parent that was socket-activated: not for strand.
    let server = Server::start_env(&[("LISTEN_FDS", "1"), ("LISTEN_PID", "1")], &[]);
    assert!(!server.log_text().contains("passed by the service manager"));
    let mut ws = server.ws("/ws");
    ws.send(Message::text("bound")).unwrap();
    assert_eq!(support::next_text(&mut ws), "bound");
}

#[test]
fn a_passed_socket_that_is_not_listening_is_refused_with_a_reason() {
    // A socket unit with Accept=yes passes one connection, not a listener.
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let connected = TcpStream::connect(other.local_addr().unwrap()).unwrap();
    let err = exits_with_error(Some(connected.as_raw_fd()));
    assert!(err.contains("not listening"), "{err}");
    // No descriptor 3 at all.
    let err = exits_with_error(None);
    assert!(err.contains("LISTEN_FDS"), "{err}");
}

/// Runs strand directly with LISTEN_FDS=1 and `fd` as descriptor 3;
/// expects exit 1 and returns its log.
fn exits_with_error(fd: Option<i32>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"LISTEN_FDS=1 LISTEN_PID=$$ exec "$0" serve --data-dir "$1""#)
        .arg(env!("CARGO_BIN_EXE_strand"))
        .arg(dir.path().join("data"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    pass_as_fd_3(&mut cmd, fd);
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("strand kept running with a bad LISTEN_FDS socket");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{log}");
    log
}

/// What a client saw of one connection.
enum Outcome {
    /// Upgraded and echoed.
    Served,
    /// Upgraded, then closed with 1001 by a stopping strand.
    GoingAway,
}

/// One connection: connect, upgrade on /ws, echo `text`, close.
fn echo_once(addr: SocketAddr, text: &str) -> Result<Outcome, String> {
    let stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    echo_on(stream, addr, text)
}

/// Upgrades `stream` on /ws, echoes `text` and closes.
fn echo_on(stream: TcpStream, addr: SocketAddr, text: &str) -> Result<Outcome, String> {
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let (mut ws, _) = tungstenite::client(format!("ws://{addr}/ws"), stream)
        .map_err(|e| format!("handshake: {e}"))?;
    ws.send(Message::text(text))
        .map_err(|e| format!("send: {e}"))?;
    loop {
        match ws.read().map_err(|e| format!("read: {e}"))? {
            Message::Text(t) if t.as_str() == text => break,
            Message::Close(Some(f)) if f.code == CloseCode::Away => {
                finish_close(&mut ws);
                return Ok(Outcome::GoingAway);
            }
            Message::Ping(_) | Message::Pong(_) => continue,
            other => return Err(format!("unexpected {other:?}")),
        }
    }
    ws.close(None).map_err(|e| format!("close: {e}"))?;
    finish_close(&mut ws);
    Ok(Outcome::Served)
}

/// Reads until the close handshake is over (the reply to a close is
/// flushed by the next read).
fn finish_close(ws: &mut tungstenite::WebSocket<TcpStream>) {
    while ws.read().is_ok() {}
}

/// Counts that tests can wait on.
#[derive(Default)]
struct Tally {
    counts: Mutex<Counts>,
    changed: Condvar,
}

#[derive(Default, Clone, Debug)]
struct Counts {
    /// Connectors: attempts begun, finished, echoed, closed with 1001.
    started: u64,
    finished: u64,
    served: u64,
    going_away: u64,
    /// Resident clients: sessions that echoed, sessions ended by 1001.
    resident_sessions: u64,
    resident_1001: u64,
    /// Everything else: refusals, resets, timeouts.
    failures: Vec<String>,
}

impl Tally {
    fn update(&self, f: impl FnOnce(&mut Counts)) {
        f(&mut self.lock());
        self.changed.notify_all();
    }

    fn now(&self) -> Counts {
        self.lock().clone()
    }

    /// Waits until `f` holds, failing after [`WAIT`].
    fn wait(&self, what: &str, f: impl Fn(&Counts) -> bool) -> Counts {
        let (counts, timeout) = self
            .changed
            .wait_timeout_while(self.lock(), WAIT, |c| !f(c))
            .unwrap_or_else(|e| e.into_inner());
        let counts = counts.clone();
        assert!(
            !timeout.timed_out(),
            "timed out waiting for {what}: {counts:?}"
        );
        counts
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[test]
fn restarts_under_socket_activation_refuse_no_connection() {
    const RESTARTS: usize = 5;
    const RESIDENTS: u64 = 3;
    const CONNECTORS: usize = 4;
    /// Connections the connectors get echoed by each strand before it stops.
    const PER_STRAND: u64 = 100;
    let manager = Manager::new();
    let addr = manager.addr;
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));

    // Clients connecting continuously, each one connection after another;
    // several, so that connections are often queued when a strand stops.
    let connectors: Vec<_> = (0..CONNECTORS)
        .map(|k| {
            let (tally, stop) = (tally.clone(), stop.clone());
            std::thread::spawn(move || {
                for i in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    tally.update(|c| c.started += 1);
                    let outcome = echo_once(addr, &format!("c{k}-{i}"));
                    tally.update(|c| {
                        c.finished += 1;
                        match outcome {
                            Ok(Outcome::Served) => c.served += 1,
                            Ok(Outcome::GoingAway) => c.going_away += 1,
                            Err(e) => c.failures.push(format!("connection {k}-{i}: {e}")),
                        }
                    });
                }
            })
        })
        .collect();
    // Clients that stay connected: each gets 1001 when its strand stops
    // and reconnects at once, to be served by the next one.
    let residents: Vec<_> = (0..RESIDENTS)
        .map(|r| {
            let (tally, stop) = (tally.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    if let Err(e) = resident_session(addr, r, &tally) {
                        tally.update(|c| c.failures.push(format!("resident {r}: {e}")));
                        return;
                    }
                }
            })
        })
        .collect();

    // The connectors' first connections are waiting: strand starts on one.
    let mut server = manager.start(&[]);
    manager.expect_notice("READY=1");
    let mut longest_gap = Duration::ZERO;
    let mut queued_while_down = 0;
    let mut served_before = 0;
    for restart in 1..=RESTARTS {
        tally.wait("residents connected and the connectors served", |c| {
            c.resident_sessions == RESIDENTS * restart as u64
                && c.served >= served_before + PER_STRAND
        });
        let stopping = Instant::now();
        server.signal(libc::SIGTERM);
        manager.expect_notice("STOPPING=1");
        assert_eq!(server.wait_exit().code(), Some(0), "{}", server.log_text());
        // No strand runs now: a client that connects waits in the held
        // socket's queue (as do the residents' reconnections and, likely,
        // the connectors' attempts) and is served by the next strand.
        let waiting = TcpStream::connect(addr).expect("refused while no strand runs");
        let waiting = std::thread::spawn(move || echo_on(waiting, addr, "waited"));
        server = manager.start(&[]);
        manager.expect_notice("READY=1");
        longest_gap = longest_gap.max(stopping.elapsed());
        match waiting.join().unwrap() {
            Ok(Outcome::Served) => queued_while_down += 1,
            Ok(Outcome::GoingAway) => panic!("the waiting client got 1001"),
            Err(e) => panic!("the waiting client: {e}"),
        }
        served_before = tally.now().served;
        assert!(
            tally.now().failures.is_empty(),
            "{:?}",
            tally.now().failures
        );
    }
    tally.wait("residents back and the connectors served", |c| {
        c.resident_sessions == RESIDENTS * (RESTARTS as u64 + 1)
            && c.served >= served_before + PER_STRAND
    });
    stop.store(true, Ordering::SeqCst);
    for c in connectors {
        c.join().unwrap();
    }
    server.signal(libc::SIGTERM);
    manager.expect_notice("STOPPING=1");
    for r in residents {
        r.join().unwrap();
    }
    assert_eq!(server.wait_exit().code(), Some(0));

    let c = tally.now();
    eprintln!(
        "{RESTARTS} restarts under socket activation: {CONNECTORS} connectors made {} connections \
         ({} echoed, {} closed with 1001 by a stopping strand); {} clients connected \
         while no strand ran and were served by the next; {RESIDENTS} residents got 1001 \
         and reconnected {} times; refused or failed: {}; longest stop-to-ready {:?}",
        c.finished,
        c.served,
        c.going_away,
        queued_while_down,
        c.resident_1001 - RESIDENTS, // the last stop is not a restart
        c.failures.len(),
        longest_gap
    );
    assert!(c.failures.is_empty(), "{:?}", c.failures);
    assert_eq!(c.resident_1001, RESIDENTS * (RESTARTS as u64 + 1));
}

/// One resident connection: upgrade, echo, then wait for the 1001 close.
fn resident_session(addr: SocketAddr, r: u64, tally: &Tally) -> Result<(), String> {
    let stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let (mut ws, _) = tungstenite::client(format!("ws://{addr}/ws"), stream)
        .map_err(|e| format!("handshake: {e}"))?;
    let text = format!("resident {r}");
    ws.send(Message::text(text.clone()))
        .map_err(|e| format!("send: {e}"))?;
    let mut echoed = false;
    loop {
        match ws.read().map_err(|e| format!("read: {e}"))? {
            Message::Text(t) if t.as_str() == text && !echoed => {
                echoed = true;
                tally.update(|c| c.resident_sessions += 1);
            }
            Message::Close(Some(f)) if f.code == CloseCode::Away => {
                finish_close(&mut ws);
                tally.update(|c| c.resident_1001 += 1);
                return if echoed {
                    Ok(())
                } else {
                    Err("closed before its echo".into())
                };
            }
            Message::Ping(_) | Message::Pong(_) => continue,
            other => return Err(format!("unexpected {other:?}")),
        }
    }
}

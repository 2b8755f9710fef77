//! Test support: start the real `strand` binary on port 0 and talk to it
//! over real sockets. Each test gets its own server and temporary directory.
#![allow(dead_code)]

#[path = "../client_frame/mod.rs"]
mod client_frame;

/// An HTTP error body must be JSON `{"error": "..."}`.
pub fn assert_json_error(body: &str) {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert!(v["error"].is_string(), "error body: {body}");
}

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};

/// How long any wait in a test may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// A running strand server, killed when dropped.
pub struct Server {
    child: Option<Child>,
    pub addr: SocketAddr,
    log: Arc<(Mutex<Vec<String>>, Condvar)>,
    pub dir: tempfile::TempDir,
}

impl Server {
    /// Starts `strand serve --bind 127.0.0.1:0` with `args`, and a data dir
    /// in a fresh temporary directory.
    pub fn start(args: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        Server::start_in(dir, args)
    }

    /// As [`Server::start`], in `dir` (whose `data` subdirectory is the
    /// data dir).
    pub fn start_in(dir: tempfile::TempDir, args: &[&str]) -> Server {
        Server::launch(dir, Command::new(env!("CARGO_BIN_EXE_strand")), args)
    }

    /// As [`Server::start`], with environment variables set.
    pub fn start_env(env: &[(&str, &str)], args: &[&str]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_strand"));
        cmd.envs(env.iter().copied());
        Server::launch(tempfile::tempdir().expect("temp dir"), cmd, args)
    }

    /// As [`Server::start_in`], with `RLIMIT_NOFILE` lowered to `nofile`.
    pub fn start_in_with_nofile(dir: tempfile::TempDir, nofile: u32, args: &[&str]) -> Server {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("ulimit -n {nofile} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_strand"));
        Server::launch(dir, cmd, args)
    }

    /// As [`Server::start`], run as user `uid` (which owns the temporary
    /// directory) through `setpriv`, so that the kernel's per-user limits
    /// (RLIMIT_NPROC) apply to it alone. `None` when this process is not
    /// root and cannot do that.
    pub fn start_as_user(uid: u32, args: &[&str]) -> Option<Server> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(uid)).unwrap();
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={uid}"))
            .arg(format!("--regid={uid}"))
            .args(["--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_strand"));
        Some(Server::launch(dir, cmd, args))
    }

    /// As [`Server::start_in`], logging at `level` instead of debug (a
    /// long run would otherwise keep every connection's lines).
    pub fn start_in_logging(dir: tempfile::TempDir, level: &str, args: &[&str]) -> Server {
        let cmd = Command::new(env!("CARGO_BIN_EXE_strand"));
        Server::launch_logging(dir, cmd, level, args)
    }

    fn launch(dir: tempfile::TempDir, cmd: Command, args: &[&str]) -> Server {
        Server::launch_logging(dir, cmd, "debug", args)
    }

    fn launch_logging(dir: tempfile::TempDir, cmd: Command, level: &str, args: &[&str]) -> Server {
        let data = dir.path().join("data");
        Server::spawn(dir, cmd, &data, level, "127.0.0.1:0", args)
    }

    /// As [`Server::start`], listening on `bind` instead of
    /// `127.0.0.1:0` (e.g. `0.0.0.0:0`); `addr` is the address logged.
    pub fn start_bound(bind: &str, args: &[&str]) -> Server {
        Server::start_in_bound(tempfile::tempdir().expect("temp dir"), bind, args)
    }

    /// As [`Server::start_in`], listening on `bind` instead of a free port
    /// (a port another process must know before strand starts).
    pub fn start_in_bound(dir: tempfile::TempDir, bind: &str, args: &[&str]) -> Server {
        let data = dir.path().join("data");
        let cmd = Command::new(env!("CARGO_BIN_EXE_strand"));
        Server::spawn(dir, cmd, &data, "debug", bind, args)
    }

    /// Runs `cmd` (a launcher or the binary) followed by `serve --bind
    /// 127.0.0.1:0 --log-level debug --data-dir DATA args`, and waits for its
    /// `listening on` line; `dir` lives as long as the server.
    pub fn start_command(
        dir: tempfile::TempDir,
        cmd: Command,
        data: &std::path::Path,
        args: &[&str],
    ) -> Server {
        Server::spawn(dir, cmd, data, "debug", "127.0.0.1:0", args)
    }

    fn spawn(
        dir: tempfile::TempDir,
        mut cmd: Command,
        data: &std::path::Path,
        level: &str,
        bind: &str,
        args: &[&str],
    ) -> Server {
        // The server dies with the test thread that started it, even when
        // the test process is killed (a timeout), so no server outlives it.
        // SAFETY: prctl is async-signal-safe, as pre_exec requires.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd
            .args(["serve", "--bind", bind, "--log-level", level])
            .arg("--data-dir")
            .arg(data)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start strand");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let (lines, cv) = &*sink;
                lines.lock().unwrap().push(line);
                cv.notify_all();
            }
        });
        let mut server = Server {
            child: Some(child),
            addr: "127.0.0.1:0".parse().unwrap(),
            log,
            dir,
        };
        let line = server.wait_log("listening on ");
        let addr = line.rsplit("listening on ").next().unwrap().trim();
        server.addr = addr.parse().expect("address in log");
        server
    }

    /// Waits for a log line containing `needle` and returns it.
    pub fn wait_log(&self, needle: &str) -> String {
        let (lines, cv) = &*self.log;
        let deadline = Instant::now() + WAIT;
        let mut guard = lines.lock().unwrap();
        loop {
            if let Some(l) = guard.iter().find(|l| l.contains(needle)) {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no log line with {needle:?}; log:\n{}",
                guard.join("\n")
            );
            guard = cv.wait_timeout(guard, left).unwrap().0;
        }
    }

    /// Every log line so far.
    pub fn log_text(&self) -> String {
        self.log.0.lock().unwrap().join("\n")
    }

    /// The server's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// `ws://ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// Opens a WebSocket to `path`, with a read timeout of [`WAIT`].
    pub fn ws(&self, path: &str) -> WebSocket<TcpStream> {
        self.try_ws(path)
            .unwrap_or_else(|e| panic!("connect {path}: {e}"))
    }

    /// Opens a WebSocket to `path`, returning tungstenite's error.
    pub fn try_ws(&self, path: &str) -> Result<WebSocket<TcpStream>, tungstenite::Error> {
        let stream = TcpStream::connect(self.addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_nodelay(true).unwrap();
        tungstenite::client(self.url(path), stream)
            .map(|(ws, _)| ws)
            .map_err(|e| match e {
                tungstenite::HandshakeError::Failure(e) => e,
                tungstenite::HandshakeError::Interrupted(_) => {
                    panic!("blocking handshake interrupted")
                }
            })
    }

    /// Sends a raw HTTP request and returns (status, head, body).
    pub fn http_raw(&self, request: &[u8]) -> (u16, String, String) {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.write_all(request).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {text:?}"));
        (status, head.to_string(), body.to_string())
    }

    /// `method path` with optional extra header lines and body.
    pub fn http(&self, method: &str, path: &str, headers: &[&str], body: &str) -> (u16, String) {
        let req = request(method, path, &self.addr.to_string(), headers, body);
        let (status, _, body) = self.http_raw(req.as_bytes());
        (status, body)
    }

    /// `GET path` parsed as JSON.
    pub fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let (status, body) = self.http("GET", path, &[], "");
        (
            status,
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}")),
        )
    }

    /// The value of metric `name` (a full series name) in `/metrics`.
    pub fn metric(&self, name: &str) -> f64 {
        let (_, text) = self.http("GET", "/metrics", &[], "");
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("no metric {name}"))
            .trim()
            .parse()
            .unwrap()
    }

    /// Threads of the server process, from /proc.
    pub fn threads(&self) -> usize {
        proc_status_field(self.pid(), "Threads:") as usize
    }

    /// The names of the server's threads, sorted.
    pub fn thread_names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", self.pid()))
            .unwrap()
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
            .map(|n| n.trim().to_string())
            .collect();
        names.sort();
        names
    }

    /// Threads parked in the connection thread cache (named "parked").
    pub fn parked_threads(&self) -> usize {
        self.thread_names()
            .iter()
            .filter(|n| *n == "parked")
            .count()
    }

    /// Threads that are not parked in the thread cache.
    pub fn live_threads(&self) -> usize {
        self.thread_names()
            .iter()
            .filter(|n| *n != "parked")
            .count()
    }

    /// The server's live thread count (parked cached threads not counted)
    /// once no connection thread ("conn") is running: the baseline for leak
    /// checks.
    pub fn settled_threads(&self) -> usize {
        self.wait_until("connection threads to end", || {
            !self.thread_names().iter().any(|n| n.starts_with("conn"))
        });
        self.live_threads()
    }

    /// Waits for the server to have `n` live threads (parked cached threads
    /// not counted); fails naming the threads.
    pub fn wait_threads(&self, n: usize) {
        let deadline = Instant::now() + WAIT;
        while self.live_threads() != n {
            assert!(
                Instant::now() < deadline,
                "{} live threads, not {n}: {:?}",
                self.live_threads(),
                self.thread_names()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Open file descriptors of the server process.
    pub fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }

    /// The server's open descriptors as `N=target`, sorted, TCP sockets
    /// with their addresses and state: what a failed descriptor check
    /// shows.
    pub fn fd_list(&self) -> Vec<String> {
        let tcp = tcp_sockets(self.pid());
        let dir = format!("/proc/{}/fd", self.pid());
        let mut fds: Vec<String> = std::fs::read_dir(&dir)
            .map(|d| {
                d.flatten().filter_map(|e| {
                    let target = std::fs::read_link(e.path()).ok()?.display().to_string();
                    let inode = target
                        .strip_prefix("socket:[")
                        .and_then(|t| t.strip_suffix(']'));
                    let tcp = inode.and_then(|i| tcp.get(i)).map_or("", String::as_str);
                    Some(format!("{}={target}{tcp}", e.file_name().to_string_lossy()))
                })
            })
            .into_iter()
            .flatten()
            .collect();
        fds.sort();
        fds
    }

    /// Waits until the server's descriptors that `counts` are those of
    /// `baseline` (a [`Server::fd_list`] taken earlier) that it counts;
    /// fails listing both.
    pub fn wait_fd_list(&self, baseline: &[String], counts: impl Fn(&String) -> bool) {
        let base: Vec<&String> = baseline.iter().filter(|f| counts(f)).collect();
        let deadline = Instant::now() + WAIT;
        loop {
            let now = self.fd_list();
            if now.iter().filter(|f| counts(f)).collect::<Vec<_>>() == base {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "descriptors not back to the baseline: {now:?}; at the baseline: {baseline:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Resident memory of the server in KiB.
    pub fn rss_kib(&self) -> u64 {
        proc_status_field(self.pid(), "VmRSS:")
    }

    /// Waits until `f` holds, polling /proc or HTTP every few ms.
    pub fn wait_until(&self, what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + WAIT;
        while !f() {
            if Instant::now() >= deadline {
                let log = self.log_text();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                panic!(
                    "timed out waiting for {what}; server log tail:\n{}",
                    tail.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `signal` (e.g. libc::SIGTERM) to the server.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid() as i32, signal) };
    }

    /// Waits for the server to exit and returns its status.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("server did not exit; log:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn proc_status_field(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// (pid, ppid, pgid, state) of every process, from /proc.
pub fn processes() -> Vec<(u32, u32, u32, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        out.push((
            pid,
            f[1].parse().unwrap(),
            f[2].parse().unwrap(),
            f[0].to_string(),
        ));
    }
    out
}

/// Children of `pid` (zombies included).
pub fn children(pid: u32) -> usize {
    processes().iter().filter(|p| p.1 == pid).count()
}

/// Reads the next text message, skipping pings and pongs.
pub fn next_text(ws: &mut WebSocket<TcpStream>) -> String {
    loop {
        match ws.read().expect("read") {
            Message::Text(t) => return t.to_string(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected text, got {other:?}"),
        }
    }
}

/// Reads the next text message as JSON.
pub fn next_json(ws: &mut WebSocket<TcpStream>) -> serde_json::Value {
    let text = next_text(ws);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Reads JSON messages until one has `"type": ty`, returning it.
pub fn next_of_type(ws: &mut WebSocket<TcpStream>, ty: &str) -> serde_json::Value {
    loop {
        let v = next_json(ws);
        if v["type"] == ty {
            return v;
        }
    }
}

/// Sends `value` as a text message.
pub fn send_json(ws: &mut WebSocket<TcpStream>, value: serde_json::Value) {
    ws.send(Message::text(value.to_string())).expect("send");
}

/// Reads until the server's close frame arrives and returns its code.
pub fn close_code(ws: &mut WebSocket<TcpStream>) -> u16 {
    loop {
        match ws.read() {
            Ok(Message::Close(Some(frame))) => return frame.code.into(),
            Ok(Message::Close(None)) => return 1005,
            Ok(_) => continue,
            Err(e) => panic!("connection ended without a close frame: {e}"),
        }
    }
}

/// A raw client socket for frame-level tests: it writes masked frames and
/// reads server frames.
pub struct RawClient {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

/// A frame read by [`RawClient`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl RawFrame {
    /// The close code of a close frame (1005 when it has none).
    pub fn close_code(&self) -> u16 {
        assert_eq!(self.opcode, 0x8, "not a close frame: {self:?}");
        if self.payload.len() >= 2 {
            u16::from_be_bytes([self.payload[0], self.payload[1]])
        } else {
            1005
        }
    }
}

impl RawClient {
    /// Connects to `path` on `server` and completes the handshake by hand.
    pub fn connect(server: &Server, path: &str) -> RawClient {
        let mut stream = TcpStream::connect(server.addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_nodelay(true).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            server.addr
        )
        .unwrap();
        let mut client = RawClient {
            stream,
            buf: Vec::new(),
        };
        let head = client.read_until(b"\r\n\r\n");
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 101"), "handshake failed: {head}");
        client
    }

    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 65536];
        match self.stream.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                panic!("timed out reading from the server")
            }
            Err(_) => false,
        }
    }

    fn read_until(&mut self, end: &[u8]) -> Vec<u8> {
        loop {
            if let Some(i) = self.buf.windows(end.len()).position(|w| w == end) {
                let rest = self.buf.split_off(i + end.len());
                return std::mem::replace(&mut self.buf, rest);
            }
            assert!(self.fill(), "connection closed during handshake");
        }
    }

    /// Resets the connection: SO_LINGER 0, so closing the socket sends an
    /// RST (and discards whatever was unsent), as a crashed client would.
    pub fn reset(self) {
        use std::os::fd::AsRawFd;
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: setsockopt on a socket we own, with a valid struct.
        unsafe {
            libc::setsockopt(
                self.stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
    }

    /// Encodes one masked client frame.
    pub fn frame(fin: bool, rsv: u8, opcode: u8, payload: &[u8]) -> Vec<u8> {
        client_frame::client_frame(fin, rsv, opcode, payload, [0x37, 0xfa, 0x21, 0x3d])
    }

    /// Sends one frame.
    pub fn send(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        self.send_bytes(&Self::frame(fin, 0, opcode, payload));
    }

    /// Sends raw bytes.
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Sends a close frame with `code` and `reason`.
    pub fn send_close(&mut self, code: u16, reason: &[u8]) {
        let mut p = code.to_be_bytes().to_vec();
        p.extend_from_slice(reason);
        self.send(true, 0x8, &p);
    }

    /// Reads the next frame; `None` when the server closed the TCP connection.
    pub fn read_frame(&mut self) -> Option<RawFrame> {
        loop {
            if let Some((frame, used)) = parse_server_frame(&self.buf) {
                self.buf.drain(..used);
                return Some(frame);
            }
            if !self.fill() {
                return None;
            }
        }
    }

    /// Reads frames until a non-ping data frame or close arrives.
    pub fn read_data_frame(&mut self) -> Option<RawFrame> {
        loop {
            let f = self.read_frame()?;
            if f.opcode != 0x9 && f.opcode != 0xA {
                return Some(f);
            }
        }
    }

    /// Reads until the server's close frame; returns its code.
    pub fn expect_close(&mut self) -> u16 {
        loop {
            match self.read_frame() {
                Some(f) if f.opcode == 0x8 => return f.close_code(),
                Some(_) => continue,
                None => panic!("TCP closed without a close frame"),
            }
        }
    }

    /// Whether the server closed the TCP connection (EOF) after its close.
    pub fn expect_eof(&mut self) {
        loop {
            match self.read_frame() {
                None => return,
                Some(f) => assert!(
                    f.opcode != 0x1 && f.opcode != 0x2,
                    "data after close: {f:?}"
                ),
            }
        }
    }
}

fn parse_server_frame(buf: &[u8]) -> Option<(RawFrame, usize)> {
    if buf.len() < 2 {
        return None;
    }
    assert_eq!(buf[1] & 0x80, 0, "server frames must not be masked");
    let (len, mut at) = match buf[1] & 0x7f {
        126 => (
            u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?) as usize,
            4,
        ),
        127 => (
            u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    let payload = buf.get(at..at + len)?.to_vec();
    at += len;
    Some((
        RawFrame {
            fin: buf[0] & 0x80 != 0,
            opcode: buf[0] & 0x0f,
            payload,
        },
        at,
    ))
}

/// The TCP sockets `pid` sees, by inode: " local->remote state" (IPv4,
/// addresses as /proc/net/tcp gives them, in hex).
fn tcp_sockets(pid: u32) -> std::collections::HashMap<String, String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (local, remote, state, inode) = (f.get(1)?, f.get(2)?, f.get(3)?, f.get(9)?);
            Some((inode.to_string(), format!(" {local}->{remote} st{state}")))
        })
        .collect()
}

/// An HTTP/1.1 request's text: `method path` for `host`, extra header
/// lines, and `body` with its length (always for a POST).
pub fn request(method: &str, path: &str, host: &str, headers: &[&str], body: &str) -> String {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    req
}

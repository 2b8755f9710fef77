//! What every scenario's clients share: the target URL, opening a blocking
//! tungstenite client (`ws://` or `wss://`, with the run's headers, origin
//! and subprotocols) with a small read buffer, spawning client threads with
//! small stacks, a limit on connection attempts in flight, a gate the
//! clients wait at, and naming a client error for the error count.

use crate::bench::tls;
use rustls::pki_types::ServerName;
use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use tungstenite::client::IntoClientRequest;
use tungstenite::http::{HeaderName, HeaderValue};
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::WebSocket;

/// Stack of a client thread: a blocking client needs little, and thousands
/// of threads each reserve it (only touched pages cost memory).
const CLIENT_STACK: usize = 128 * 1024;
/// tungstenite's read buffer per client; its default (128 KiB) is allocated
/// per connection and zero-filled before every read.
const READ_BUFFER: usize = 4096;
/// Bytes of a refused upgrade's body kept as its sample.
const BODY_SAMPLE: usize = 200;

/// A connected client: plain TCP or TLS under the WebSocket.
pub type Socket = WebSocket<Stream>;

/// What a client's WebSocket runs over. The TLS state (over a KiB) is
/// boxed so that a plain client stays small: the WebSocket lives on its
/// thread's stack and is moved through the handshake's frames, whose
/// touched pages stay resident (tungstenite's own `MaybeTlsStream` holds
/// it inline: 1,320 bytes a socket instead of 264).
pub enum Stream {
    /// `ws://`.
    Plain(TcpStream),
    /// `wss://`.
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    /// The TCP socket under it.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref(),
        }
    }
}

impl io::Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl io::Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// The TCP socket under `ws` (TLS or not).
pub fn tcp(ws: &Socket) -> &TcpStream {
    ws.get_ref().tcp()
}

/// Sets the read timeout of the socket under `ws`.
pub fn set_read_timeout(ws: &Socket, timeout: Option<Duration>) {
    let _ = tcp(ws).set_read_timeout(timeout);
}

/// The server a run talks to: its address, resolved once, and the path of
/// the URL (for the scenarios that take one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `wss://` rather than `ws://`.
    pub tls: bool,
    /// `HOST:PORT` as given, for the `Host` header.
    pub authority: String,
    /// The resolved address.
    pub addr: SocketAddr,
    /// The URL's path (`/` when it has none).
    pub path: String,
}

impl Target {
    /// Parses and resolves a `ws://` or `wss://HOST:PORT[/PATH]` URL.
    pub fn parse(url: &str) -> Result<Target, String> {
        let (tls, authority, path) = split_url(url)?;
        let addr = authority
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {authority}: {e}"))?
            .next()
            .ok_or_else(|| format!("{authority} resolves to no address"))?;
        Ok(Target {
            tls,
            authority,
            addr,
            path,
        })
    }

    /// The host of the authority, without its port or an IPv6 address's
    /// brackets (for TLS's server name).
    pub fn host(&self) -> &str {
        let host = self
            .authority
            .rsplit_once(':')
            .map_or(self.authority.as_str(), |(h, _)| h);
        host.trim_start_matches('[').trim_end_matches(']')
    }

    /// The URL's own path, or `default` when it has none.
    pub fn path_or(&self, default: &str) -> String {
        if self.path == "/" {
            default.to_string()
        } else {
            self.path.clone()
        }
    }

    /// `ws://AUTHORITY{path}` (or `wss://`).
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}{}", self.authority, path)
    }
}

/// How every client of a run connects: the flags every scenario that
/// connects takes (flattened into [`crate::bench::Common`] and
/// `bench run`'s arguments).
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct ConnectOptions {
    /// A request header on every connection, `'Name: value'` (repeatable;
    /// in `bench run`, a step's `headers` add to these).
    #[arg(long = "header", short = 'H', value_name = "'NAME: VALUE'")]
    pub headers: Vec<String>,
    /// The `Origin` header of every connection.
    #[arg(long, value_name = "URL")]
    pub origin: Option<String>,
    /// A subprotocol to offer (repeatable, in order of preference; in
    /// `bench run`, where a step offers none); the one the server chose is
    /// reported.
    #[arg(long = "subprotocol", value_name = "NAME")]
    pub subprotocols: Vec<String>,
    /// PEM file of extra root certificates to trust for `wss://`.
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// Do not check the server's certificate for `wss://` (a warning is
    /// printed).
    #[arg(long)]
    pub insecure: bool,
}

/// Why a client could not connect: the kind it is counted under (e.g.
/// `refused`, `http 401`, `tls: invalid peer certificate: UnknownIssuer`)
/// and, for a refused upgrade, the first bytes of the answer's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectError {
    /// The kind counted.
    pub kind: String,
    /// The start of a refused upgrade's body.
    pub body: Option<String>,
}

impl ConnectError {
    /// The kind and body sample of a failed handshake.
    pub fn of(e: &tungstenite::Error) -> ConnectError {
        let body = match e {
            tungstenite::Error::Http(r) => r.body().as_deref().map(|b| {
                let b = &b[..b.len().min(BODY_SAMPLE)];
                String::from_utf8_lossy(b).trim_end().to_string()
            }),
            _ => None,
        };
        ConnectError {
            kind: error_kind(e),
            body,
        }
    }
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.body {
            Some(b) if !b.is_empty() => write!(f, "{}: {b}", self.kind),
            _ => f.write_str(&self.kind),
        }
    }
}

impl From<ConnectError> for String {
    fn from(e: ConnectError) -> String {
        e.kind
    }
}

/// Opens the clients' connections: the target, the request headers and
/// the TLS configuration, built once per run and shared by every client;
/// it also tallies the subprotocols servers chose.
pub struct Connector {
    /// The server of `--url`.
    pub target: Target,
    headers: Vec<(HeaderName, HeaderValue)>,
    offered: bool,
    cacert: Option<PathBuf>,
    insecure: bool,
    /// Built at the first `wss://` connection (at once for a `wss://`
    /// `--url`), shared with the connectors made by [`Connector::to`].
    tls: Arc<OnceLock<Result<Arc<rustls::ClientConfig>, String>>>,
    chosen: Mutex<BTreeMap<String, u64>>,
}

impl Connector {
    /// The connector for `url` with `options`; a bad header, URL or (for
    /// a `wss://` URL) `--cacert` is an error (the run does not start).
    pub fn new(url: &str, options: &ConnectOptions) -> Result<Connector, String> {
        let target = Target::parse(url)?;
        let mut headers = Vec::new();
        for h in &options.headers {
            headers.push(parse_header(h)?);
        }
        if let Some(origin) = &options.origin {
            headers.push(header("Origin", origin)?);
        }
        if !options.subprotocols.is_empty() {
            headers.push(header(
                "Sec-WebSocket-Protocol",
                &options.subprotocols.join(", "),
            )?);
        }
        let connector = Connector {
            target,
            headers,
            offered: !options.subprotocols.is_empty(),
            cacert: options.cacert.clone(),
            insecure: options.insecure,
            tls: Arc::new(OnceLock::new()),
            chosen: Mutex::new(BTreeMap::new()),
        };
        if connector.target.tls {
            connector.tls()?;
        }
        Ok(connector)
    }

    /// A connector for another server, with the same headers and TLS
    /// configuration.
    pub fn to(&self, url: &str) -> Result<Connector, String> {
        let target = Target::parse(url)?;
        let connector = Connector {
            target,
            headers: self.headers.clone(),
            offered: self.offered,
            cacert: self.cacert.clone(),
            insecure: self.insecure,
            tls: self.tls.clone(),
            chosen: Mutex::new(BTreeMap::new()),
        };
        if connector.target.tls {
            connector.tls()?;
        }
        Ok(connector)
    }

    /// The TLS client configuration, built once.
    fn tls(&self) -> Result<Arc<rustls::ClientConfig>, String> {
        self.tls
            .get_or_init(|| {
                if self.insecure {
                    eprintln!(
                        "strand bench: warning: --insecure: the server's certificate is not checked"
                    );
                }
                tls::client_config(&tls::Trust {
                    cacert: self.cacert.as_deref(),
                    insecure: self.insecure,
                })
            })
            .clone()
    }

    /// Opens a TCP connection (TCP_NODELAY, `timeout` on connect, reads and
    /// writes), then TLS for `wss://`, and completes the WebSocket
    /// handshake. `url_or_path` is a path on the target (`/ws/room`) or a
    /// whole `ws[s]://` URL of another server (resolved at each call).
    pub fn connect(&self, url_or_path: &str, timeout: Duration) -> Result<Socket, ConnectError> {
        self.connect_with_buffer(url_or_path, timeout, READ_BUFFER)
    }

    /// [`Connector::connect`] with a read buffer of `read_buffer` bytes
    /// (tungstenite allocates and zero-fills it per connection).
    pub fn connect_with_buffer(
        &self,
        url_or_path: &str,
        timeout: Duration,
        read_buffer: usize,
    ) -> Result<Socket, ConnectError> {
        let io_error = |e: &io::Error| ConnectError {
            kind: io_kind(e),
            body: None,
        };
        let other;
        let (t, path) = if url_or_path.starts_with("ws://") || url_or_path.starts_with("wss://") {
            other = Target::parse(url_or_path).map_err(|kind| ConnectError { kind, body: None })?;
            (&other, other.path.as_str())
        } else {
            (&self.target, url_or_path)
        };
        let stream = tcp_connect(t.addr, timeout).map_err(|e| io_error(&e))?;
        let _ = stream.set_nodelay(true);
        stream
            .set_read_timeout(Some(timeout))
            .and_then(|_| stream.set_write_timeout(Some(timeout)))
            .map_err(|e| io_error(&e))?;
        let mut request = t
            .url(path)
            .into_client_request()
            .map_err(|e| ConnectError::of(&e))?;
        request.headers_mut().extend(self.headers.iter().cloned());
        let config = WebSocketConfig::default().read_buffer_size(read_buffer);
        let handshake = if t.tls {
            let tls = self
                .tls()
                .map_err(|kind| ConnectError { kind, body: None })?;
            let stream = tls_stream(&tls, t.host(), stream)?;
            tungstenite::client::client_with_config(request, stream, Some(config))
                .map_err(handshake_error)
        } else {
            // Plain: through a recording stream, for a right-sized buffer.
            let recorded = Recorded {
                stream: Stream::Plain(stream),
                seen: Vec::new(),
            };
            tungstenite::client::client_with_config(request, recorded, Some(config))
                .map(|(ws, response)| (rebuild(ws.into_inner(), config), response))
                .map_err(handshake_error)
        };
        match handshake {
            Ok((ws, response)) => {
                if self.offered {
                    let chose = response
                        .headers()
                        .get("Sec-WebSocket-Protocol")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    let mut chosen = self.chosen.lock().unwrap_or_else(|e| e.into_inner());
                    *chosen.entry(chose).or_insert(0) += 1;
                }
                Ok(ws)
            }
            Err(e) => Err(e),
        }
    }

    /// Whether subprotocols were offered.
    pub fn offers_subprotocols(&self) -> bool {
        self.offered
    }

    /// The subprotocols the server chose, with how many connections each
    /// (`""`: none chosen).
    pub fn subprotocols_chosen(&self) -> BTreeMap<String, u64> {
        self.chosen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// `stream` under a TLS client for `host`. Kept out of
/// [`Connector::connect`] (and never inlined) so that its large locals do
/// not deepen the stack of every plain client.
#[inline(never)]
fn tls_stream(
    config: &Arc<rustls::ClientConfig>,
    host: &str,
    stream: TcpStream,
) -> Result<Stream, ConnectError> {
    let tls_error = |kind: String| ConnectError { kind, body: None };
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| tls_error(format!("tls: {host:?} is not a server name")))?;
    let conn = rustls::ClientConnection::new(config.clone(), name)
        .map_err(|e| tls_error(format!("tls: {e}")))?;
    Ok(Stream::Tls(Box::new(rustls::StreamOwned::new(
        conn, stream,
    ))))
}

/// Why a handshake failed.
fn handshake_error<R: tungstenite::handshake::HandshakeRole>(
    e: tungstenite::HandshakeError<R>,
) -> ConnectError {
    match e {
        tungstenite::HandshakeError::Failure(e) => ConnectError::of(&e),
        tungstenite::HandshakeError::Interrupted(_) => ConnectError {
            kind: "handshake timeout".into(),
            body: None,
        },
    }
}

/// A stream that keeps a copy of what the handshake read.
///
/// tungstenite hands the handshake's 4 KiB read buffer (zero-filled) on to
/// the connection as its read buffer, whatever `read_buffer_size` says:
/// 4 KiB per client for the life of the connection, a quarter of what a
/// held client cost. From the copy, [`rebuild`] gives the connection a
/// buffer of its configured size holding what followed the response head.
/// (Plain connections only: under TLS the bytes read are ciphertext.)
struct Recorded<S> {
    stream: S,
    seen: Vec<u8>,
}

impl<S: io::Read> io::Read for Recorded<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.stream.read(buf)?;
        self.seen.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

impl<S: io::Write> io::Write for Recorded<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// The connection again, over the bare stream, with the bytes that came
/// after the response head (a frame the server sent at once) kept.
fn rebuild<S: io::Read + io::Write>(
    recorded: Recorded<S>,
    config: WebSocketConfig,
) -> WebSocket<S> {
    let tail = after_head(&recorded.seen).to_vec();
    WebSocket::from_partially_read(recorded.stream, tail, Role::Client, Some(config))
}

/// What follows the first blank line (the end of an HTTP head).
fn after_head(bytes: &[u8]) -> &[u8] {
    match bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => &bytes[i + 4..],
        None => &[],
    }
}

/// The source addresses clients connect from (`--local-ip`), set once per
/// run; empty: the kernel picks.
static LOCAL_ADDRS: OnceLock<Vec<IpAddr>> = OnceLock::new();
/// The next of [`LOCAL_ADDRS`] to use.
static NEXT_LOCAL: AtomicUsize = AtomicUsize::new(0);

/// Sets the source addresses the clients take in turn (the first call of
/// the process wins: one run per process).
pub fn set_local_addrs(addrs: Vec<IpAddr>) {
    let _ = LOCAL_ADDRS.set(addrs);
}

/// Opens a TCP connection to `addr` within `timeout`, from the next
/// `--local-ip` address when there are some.
fn tcp_connect(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let locals = LOCAL_ADDRS.get().map_or(&[][..], Vec::as_slice);
    if locals.is_empty() {
        return TcpStream::connect_timeout(&addr, timeout);
    }
    let local = locals[NEXT_LOCAL.fetch_add(1, Ordering::Relaxed) % locals.len()];
    use rustix::net::{sockopt, AddressFamily, SocketType};
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let fd = rustix::net::socket(family, SocketType::STREAM, None)?;
    // A blocking connect gives up after the send timeout (EINPROGRESS).
    sockopt::set_socket_timeout(&fd, sockopt::Timeout::Send, Some(timeout))?;
    rustix::net::bind(&fd, &SocketAddr::new(local, 0))?;
    match rustix::net::connect(&fd, &addr) {
        Ok(()) => Ok(TcpStream::from(fd)),
        Err(rustix::io::Errno::INPROGRESS) => Err(io::ErrorKind::TimedOut.into()),
        Err(e) => Err(e.into()),
    }
}

/// A `Name: value` header from the command line.
pub fn parse_header(text: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("--header {text:?}: expected 'Name: value'"))?;
    header(name.trim(), value.trim())
}

fn header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), String> {
    let n = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("{name:?} is not a header name"))?;
    let v = HeaderValue::from_str(value)
        .map_err(|_| format!("{value:?} is not a valid value for {name}"))?;
    Ok((n, v))
}

/// Splits `ws://HOST:PORT/PATH` (or `wss://`) into whether it is TLS, the
/// authority (with the scheme's port when it has none) and the path.
pub fn split_url(url: &str) -> Result<(bool, String, String), String> {
    let (tls, rest, port) = if let Some(rest) = url.strip_prefix("wss://") {
        (true, rest, 443)
    } else if let Some(rest) = url.strip_prefix("ws://") {
        (false, rest, 80)
    } else {
        return Err(format!("expected a ws:// or wss:// URL, got {url:?}"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(format!("no host in {url:?}"));
    }
    // A port after the host (IPv6 hosts are bracketed: `[::1]:8000`).
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok());
    let authority = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:{port}")
    };
    Ok((tls, authority, path.to_string()))
}

/// The name under which a client error is counted.
pub fn error_kind(e: &tungstenite::Error) -> String {
    use tungstenite::Error;
    match e {
        Error::Io(e) => io_kind(e),
        Error::ConnectionClosed | Error::AlreadyClosed => "closed".into(),
        Error::Http(response) => format!("http {}", response.status().as_u16()),
        Error::Protocol(tungstenite::error::ProtocolError::SecWebSocketSubProtocolError(e)) => {
            format!("subprotocol: {e}")
        }
        Error::Protocol(_) => "protocol".into(),
        Error::Capacity(_) => "capacity".into(),
        Error::Utf8(_) => "utf8".into(),
        Error::Tls(e) => format!("tls: {e}"),
        Error::Url(e) => format!("url: {e}"),
        _ => "other".into(),
    }
}

/// The name under which an I/O error is counted.
pub fn io_kind(e: &io::Error) -> String {
    use io::ErrorKind::*;
    // rustls reports a failed TLS handshake (a certificate not trusted,
    // no common protocol) as an I/O error carrying its own error.
    if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return format!("tls: {tls}");
    }
    match e.kind() {
        ConnectionRefused => "refused",
        ConnectionReset | ConnectionAborted | BrokenPipe => "reset",
        WouldBlock | TimedOut => "timeout",
        AddrNotAvailable | AddrInUse => "no local port",
        UnexpectedEof => "closed",
        _ => return format!("io: {e}"),
    }
    .into()
}

/// Whether `e` is a read timeout (the socket is still usable).
pub fn is_timeout(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(e)
        if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
}

/// Spawns a client thread with a small stack.
pub fn spawn<F>(name: &str, f: F) -> io::Result<JoinHandle<()>>
where
    F: FnOnce() + Send + 'static,
{
    thread::Builder::new()
        .name(name.into())
        .stack_size(CLIENT_STACK)
        .spawn(f)
}

/// A counting semaphore: at most N holders at once.
pub struct Limiter {
    free: Mutex<usize>,
    cv: Condvar,
}

/// A held place of a [`Limiter`], given back when dropped.
pub struct Permit<'a>(&'a Limiter);

impl Limiter {
    /// A limiter with `n` places (at least one).
    pub fn new(n: usize) -> Limiter {
        Limiter {
            free: Mutex::new(n.max(1)),
            cv: Condvar::new(),
        }
    }

    /// Waits for a place.
    pub fn acquire(&self) -> Permit<'_> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.cv.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        Permit(self)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.cv.notify_one();
    }
}

/// A one-shot gate: clients wait until the run opens it.
#[derive(Default)]
pub struct Gate {
    open: Mutex<Option<Instant>>,
    cv: Condvar,
    /// Mirrors `open.is_some()`, so a busy client can look without locking.
    flag: std::sync::atomic::AtomicBool,
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Gate {
        Gate::default()
    }

    /// Opens the gate, with the deadline (if any) that waiters receive.
    pub fn open(&self, deadline: Option<Instant>) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        *open = Some(deadline.unwrap_or_else(Instant::now));
        self.flag.store(true, std::sync::atomic::Ordering::Release);
        self.cv.notify_all();
    }

    /// Waits until the gate opens; returns the instant given to `open`.
    pub fn wait(&self) -> Instant {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(at) = *open {
                return at;
            }
            open = self.cv.wait(open).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Whether the gate is open.
    pub fn is_open(&self) -> bool {
        self.flag.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// A client's word to the run that it is connected (or gave up), sent
/// once; dropping it unsent counts as giving up.
pub struct Ready(crossbeam_channel::Sender<bool>);

impl Ready {
    /// The client is connected and waits at the gate.
    pub fn connected(self) {
        let _ = self.0.send(true);
    }

    /// The client could not connect (its error is already counted).
    pub fn failed(self) {
        let _ = self.0.send(false);
    }
}

/// The threads of a run's clients.
pub struct Fleet {
    handles: Vec<JoinHandle<()>>,
    ready: crossbeam_channel::Receiver<bool>,
}

impl Fleet {
    /// Spawns `n` client threads running `f(index, ready)`; a thread the OS
    /// refuses is counted as a `spawn` error in `live`.
    pub fn spawn<F>(n: usize, name: &str, live: &crate::bench::live::Live, f: F) -> Fleet
    where
        F: Fn(usize, Ready) + Send + Sync + 'static,
    {
        Fleet::spawn_range(0..n, name, live, f)
    }

    /// [`Fleet::spawn`] for the clients of indices `range` (a segment's
    /// share of a run).
    pub fn spawn_range<F>(
        range: std::ops::Range<usize>,
        name: &str,
        live: &crate::bench::live::Live,
        f: F,
    ) -> Fleet
    where
        F: Fn(usize, Ready) + Send + Sync + 'static,
    {
        let (tx, ready) = crossbeam_channel::unbounded();
        let f = std::sync::Arc::new(f);
        let mut handles = Vec::with_capacity(range.len());
        for i in range {
            let (f, r) = (f.clone(), Ready(tx.clone()));
            match spawn(name, move || f(i, r)) {
                Ok(h) => handles.push(h),
                Err(_) => live.error("spawn"),
            }
        }
        Fleet { handles, ready }
    }

    /// Waits until every client has said whether it connected; returns how
    /// many did.
    pub fn wait_ready(&self) -> usize {
        let mut connected = 0;
        for _ in 0..self.handles.len() {
            match self.ready.recv() {
                Ok(true) => connected += 1,
                Ok(false) => {}
                // Every client has ended or dropped its `Ready`.
                Err(_) => break,
            }
        }
        connected
    }

    /// Waits for every client thread to end.
    pub fn join(self) {
        for h in self.handles {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn urls_split_into_scheme_authority_and_path() {
        assert_eq!(
            split_url("ws://127.0.0.1:8000/ws").unwrap(),
            (false, "127.0.0.1:8000".into(), "/ws".into())
        );
        assert_eq!(
            split_url("ws://localhost:9").unwrap(),
            (false, "localhost:9".into(), "/".into())
        );
        assert_eq!(
            split_url("ws://example.org/a/b").unwrap(),
            (false, "example.org:80".into(), "/a/b".into())
        );
        assert_eq!(
            split_url("wss://example.org/feed").unwrap(),
            (true, "example.org:443".into(), "/feed".into())
        );
        assert_eq!(
            split_url("wss://[::1]:8443").unwrap(),
            (true, "[::1]:8443".into(), "/".into())
        );
        assert!(split_url("http://x:1/").is_err());
        assert!(split_url("ws:///ws").is_err());
    }

    #[test]
    fn target_path_defaults() {
        let t = Target::parse("ws://127.0.0.1:1").unwrap();
        assert_eq!(t.path_or("/ws"), "/ws");
        let t = Target::parse("ws://127.0.0.1:1/echo").unwrap();
        assert_eq!(t.path_or("/ws"), "/echo");
        assert_eq!(t.url("/ws/r/u"), "ws://127.0.0.1:1/ws/r/u");
        let t = Target::parse("wss://127.0.0.1:1/echo").unwrap();
        assert_eq!(t.url("/x"), "wss://127.0.0.1:1/x");
        assert_eq!(t.host(), "127.0.0.1");
        let t = Target::parse("wss://[::1]:1").unwrap();
        assert_eq!(t.host(), "::1");
    }

    #[test]
    fn headers_from_the_command_line() {
        let (n, v) = parse_header("X-Token:  t 1 ").unwrap();
        assert_eq!((n.as_str(), v.to_str().unwrap()), ("x-token", "t 1"));
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("bad name: v").is_err());
        let options = ConnectOptions {
            headers: vec!["Authorization: Bearer x".into()],
            origin: Some("https://example.org".into()),
            subprotocols: vec!["chat".into(), "v2".into()],
            ..ConnectOptions::default()
        };
        let c = Connector::new("ws://127.0.0.1:1/", &options).unwrap();
        let names: Vec<_> = c
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(names[1], ("origin", "https://example.org"));
        assert_eq!(names[2], ("sec-websocket-protocol", "chat, v2"));
        assert!(c.offers_subprotocols());
    }

    #[test]
    fn a_client_connects_from_its_local_address() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        set_local_addrs(vec!["127.0.0.3".parse().unwrap()]);
        let stream = tcp_connect(listener.local_addr().unwrap(), Duration::from_secs(2)).unwrap();
        assert_eq!(stream.local_addr().unwrap().ip().to_string(), "127.0.0.3");
        let (_, peer) = listener.accept().unwrap();
        assert_eq!(peer, stream.local_addr().unwrap());
    }

    #[test]
    fn the_bytes_after_the_response_head_are_kept() {
        assert_eq!(
            after_head(b"HTTP/1.1 101 X\r\nA: b\r\n\r\n\x81\x02hi"),
            b"\x81\x02hi"
        );
        assert_eq!(after_head(b"HTTP/1.1 101 X\r\n\r\n"), b"");
        assert_eq!(after_head(b"partial"), b"");
    }

    #[test]
    fn a_frame_sent_with_the_handshake_reply_is_read() {
        use std::io::{Read as _, Write as _};
        // The server answers the upgrade and sends a message in one write.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                s.read_exact(&mut byte).unwrap();
                head.push(byte[0]);
            }
            let text = String::from_utf8(head).unwrap();
            let key = text
                .lines()
                .find_map(|l| {
                    l.strip_prefix("sec-websocket-key: ")
                        .or_else(|| l.strip_prefix("Sec-WebSocket-Key: "))
                })
                .unwrap();
            let accept = tungstenite::handshake::derive_accept_key(key.trim().as_bytes());
            let reply = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            );
            let mut out = reply.into_bytes();
            out.extend_from_slice(b"\x81\x05hello");
            s.write_all(&out).unwrap();
            s
        });
        let c = Connector::new(&format!("ws://{addr}/ws"), &ConnectOptions::default()).unwrap();
        let mut ws = c
            .connect_with_buffer("/ws", Duration::from_secs(5), 64)
            .unwrap();
        assert_eq!(ws.read().unwrap(), tungstenite::Message::text("hello"));
        drop(server.join().unwrap());
    }

    #[test]
    fn a_refused_connection_is_an_error_not_a_panic() {
        // Bind and drop a listener so the port is (very likely) closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("ws://127.0.0.1:{port}/ws");
        let c = Connector::new(&url, &ConnectOptions::default()).unwrap();
        let e = c.connect("/ws", Duration::from_secs(2)).err().unwrap();
        assert_eq!(e.kind, "refused");
    }

    #[test]
    fn a_whole_url_reaches_another_server_with_the_same_options() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let c = Connector::new("ws://127.0.0.1:1/", &ConnectOptions::default()).unwrap();
        let url = format!("ws://127.0.0.1:{closed}/x");
        let e = c.connect(&url, Duration::from_secs(2)).err().unwrap();
        assert_eq!(e.kind, "refused");
        // The TLS configuration is built at the first wss:// connection.
        let options = ConnectOptions {
            cacert: Some("/nonexistent/ca.pem".into()),
            ..ConnectOptions::default()
        };
        let c = Connector::new("ws://127.0.0.1:1/", &options).unwrap();
        let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("wss://{}/", open.local_addr().unwrap());
        let e = c.connect(&url, Duration::from_secs(2)).err().unwrap();
        assert!(e.kind.contains("--cacert"), "{e}");
        assert!(Connector::new(&url, &options).is_err());
    }

    #[test]
    fn limiter_bounds_concurrency() {
        let limiter = Arc::new(Limiter::new(2));
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (l, i, m) = (limiter.clone(), inside.clone(), most.clone());
                thread::spawn(move || {
                    let _p = l.acquire();
                    let now = i.fetch_add(1, Ordering::SeqCst) + 1;
                    m.fetch_max(now, Ordering::SeqCst);
                    thread::yield_now();
                    i.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(most.load(Ordering::SeqCst) <= 2);
    }

    #[test]
    fn gate_releases_waiters_with_the_deadline() {
        let gate = Arc::new(Gate::new());
        let g = gate.clone();
        let waiter = thread::spawn(move || g.wait());
        assert!(!gate.is_open());
        let at = Instant::now() + Duration::from_secs(3);
        gate.open(Some(at));
        assert_eq!(waiter.join().unwrap(), at);
    }
}

//! How scripted clients open connections. A connect step's headers and
//! subprotocols are templates rendered per client (a token from the CSV
//! feeder), while the run's [`Connector`](crate::bench::client::Connector)
//! fixes its headers once per run; this shares the rest with it: URL
//! parsing, header parsing, error kinds and the client stream of
//! [`client`](crate::bench::client), the TLS configuration of
//! [`tls`](crate::bench::tls) (built once per run, at the first `wss://`
//! connect), the small read buffer. Each host is resolved once per run.

use crate::bench::client::{self, ConnectError, ConnectOptions, Socket, Stream};
use crate::bench::tls;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tungstenite::client::IntoClientRequest;
use tungstenite::http::{HeaderName, HeaderValue};
use tungstenite::protocol::WebSocketConfig;

/// tungstenite's read buffer per client (as every strand bench client).
const READ_BUFFER: usize = 4096;

/// What every connect step of a run shares.
pub struct Dialer {
    /// Headers of every connection (`-H`, `--origin`).
    headers: Vec<(HeaderName, HeaderValue)>,
    /// Subprotocols offered when a step offers none (`--subprotocol`).
    subprotocols: Vec<String>,
    options: ConnectOptions,
    tls: OnceLock<Result<Arc<ClientConfig>, String>>,
    addrs: Mutex<HashMap<String, SocketAddr>>,
}

impl Dialer {
    /// A dialer with the run's options; a bad header is an error (the run
    /// does not start).
    pub fn new(options: ConnectOptions) -> Result<Dialer, String> {
        let mut headers = Vec::new();
        for h in &options.headers {
            headers.push(client::parse_header(h)?);
        }
        if let Some(origin) = &options.origin {
            headers.push(client::parse_header(&format!("Origin: {origin}"))?);
        }
        Ok(Dialer {
            headers,
            subprotocols: options.subprotocols.clone(),
            options,
            tls: OnceLock::new(),
            addrs: Mutex::new(HashMap::new()),
        })
    }

    /// The TLS configuration, built at the first `wss://` connect.
    fn tls(&self) -> Result<Arc<ClientConfig>, String> {
        self.tls
            .get_or_init(|| {
                if self.options.insecure {
                    eprintln!("strand bench: warning: --insecure: the server's certificate is not checked");
                }
                tls::client_config(&tls::Trust {
                    cacert: self.options.cacert.as_deref(),
                    insecure: self.options.insecure,
                })
            })
            .clone()
    }

    fn resolve(&self, authority: &str) -> Result<SocketAddr, String> {
        let mut addrs = self.addrs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(a) = addrs.get(authority) {
            return Ok(*a);
        }
        let addr = authority
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {authority}: {e}"))?
            .next()
            .ok_or_else(|| format!("{authority} resolves to no address"))?;
        addrs.insert(authority.to_string(), addr);
        Ok(addr)
    }

    /// Opens `url` with the run's headers and `headers`, offering
    /// `subprotocols` (the run's when empty), within `timeout` for the TCP
    /// connect, the handshake and every later read or write. An error
    /// carries the kind it is counted under, and a refused upgrade's body.
    pub fn connect(
        &self,
        url: &str,
        headers: &[(&str, String)],
        subprotocols: &[String],
        timeout: Duration,
    ) -> Result<Socket, ConnectError> {
        self.open(url, headers, subprotocols, timeout)
            .map_err(|e| match e {
                Failed::Handshake(e) => ConnectError::of(&e),
                Failed::Before(kind) => ConnectError { kind, body: None },
            })
    }

    fn open(
        &self,
        url: &str,
        headers: &[(&str, String)],
        subprotocols: &[String],
        timeout: Duration,
    ) -> Result<Socket, Failed> {
        let (secure, authority, _) = client::split_url(url)?;
        let addr = self.resolve(&authority)?;
        let mut request = url
            .into_client_request()
            .map_err(|e| format!("bad URL: {e}"))?;
        let fields = request.headers_mut();
        fields.extend(self.headers.iter().cloned());
        for (name, value) in headers {
            let (n, v) = client::parse_header(&format!("{name}: {value}"))?;
            fields.append(n, v);
        }
        let offered = if subprotocols.is_empty() {
            &self.subprotocols
        } else {
            subprotocols
        };
        if !offered.is_empty() {
            let (n, v) =
                client::parse_header(&format!("Sec-WebSocket-Protocol: {}", offered.join(", ")))?;
            fields.insert(n, v);
        }
        let stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| client::io_kind(&e))?;
        let _ = stream.set_nodelay(true);
        let _ = stream.set_read_timeout(Some(timeout));
        let _ = stream.set_write_timeout(Some(timeout));
        let stream = if secure {
            tls_stream(self.tls()?, &authority, stream)?
        } else {
            Stream::Plain(stream)
        };
        let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
        match tungstenite::client::client_with_config(request, stream, Some(config)) {
            Ok((ws, _)) => Ok(ws),
            Err(tungstenite::HandshakeError::Failure(e)) => Err(Failed::Handshake(e)),
            Err(tungstenite::HandshakeError::Interrupted(_)) => {
                Err(Failed::Before("handshake timeout".into()))
            }
        }
    }
}

/// Why [`Dialer::open`] failed: before the upgrade's answer (a kind), or
/// in the handshake (the error, whose refused body is kept as a sample).
enum Failed {
    Before(String),
    Handshake(tungstenite::Error),
}

impl From<String> for Failed {
    fn from(kind: String) -> Failed {
        Failed::Before(kind)
    }
}

/// `stream` under a TLS client for the host of `authority` (`HOST:PORT`).
/// Never inlined, as in [`client`]: its large locals must not deepen the
/// stack of every plain client.
#[inline(never)]
fn tls_stream(
    config: Arc<ClientConfig>,
    authority: &str,
    stream: TcpStream,
) -> Result<Stream, String> {
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| format!("tls: {host:?} is not a server name"))?;
    let conn = rustls::ClientConnection::new(config, name).map_err(|e| format!("tls: {e}"))?;
    Ok(Stream::Tls(Box::new(rustls::StreamOwned::new(
        conn, stream,
    ))))
}

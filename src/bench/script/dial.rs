//! How scripted clients open connections. A connect step's URL, headers
//! and subprotocols are templates rendered per client (a token from the
//! CSV feeder, a path with the client's index), so the run's one
//! [`Connector`](crate::bench::client::Connector), which fixes them, does
//! not fit; this shares the rest with it: URL parsing and the error kinds
//! of [`client`](crate::bench::client), the TLS configuration of
//! [`tls`](crate::bench::tls) (built once per run), the small read
//! buffer. Each host is resolved once per run.

use crate::bench::client::{self, ConnectOptions, Socket};
use crate::bench::tls;
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
    /// connect, the handshake and every later read or write. An error is
    /// the kind it is counted under.
    pub fn connect(
        &self,
        url: &str,
        headers: &[(&str, String)],
        subprotocols: &[String],
        timeout: Duration,
    ) -> Result<Socket, String> {
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
        let connector = if secure {
            tungstenite::Connector::Rustls(self.tls()?)
        } else {
            tungstenite::Connector::Plain
        };
        let stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| client::io_kind(&e))?;
        let _ = stream.set_nodelay(true);
        let _ = stream.set_read_timeout(Some(timeout));
        let _ = stream.set_write_timeout(Some(timeout));
        let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
        match tungstenite::client_tls_with_config(request, stream, Some(config), Some(connector)) {
            Ok((ws, _)) => Ok(ws),
            Err(tungstenite::HandshakeError::Failure(e)) => Err(client::error_kind(&e)),
            Err(tungstenite::HandshakeError::Interrupted(_)) => Err("handshake timeout".into()),
        }
    }
}

//! TLS test support: a test CA and leaves it signs (rcgen), and clients
//! that trust it: tungstenite over rustls for `wss://`, raw rustls for
//! `https://` and for frame-level tests.
#![allow(dead_code)]

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::WebSocket;

/// How long a TLS test client waits for any read.
pub const WAIT: Duration = Duration::from_secs(10);

/// A certificate authority made for one test.
pub struct TestCa {
    /// The CA certificate, PEM: what clients trust.
    pub pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

/// A certificate and its key, PEM.
pub struct Leaf {
    /// The chain: the leaf, then the CA.
    pub chain_pem: String,
    /// The leaf's DER.
    pub der: Vec<u8>,
    /// The private key (PKCS#8).
    pub key_pem: String,
}

impl TestCa {
    pub fn new() -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        // A name of its own: a client that trusts another test CA must not
        // find this one's issuer by name (it would report a bad signature).
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("strand test CA {} {n}", std::process::id()),
        );
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A leaf for `localhost` and 127.0.0.1, valid until `not_after`
    /// (year, month, day).
    pub fn leaf_until(&self, not_after: (i32, u8, u8)) -> Leaf {
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .unwrap();
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            chain_pem: format!("{}{}", cert.pem(), self.pem),
            der: cert.der().to_vec(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A leaf for `localhost` and 127.0.0.1, valid until 2040.
    pub fn leaf(&self) -> Leaf {
        self.leaf_until((2040, 1, 1))
    }

    /// A client configuration trusting this CA, for the given versions
    /// (both when empty), offering ALPN `http/1.1`.
    pub fn client(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(self.pem.as_bytes()) {
            let cert: CertificateDer<'static> = cert.unwrap();
            roots.add(cert).unwrap();
        }
        let versions = if versions.is_empty() {
            rustls::DEFAULT_VERSIONS
        } else {
            versions
        };
        let mut config = ClientConfig::builder_with_provider(strand::tls::provider())
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

impl Leaf {
    /// Writes the chain and key as `cert.pem` and `key.pem` in `dir`.
    pub fn write(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&cert, &self.chain_pem).unwrap();
        std::fs::write(&key, &self.key_pem).unwrap();
        (cert, key)
    }
}

/// A TLS client stream to `addr`, handshake done.
pub type Tls = StreamOwned<ClientConnection, TcpStream>;

/// Connects to `addr` and completes a handshake for `localhost`.
pub fn connect(addr: SocketAddr, config: Arc<ClientConfig>) -> Result<Tls, std::io::Error> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(WAIT))?;
    tcp.set_nodelay(true)?;
    let session =
        ClientConnection::new(config, ServerName::try_from("localhost").unwrap()).unwrap();
    let mut stream = StreamOwned::new(session, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

/// The leaf certificate the server showed.
pub fn peer_leaf(stream: &Tls) -> Vec<u8> {
    stream.conn.peer_certificates().unwrap()[0].to_vec()
}

/// Sends a raw HTTP request over TLS; (status, head, body).
pub fn https_raw(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    request: &[u8],
) -> (u16, String, String) {
    let mut stream = connect(addr, config).expect("TLS handshake");
    stream.write_all(request).unwrap();
    let mut out = Vec::new();
    // The server ends with close_notify: a clean end of stream.
    stream
        .read_to_end(&mut out)
        .expect("a clean TLS end (close_notify)");
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    (status, head.to_string(), body.to_string())
}

/// `method path` over TLS with extra header lines and a body; (status, body).
pub fn https(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> (u16, String) {
    let req = crate::support::request(method, path, "localhost", headers, body);
    let (status, _, body) = https_raw(addr, config, req.as_bytes());
    (status, body)
}

/// Opens `wss://localhost:PORT{path}` trusting `config`'s roots.
pub fn wss(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    path: &str,
) -> WebSocket<MaybeTlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    tcp.set_nodelay(true).unwrap();
    let url = format!("wss://localhost:{}{}", addr.port(), path);
    match tungstenite::client_tls_with_config(
        url,
        tcp,
        None,
        Some(tungstenite::Connector::Rustls(config)),
    ) {
        Ok((ws, _)) => ws,
        Err(e) => panic!("wss {path}: {e}"),
    }
}

/// The value of metric `name` (a full series name) in Prometheus `text`.
pub fn metric_in(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
}

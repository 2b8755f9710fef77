//! Helpers for testing `strand bench` against servers that are not strand:
//! a small WebSocket echo server written here (std threads, tungstenite's
//! server side, rustls with an rcgen certificate for TLS) that can require
//! a header and a subprotocol and can stall on a schedule, and a runner of
//! the `strand` binary that returns its exit code, output and `--json`.
#![allow(dead_code)]

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::http::{HeaderValue, StatusCode};

/// A private CA and a server certificate it signed for `127.0.0.1` and
/// `localhost`, the CA written as PEM to a temporary file.
pub struct TestCa {
    dir: tempfile::TempDir,
    /// The server's certificate chain (DER).
    pub chain: Vec<CertificateDer<'static>>,
    /// The server's private key (PKCS#8 DER).
    pub key: Vec<u8>,
}

impl TestCa {
    /// A fresh CA and server certificate.
    pub fn new() -> TestCa {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "strand bench test CA");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, &ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        TestCa {
            dir,
            chain: vec![leaf.der().clone()],
            key: key.serialize_der(),
        }
    }

    /// The CA's PEM file, for `--cacert`.
    pub fn pem_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        #[allow(deprecated)] // the project's TLS stack is ring (see src/bench/tls.rs)
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone()));
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), key)
            .unwrap();
        Arc::new(config)
    }
}

/// What the echo server demands and how it misbehaves.
#[derive(Default, Clone)]
pub struct EchoOptions {
    /// Serve TLS with this CA's certificate.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Refuse the upgrade with 401 and a body unless this header has this value.
    pub header: Option<(String, String)>,
    /// Refuse the upgrade with 400 unless this subprotocol is offered; choose it.
    pub subprotocol: Option<String>,
    /// Every `period`, hold every reply for the first `stall` of it.
    pub stall: Option<(Duration, Duration)>,
}

impl EchoOptions {
    /// Serve TLS with `ca`'s server certificate.
    pub fn tls(mut self, ca: &TestCa) -> Self {
        self.tls = Some(ca.server_config());
        self
    }

    /// Require `name: value`.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.header = Some((name.into(), value.into()));
        self
    }

    /// Require and choose `name`.
    pub fn subprotocol(mut self, name: &str) -> Self {
        self.subprotocol = Some(name.into());
        self
    }

    /// Stall the first `stall` of every `period`.
    pub fn stall(mut self, period: Duration, stall: Duration) -> Self {
        self.stall = Some((period, stall));
        self
    }
}

/// The body of the 401 answer.
pub const UNAUTHORIZED_BODY: &str = "missing or wrong X-Token";

/// An echo server on a thread per connection; stopped when dropped (its
/// connection threads end when their clients hang up).
pub struct EchoServer {
    /// `ws://127.0.0.1:PORT` or `wss://...`.
    pub url: String,
    stop: Arc<AtomicBool>,
    port: u16,
    accept: Option<JoinHandle<()>>,
    /// The key exchange group of each TLS handshake, in order (`X25519`).
    pub kx_groups: Arc<Mutex<Vec<String>>>,
}

impl EchoServer {
    /// Starts a server with `options`.
    pub fn start(options: EchoOptions) -> EchoServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let scheme = if options.tls.is_some() { "wss" } else { "ws" };
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let options = Arc::new(options);
        let epoch = Instant::now();
        let kx_groups = Arc::new(Mutex::new(Vec::new()));
        let groups = kx_groups.clone();
        let accept = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let (o, groups) = (options.clone(), groups.clone());
                std::thread::spawn(move || serve(stream, &o, epoch, &groups));
            }
        });
        EchoServer {
            url: format!("{scheme}://127.0.0.1:{port}"),
            stop,
            port,
            accept: Some(accept),
            kx_groups,
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut stream: TcpStream, o: &EchoOptions, epoch: Instant, groups: &Mutex<Vec<String>>) {
    let _ = stream.set_nodelay(true);
    match &o.tls {
        Some(config) => {
            let Ok(mut conn) = rustls::ServerConnection::new(config.clone()) else {
                return;
            };
            while conn.is_handshaking() {
                if conn.complete_io(&mut stream).is_err() {
                    return;
                }
            }
            if let Some(group) = conn.negotiated_key_exchange_group() {
                groups.lock().unwrap().push(format!("{:?}", group.name()));
            }
            echo(rustls::StreamOwned::new(conn, stream), o, epoch);
        }
        None => echo(stream, o, epoch),
    }
}

// tungstenite's handshake callback returns its `ErrorResponse` by value.
#[allow(clippy::result_large_err)]
fn echo<S: Read + Write>(stream: S, o: &EchoOptions, epoch: Instant) {
    let check = |request: &Request, mut response: Response| {
        if let Some((name, value)) = &o.header {
            if request.headers().get(name.as_str()).map(|v| v.as_bytes()) != Some(value.as_bytes())
            {
                return Err(refuse(StatusCode::UNAUTHORIZED, UNAUTHORIZED_BODY));
            }
        }
        if let Some(proto) = &o.subprotocol {
            let offered = request
                .headers()
                .get("Sec-WebSocket-Protocol")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !offered.split(',').any(|p| p.trim() == proto) {
                return Err(refuse(StatusCode::BAD_REQUEST, "subprotocol required"));
            }
            response.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                HeaderValue::from_str(proto).unwrap(),
            );
        }
        Ok(response)
    };
    let Ok(mut ws) = tungstenite::accept_hdr(stream, check) else {
        return;
    };
    while let Ok(msg) = ws.read() {
        if !(msg.is_text() || msg.is_binary()) {
            continue;
        }
        if let Some((period, stall)) = o.stall {
            let phase =
                Duration::from_nanos((epoch.elapsed().as_nanos() % period.as_nanos()) as u64);
            if phase < stall {
                std::thread::sleep(stall - phase);
            }
        }
        if ws.send(msg).is_err() {
            return;
        }
    }
}

fn refuse(status: StatusCode, body: &str) -> ErrorResponse {
    let mut r = ErrorResponse::new(Some(body.to_string()));
    *r.status_mut() = status;
    r
}

/// What a run of `strand bench` gave.
pub struct Outcome {
    /// Its exit code.
    pub code: i32,
    /// Its table.
    pub stdout: String,
    /// Its notes and errors.
    pub stderr: String,
    /// Its `--json`, when it wrote one.
    pub json: Option<Value>,
}

impl Outcome {
    /// The JSON, which must be there.
    pub fn json(&self) -> &Value {
        self.json
            .as_ref()
            .unwrap_or_else(|| panic!("no --json: {}{}", self.stdout, self.stderr))
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}\n{}{}", self.code, self.stdout, self.stderr)
    }
}

/// Runs `strand bench ARGS --json FILE` (and `-q` unless merging) in `dir`.
pub fn bench_in(dir: &Path, args: &[&str]) -> Outcome {
    let json = dir.join(format!("out-{}.json", unique()));
    let mut command = Command::new(env!("CARGO_BIN_EXE_strand"));
    command.arg("bench").args(args).arg("--json").arg(&json);
    if args.first() != Some(&"merge") {
        command.arg("-q");
    }
    let out = command.output().expect("run strand bench");
    let text = std::fs::read_to_string(&json).ok();
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        json: text.map(|t| serde_json::from_str(&t).unwrap_or_else(|e| panic!("{e}: {t}"))),
    }
}

/// Runs `strand bench ARGS` (see [`bench_in`]) in a temporary directory.
pub fn bench(args: &[&str]) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    bench_in(dir.path(), args)
}

fn unique() -> u64 {
    use std::sync::atomic::AtomicU64;
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

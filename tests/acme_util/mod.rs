//! Helpers for the ACME tests: a private `pebble` (the ACME test server
//! Let's Encrypt ships) on free ports, with an HTTPS certificate of its own
//! made here, killed when dropped (and with the test process: it gets
//! PR_SET_PDEATHSIG); free ports; HTTPS and TLS clients that trust the
//! right roots.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long pebble and an order may take in a test.
pub const ACME_WAIT: Duration = Duration::from_secs(60);

/// A port nobody listens on now, below the kernel's ephemeral range
/// (32768 and up by default), so that no other test's port-0 bind or
/// outgoing connection takes it between this check and its use.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id()
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
    for _ in 0..1000 {
        let n = NEXT.fetch_add(7919, Ordering::Relaxed).wrapping_add(seed);
        let port = 20_000 + (n % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between 20000 and 32000");
}

/// How pebble is configured.
#[derive(Debug, Clone, Default)]
pub struct PebbleOptions {
    /// Where pebble validates `http-01` on localhost.
    pub http_port: u16,
    /// Where pebble validates `tls-alpn-01` on localhost.
    pub tls_port: u16,
    /// `certificateValidityPeriod` in seconds (pebble's default: 5 years).
    pub validity_secs: Option<u64>,
    /// Keep pebble's default 5 % nonce rejection (else none, for speed).
    pub reject_nonces: bool,
}

/// A running pebble, killed when dropped.
pub struct Pebble {
    child: Option<Child>,
    pub port: u16,
    pub management_port: u16,
    /// The CA of pebble's own HTTPS certificate, as a file (`--acme-ca`).
    pub https_ca: PathBuf,
    /// PEM of the same.
    pub https_ca_pem: String,
    pub options: PebbleOptions,
    log: Arc<(Mutex<Vec<String>>, Condvar)>,
    dir: tempfile::TempDir,
}

impl Pebble {
    /// Starts pebble with `options` and waits until its directory answers.
    pub fn start(options: PebbleOptions) -> Pebble {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "pebble test HTTPS CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let https_ca = write("https-ca.pem", &ca.pem());
        let cert_path = write("cert.pem", &cert.pem());
        let key_path = write("key.pem", &key.serialize_pem());
        let mut pebble = Pebble {
            child: None,
            port: free_port(),
            management_port: free_port(),
            https_ca,
            https_ca_pem: ca.pem(),
            options,
            log: Arc::new((Mutex::new(Vec::new()), Condvar::new())),
            dir,
        };
        let mut config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{}", pebble.port),
            "managementListenAddress": format!("127.0.0.1:{}", pebble.management_port),
            "certificate": cert_path,
            "privateKey": key_path,
            "httpPort": pebble.options.http_port,
            "tlsPort": pebble.options.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        if let Some(secs) = pebble.options.validity_secs {
            config["pebble"]["certificateValidityPeriod"] = secs.into();
        }
        std::fs::write(pebble.dir.path().join("pebble.json"), config.to_string()).unwrap();
        pebble.launch();
        pebble
    }

    fn launch(&mut self) {
        let mut cmd = Command::new("pebble");
        cmd.arg("-config")
            .arg(self.dir.path().join("pebble.json"))
            .env("PEBBLE_VA_NOSLEEP", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if !self.options.reject_nonces {
            cmd.env("PEBBLE_WFE_NONCEREJECT", "0");
        }
        // SAFETY: prctl is async-signal-safe, as pre_exec requires.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .expect("pebble (install it: apt-get install pebble)");
        let stdout = child.stdout.take().unwrap();
        let sink = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let (lines, cv) = &*sink;
                lines.lock().unwrap().push(line);
                cv.notify_all();
            }
        });
        self.child = Some(child);
        let deadline = Instant::now() + ACME_WAIT;
        loop {
            match self.get(&self.directory()) {
                Ok(body) if body.contains("newOrder") => break,
                other => assert!(
                    Instant::now() < deadline,
                    "pebble's directory did not answer: {other:?}; log:\n{}",
                    self.log_text()
                ),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `https://127.0.0.1:PORT/dir`.
    pub fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.port)
    }

    /// GET over HTTPS trusting pebble's HTTPS CA (with strand's ACME
    /// transport): the body of a 200.
    pub fn get(&self, url: &str) -> Result<String, String> {
        let reply = strand::acme::transport::Transport::new(Some(&self.https_ca))?.get(url)?;
        if reply.status != 200 {
            return Err(format!("{url}: {}", reply.status));
        }
        String::from_utf8(reply.body).map_err(|e| e.to_string())
    }

    /// The root pebble issues under now (`/roots/0` on its management port).
    pub fn issuing_root(&self) -> String {
        self.get(&format!(
            "https://127.0.0.1:{}/roots/0",
            self.management_port
        ))
        .expect("pebble's root")
    }

    /// Every line pebble logged so far.
    pub fn log_text(&self) -> String {
        self.log.0.lock().unwrap().join("\n")
    }

    /// How many certificates pebble has issued.
    pub fn issued(&self) -> usize {
        self.log
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("Issued certificate serial"))
            .count()
    }

    /// Kills pebble (its state is gone: it keeps none).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts pebble again on the same ports, with a new root and no
    /// accounts.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A TLS connection to `127.0.0.1:port` for `name`, verified against
/// `root_pem`, with its handshake done.
pub fn tls_connect(
    port: u16,
    name: &str,
    root_pem: &str,
) -> Result<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
        roots
            .add(c.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(strand::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut conn = rustls::ClientConnection::new(
        Arc::new(config),
        ServerName::try_from(name.to_string()).unwrap(),
    )
    .unwrap();
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).map_err(|e| e.to_string())?;
    }
    Ok(rustls::StreamOwned::new(conn, sock))
}

/// The leaf `name` presents on `port`, verified against `root_pem`.
pub fn served_leaf(port: u16, name: &str, root_pem: &str) -> Result<Vec<u8>, String> {
    let stream = tls_connect(port, name, root_pem)?;
    Ok(stream.conn.peer_certificates().ok_or("no certificate")?[0].to_vec())
}

/// `GET path` over HTTPS: the status and the body.
pub fn https_get(
    port: u16,
    name: &str,
    root_pem: &str,
    path: &str,
) -> Result<(u16, String), String> {
    use std::io::{Read, Write};
    let mut stream = tls_connect(port, name, root_pem)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut reply = Vec::new();
    // A server that closes without close_notify ends in an error after
    // the whole answer: what was read is the answer.
    let _ = stream.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply).to_string();
    let status = reply
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no HTTP answer: {reply:?}"))?;
    let body = reply
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Echoes one message over `wss://name:port/ws`, verified against `root_pem`.
pub fn wss_echo(port: u16, name: &str, root_pem: &str) -> Result<String, String> {
    let stream = tls_connect(port, name, root_pem)?;
    let (mut ws, _) = tungstenite::client(format!("wss://{name}:{port}/ws"), stream)
        .map_err(|e| e.to_string())?;
    ws.send(tungstenite::Message::text("over wss"))
        .map_err(|e| e.to_string())?;
    match ws.read().map_err(|e| e.to_string())? {
        tungstenite::Message::Text(t) => Ok(t.to_string()),
        other => Err(format!("not text: {other:?}")),
    }
}

/// Waits up to `limit` for `f` to hold, polling.
pub fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

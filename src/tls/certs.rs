//! The certificates the server presents.
//!
//! [`Certs`] is the server's `ResolvesServerCert`: it holds the serving
//! pair behind a lock that a reload or a renewal swaps in one step (new
//! handshakes get the new pair, open connections keep theirs), and the
//! ACME `tls-alpn-01` challenge certificates by domain, presented only to
//! a client that offers exactly the `acme-tls/1` protocol (RFC 8737).
//!
//! [`load_pair`] reads a PEM chain and key and refuses a key that does not
//! match the certificate: a mismatched pair is the classic outage, so it is
//! caught before it replaces a working one.
//!
//! It must not read files on its own initiative or keep time: the reload
//! watcher and the ACME client decide when a pair changes.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

/// The ALPN protocol of ACME's `tls-alpn-01` challenge (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";
/// The ALPN protocol of every other client.
pub const HTTP11_ALPN: &[u8] = b"http/1.1";

/// Why a certificate pair could not be used.
#[derive(Debug)]
#[non_exhaustive]
pub enum LoadError {
    /// The certificate file could not be read or holds no PEM certificate.
    Certificate(String),
    /// The key file could not be read or holds no usable private key.
    Key(String),
    /// The key is not the certificate's.
    Mismatch(String),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Certificate(why) => write!(f, "certificate: {why}"),
            LoadError::Key(why) => write!(f, "key: {why}"),
            LoadError::Mismatch(why) => {
                write!(f, "the key does not match the certificate: {why}")
            }
        }
    }
}

impl std::error::Error for LoadError {}

/// Reads a PEM certificate chain (leaf first) and its key (PKCS#8, PKCS#1
/// or SEC1) and checks that they belong together.
pub fn load_pair(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, LoadError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| LoadError::Certificate(format!("{}: {e}", cert.display())))?;
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| LoadError::Key(format!("{}: {e}", key.display())))?;
    certified_key(chain, key_der)
}

/// A pair from PEM text held in memory (an ACME certificate and its key).
pub fn pair_from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<Arc<CertifiedKey>, LoadError> {
    let chain = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| LoadError::Certificate(e.to_string()))?;
    let key_der =
        PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| LoadError::Key(e.to_string()))?;
    certified_key(chain, key_der)
}

/// A pair from DER, checked: the chain is not empty, the key is one `ring`
/// can sign with, and it is the leaf certificate's.
pub fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<CertifiedKey>, LoadError> {
    if chain.is_empty() {
        return Err(LoadError::Certificate("no PEM certificate found".into()));
    }
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| LoadError::Key(e.to_string()))?;
    let pair = CertifiedKey::new(chain, signing);
    pair.keys_match()
        .map_err(|e| LoadError::Mismatch(e.to_string()))?;
    Ok(Arc::new(pair))
}

/// The server's certificates: see the module docs.
#[derive(Default)]
pub struct Certs {
    current: RwLock<Option<Arc<CertifiedKey>>>,
    challenges: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl fmt::Debug for Certs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certs")
            .field("serving", &self.current().is_some())
            .finish_non_exhaustive()
    }
}

impl Certs {
    /// No pair yet (ACME before its first certificate): handshakes other
    /// than challenges fail until one is installed.
    pub fn new() -> Arc<Certs> {
        Arc::new(Certs::default())
    }

    /// Serving `pair` from the start.
    pub fn with(pair: Arc<CertifiedKey>) -> Arc<Certs> {
        let certs = Certs::new();
        certs.install(pair);
        certs
    }

    /// Serves `pair` to every handshake from now on.
    pub fn install(&self, pair: Arc<CertifiedKey>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(pair);
    }

    /// The pair serving now.
    pub fn current(&self) -> Option<Arc<CertifiedKey>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Presents `pair` to `tls-alpn-01` validations of `domain`.
    pub fn set_challenge(&self, domain: &str, pair: Arc<CertifiedKey>) {
        self.lock_challenges()
            .insert(domain.to_ascii_lowercase(), pair);
    }

    /// Ends the challenge of `domain`.
    pub fn clear_challenge(&self, domain: &str) {
        self.lock_challenges().remove(&domain.to_ascii_lowercase());
    }

    fn lock_challenges(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<CertifiedKey>>> {
        self.challenges.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whether a client offered `acme-tls/1` and nothing else.
fn only_acme(hello: &ClientHello<'_>) -> bool {
    let Some(mut protocols) = hello.alpn() else {
        return false;
    };
    protocols.next() == Some(ACME_TLS_ALPN) && protocols.next().is_none()
}

impl ResolvesServerCert for Certs {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if only_acme(&hello) {
            let domain = hello.server_name()?.to_ascii_lowercase();
            return self.lock_challenges().get(&domain).cloned();
        }
        self.current()
    }
}

/// The server's rustls configuration: TLS 1.2 and 1.3 with `ring`, no
/// client certificates, certificates from `certs`. ALPN offers
/// `http/1.1` and `acme-tls/1`, so a client offering neither still
/// connects, and an ACME validation gets its protocol.
pub fn server_config(certs: Arc<Certs>) -> Arc<ServerConfig> {
    let mut config = ServerConfig::builder_with_provider(super::provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("ring supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(certs);
    config.alpn_protocols = vec![HTTP11_ALPN.to_vec(), ACME_TLS_ALPN.to_vec()];
    Arc::new(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::ServerName;
    use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConnection};

    /// A self-signed certificate for `name` and its key, as PEM.
    fn self_signed(name: &str) -> (String, String) {
        let generated = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        (generated.cert.pem(), generated.signing_key.serialize_pem())
    }

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Runs a handshake in memory; the leaf the client was shown and the
    /// protocol agreed, or `None` when it failed.
    fn handshake(
        certs: Arc<Certs>,
        trusted_pem: &str,
        name: &str,
        alpn: &[&[u8]],
    ) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(trusted_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let mut client_config = ClientConfig::builder_with_provider(super::super::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        client_config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let mut client = ClientConnection::new(
            Arc::new(client_config),
            ServerName::try_from(name.to_string()).unwrap(),
        )
        .unwrap();
        let mut server = ServerConnection::new(server_config(certs)).unwrap();
        for _ in 0..10 {
            let mut buf = Vec::new();
            client.write_tls(&mut buf).unwrap();
            server.read_tls(&mut &buf[..]).unwrap();
            server.process_new_packets().ok()?;
            let mut buf = Vec::new();
            server.write_tls(&mut buf).unwrap();
            client.read_tls(&mut &buf[..]).unwrap();
            client.process_new_packets().ok()?;
            if !client.is_handshaking() && !server.is_handshaking() {
                let leaf = client.peer_certificates()?[0].to_vec();
                return Some((leaf, client.alpn_protocol().map(<[u8]>::to_vec)));
            }
        }
        None
    }

    #[test]
    fn a_pair_loads_and_a_mismatched_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed("localhost");
        let (_, other_key) = self_signed("localhost");
        let cert_path = write(dir.path(), "cert.pem", &cert);
        let key_path = write(dir.path(), "key.pem", &key);
        let other_path = write(dir.path(), "other.pem", &other_key);
        assert!(load_pair(&cert_path, &key_path).is_ok());
        let err = load_pair(&cert_path, &other_path).unwrap_err();
        assert!(matches!(err, LoadError::Mismatch(_)), "{err}");
        let err = load_pair(&dir.path().join("missing.pem"), &key_path).unwrap_err();
        assert!(matches!(err, LoadError::Certificate(_)), "{err}");
        let err = load_pair(&key_path, &key_path).unwrap_err();
        assert!(matches!(err, LoadError::Certificate(_)), "{err}");
    }

    #[test]
    fn an_installed_pair_serves_new_handshakes() {
        let (cert_a, key_a) = self_signed("localhost");
        let (cert_b, key_b) = self_signed("localhost");
        let a = pair_from_pem(cert_a.as_bytes(), key_a.as_bytes()).unwrap();
        let b = pair_from_pem(cert_b.as_bytes(), key_b.as_bytes()).unwrap();
        let certs = Certs::with(a.clone());
        let (leaf, alpn) = handshake(certs.clone(), &cert_a, "localhost", &[b"http/1.1"]).unwrap();
        assert_eq!(leaf, a.cert[0].to_vec());
        assert_eq!(alpn.as_deref(), Some(HTTP11_ALPN));
        certs.install(b.clone());
        let (leaf, _) = handshake(certs, &cert_b, "localhost", &[]).unwrap();
        assert_eq!(leaf, b.cert[0].to_vec());
    }

    #[test]
    fn a_challenge_is_shown_only_to_acme_tls_alpn() {
        let (cert, key) = self_signed("example.org");
        let (challenge_cert, challenge_key) = self_signed("example.org");
        let serving = pair_from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
        let challenge = pair_from_pem(challenge_cert.as_bytes(), challenge_key.as_bytes()).unwrap();
        let certs = Certs::with(serving.clone());
        certs.set_challenge("Example.org", challenge.clone());
        let (leaf, alpn) = handshake(
            certs.clone(),
            &challenge_cert,
            "example.org",
            &[ACME_TLS_ALPN],
        )
        .unwrap();
        assert_eq!(leaf, challenge.cert[0].to_vec());
        assert_eq!(alpn.as_deref(), Some(ACME_TLS_ALPN));
        let (leaf, _) = handshake(
            certs.clone(),
            &cert,
            "example.org",
            &[HTTP11_ALPN, ACME_TLS_ALPN],
        )
        .unwrap();
        assert_eq!(
            leaf,
            serving.cert[0].to_vec(),
            "a browser gets the serving pair"
        );
        certs.clear_challenge("example.org");
        assert!(handshake(certs, &challenge_cert, "example.org", &[ACME_TLS_ALPN]).is_none());
    }
}

//! Certificates for TLS to Redis, made by the test with rcgen: a CA, and
//! certificates it signs for 127.0.0.1 and localhost.

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use std::path::{Path, PathBuf};

/// A CA: its certificate (PEM) and what signs with it.
pub struct Ca {
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    /// A new CA named `name`.
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Ca {
            pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for 127.0.0.1 and localhost: (chain PEM, key PEM).
    pub fn leaf(&self) -> (String, String) {
        let params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// Writes a leaf certificate, its key and this CA into `dir`:
    /// `redis-server`'s `--tls-*` arguments for them (clients need no
    /// certificate).
    pub fn server_args(&self, dir: &Path) -> Vec<String> {
        self.server_args_with(dir, false)
    }

    /// As [`Ca::server_args`]; with `require_clients`, a client must show a
    /// certificate this CA signed (`--tls-auth-clients yes`).
    pub fn server_args_with(&self, dir: &Path, require_clients: bool) -> Vec<String> {
        let (cert, key) = self.leaf();
        [
            ("--tls-cert-file", write(dir, "redis.crt", &cert)),
            ("--tls-key-file", write(dir, "redis.key", &key)),
            ("--tls-ca-cert-file", write(dir, "redis-ca.pem", &self.pem)),
        ]
        .into_iter()
        .flat_map(|(flag, path)| [flag.to_string(), path.display().to_string()])
        .chain(["--tls-auth-clients".to_string()])
        .chain([if require_clients { "yes" } else { "no" }.to_string()])
        .collect()
    }
}

/// Writes `text` to `dir/name`.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

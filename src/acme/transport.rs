//! HTTPS to the ACME directory: blocking requests over rustls with the
//! `ring` provider (`ureq`), trusting `--acme-ca` when given, else the
//! platform's roots, else the bundled Mozilla roots (a static binary in an
//! empty container has no platform roots).
//!
//! It must not know ACME: it sends bytes and returns the status, the
//! headers ACME uses and the body; errors are the caller's to read.

use std::path::Path;
use std::time::Duration;
use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};

/// One answer.
#[derive(Debug)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// `Replay-Nonce`.
    pub nonce: Option<String>,
    /// `Location` (an account's or an order's URL).
    pub location: Option<String>,
    /// `Retry-After`, as sent.
    pub retry_after: Option<String>,
    /// `Content-Type`.
    pub content_type: String,
    /// The body.
    pub body: Vec<u8>,
}

/// Answers larger than this are refused (a certificate chain is a few KB).
const MAX_BODY: u64 = 1 << 20;

/// An HTTPS client for one directory.
pub struct Transport {
    agent: ureq::Agent,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport").finish_non_exhaustive()
    }
}

/// The roots to trust: `ca` (PEM) when given, else the platform's, else
/// Mozilla's; the choice is logged once.
fn roots(ca: Option<&Path>) -> Result<RootCerts, String> {
    if let Some(path) = ca {
        let pem = std::fs::read(path).map_err(|e| format!("--acme-ca {}: {e}", path.display()))?;
        let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        if certs.is_empty() {
            return Err(format!(
                "--acme-ca {}: no PEM certificate in it",
                path.display()
            ));
        }
        return Ok(RootCerts::new_with_certs(&certs));
    }
    let native = rustls_native_certs::load_native_certs();
    if native.certs.is_empty() {
        log::info!("acme: no platform CA roots found; trusting the bundled Mozilla roots");
        return Ok(RootCerts::WebPki);
    }
    let certs: Vec<Certificate<'static>> = native
        .certs
        .iter()
        .map(|c| Certificate::from_der(c.as_ref()).to_owned())
        .collect();
    Ok(RootCerts::new_with_certs(&certs))
}

impl Transport {
    /// A client trusting `ca` (see [`roots`]).
    pub fn new(ca: Option<&Path>) -> Result<Transport, String> {
        let tls = TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .root_certs(roots(ca)?)
            .unversioned_rustls_crypto_provider(crate::tls::provider())
            .build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .https_only(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(30)))
            .user_agent(crate::SERVER_NAME)
            .build()
            .into();
        Ok(Transport { agent })
    }

    /// `GET url`.
    pub fn get(&self, url: &str) -> Result<Reply, String> {
        let response = self.agent.get(url).call();
        read(url, response)
    }

    /// `HEAD url` (a fresh nonce).
    pub fn head(&self, url: &str) -> Result<Reply, String> {
        let response = self.agent.head(url).call();
        read(url, response)
    }

    /// `POST url` with a JWS body.
    pub fn post(&self, url: &str, jws: &str) -> Result<Reply, String> {
        let response = self
            .agent
            .post(url)
            .header("Content-Type", "application/jose+json")
            .send(jws);
        read(url, response)
    }
}

fn read(
    url: &str,
    response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<Reply, String> {
    let mut response = response.map_err(|e| format!("{url}: {e}"))?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (nonce, location, retry_after) = (
        header("replay-nonce"),
        header("location"),
        header("retry-after"),
    );
    let content_type = header("content-type").unwrap_or_default();
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_BODY)
        .read_to_vec()
        .map_err(|e| format!("{url}: reading the answer: {e}"))?;
    Ok(Reply {
        status,
        nonce,
        location,
        retry_after,
        content_type,
        body,
    })
}

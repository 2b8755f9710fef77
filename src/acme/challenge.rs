//! Answering challenges: the `tls-alpn-01` certificate (RFC 8737) handed
//! to the serving port's [`Certs`], and the `http-01` tokens (RFC 8555
//! §8.3) the `--acme-http` listener serves.
//!
//! It must not talk to the CA: the client says what to present and when
//! to withdraw it.

use crate::tls::certs::Certs;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The `http-01` answers being served: token → key authorization.
#[derive(Debug, Default)]
pub struct Tokens {
    answers: Mutex<HashMap<String, String>>,
}

impl Tokens {
    /// The key authorization for `token`, while its challenge is on.
    pub fn answer(&self, token: &str) -> Option<String> {
        self.lock().get(token).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.answers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Where challenges are answered: the serving port's certificates, and
/// the `--acme-http` listener's tokens when there is one.
#[derive(Debug, Clone)]
pub struct Responder {
    /// The serving port's resolver (`tls-alpn-01`).
    pub certs: Arc<Certs>,
    /// The `http-01` listener's tokens, with `--acme-http`.
    pub http: Option<Arc<Tokens>>,
}

impl Responder {
    /// Whether `http-01` can be answered.
    pub fn serves_http(&self) -> bool {
        self.http.is_some()
    }

    /// Presents the answer to a challenge of `kind` for `domain`.
    pub fn present(
        &self,
        kind: &str,
        domain: &str,
        token: &str,
        key_authorization: &str,
    ) -> Result<(), String> {
        match (kind, &self.http) {
            (super::protocol::HTTP_01, Some(tokens)) => {
                tokens
                    .lock()
                    .insert(token.to_string(), key_authorization.to_string());
                Ok(())
            }
            (super::protocol::TLS_ALPN_01, _) => {
                let pair = alpn_certificate(domain, key_authorization)?;
                self.certs.set_challenge(domain, pair);
                Ok(())
            }
            _ => Err(format!("strand cannot answer {kind}")),
        }
    }

    /// Withdraws what [`Responder::present`] put up.
    pub fn withdraw(&self, kind: &str, domain: &str, token: &str) {
        match (kind, &self.http) {
            (super::protocol::HTTP_01, Some(tokens)) => {
                tokens.lock().remove(token);
            }
            (super::protocol::TLS_ALPN_01, _) => self.certs.clear_challenge(domain),
            _ => {}
        }
    }
}

/// The self-signed `tls-alpn-01` certificate for `domain`: its only name
/// is `domain`, and the critical `id-pe-acmeIdentifier` extension holds the
/// SHA-256 of the key authorization.
pub fn alpn_certificate(
    domain: &str,
    key_authorization: &str,
) -> Result<Arc<CertifiedKey>, String> {
    let fail = |e: rcgen::Error| format!("the tls-alpn-01 certificate for {domain}: {e}");
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(fail)?;
    let mut params = rcgen::CertificateParams::new(vec![domain.to_string()]).map_err(fail)?;
    let digest = ring::digest::digest(&ring::digest::SHA256, key_authorization.as_bytes());
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest.as_ref())];
    let cert = params.self_signed(&key).map_err(fail)?;
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    // Not `certs::certified_key`: its key check parses the certificate
    // with webpki, which refuses the critical acmeIdentifier extension.
    // The pair is made here, so it matches.
    let signing = rustls::crypto::ring::sign::any_supported_type(&key_der)
        .map_err(|e| format!("the tls-alpn-01 key for {domain}: {e}"))?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signing,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alpn_certificate_names_the_domain_and_holds_the_digest_critically() {
        let pair = alpn_certificate("example.org", "tok.thumb").unwrap();
        let der = pair.cert[0].as_ref();
        let digest = ring::digest::digest(&ring::digest::SHA256, b"tok.thumb");
        // The extension: OID 1.3.6.1.5.5.7.1.31, critical TRUE, then an
        // OCTET STRING wrapping the DER OCTET STRING of the digest.
        let oid = [0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x1f];
        let at = der
            .windows(oid.len())
            .position(|w| w == oid)
            .expect("acmeIdentifier extension");
        let rest = &der[at + oid.len()..];
        assert_eq!(&rest[..3], &[0x01, 0x01, 0xff], "critical");
        assert_eq!(&rest[3..7], &[0x04, 34, 0x04, 32]);
        assert_eq!(&rest[7..39], digest.as_ref());
        assert!(der.windows(11).any(|w| w == b"example.org"));
    }

    #[test]
    fn http_tokens_are_served_while_presented() {
        let tokens = Arc::new(Tokens::default());
        let responder = Responder {
            certs: Certs::new(),
            http: Some(tokens.clone()),
        };
        responder
            .present("http-01", "example.org", "tok", "tok.thumb")
            .unwrap();
        assert_eq!(tokens.answer("tok").as_deref(), Some("tok.thumb"));
        responder.withdraw("http-01", "example.org", "tok");
        assert_eq!(tokens.answer("tok"), None);
        let without_http = Responder {
            certs: Certs::new(),
            http: None,
        };
        assert!(without_http
            .present("http-01", "example.org", "tok", "k")
            .is_err());
    }
}

//! The TLS client configuration of `strand bench` for `wss://` URLs:
//! rustls with the `ring` provider, trusting the platform's roots (or the
//! bundled Mozilla roots where the host has none) plus any `--cacert`, or
//! nothing at all with `--insecure`.
//!
//! Built once per run and shared by every client; it opens no socket and
//! knows nothing of WebSocket.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::Path;
use std::sync::Arc;

/// Where a run's trusted roots come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trust<'a> {
    /// A PEM file of extra roots (`--cacert`).
    pub cacert: Option<&'a Path>,
    /// Check no certificate at all (`--insecure`).
    pub insecure: bool,
}

/// The client configuration for `trust`; an unreadable or empty
/// `--cacert` is an error (the run does not start).
pub fn client_config(trust: &Trust) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(ring_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let config = if trust.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoCheck(provider)))
            .with_no_client_auth()
    } else {
        builder
            .with_root_certificates(roots(trust.cacert)?)
            .with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// rustls's `ring` provider: the project's TLS stack (no aws-lc). rustls
/// 0.23.48 deprecates it only for lacking post-quantum key exchange. Its
/// clients offer X25519 first, as browsers do (the provider lists P-384
/// first, whose handshakes would cost the server under test several times
/// as much as real clients' do).
#[allow(deprecated)]
pub fn ring_provider() -> CryptoProvider {
    use rustls::crypto::ring::{default_provider, kx_group};
    CryptoProvider {
        kx_groups: vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1],
        ..default_provider()
    }
}

/// The platform's roots (the bundled ones where it has none) and `cacert`'s.
fn roots(cacert: Option<&Path>) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, _) = store.add_parsable_certificates(native.certs);
    if added == 0 {
        store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if let Some(path) = cacert {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("--cacert {}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("--cacert {}: no certificate in it", path.display()));
        }
        for cert in certs {
            store
                .add(cert)
                .map_err(|e| format!("--cacert {}: {e}", path.display()))?;
        }
    }
    Ok(store)
}

/// `--insecure`: any certificate for any name is accepted; the handshake's
/// signatures are still checked, so the connection is encrypted, only not
/// authenticated.
#[derive(Debug)]
struct NoCheck(Arc<CryptoProvider>);

impl ServerCertVerifier for NoCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_cacert_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.pem");
        let trust = Trust {
            cacert: Some(&missing),
            insecure: false,
        };
        assert!(client_config(&trust).unwrap_err().contains("--cacert"));
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let trust = Trust {
            cacert: Some(&empty),
            insecure: false,
        };
        assert!(client_config(&trust)
            .unwrap_err()
            .contains("no certificate"));
    }

    #[test]
    fn a_cacert_from_rcgen_is_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["ca.test".into()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, ca.pem()).unwrap();
        let trust = Trust {
            cacert: Some(&path),
            insecure: false,
        };
        assert!(client_config(&trust).is_ok());
        assert!(client_config(&Trust {
            cacert: None,
            insecure: true
        })
        .is_ok());
    }
}

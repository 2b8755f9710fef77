//! TLS on the serving port (`--tls-cert`/`--tls-key`, or ACME): rustls with
//! the `ring` provider, driven as a state machine fed bytes, never a thread
//! of its own.
//!
//! - [`certs`]: the certificates the server presents: the serving pair,
//!   swapped atomically when the files change or a renewal lands, and the
//!   ACME `tls-alpn-01` challenge certificates; loading and checking a PEM
//!   pair; the server's rustls configuration.
//! - [`validity`]: a certificate's `notBefore` and `notAfter`, read from
//!   its DER (pure): when ACME renews, and the expiry gauge of `/metrics`.
//! - [`reload`]: reloading `--tls-cert`/`--tls-key` when either file
//!   changes (inotify on their directories) or on SIGHUP.
//! - [`Tls`]: what the server holds when its port speaks TLS: the
//!   certificates, the rustls configuration built on them, and the
//!   handshake failures counted by reason.
//!
//! It must not know HTTP, WebSocket framing or sockets' owners: the door
//! and the engine drive the sessions it configures.

pub mod certs;
pub mod reload;
pub mod validity;

use certs::Certs;
use rustls::ServerConfig;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// The one crypto provider strand uses everywhere (server, ACME client,
/// `strand bench`, Redis): `ring`, which builds with a C compiler alone and
/// links into the static binary. rustls marks `ring`'s provider deprecated
/// because it has no post-quantum key exchange; `aws-lc-rs`, which has,
/// needs cmake and Go to build and does not fit the static binary.
///
/// Key exchange prefers X25519, as browsers do: `ring`'s provider lists
/// P-384 first, which costs a handshake several times as much CPU.
#[allow(deprecated)]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    use rustls::crypto::ring::{default_provider, kx_group};
    Arc::new(rustls::crypto::CryptoProvider {
        kx_groups: vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1],
        ..default_provider()
    })
}

/// TLS on the serving port: built once at start and shared by the door
/// (handshakes), the router (answers) and the ACME client (which installs
/// certificates in `certs`).
#[derive(Debug)]
pub struct Tls {
    /// The certificates every handshake is shown: the serving pair (empty
    /// until ACME's first certificate) and ACME's challenge certificates.
    pub certs: Arc<Certs>,
    /// The rustls configuration of every session, resolving from `certs`.
    pub config: Arc<ServerConfig>,
    failures: [AtomicU64; Failure::ALL.len()],
}

impl Tls {
    /// TLS serving whatever `certs` holds.
    pub fn new(certs: Arc<Certs>) -> Arc<Tls> {
        Arc::new(Tls {
            config: certs::server_config(certs.clone()),
            certs,
            failures: Default::default(),
        })
    }

    /// A new server-side session for an accepted socket.
    pub fn session(&self) -> Result<Box<rustls::ServerConnection>, rustls::Error> {
        rustls::ServerConnection::new(self.config.clone()).map(Box::new)
    }

    /// Counts one handshake that failed for `why`.
    pub fn failed(&self, why: Failure) {
        self.failures[why as usize].fetch_add(1, Relaxed);
    }

    /// Handshakes that failed for `why` so far.
    pub fn failures(&self, why: Failure) -> u64 {
        self.failures[why as usize].load(Relaxed)
    }

    /// The TLS families of `/metrics`: the serving certificate's expiry
    /// and the handshake failures by reason.
    pub fn metrics_text(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP strand_tls_certificate_expiry_timestamp_seconds When the serving certificate \
             expires (its notAfter, Unix time); absent while none is installed.\n\
             # TYPE strand_tls_certificate_expiry_timestamp_seconds gauge\n",
        );
        let not_after = self
            .certs
            .current()
            .and_then(|pair| pair.cert.first().and_then(|leaf| validity::not_after(leaf)));
        if let Some(at) = not_after {
            let _ = writeln!(out, "strand_tls_certificate_expiry_timestamp_seconds {at}");
        }
        out.push_str(
            "# HELP strand_tls_handshake_failures_total TLS handshakes that failed, by reason.\n\
             # TYPE strand_tls_handshake_failures_total counter\n",
        );
        for why in Failure::ALL {
            let _ = writeln!(
                out,
                "strand_tls_handshake_failures_total{{reason=\"{}\"}} {}",
                why.label(),
                self.failures(why)
            );
        }
        out
    }
}

/// Why a TLS handshake failed, as counted in `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The client spoke something else first (plain HTTP to the TLS port).
    NotTls,
    /// The handshake and request head were not complete within the head
    /// deadline.
    Timeout,
    /// The client refused the certificate (a `bad_certificate`,
    /// `unknown_ca`, `certificate_expired`... alert).
    BadCertificate,
    /// No protocol version, cipher suite, group, signature scheme or ALPN
    /// protocol in common.
    NoSharedCipher,
    /// No certificate to show (ACME before its first certificate).
    NoCertificate,
    /// The client closed before the handshake completed.
    Closed,
    /// Anything else (a malformed message, an unexpected alert).
    Other,
}

impl Failure {
    /// Every reason, in the order `/metrics` lists them.
    pub const ALL: [Failure; 7] = [
        Failure::NotTls,
        Failure::Timeout,
        Failure::BadCertificate,
        Failure::NoSharedCipher,
        Failure::NoCertificate,
        Failure::Closed,
        Failure::Other,
    ];

    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Failure::NotTls => "not_tls",
            Failure::Timeout => "timeout",
            Failure::BadCertificate => "bad_certificate",
            Failure::NoSharedCipher => "no_shared_cipher",
            Failure::NoCertificate => "no_certificate",
            Failure::Closed => "closed",
            Failure::Other => "other",
        }
    }

    /// The reason of a handshake that rustls ended with `error`.
    pub fn of(error: &rustls::Error) -> Failure {
        use rustls::AlertDescription as A;
        match error {
            rustls::Error::AlertReceived(
                A::BadCertificate
                | A::UnsupportedCertificate
                | A::CertificateRevoked
                | A::CertificateExpired
                | A::CertificateUnknown
                | A::UnknownCA
                | A::AccessDenied,
            ) => Failure::BadCertificate,
            rustls::Error::AlertReceived(A::HandshakeFailure | A::ProtocolVersion)
            | rustls::Error::PeerIncompatible(_)
            | rustls::Error::NoApplicationProtocol => Failure::NoSharedCipher,
            rustls::Error::General(why) if why.contains("no server certificate") => {
                Failure::NoCertificate
            }
            _ => Failure::Other,
        }
    }
}

//! TLS on the serving port (`--tls-cert`/`--tls-key`, or ACME): rustls with
//! the `ring` provider, driven as a state machine fed bytes, never a thread
//! of its own.
//!
//! - [`certs`]: the certificates the server presents: the serving pair,
//!   swapped atomically when the files change or a renewal lands, and the
//!   ACME `tls-alpn-01` challenge certificates; loading and checking a PEM
//!   pair; the server's rustls configuration.
//! - [`validity`]: a certificate's notBefore and notAfter, read from DER
//!   (renewal, the expiry metric).
//!
//! It must not know HTTP, WebSocket framing or sockets' owners: the door
//! and the engine drive the sessions it configures.

pub mod certs;
pub mod validity;

use std::sync::Arc;

/// The one crypto provider strand uses everywhere (server, ACME client,
/// `strand bench`, Redis): `ring`, which builds with a C compiler alone and
/// links into the static binary. rustls marks `ring`'s provider deprecated
/// because it has no post-quantum key exchange; `aws-lc-rs`, which has,
/// needs cmake and Go to build and does not fit the static binary.
#[allow(deprecated)]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

//! The one rule for what an operator may do or see: `GET /admin/stats`
//! and `POST /broadcast` (the contract's "operator view" and HTTP table).
//! With `--admin-token`, a request needs `Authorization: Bearer <token>`
//! (401 without it or with another); without one, only clients on the
//! loopback address are answered (403 for any other). And the warning
//! strand logs at start when it listens beyond loopback without a token.
//!
//! [`verdict`] is pure; [`admit`] applies it to a request. Handlers call
//! [`admit`] first and nothing else decides who is an operator.

use super::{access, Request, Response};
use std::net::{IpAddr, SocketAddr};

/// Who may go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// An operator.
    Allowed,
    /// A token is configured and this request did not bring it: 401.
    Unauthorized,
    /// No token is configured and the client is not on loopback: 403.
    Forbidden,
}

/// The rule: `admin_token` configured or not, the request's Bearer token,
/// the client's address (`None`: unknown, never loopback).
pub fn verdict(admin_token: Option<&str>, bearer: Option<&str>, peer: Option<IpAddr>) -> Verdict {
    match admin_token {
        Some(token) => match bearer {
            Some(given) if same(given.as_bytes(), token.as_bytes()) => Verdict::Allowed,
            _ => Verdict::Unauthorized,
        },
        None if peer.is_some_and(is_loopback) => Verdict::Allowed,
        None => Verdict::Forbidden,
    }
}

/// Applies [`verdict`] to `request` for `what` (e.g. `GET /admin/stats`):
/// the error answer when it may not go on.
pub fn admit(admin_token: Option<&str>, request: &Request, what: &str) -> Result<(), Response> {
    let bearer = access::bearer_token(request);
    let peer = request.peer.map(|p| p.ip());
    match verdict(admin_token, bearer.as_deref(), peer) {
        Verdict::Allowed => Ok(()),
        Verdict::Unauthorized => Err(Response::error(
            401,
            &format!("{what} needs Authorization: Bearer <admin token>"),
        )
        .header("WWW-Authenticate: Bearer")),
        Verdict::Forbidden => Err(Response::error(
            403,
            &format!(
                "{what} answers only loopback clients when no --admin-token is set; \
                 set one to reach it from elsewhere"
            ),
        )),
    }
}

/// Whether `ip` is a loopback address (IPv4 127/8, `::1`, or IPv4
/// loopback mapped into IPv6).
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// The warning to log at start when strand listens on `addr` beyond
/// loopback without `--admin-token`; `None` when there is nothing to say.
pub fn startup_warning(addr: SocketAddr, admin_token: Option<&str>) -> Option<String> {
    if admin_token.is_some() || is_loopback(addr.ip()) {
        return None;
    }
    Some(format!(
        "listening on {addr}, beyond loopback, without --admin-token: GET /admin/stats and \
         POST /broadcast answer only loopback clients (403 for others); behind a proxy on \
         this host every client is loopback, so set --admin-token"
    ))
}

/// Compares a secret in time independent of where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn with_a_token_only_the_token_counts() {
        let t = Some("s3cret");
        assert_eq!(
            verdict(t, Some("s3cret"), ip("203.0.113.9")),
            Verdict::Allowed
        );
        assert_eq!(verdict(t, Some("s3cret"), None), Verdict::Allowed);
        assert_eq!(verdict(t, None, ip("127.0.0.1")), Verdict::Unauthorized);
        assert_eq!(
            verdict(t, Some("s3cre"), ip("127.0.0.1")),
            Verdict::Unauthorized
        );
        assert_eq!(
            verdict(t, Some("s3cretX"), ip("::1")),
            Verdict::Unauthorized
        );
    }

    #[test]
    fn without_a_token_only_loopback() {
        assert_eq!(verdict(None, None, ip("127.0.0.1")), Verdict::Allowed);
        assert_eq!(verdict(None, None, ip("127.8.9.10")), Verdict::Allowed);
        assert_eq!(verdict(None, None, ip("::1")), Verdict::Allowed);
        assert_eq!(
            verdict(None, None, ip("::ffff:127.0.0.1")),
            Verdict::Allowed
        );
        assert_eq!(verdict(None, Some("x"), ip("10.0.0.2")), Verdict::Forbidden);
        assert_eq!(
            verdict(None, None, ip("::ffff:10.0.0.2")),
            Verdict::Forbidden
        );
        assert_eq!(verdict(None, None, ip("fe80::1")), Verdict::Forbidden);
        assert_eq!(verdict(None, None, None), Verdict::Forbidden);
    }

    #[test]
    fn the_warning_is_for_open_binds_without_a_token() {
        let warn = |a: &str, t: Option<&str>| startup_warning(a.parse().unwrap(), t).is_some();
        assert!(warn("0.0.0.0:8000", None));
        assert!(warn("[::]:8000", None));
        assert!(warn("192.0.2.1:8000", None));
        assert!(!warn("127.0.0.1:8000", None));
        assert!(!warn("[::1]:8000", None));
        assert!(!warn("0.0.0.0:8000", Some("t")));
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
    }
}

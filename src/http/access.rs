//! Who may upgrade: the `Origin` check against cross-site WebSocket
//! hijacking, and HS256 JWTs when `--jwt-secret` is set. Verification uses
//! the RustCrypto `hmac` crate (constant-time comparison); only the JWT's
//! framing (base64url parts, JSON claims) is handled here.

use crate::http::Request;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Whether a browser's `Origin` may upgrade: requests without `Origin`
/// (non-browser clients) pass; so do the server's own origin (the `Host`
/// the request was sent to) and every origin in `allowed` (`*`: any).
pub fn origin_allowed(request: &Request, allowed: &[String]) -> bool {
    let Some(origin) = request.header("origin") else {
        return true;
    };
    if allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let authority = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    request
        .header("host")
        .is_some_and(|host| host.eq_ignore_ascii_case(authority))
}

/// The token of a request: `?token=` or `Authorization: Bearer`.
pub fn bearer_or_query_token(request: &Request) -> Option<String> {
    request
        .query_param("token")
        .or_else(|| bearer_token(request))
}

/// The token of `Authorization: Bearer <token>`.
pub fn bearer_token(request: &Request) -> Option<String> {
    let value = request.header("authorization")?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Not three base64url parts of JSON.
    Malformed,
    /// The header's `alg` is not HS256.
    WrongAlgorithm,
    /// The signature does not verify with the secret.
    BadSignature,
    /// `exp` is missing or in the past.
    Expired,
    /// No string `sub` claim.
    NoSubject,
}

/// Verifies an HS256 JWT with `secret` at Unix time `now`; returns its `sub`.
pub fn verify_jwt(token: &str, secret: &[u8], now: u64) -> Result<String, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let decode_json = |part: &str| -> Result<serde_json::Value, TokenError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| TokenError::Malformed)?;
        serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
    };
    if decode_json(header)?["alg"] != "HS256" {
        return Err(TokenError::WrongAlgorithm);
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| TokenError::Malformed)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| TokenError::BadSignature)?;
    mac.update(header.as_bytes());
    mac.update(b".");
    mac.update(payload.as_bytes());
    mac.verify_slice(&signature)
        .map_err(|_| TokenError::BadSignature)?;
    let claims = decode_json(payload)?;
    match claims["exp"].as_f64() {
        Some(exp) if exp > now as f64 => {}
        _ => return Err(TokenError::Expired),
    }
    claims["sub"]
        .as_str()
        .map(str::to_string)
        .ok_or(TokenError::NoSubject)
}

/// Signs `claims` as an HS256 JWT: for tests and for tools that mint tokens.
pub fn sign_jwt(claims: &serde_json::Value, secret: &[u8]) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(format!("{header}.{payload}").as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{header}.{payload}.{signature}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_signed_token_verifies_and_yields_its_subject() {
        let t = sign_jwt(&json!({"sub": "alice", "exp": 2000}), b"s3cret");
        assert_eq!(verify_jwt(&t, b"s3cret", 1000), Ok("alice".into()));
    }

    #[test]
    fn wrong_secret_expiry_and_garbage_are_refused() {
        let t = sign_jwt(&json!({"sub": "alice", "exp": 2000}), b"s3cret");
        assert_eq!(
            verify_jwt(&t, b"other", 1000),
            Err(TokenError::BadSignature)
        );
        assert_eq!(verify_jwt(&t, b"s3cret", 3000), Err(TokenError::Expired));
        assert_eq!(verify_jwt("a.b", b"s3cret", 0), Err(TokenError::Malformed));
        let no_exp = sign_jwt(&json!({"sub": "alice"}), b"s3cret");
        assert_eq!(verify_jwt(&no_exp, b"s3cret", 0), Err(TokenError::Expired));
    }

    #[test]
    fn a_tampered_payload_fails_the_signature() {
        let t = sign_jwt(&json!({"sub": "alice", "exp": 2000}), b"k");
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(json!({"sub": "mallory", "exp": 2000}).to_string());
        parts[1] = &forged;
        assert_eq!(
            verify_jwt(&parts.join("."), b"k", 0),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn origins() {
        let req = |origin: Option<&str>| Request {
            headers: [("host".to_string(), "example.org:8000".to_string())]
                .into_iter()
                .chain(origin.map(|o| ("origin".to_string(), o.to_string())))
                .collect(),
            ..Default::default()
        };
        assert!(origin_allowed(&req(None), &[]));
        assert!(origin_allowed(&req(Some("http://example.org:8000")), &[]));
        assert!(!origin_allowed(&req(Some("http://evil.test")), &[]));
        assert!(origin_allowed(
            &req(Some("http://evil.test")),
            &["*".into()]
        ));
        assert!(origin_allowed(
            &req(Some("https://app.test")),
            &["https://app.test".into()]
        ));
    }
}

//! RFC 8555's objects and the decisions made on them, as pure functions:
//! what an order's state asks for next, which challenge to answer, what a
//! problem document means, how long `Retry-After` says to wait.
//!
//! It must not do I/O or keep time: the client feeds it each answer and
//! acts on the step it returns, so the whole protocol is tested without a
//! network.

use serde::Deserialize;
use std::time::{Duration, SystemTime};

/// The directory: the URLs of the CA's resources.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Directory {
    /// Where a fresh nonce is fetched.
    pub new_nonce: String,
    /// Where an account is created or found by its key.
    pub new_account: String,
    /// Where an order is placed.
    pub new_order: String,
}

/// A problem document (RFC 7807, RFC 8555 §6.7).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Problem {
    /// `urn:ietf:params:acme:error:...`
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The CA's words.
    #[serde(default)]
    pub detail: String,
    /// Per-identifier problems, if any.
    #[serde(default)]
    pub subproblems: Vec<Problem>,
}

impl Problem {
    /// The short name after `urn:ietf:params:acme:error:` (`badNonce`).
    pub fn short_kind(&self) -> &str {
        self.kind
            .strip_prefix("urn:ietf:params:acme:error:")
            .unwrap_or(&self.kind)
    }

    /// The nonce was refused: retry with the one the answer carries.
    pub fn is_bad_nonce(&self) -> bool {
        self.short_kind() == "badNonce"
    }

    /// The CA's rate limit: back off, never order again in a loop.
    pub fn is_rate_limited(&self) -> bool {
        self.short_kind() == "rateLimited"
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // What a user can act on first: the CA's own sentence.
        let what = match self.short_kind() {
            "connection" => "the CA could not connect to this host",
            "dns" => "the CA could not resolve the domain",
            "unauthorized" => "the CA saw a wrong answer to the challenge",
            "tls" => "the CA's TLS connection to this host failed",
            "incorrectResponse" => "the CA saw a wrong answer to the challenge",
            "rateLimited" => "the CA's rate limit was reached",
            "rejectedIdentifier" => "the CA will not issue for this name",
            _ => "",
        };
        if !what.is_empty() {
            write!(f, "{what}: ")?;
        }
        write!(f, "{} ({})", self.detail, self.short_kind())?;
        for sub in &self.subproblems {
            write!(f, "; {} ({})", sub.detail, sub.short_kind())?;
        }
        Ok(())
    }
}

/// An order (RFC 8555 §7.1.3).
#[derive(Debug, Clone, Deserialize)]
pub struct Order {
    /// pending, ready, processing, valid or invalid.
    pub status: String,
    /// The authorizations' URLs.
    #[serde(default)]
    pub authorizations: Vec<String>,
    /// Where the CSR goes.
    #[serde(default)]
    pub finalize: String,
    /// The certificate's URL once valid.
    #[serde(default)]
    pub certificate: Option<String>,
    /// Why it became invalid.
    #[serde(default)]
    pub error: Option<Problem>,
}

/// What an order's state asks for next.
#[derive(Debug, PartialEq)]
pub enum OrderStep {
    /// Prove control of the names (the authorizations' URLs).
    Authorize(Vec<String>),
    /// Send the CSR.
    Finalize,
    /// The CA is working: ask again after a while.
    Wait,
    /// Fetch the certificate from this URL.
    Download(String),
    /// The order failed, for this reason.
    Failed(Problem),
}

/// The step an order in `order`'s state calls for.
pub fn order_step(order: &Order) -> OrderStep {
    match order.status.as_str() {
        "pending" => OrderStep::Authorize(order.authorizations.clone()),
        "ready" => OrderStep::Finalize,
        "processing" => OrderStep::Wait,
        "valid" => match &order.certificate {
            Some(url) => OrderStep::Download(url.clone()),
            // Valid without a certificate URL is a CA bug; asking again is
            // what RFC 8555 clients do with a CA in between states.
            None => OrderStep::Wait,
        },
        other => OrderStep::Failed(order.error.clone().unwrap_or_else(|| Problem {
            kind: "orderInvalid".into(),
            detail: format!("the order is {other}"),
            subproblems: Vec::new(),
        })),
    }
}

/// An identifier: a DNS name.
#[derive(Debug, Clone, Deserialize)]
pub struct Identifier {
    /// The name.
    pub value: String,
}

/// An authorization (RFC 8555 §7.1.4).
#[derive(Debug, Clone, Deserialize)]
pub struct Authorization {
    /// pending, valid, invalid, deactivated, expired or revoked.
    pub status: String,
    /// The name it authorizes.
    pub identifier: Identifier,
    /// The ways to prove it.
    #[serde(default)]
    pub challenges: Vec<Challenge>,
}

/// A challenge (RFC 8555 §7.1.5).
#[derive(Debug, Clone, Deserialize)]
pub struct Challenge {
    /// `http-01`, `tls-alpn-01`, `dns-01`...
    #[serde(rename = "type")]
    pub kind: String,
    /// Where to say it is ready, and to poll it.
    pub url: String,
    /// pending, processing, valid or invalid.
    #[serde(default)]
    pub status: String,
    /// The token of the key authorization.
    #[serde(default)]
    pub token: String,
    /// Why validation failed.
    #[serde(default)]
    pub error: Option<Problem>,
}

/// `http-01`.
pub const HTTP_01: &str = "http-01";
/// `tls-alpn-01`.
pub const TLS_ALPN_01: &str = "tls-alpn-01";

/// What an authorization's state asks for next.
#[derive(Debug, PartialEq)]
pub enum AuthzStep {
    /// Already proven (a recent order for the same name).
    Done,
    /// Answer this challenge (its index in `challenges`).
    Respond(usize),
    /// Validation is under way: ask again after a while.
    Wait,
    /// It failed, for this reason.
    Failed(Problem),
}

/// The step an authorization calls for; `http_first` when `--acme-http`
/// serves `http-01` (else only `tls-alpn-01` is answered). `answered`
/// once the client has said it is ready.
pub fn authz_step(authz: &Authorization, http_first: bool, answered: bool) -> AuthzStep {
    match authz.status.as_str() {
        "valid" => AuthzStep::Done,
        "pending" if answered => AuthzStep::Wait,
        "pending" => match choose_challenge(&authz.challenges, http_first) {
            Some(i) => AuthzStep::Respond(i),
            None => AuthzStep::Failed(Problem {
                kind: "unsupportedChallenge".into(),
                detail: format!(
                    "the CA offers {} for {}, and strand answers {}",
                    offered(&authz.challenges),
                    authz.identifier.value,
                    if http_first {
                        "http-01 or tls-alpn-01"
                    } else {
                        "tls-alpn-01 (http-01 with --acme-http)"
                    }
                ),
                subproblems: Vec::new(),
            }),
        },
        _ => AuthzStep::Failed(
            authz
                .challenges
                .iter()
                .find_map(|c| c.error.clone())
                .unwrap_or_else(|| Problem {
                    kind: "unauthorized".into(),
                    detail: format!(
                        "the authorization for {} is {}",
                        authz.identifier.value, authz.status
                    ),
                    subproblems: Vec::new(),
                }),
        ),
    }
}

fn offered(challenges: &[Challenge]) -> String {
    let kinds: Vec<&str> = challenges.iter().map(|c| c.kind.as_str()).collect();
    if kinds.is_empty() {
        "no challenge".into()
    } else {
        kinds.join(", ")
    }
}

/// The challenge strand answers: `http-01` when it serves it and the CA
/// offers it, else `tls-alpn-01`.
pub fn choose_challenge(challenges: &[Challenge], http_first: bool) -> Option<usize> {
    let find = |kind: &str| challenges.iter().position(|c| c.kind == kind);
    if http_first {
        if let Some(i) = find(HTTP_01) {
            return Some(i);
        }
    }
    find(TLS_ALPN_01)
}

/// How long a `Retry-After` header says to wait (seconds or an HTTP date),
/// within `[floor, ceiling]`; `floor` when absent or unreadable.
pub fn retry_after(
    header: Option<&str>,
    now: SystemTime,
    floor: Duration,
    ceiling: Duration,
) -> Duration {
    let Some(value) = header.map(str::trim) else {
        return floor;
    };
    let wait = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => match httpdate(value) {
            Some(at) => at.duration_since(now).unwrap_or_default(),
            None => floor,
        },
    };
    wait.clamp(floor, ceiling)
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the only form of
/// HTTP date a current server sends.
fn httpdate(s: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts[..] else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == month)? as u32 + 1;
    let hms: Vec<u64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, sec] = hms[..] else { return None };
    let days = crate::tls::validity::days_from_civil(year.parse().ok()?, month, day.parse().ok()?)?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(days * 86_400 + h * 3600 + m * 60 + sec))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(json: &str) -> Order {
        serde_json::from_str(json).unwrap()
    }

    fn authz(status: &str, kinds: &[&str]) -> Authorization {
        Authorization {
            status: status.into(),
            identifier: Identifier {
                value: "example.org".into(),
            },
            challenges: kinds
                .iter()
                .map(|k| Challenge {
                    kind: k.to_string(),
                    url: format!("https://ca/chall/{k}"),
                    status: "pending".into(),
                    token: "tok".into(),
                    error: None,
                })
                .collect(),
        }
    }

    #[test]
    fn each_order_state_names_its_step() {
        let pending = order(
            r#"{"status":"pending","authorizations":["https://ca/a/1"],"finalize":"https://ca/f"}"#,
        );
        assert_eq!(
            order_step(&pending),
            OrderStep::Authorize(vec!["https://ca/a/1".into()])
        );
        assert_eq!(
            order_step(&order(r#"{"status":"ready"}"#)),
            OrderStep::Finalize
        );
        assert_eq!(
            order_step(&order(r#"{"status":"processing"}"#)),
            OrderStep::Wait
        );
        assert_eq!(
            order_step(&order(r#"{"status":"valid","certificate":"https://ca/c"}"#)),
            OrderStep::Download("https://ca/c".into())
        );
        let invalid = order(
            r#"{"status":"invalid","error":{"type":"urn:ietf:params:acme:error:connection","detail":"refused"}}"#,
        );
        let OrderStep::Failed(problem) = order_step(&invalid) else {
            panic!("an invalid order fails");
        };
        assert_eq!(
            problem.to_string(),
            "the CA could not connect to this host: refused (connection)"
        );
    }

    #[test]
    fn http_01_is_answered_only_with_acme_http_and_tls_alpn_01_is_the_fallback() {
        let both = authz("pending", &["dns-01", "tls-alpn-01", "http-01"]);
        assert_eq!(authz_step(&both, true, false), AuthzStep::Respond(2));
        assert_eq!(authz_step(&both, false, false), AuthzStep::Respond(1));
        let tls_only = authz("pending", &["tls-alpn-01"]);
        assert_eq!(authz_step(&tls_only, true, false), AuthzStep::Respond(0));
        let http_only = authz("pending", &["http-01", "dns-01"]);
        let AuthzStep::Failed(problem) = authz_step(&http_only, false, false) else {
            panic!("no challenge strand can answer");
        };
        assert!(problem.detail.contains("http-01, dns-01"), "{problem}");
        assert_eq!(authz_step(&both, true, true), AuthzStep::Wait);
        assert_eq!(
            authz_step(&authz("valid", &[]), false, false),
            AuthzStep::Done
        );
    }

    #[test]
    fn a_failed_authorization_carries_the_challenge_error() {
        let mut failed = authz("invalid", &["tls-alpn-01"]);
        failed.challenges[0].error = Some(Problem {
            kind: "urn:ietf:params:acme:error:tls".into(),
            detail: "no certificate for example.org".into(),
            subproblems: Vec::new(),
        });
        let AuthzStep::Failed(problem) = authz_step(&failed, false, true) else {
            panic!("invalid fails");
        };
        assert_eq!(problem.short_kind(), "tls");
    }

    #[test]
    fn problems_are_recognized() {
        let p: Problem = serde_json::from_str(
            r#"{"type":"urn:ietf:params:acme:error:badNonce","detail":"JWS has an invalid anti-replay nonce"}"#,
        )
        .unwrap();
        assert!(p.is_bad_nonce() && !p.is_rate_limited());
        let p: Problem =
            serde_json::from_str(r#"{"type":"urn:ietf:params:acme:error:rateLimited"}"#).unwrap();
        assert!(p.is_rate_limited());
    }

    #[test]
    fn retry_after_reads_seconds_and_dates_within_bounds() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        let (floor, ceiling) = (Duration::from_secs(1), Duration::from_secs(60));
        assert_eq!(retry_after(None, now, floor, ceiling), floor);
        assert_eq!(
            retry_after(Some("5"), now, floor, ceiling),
            Duration::from_secs(5)
        );
        assert_eq!(retry_after(Some("3600"), now, floor, ceiling), ceiling);
        assert_eq!(
            retry_after(Some("Sun, 06 Nov 1994 08:50:07 GMT"), now, floor, ceiling),
            Duration::from_secs(30)
        );
        assert_eq!(retry_after(Some("soon"), now, floor, ceiling), floor);
    }
}

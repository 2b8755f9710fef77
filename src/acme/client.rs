//! The thin loop that drives an order over HTTPS: directory, nonce,
//! account, order, challenges, finalize, certificate. Each answer goes to
//! [`super::protocol`], which says what to do next.
//!
//! `badNonce` is retried at once with the nonce the refusal carries;
//! polling waits as `Retry-After` says (1 to 10 s). It never places a
//! second order on its own: a failure goes back to the caller, which
//! backs off.
//!
//! It must not keep state across orders or touch files: the manager
//! stores what it returns.

use super::challenge::Responder;
use super::jws::{b64, AccountKey};
use super::protocol::{
    authz_step, order_step, retry_after, Authorization, AuthzStep, Directory, Order, OrderStep,
    Problem,
};
use super::transport::{Reply, Transport};
use serde_json::{json, Value};
use std::fmt;
use std::time::{Duration, Instant, SystemTime};

/// How many times one request is re-signed after `badNonce`.
const NONCE_RETRIES: usize = 5;
/// The shortest and longest wait between polls.
const POLL_FLOOR: Duration = Duration::from_secs(1);
const POLL_CEILING: Duration = Duration::from_secs(10);
/// The longest `Retry-After` on a refusal that is obeyed.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(86_400);
/// How long one order may take, validations included.
const ORDER_DEADLINE: Duration = Duration::from_secs(300);

/// Why an order failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum AcmeError {
    /// The CA could not be reached or its answer not read (network, TLS,
    /// a wrong `--acme-directory` or `--acme-ca`). Retry later.
    Transport(String),
    /// The CA refused a request with this problem document, and asked to
    /// wait this long before the next (`Retry-After`, with `rateLimited`).
    Refused(Problem, Option<Duration>),
    /// The CA's validation or the order failed (a challenge it could not
    /// reach, a name it will not issue for).
    Failed(Problem),
    /// The CA's answer made no sense to this client.
    Protocol(String),
    /// Something local: a key, the CSR, a challenge certificate.
    Local(String),
    /// The order did not complete in time.
    TimedOut(String),
}

impl AcmeError {
    /// The CA's rate limit was hit: wait long before trying again.
    pub fn is_rate_limited(&self) -> bool {
        matches!(self, AcmeError::Refused(p, _) | AcmeError::Failed(p) if p.is_rate_limited())
    }

    /// How long the CA asked to wait before trying again, if it did.
    pub fn wait(&self) -> Option<Duration> {
        match self {
            AcmeError::Refused(_, wait) => *wait,
            _ => None,
        }
    }

    /// The label of `strand_acme_orders_total{result}`.
    pub fn label(&self) -> &'static str {
        match self {
            _ if self.is_rate_limited() => "rate_limited",
            AcmeError::Transport(_) => "unreachable",
            AcmeError::Refused(..) | AcmeError::Protocol(_) => "refused",
            AcmeError::Failed(_) => "invalid",
            AcmeError::Local(_) => "local",
            AcmeError::TimedOut(_) => "timeout",
        }
    }
}

impl fmt::Display for AcmeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AcmeError::Transport(why) => write!(f, "the CA could not be reached: {why}"),
            AcmeError::Refused(p, _) => write!(f, "the CA refused: {p}"),
            AcmeError::Failed(p) => write!(f, "{p}"),
            AcmeError::Protocol(why) => write!(f, "unexpected answer from the CA: {why}"),
            AcmeError::Local(why) => write!(f, "{why}"),
            AcmeError::TimedOut(what) => write!(f, "timed out waiting for {what}"),
        }
    }
}

impl std::error::Error for AcmeError {}

/// A certificate obtained: its chain and its key, PEM.
#[derive(Debug)]
pub struct Issued {
    /// The chain, leaf first.
    pub chain_pem: String,
    /// The certificate's key (PKCS#8).
    pub key_pem: String,
}

/// A session with one directory, for one account key.
pub struct Client<'k> {
    transport: Transport,
    key: &'k AccountKey,
    directory: Directory,
    account: Option<String>,
    nonce: Option<String>,
}

impl fmt::Debug for Client<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

fn parse<T: serde::de::DeserializeOwned>(reply: &Reply, what: &str) -> Result<T, AcmeError> {
    serde_json::from_slice(&reply.body).map_err(|e| {
        AcmeError::Protocol(format!(
            "{what}: {e} in {:?}",
            String::from_utf8_lossy(&reply.body[..reply.body.len().min(200)])
        ))
    })
}

impl<'k> Client<'k> {
    /// Fetches the directory at `url`.
    pub fn connect(
        transport: Transport,
        key: &'k AccountKey,
        url: &str,
    ) -> Result<Client<'k>, AcmeError> {
        let reply = transport.get(url).map_err(AcmeError::Transport)?;
        if reply.status != 200 {
            return Err(AcmeError::Transport(format!(
                "{url} answered {} (is it an ACME directory?)",
                reply.status
            )));
        }
        let directory = parse(&reply, "the directory")?;
        Ok(Client {
            transport,
            key,
            directory,
            account: None,
            nonce: None,
        })
    }

    fn fresh_nonce(&mut self) -> Result<String, AcmeError> {
        if let Some(nonce) = self.nonce.take() {
            return Ok(nonce);
        }
        let reply = self
            .transport
            .head(&self.directory.new_nonce)
            .map_err(AcmeError::Transport)?;
        reply
            .nonce
            .ok_or_else(|| AcmeError::Protocol("newNonce gave no Replay-Nonce".into()))
    }

    /// A signed POST (`payload`, or POST-as-GET when `None`), re-signed
    /// with the new nonce after `badNonce`; a problem answer is an error.
    fn post(&mut self, url: &str, payload: Option<&Value>) -> Result<Reply, AcmeError> {
        for _ in 0..=NONCE_RETRIES {
            let nonce = self.fresh_nonce()?;
            let body = self
                .key
                .sign(url, &nonce, self.account.as_deref(), payload)
                .map_err(AcmeError::Local)?;
            let reply = self
                .transport
                .post(url, &body)
                .map_err(AcmeError::Transport)?;
            self.nonce = reply.nonce.clone();
            if reply.status < 400 {
                return Ok(reply);
            }
            let problem: Problem =
                serde_json::from_slice(&reply.body).unwrap_or_else(|_| Problem {
                    kind: String::new(),
                    detail: format!("HTTP {} from {url}", reply.status),
                    subproblems: Vec::new(),
                });
            if problem.is_bad_nonce() {
                log::debug!("acme: badNonce from {url}, retrying with a fresh nonce");
                continue;
            }
            let wait = reply.retry_after.as_deref().map(|header| {
                retry_after(
                    Some(header),
                    SystemTime::now(),
                    Duration::ZERO,
                    MAX_RETRY_AFTER,
                )
            });
            return Err(AcmeError::Refused(problem, wait));
        }
        Err(AcmeError::Protocol(format!(
            "{url} refused {} nonces in a row",
            NONCE_RETRIES + 1
        )))
    }

    /// Creates the account, or finds the one of this key; its URL.
    pub fn account(&mut self, email: Option<&str>) -> Result<String, AcmeError> {
        let mut payload = json!({"termsOfServiceAgreed": true});
        if let Some(email) = email {
            payload["contact"] = json!([format!("mailto:{email}")]);
        }
        let url = self.directory.new_account.clone();
        let reply = self.post(&url, Some(&payload))?;
        let account = reply
            .location
            .ok_or_else(|| AcmeError::Protocol("newAccount gave no Location".into()))?;
        self.account = Some(account.clone());
        Ok(account)
    }

    /// Places one order for `domains` and sees it through; `responder`
    /// presents the challenges.
    pub fn order(
        &mut self,
        domains: &[String],
        responder: &Responder,
    ) -> Result<Issued, AcmeError> {
        let deadline = Instant::now() + ORDER_DEADLINE;
        let identifiers: Vec<Value> = domains
            .iter()
            .map(|d| json!({"type": "dns", "value": d}))
            .collect();
        let url = self.directory.new_order.clone();
        let reply = self.post(&url, Some(&json!({ "identifiers": identifiers })))?;
        let order_url = reply
            .location
            .clone()
            .ok_or_else(|| AcmeError::Protocol("newOrder gave no Location".into()))?;
        let mut order: Order = parse(&reply, "the order")?;
        let mut reply_retry = reply.retry_after;
        let mut cert_key = None;
        loop {
            match order_step(&order) {
                OrderStep::Authorize(authorizations) => {
                    for url in authorizations {
                        self.authorize(&url, responder, deadline)?;
                    }
                }
                OrderStep::Finalize => {
                    let (csr, key) = csr(domains)?;
                    let reply = self.post(&order.finalize.clone(), Some(&json!({"csr": csr})))?;
                    cert_key = Some(key);
                    reply_retry = reply.retry_after.clone();
                    order = parse(&reply, "the finalized order")?;
                    continue;
                }
                OrderStep::Wait => wait(reply_retry.as_deref(), deadline, "the order")?,
                OrderStep::Download(url) => {
                    let key_pem = cert_key.ok_or_else(|| {
                        AcmeError::Protocol("the order was valid before it was finalized".into())
                    })?;
                    let reply = self.post(&url, None)?;
                    let chain_pem = String::from_utf8(reply.body)
                        .map_err(|_| AcmeError::Protocol("the certificate is not PEM".into()))?;
                    return Ok(Issued { chain_pem, key_pem });
                }
                OrderStep::Failed(problem) => return Err(AcmeError::Failed(problem)),
            }
            let reply = self.post(&order_url, None)?;
            reply_retry = reply.retry_after.clone();
            order = parse(&reply, "the order")?;
        }
    }

    /// Proves control of one authorization's name.
    fn authorize(
        &mut self,
        url: &str,
        responder: &Responder,
        deadline: Instant,
    ) -> Result<(), AcmeError> {
        let mut presented: Option<(String, String, String)> = None;
        let result = (|| loop {
            let reply = self.post(url, None)?;
            let authz: Authorization = parse(&reply, "the authorization")?;
            match authz_step(&authz, responder.serves_http(), presented.is_some()) {
                AuthzStep::Done => return Ok(()),
                AuthzStep::Failed(problem) => return Err(AcmeError::Failed(problem)),
                AuthzStep::Wait => wait(reply.retry_after.as_deref(), deadline, "the validation")?,
                AuthzStep::Respond(i) => {
                    let challenge = &authz.challenges[i];
                    let domain = authz.identifier.value.clone();
                    let key_authorization = self.key.key_authorization(&challenge.token);
                    responder
                        .present(
                            &challenge.kind,
                            &domain,
                            &challenge.token,
                            &key_authorization,
                        )
                        .map_err(AcmeError::Local)?;
                    log::info!("acme: answering {} for {domain}", challenge.kind);
                    presented = Some((challenge.kind.clone(), domain, challenge.token.clone()));
                    self.post(&challenge.url.clone(), Some(&json!({})))?;
                }
            }
        })();
        if let Some((kind, domain, token)) = presented {
            responder.withdraw(&kind, &domain, &token);
        }
        result
    }
}

/// Sleeps as `Retry-After` says, unless that passes `deadline`.
fn wait(retry: Option<&str>, deadline: Instant, what: &str) -> Result<(), AcmeError> {
    let pause = retry_after(retry, SystemTime::now(), POLL_FLOOR, POLL_CEILING);
    if Instant::now() + pause > deadline {
        return Err(AcmeError::TimedOut(what.into()));
    }
    std::thread::sleep(pause);
    Ok(())
}

/// A new certificate key and the CSR for `domains` (base64url DER); the
/// key as PKCS#8 PEM.
fn csr(domains: &[String]) -> Result<(String, String), AcmeError> {
    let fail = |e: rcgen::Error| AcmeError::Local(format!("the CSR: {e}"));
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(fail)?;
    let mut params = rcgen::CertificateParams::new(domains.to_vec()).map_err(fail)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let request = params.serialize_request(&key).map_err(fail)?;
    Ok((b64(request.der()), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csr_names_every_domain() {
        let domains = vec!["example.org".to_string(), "www.example.org".to_string()];
        let (csr, key) = csr(&domains).unwrap();
        let der =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, csr).unwrap();
        for d in &domains {
            assert!(der.windows(d.len()).any(|w| w == d.as_bytes()), "{d}");
        }
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
    }

    #[test]
    fn errors_say_what_to_do_and_are_labelled() {
        let refused = AcmeError::Failed(Problem {
            kind: "urn:ietf:params:acme:error:connection".into(),
            detail: "127.0.0.1:443: connection refused".into(),
            subproblems: Vec::new(),
        });
        assert_eq!(
            refused.to_string(),
            "the CA could not connect to this host: 127.0.0.1:443: connection refused (connection)"
        );
        assert_eq!(refused.label(), "invalid");
        let limited = AcmeError::Refused(
            Problem {
                kind: "urn:ietf:params:acme:error:rateLimited".into(),
                ..Problem::default()
            },
            Some(Duration::from_secs(7200)),
        );
        assert_eq!(limited.wait(), Some(Duration::from_secs(7200)));
        assert!(limited.is_rate_limited());
        assert_eq!(limited.label(), "rate_limited");
    }
}

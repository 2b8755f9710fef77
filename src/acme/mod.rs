//! ACME (RFC 8555): strand obtains and renews its own certificate.
//!
//! One thread (`acme`) owns the whole life of the certificate: at start it
//! installs the certificate kept under `<data-dir>/acme/` if it is still
//! good, so a restart orders nothing; it orders when there is none, and
//! renews 30 days before expiry (2/3 of the lifetime for shorter ones),
//! backing off after failures while the old certificate keeps serving.
//!
//! - [`protocol`]: the objects and the pure decisions on them.
//! - [`jws`]: the account key and the signed requests.
//! - [`transport`]: HTTPS to the directory (HTTP/1.1 on rustls/ring).
//! - [`client`]: the loop that drives one order.
//! - [`challenge`]: the `tls-alpn-01` certificate and the `http-01` tokens.
//! - [`http01`]: the `--acme-http` listener.
//! - [`store`]: the files under `<data-dir>/acme/`.
//! - [`schedule`]: when to renew, how long to back off.
//!
//! It must not know the serving port's connections: it hands pairs to
//! [`Certs`] and the TLS layer serves them.

pub mod challenge;
pub mod client;
pub mod http01;
pub mod jws;
pub mod protocol;
pub mod schedule;
pub mod store;
pub mod transport;

use crate::config::AcmeConfig;
use crate::tls::certs::{pair_from_pem, Certs};
use crate::tls::validity::validity;
use challenge::{Responder, Tokens};
use client::{AcmeError, Client, Issued};
use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use store::Store;

/// The results counted in `strand_acme_orders_total{result}`.
const RESULTS: [&str; 7] = [
    "ok",
    "unreachable",
    "refused",
    "invalid",
    "rate_limited",
    "timeout",
    "local",
];

/// What `/metrics` shows of ACME (the serving certificate's expiry is the
/// TLS layer's, read from the pair it serves).
#[derive(Debug, Default)]
pub struct Stats {
    orders: [AtomicU64; RESULTS.len()],
}

impl Stats {
    fn count(&self, result: &str) {
        if let Some(i) = RESULTS.iter().position(|r| *r == result) {
            self.orders[i].fetch_add(1, Relaxed);
        }
    }

    /// Orders that ended with `result`.
    pub fn orders(&self, result: &str) -> u64 {
        RESULTS
            .iter()
            .position(|r| *r == result)
            .map_or(0, |i| self.orders[i].load(Relaxed))
    }

    /// `strand_acme_orders_total` as Prometheus text.
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# HELP strand_acme_orders_total ACME orders by how they ended.\n\
             # TYPE strand_acme_orders_total counter\n",
        );
        for (result, n) in RESULTS.iter().zip(&self.orders) {
            let _ = writeln!(
                out,
                "strand_acme_orders_total{{result=\"{result}\"}} {}",
                n.load(Relaxed)
            );
        }
        out
    }
}

/// Starts ACME for `config`: opens the store, installs a kept certificate
/// that is still good into `certs`, binds `--acme-http` (or serves
/// `http-01` on `http_listener`, a socket the service manager passed),
/// and starts the `acme` thread, which counts into `stats`. Errors (a
/// damaged account key, a bad `--acme-ca`, a port in use) refuse the
/// start. `https_port` is the serving port, for the listener's redirects.
pub fn start(
    config: &AcmeConfig,
    data_dir: &Path,
    certs: Arc<Certs>,
    https_port: u16,
    stats: Arc<Stats>,
    http_listener: Option<TcpListener>,
) -> Result<(), String> {
    let store = Store::open(data_dir)?;
    let key = store.account_key()?;
    let transport = transport::Transport::new(config.ca.as_deref())?;
    let listener = match (http_listener, config.http) {
        (Some(passed), _) => Some(passed),
        (None, Some(addr)) => Some(
            TcpListener::bind(addr)
                .map_err(|e| format!("--acme-http {addr}: cannot listen: {e}"))?,
        ),
        (None, None) => None,
    };
    let http = match listener {
        None => None,
        Some(listener) => {
            let addr = listener
                .local_addr()
                .map_or_else(|e| e.to_string(), |a| a.to_string());
            let tokens = Arc::new(Tokens::default());
            http01::spawn(listener, tokens.clone(), https_port)
                .map_err(|e| format!("--acme-http: cannot start its thread: {e}"))?;
            log::info!("acme: http-01 and redirects to https on {addr}");
            Some(tokens)
        }
    };
    let mut manager = Manager {
        config: config.clone(),
        store,
        responder: Responder {
            certs: certs.clone(),
            http,
        },
        stats: stats.clone(),
        kept: None,
        failures: 0,
    };
    manager.install_kept();
    std::thread::Builder::new()
        .name("acme".into())
        .spawn(move || manager.run(key, transport))
        .map_err(|e| format!("cannot start the acme thread: {e}"))?;
    Ok(())
}

/// The `acme` thread's state.
struct Manager {
    config: AcmeConfig,
    store: Store,
    responder: Responder,
    stats: Arc<Stats>,
    /// The serving certificate's notBefore and notAfter.
    kept: Option<(SystemTime, SystemTime)>,
    failures: u32,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Manager {
    fn names(&self) -> String {
        self.config.domains.join(", ")
    }

    /// Installs the kept certificate if it loads and has not expired.
    fn install_kept(&mut self) {
        let Some((chain, key)) = self.store.certificate(&self.config.domains) else {
            log::info!("acme: no certificate kept for {}", self.names());
            return;
        };
        match self.install(&chain, &key) {
            Ok(not_after) if not_after > SystemTime::now() => log::info!(
                "acme: serving the kept certificate for {} (valid until {} Unix time)",
                self.names(),
                unix(not_after)
            ),
            Ok(_) => {
                log::warn!(
                    "acme: the kept certificate for {} has expired; ordering a new one",
                    self.names()
                );
                self.kept = None;
            }
            Err(e) => log::warn!(
                "acme: the kept certificate for {} in {} is unusable ({e}); ordering a new one",
                self.names(),
                self.store.dir().display()
            ),
        }
    }

    /// Serves a PEM pair; its notAfter.
    fn install(&mut self, chain: &[u8], key: &[u8]) -> Result<SystemTime, String> {
        let pair = pair_from_pem(chain, key).map_err(|e| e.to_string())?;
        let (not_before, not_after) =
            validity(pair.cert[0].as_ref()).ok_or("the certificate's dates are unreadable")?;
        self.responder.certs.install(pair);
        self.kept = Some((not_before, not_after));
        Ok(not_after)
    }

    fn run(mut self, key: jws::AccountKey, transport: transport::Transport) {
        let mut transport = Some(transport);
        loop {
            let now = SystemTime::now();
            let due = self
                .kept
                .map_or(now, |(from, to)| schedule::renew_at(from, to));
            if let Ok(left) = due.duration_since(now) {
                if !left.is_zero() {
                    // Wake at least hourly, so a suspended host or a
                    // clock step is noticed.
                    std::thread::sleep(left.min(Duration::from_secs(3600)));
                    continue;
                }
            }
            let fresh = transport
                .take()
                .map_or_else(|| transport::Transport::new(self.config.ca.as_deref()), Ok);
            let result = match fresh {
                Ok(t) => self.order(&key, t),
                Err(e) => Err(AcmeError::Local(e)),
            };
            match result {
                Ok(issued) => self.installed(issued),
                Err(e) => self.failed(e),
            }
        }
    }

    /// One order, start to end.
    fn order(
        &mut self,
        key: &jws::AccountKey,
        transport: transport::Transport,
    ) -> Result<Issued, AcmeError> {
        log::info!(
            "acme: ordering a certificate for {} from {}",
            self.names(),
            self.config.directory
        );
        let mut client = Client::connect(transport, key, &self.config.directory)?;
        let account = client.account(self.config.email.as_deref())?;
        if let Err(e) = self.store.save_account_url(&account) {
            log::warn!("acme: cannot keep the account URL: {e}");
        }
        client.order(&self.config.domains, &self.responder)
    }

    fn installed(&mut self, issued: Issued) {
        let stored =
            self.store
                .save_certificate(&self.config.domains, &issued.chain_pem, &issued.key_pem);
        match self.install(issued.chain_pem.as_bytes(), issued.key_pem.as_bytes()) {
            Ok(not_after) => {
                self.failures = 0;
                self.stats.count("ok");
                let renew = self.kept.map_or(0, |(f, t)| unix(schedule::renew_at(f, t)));
                log::info!(
                    "acme: new certificate for {} installed: valid until {} Unix time, renewal from {}",
                    self.names(),
                    unix(not_after),
                    renew
                );
                if let Err(e) = stored {
                    log::warn!(
                        "acme: cannot keep the certificate (a restart will order again): {e}"
                    );
                }
            }
            Err(e) => self.failed(AcmeError::Protocol(format!(
                "the issued certificate is unusable: {e}"
            ))),
        }
    }

    fn failed(&mut self, error: AcmeError) {
        self.failures += 1;
        self.stats.count(error.label());
        let mut wait = schedule::backoff(self.failures, schedule::clock_jitter());
        if error.is_rate_limited() {
            wait = wait.max(schedule::RATE_LIMITED_WAIT);
        }
        if let Some(asked) = error.wait() {
            wait = wait.max(asked);
        }
        let serving = match self.kept {
            Some((_, to)) if to > SystemTime::now() => format!(
                "the current certificate serves until {} Unix time",
                unix(to)
            ),
            _ => "no certificate is serving: TLS handshakes fail until one is obtained".into(),
        };
        log::warn!(
            "acme: order for {} failed: {error}; next attempt in {} s ({serving})",
            self.names(),
            wait.as_secs()
        );
        std::thread::sleep(wait);
    }
}

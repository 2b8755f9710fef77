//! The validated configuration that every part of the server receives.
//! Built once from [`crate::cli::ServeArgs`]; nothing reads flags or the
//! environment after this.

use crate::cli::ServeArgs;
use crate::stream::{DiskLimits, ProducerSpec};
use rustls::sign::CertifiedKey;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Everything the server needs to know, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address.
    pub bind: SocketAddr,
    /// Spool directory of per-client streams.
    pub data_dir: PathBuf,
    /// The directory `follow` may read, canonicalized; `None` disables follow.
    pub tail_dir: Option<PathBuf>,
    /// Commands clients may start by name.
    pub producers: Vec<ProducerSpec>,
    /// Size at which a client's spool rotates, in bytes.
    pub spool_max_bytes: u64,
    /// The data directory's retention time and budget.
    pub disk: DiskLimits,
    /// Heartbeat ping period.
    pub ping_interval: Duration,
    /// Silence after which a connection is closed.
    pub idle_timeout: Duration,
    /// Period of `system_notification`, if any.
    pub notify_interval: Option<Duration>,
    /// Messages kept per room.
    pub room_history: usize,
    /// A busy large room's coalescing window (zero: none).
    pub room_window: Duration,
    /// Most WebSocket connections at once (already resolved from `auto`).
    pub max_connections: usize,
    /// Outbound queue limit per connection, in bytes.
    pub max_queue_bytes: usize,
    /// Origins allowed to upgrade besides the server's own.
    pub allowed_origins: Vec<String>,
    /// HS256 secret for upgrade tokens.
    pub jwt_secret: Option<String>,
    /// Largest incoming message, in bytes.
    pub max_message_bytes: usize,
    /// Token required by `POST /broadcast`.
    pub admin_token: Option<String>,
    /// Messages per second per connection (0: no limit).
    pub max_messages_per_second: u32,
    /// Most connections from one address at once; 0: no limit.
    pub max_connections_per_ip: usize,
    /// Connection threads kept parked at most.
    pub thread_cache: usize,
    /// How long a parked connection thread waits before it exits.
    pub thread_cache_idle: Duration,
    /// The shared broker, if instances share one Redis.
    pub redis: Option<RedisConfig>,
    /// Certificates obtained by strand itself, with `--acme-domain`.
    pub acme: Option<AcmeConfig>,
    /// `--tls-cert`/`--tls-key`: the port speaks TLS with this pair.
    pub tls: Option<TlsFiles>,
}

/// `--acme-domain` and its companions.
#[derive(Debug, Clone)]
pub struct AcmeConfig {
    /// The names of the one certificate, lowercase, in the order given.
    pub domains: Vec<String>,
    /// The ACME directory's URL.
    pub directory: String,
    /// The contact address, if any.
    pub email: Option<String>,
    /// Roots to trust for the directory's HTTPS, if not the platform's.
    pub ca: Option<PathBuf>,
    /// Where `http-01` is answered, if anywhere.
    pub http: Option<SocketAddr>,
}

impl AcmeConfig {
    /// Validates the ACME flags of `args`; `None` without `--acme-domain`.
    fn from_args(args: &ServeArgs) -> Result<Option<AcmeConfig>, String> {
        if args.acme_domains.is_empty() {
            return Ok(None);
        }
        if args.tls_cert.is_some() || args.tls_key.is_some() {
            return Err(
                "--acme-domain obtains the certificate itself: give it or --tls-cert/--tls-key, not both"
                    .into(),
            );
        }
        let mut domains: Vec<String> = Vec::new();
        for name in &args.acme_domains {
            let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
            dns_name(&name).map_err(|why| format!("--acme-domain {name:?}: {why}"))?;
            if !domains.contains(&name) {
                domains.push(name);
            }
        }
        let directory = args.acme_directory.trim();
        if !directory.starts_with("https://") {
            return Err(format!(
                "--acme-directory {directory:?}: an ACME directory is an https:// URL"
            ));
        }
        if let Some(email) = &args.acme_email {
            if !email.contains('@') || email.contains(char::is_whitespace) {
                return Err(format!("--acme-email {email:?} is not an email address"));
            }
        }
        if let Some(ca) = &args.acme_ca {
            std::fs::metadata(ca).map_err(|e| format!("--acme-ca {}: {e}", ca.display()))?;
        }
        Ok(Some(AcmeConfig {
            domains,
            directory: directory.to_string(),
            email: args.acme_email.clone().filter(|e| !e.is_empty()),
            ca: args.acme_ca.clone(),
            http: args.acme_http,
        }))
    }
}

/// Whether `name` is a DNS name a CA can validate by `http-01` or
/// `tls-alpn-01` (no wildcard, no IP address).
fn dns_name(name: &str) -> Result<(), &'static str> {
    if name.starts_with("*.") {
        return Err("wildcards need dns-01, which strand does not answer");
    }
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Err("ACME certificates are for DNS names, not IP addresses");
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err("not a DNS name");
    }
    Ok(())
}

/// `--tls-cert` and `--tls-key`, and the pair they held at start.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// The PEM private key.
    pub key: PathBuf,
    /// The pair loaded and checked at start.
    pub pair: Arc<CertifiedKey>,
}

impl TlsFiles {
    /// Both flags or neither; a pair that cannot be loaded, or whose key
    /// is not the certificate's, is refused with the reason.
    fn from_args(args: &ServeArgs) -> Result<Option<TlsFiles>, String> {
        let (cert, key) = match (&args.tls_cert, &args.tls_key) {
            (None, None) => return Ok(None),
            (Some(cert), Some(key)) => (cert.clone(), key.clone()),
            (Some(_), None) => return Err("--tls-cert needs --tls-key (its private key)".into()),
            (None, Some(_)) => return Err("--tls-key needs --tls-cert (its certificate)".into()),
        };
        let pair = crate::tls::certs::load_pair(&cert, &key)
            .map_err(|e| format!("--tls-cert/--tls-key cannot be served: {e}"))?;
        Ok(Some(TlsFiles { cert, key, pair }))
    }
}

/// `--redis` and its companions.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// The Redis URL.
    pub url: String,
    /// `--redis-ca`: PEM roots to trust for `rediss://`.
    pub ca: Option<Vec<u8>>,
    /// `--redis-cert`/`--redis-key`: the client certificate to present.
    pub client: Option<ClientPem>,
    /// Prefix of every key and channel.
    pub prefix: String,
    /// How long a vanished instance's clients stay in presence.
    pub presence_ttl: Duration,
}

/// A client certificate chain and its key, as PEM, checked to belong
/// together.
#[derive(Clone)]
pub struct ClientPem {
    /// The chain, leaf first.
    pub cert: Vec<u8>,
    /// The leaf's private key.
    pub key: Vec<u8>,
}

impl std::fmt::Debug for ClientPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("ClientPem").finish_non_exhaustive()
    }
}

impl RedisConfig {
    /// Validates the Redis flags of `args`; `None` without `--redis`.
    fn from_args(args: &ServeArgs) -> Result<Option<RedisConfig>, String> {
        let Some(url) = args.redis.as_deref().filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        let target = crate::broker::redis::target::Target::parse(url)
            .map_err(|e| format!("--redis {url:?}: {e}"))?;
        let ca = match &args.redis_ca {
            None => None,
            Some(_) if !target.tls() => {
                return Err("--redis-ca needs a rediss:// or rediss+sentinel:// URL".into())
            }
            Some(path) => Some(read_roots(path)?),
        };
        let client = match (&args.redis_cert, &args.redis_key) {
            (None, None) => None,
            (Some(_), None) | (None, Some(_)) => {
                return Err("--redis-cert and --redis-key go together".into())
            }
            (Some(_), Some(_)) if !target.tls() => {
                return Err("--redis-cert needs a rediss:// or rediss+sentinel:// URL".into())
            }
            (Some(cert), Some(key)) => Some(read_client_pair(cert, key)?),
        };
        let prefix = &args.redis_prefix;
        if prefix.is_empty() || prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "--redis-prefix {prefix:?}: use a non-empty prefix without spaces"
            ));
        }
        let ttl = args.redis_presence_ttl;
        if !(ttl.is_finite() && ttl >= 1.0) {
            return Err(format!(
                "--redis-presence-ttl must be at least 1 second, got {ttl}"
            ));
        }
        Ok(Some(RedisConfig {
            url: url.to_string(),
            ca,
            client,
            prefix: prefix.clone(),
            presence_ttl: Duration::from_secs_f64(ttl),
        }))
    }
}

/// The PEM files of `--redis-cert` and `--redis-key`, refused when either
/// cannot be read or parsed, or the key is not the certificate's.
fn read_client_pair(cert: &std::path::Path, key: &std::path::Path) -> Result<ClientPem, String> {
    let read = |flag: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| format!("{flag} {}: {e}", path.display()))
    };
    let pem = ClientPem {
        cert: read("--redis-cert", cert)?,
        key: read("--redis-key", key)?,
    };
    crate::tls::certs::pair_from_pem(&pem.cert, &pem.key).map_err(|e| {
        format!(
            "--redis-cert {} / --redis-key {}: {e}",
            cert.display(),
            key.display()
        )
    })?;
    Ok(pem)
}

/// The PEM certificates of `path`, refused when there is none.
fn read_roots(path: &std::path::Path) -> Result<Vec<u8>, String> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let pem = std::fs::read(path).map_err(|e| format!("--redis-ca {}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("--redis-ca {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "--redis-ca {}: no PEM certificate in it",
            path.display()
        ));
    }
    Ok(pem)
}

impl Config {
    /// Validates `args`; `max_connections` is the resolved ceiling.
    pub fn from_args(args: &ServeArgs, max_connections: usize) -> Result<Config, String> {
        let secs = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(Duration::from_secs_f64(v))
            } else {
                Err(format!(
                    "--{name} must be a positive number of seconds, got {v}"
                ))
            }
        };
        let tail_dir = match &args.tail_dir {
            None => None,
            Some(dir) => Some(readable_dir(dir)?),
        };
        writable_dir(&args.data_dir)?;
        let mut names = std::collections::HashSet::new();
        for p in &args.producers {
            if !names.insert(&p.name) {
                return Err(format!("--producer {} is given twice", p.name));
            }
        }
        if args.max_message_bytes == 0 {
            return Err("--max-message-bytes must be at least 1".into());
        }
        Ok(Config {
            bind: args.bind,
            data_dir: args.data_dir.clone(),
            tail_dir,
            producers: args.producers.clone(),
            spool_max_bytes: args.spool_max_bytes.max(1024),
            disk: DiskLimits {
                retention: secs("spool-retention", args.spool_retention)?,
                budget: args.data_max_bytes,
            },
            ping_interval: secs("ping-interval", args.ping_interval)?,
            idle_timeout: secs("idle-timeout", args.idle_timeout)?,
            notify_interval: if args.notify_interval == 0.0 {
                None
            } else {
                Some(secs("notify-interval", args.notify_interval)?)
            },
            room_history: args.room_history,
            room_window: Duration::from_millis(args.room_window_ms.min(1000)),
            max_connections,
            max_queue_bytes: args.max_queue_bytes.max(1024),
            max_connections_per_ip: args.max_connections_per_ip,
            thread_cache: args.thread_cache,
            thread_cache_idle: secs("thread-cache-idle", args.thread_cache_idle)?,
            allowed_origins: args.allowed_origins.clone(),
            jwt_secret: args.jwt_secret.clone().filter(|s| !s.is_empty()),
            max_message_bytes: args.max_message_bytes,
            admin_token: args.admin_token.clone().filter(|s| !s.is_empty()),
            max_messages_per_second: args.max_messages_per_second,
            redis: RedisConfig::from_args(args)?,
            acme: AcmeConfig::from_args(args)?,
            tls: TlsFiles::from_args(args)?,
        })
    }

    /// A configuration with the contract's defaults, for tests and embedding.
    pub fn for_tests() -> Config {
        use clap::Parser;
        // A data directory outside the working tree: `from_args` creates it.
        let data = std::env::temp_dir().join("strand-test-data");
        let data = data.to_string_lossy();
        let cli =
            crate::cli::Cli::parse_from(["strand", "--bind", "127.0.0.1:0", "--data-dir", &data]);
        Config::from_args(&cli.serve, 1000).expect("defaults are valid")
    }
}

/// `--data-dir`: created if missing, and it must then be a directory this
/// process can create files in (checked by creating and removing one), so
/// that a bad path is refused at start rather than at the first `start`.
fn writable_dir(dir: &Path) -> Result<(), String> {
    let bad = |why: String| format!("--data-dir {} is not usable: {why}", dir.display());
    std::fs::create_dir_all(dir).map_err(|e| bad(format!("cannot create it: {e}")))?;
    if !dir.is_dir() {
        return Err(bad("not a directory".into()));
    }
    let probe = dir.join(format!(".strand-probe-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| bad(format!("cannot create a file in it: {e}")))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// `--tail-dir`: an existing directory this process can list; returned
/// canonical (what `follow` resolves names against).
fn readable_dir(dir: &Path) -> Result<PathBuf, String> {
    let bad = |why: String| format!("--tail-dir {} is not usable: {why}", dir.display());
    let canonical = dir.canonicalize().map_err(|e| bad(e.to_string()))?;
    if !canonical.is_dir() {
        return Err(bad("not a directory".into()));
    }
    std::fs::read_dir(&canonical).map_err(|e| bad(format!("cannot list it: {e}")))?;
    Ok(canonical)
}

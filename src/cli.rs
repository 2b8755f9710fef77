//! The command line: every flag is defined once here, with its default, its
//! `STRAND_*` environment variable and its help text. Parsing ends in
//! [`crate::config::Config`], which the rest of the server receives.

use crate::stream::ProducerSpec;
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// strand: a thread-per-connection WebSocket server for real-time streaming.
#[derive(Debug, Parser)]
#[command(
    name = "strand",
    version,
    about,
    long_about = "strand: a thread-per-connection WebSocket server for real-time streaming \
                  from small machines.\n\nWith no subcommand, `strand` runs `strand serve`.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to run; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The flags of `serve`, accepted without the subcommand too.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once at start-up
pub enum Command {
    /// Run the server (the default).
    Serve(ServeArgs),
    /// Run a load generator whose clients are threads.
    Bench(crate::bench::BenchArgs),
}

/// `--max-connections`: a number, or `auto` to derive it from OS limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxConnections {
    /// Derive the ceiling at start-up from thread, map and descriptor limits.
    Auto,
    /// This many WebSocket connections at most.
    Fixed(usize),
}

impl std::str::FromStr for MaxConnections {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("auto") {
            return Ok(MaxConnections::Auto);
        }
        s.parse::<usize>()
            .map(MaxConnections::Fixed)
            .map_err(|_| format!("expected a number or `auto`, got {s:?}"))
    }
}

/// The flags of `strand serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (logged as `listening on ADDR`).
    #[arg(
        long,
        env = "STRAND_BIND",
        default_value = "127.0.0.1:8000",
        value_name = "ADDR"
    )]
    pub bind: SocketAddr,

    /// Directory for the spool files of per-client streams.
    #[arg(
        long,
        env = "STRAND_DATA_DIR",
        default_value = "./strand-data",
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,

    /// The only directory whose files `follow` may name (follow is off without it).
    #[arg(long, env = "STRAND_TAIL_DIR", value_name = "DIR")]
    pub tail_dir: Option<PathBuf>,

    /// A command a client may start by name: NAME=COMMAND (repeatable).
    #[arg(
        long = "producer",
        env = "STRAND_PRODUCER",
        value_name = "NAME=COMMAND"
    )]
    pub producers: Vec<ProducerSpec>,

    /// Largest size of a client's spool file; past it the spool rotates
    /// (the previous generation is kept as `<id>.spool.1` for resume).
    #[arg(
        long,
        env = "STRAND_SPOOL_MAX_BYTES",
        default_value_t = 16 << 20,
        value_name = "N"
    )]
    pub spool_max_bytes: u64,

    /// Seconds after which the spools of a client whose stream has not run
    /// are deleted (a stream running on a spool keeps it).
    #[arg(
        long,
        env = "STRAND_SPOOL_RETENTION",
        default_value_t = 604_800.0,
        value_name = "SECS"
    )]
    pub spool_retention: f64,

    /// Most bytes the spools in the data directory may take together; past
    /// it the least recently used clients' spools are deleted (0: no budget).
    #[arg(
        long,
        env = "STRAND_DATA_MAX_BYTES",
        default_value_t = 1 << 30,
        value_name = "N"
    )]
    pub data_max_bytes: u64,

    /// Seconds between heartbeat pings.
    #[arg(
        long,
        env = "STRAND_PING_INTERVAL",
        default_value_t = 30.0,
        value_name = "SECS"
    )]
    pub ping_interval: f64,

    /// Close a connection from which nothing arrived for this many seconds.
    #[arg(
        long,
        env = "STRAND_IDLE_TIMEOUT",
        default_value_t = 75.0,
        value_name = "SECS"
    )]
    pub idle_timeout: f64,

    /// Seconds between `system_notification`s to hub clients (0: off).
    #[arg(
        long,
        env = "STRAND_NOTIFY_INTERVAL",
        default_value_t = 0.0,
        value_name = "SECS"
    )]
    pub notify_interval: f64,

    /// Messages kept per room for resume with `since`.
    #[arg(
        long,
        env = "STRAND_ROOM_HISTORY",
        default_value_t = 100,
        value_name = "N"
    )]
    pub room_history: usize,

    /// In a room of 100 or more members, messages that come from no
    /// client's read batch (Redis's subscriber, HTTP broadcasts) less than
    /// this many milliseconds after its last delivery wait for the
    /// window's end and go out together: one write per member per window
    /// (0: every such message at once). A client's messages never wait
    /// for it: they go out at the end of the batch they were read in.
    #[arg(
        long,
        env = "STRAND_ROOM_WINDOW_MS",
        default_value_t = 20,
        value_name = "MS"
    )]
    pub room_window_ms: u64,

    /// Most WebSocket connections at once (`auto`: from the OS limits).
    #[arg(
        long,
        env = "STRAND_MAX_CONNECTIONS",
        default_value = "auto",
        value_name = "N|auto"
    )]
    pub max_connections: MaxConnections,

    /// Most connections from one IP address at once, from accept to close
    /// (0: no limit); over it a new connection is answered 503 before its
    /// head is read, and closed.
    #[arg(
        long,
        env = "STRAND_MAX_CONNECTIONS_PER_IP",
        default_value_t = 0,
        value_name = "N"
    )]
    pub max_connections_per_ip: usize,

    /// Finished connection threads kept parked for the next connection.
    #[arg(
        long,
        env = "STRAND_THREAD_CACHE",
        default_value_t = 64,
        value_name = "N"
    )]
    pub thread_cache: usize,

    /// Seconds a parked connection thread waits for a connection before it exits.
    #[arg(
        long,
        env = "STRAND_THREAD_CACHE_IDLE",
        default_value_t = 60.0,
        value_name = "SECS"
    )]
    pub thread_cache_idle: f64,

    /// Outbound bytes waiting for one client before it is closed as a slow consumer.
    #[arg(long, env = "STRAND_MAX_QUEUE_BYTES", default_value_t = 1 << 20, value_name = "N")]
    pub max_queue_bytes: usize,

    /// An Origin allowed to upgrade besides the server's own (repeatable; `*`: any).
    #[arg(
        long = "allowed-origin",
        env = "STRAND_ALLOWED_ORIGIN",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,

    /// Require an HS256 JWT signed with this secret on every upgrade.
    #[arg(
        long,
        env = "STRAND_JWT_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub jwt_secret: Option<String>,

    /// Larger incoming messages close the connection with 1009.
    #[arg(long, env = "STRAND_MAX_MESSAGE_BYTES", default_value_t = 1 << 20, value_name = "N")]
    pub max_message_bytes: usize,

    /// Bearer token required by `GET /admin/stats` and `POST /broadcast`;
    /// without one, both answer loopback clients only.
    #[arg(
        long,
        env = "STRAND_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub admin_token: Option<String>,

    /// Messages per second one connection may send, in bursts of as many
    /// (0: no limit). Over it a hub message gets `rate_limited` and is
    /// dropped; on `/ws` and text rooms, or a hub client that stays over
    /// it, the connection is closed with 1008 `rate limited`.
    #[arg(
        long,
        env = "STRAND_MAX_MESSAGES_PER_SECOND",
        default_value_t = 0,
        value_name = "N"
    )]
    pub max_messages_per_second: u32,

    /// Share rooms, history, broadcasts, direct messages and presence with
    /// every instance on this Redis (`redis://[:password@]host[:port][/db]`,
    /// `rediss://` for TLS, or the master Sentinel names:
    /// `redis+sentinel://[:password@]host:port[,host:port...]/master[/db]`).
    #[arg(long, env = "STRAND_REDIS", value_name = "URL")]
    pub redis: Option<String>,

    /// PEM roots to trust for `rediss://` (default: the system's store).
    #[arg(long, env = "STRAND_REDIS_CA", value_name = "FILE")]
    pub redis_ca: Option<std::path::PathBuf>,

    /// A client certificate (PEM chain, leaf first) to present to a
    /// `rediss://` Redis that asks for one (`tls-auth-clients yes`); with
    /// `--redis-key`.
    #[arg(long, env = "STRAND_REDIS_CERT", value_name = "FILE")]
    pub redis_cert: Option<std::path::PathBuf>,

    /// The private key (PEM) of `--redis-cert`.
    #[arg(long, env = "STRAND_REDIS_KEY", value_name = "FILE")]
    pub redis_key: Option<std::path::PathBuf>,

    /// Prefix of every Redis key and channel, so deployments can share one Redis.
    #[arg(
        long,
        env = "STRAND_REDIS_PREFIX",
        default_value = "strand",
        value_name = "P"
    )]
    pub redis_prefix: String,

    /// Seconds within which a vanished instance's clients leave presence
    /// (and are announced as gone) on every other instance.
    #[arg(
        long,
        env = "STRAND_REDIS_PRESENCE_TTL",
        default_value_t = 60.0,
        value_name = "SECS"
    )]
    pub redis_presence_ttl: f64,

    /// Obtain and renew the serving certificate for this name from an ACME
    /// CA (repeatable: one certificate for all; excludes --tls-cert).
    #[arg(
        long = "acme-domain",
        env = "STRAND_ACME_DOMAIN",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub acme_domains: Vec<String>,

    /// The ACME directory to order from.
    #[arg(
        long,
        env = "STRAND_ACME_DIRECTORY",
        default_value = "https://acme-v02.api.letsencrypt.org/directory",
        value_name = "URL"
    )]
    pub acme_directory: String,

    /// A contact address given to the ACME CA (expiry warnings).
    #[arg(long, env = "STRAND_ACME_EMAIL", value_name = "ADDR")]
    pub acme_email: Option<String>,

    /// PEM roots to trust for the ACME directory's own HTTPS (a private or
    /// test CA); default: the platform's roots, else Mozilla's.
    #[arg(long, env = "STRAND_ACME_CA", value_name = "FILE")]
    pub acme_ca: Option<PathBuf>,

    /// Answer ACME http-01 on this plain-HTTP address (e.g. 0.0.0.0:80),
    /// which redirects every other request to https://; without it,
    /// tls-alpn-01 on the serving port.
    #[arg(long, env = "STRAND_ACME_HTTP", value_name = "ADDR")]
    pub acme_http: Option<SocketAddr>,

    /// Serve TLS (`https://`, `wss://`) with this PEM certificate chain,
    /// leaf first; with `--tls-key`. Reloaded when the file changes or on SIGHUP.
    #[arg(long, env = "STRAND_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key (PKCS#8, PKCS#1 or SEC1) of `--tls-cert`.
    #[arg(long, env = "STRAND_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,

    /// error, warn, info, debug or trace.
    #[arg(
        long,
        env = "STRAND_LOG_LEVEL",
        default_value = "info",
        value_name = "LEVEL"
    )]
    pub log_level: log::LevelFilter,
}

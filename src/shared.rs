//! The state every connection thread shares: the validated configuration,
//! the counters, the hub (behind its broker), the file tails, the spools
//! and the engine's settings. The accept loop ([`crate::server`]) builds one
//! and hands it down; there are no globals. This module sits below the
//! accept loop and the HTTP door and above the parts it holds: it must not
//! import `server` or `http`.

use crate::activity::{RoomRates, Series};
use crate::broker::notifier::Notifier;
use crate::broker::Broker;
use crate::config::Config;
use crate::follow::Tails;
use crate::hub::stats::{Gauges, HubStats};
use crate::metrics::Metrics;
use crate::stream::Spools;
use crate::threads::CacheStats;
use crate::tls::certs::Certs;
use crate::tls::Tls;
use crate::ws::readiness::Readiness;
use crate::ws::ConnParams;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// State shared by every connection thread.
pub struct Shared {
    /// The validated configuration.
    pub config: Config,
    /// The counters behind `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Rooms, presence and the JSON hub's clients: every room operation
    /// goes through it.
    pub broker: Arc<dyn Broker>,
    /// The room and hub counters.
    pub hub_stats: Arc<HubStats>,
    notifier: Mutex<Option<Notifier>>,
    /// Shared tails of followed files.
    pub tails: Arc<Tails>,
    /// Clients' spools, and which have a stream running.
    pub spools: Arc<Spools>,
    /// Settings of every connection's engine (and the readiness thread).
    pub conn_params: ConnParams,
    /// The counters of the connection thread cache.
    pub thread_cache: Arc<CacheStats>,
    /// The last five minutes, second by second (the operator view).
    pub series: Series,
    /// The largest rooms' message rates (the operator view).
    pub room_rates: RoomRates,
    /// The ACME client's counters, with `--acme-domain`.
    pub acme: Option<Arc<crate::acme::Stats>>,
    /// TLS on the serving port, when it speaks TLS: the certificates (which
    /// a reload or the ACME client replaces) and the rustls configuration.
    pub tls: Option<Arc<Tls>>,
    started: Instant,
    next_id: AtomicU64,
}

impl Shared {
    /// Builds the hub, the tails and the spools of `config`.
    pub fn new(config: Config) -> Shared {
        let metrics = Arc::new(Metrics::default());
        let readiness =
            Readiness::start().unwrap_or_else(|e| panic!("cannot start the readiness thread: {e}"));
        let conn_params = ConnParams {
            ping_interval: config.ping_interval,
            idle_timeout: config.idle_timeout,
            max_message_bytes: config.max_message_bytes,
            max_queue_bytes: config.max_queue_bytes,
            registry: Arc::default(),
            metrics: metrics.clone(),
            readiness,
        };
        let hub_stats = Arc::new(HubStats {
            events: metrics.events.clone(),
            ..HubStats::default()
        });
        let broker = crate::broker::from_config(&config, hub_stats.clone());
        let notifier = config
            .notify_interval
            .and_then(|every| Notifier::start(broker.clone(), every));
        let acme = config.acme.as_ref().map(|_| Arc::default());
        // Served from the start with the pair loaded from the files; with
        // ACME, empty until the kept certificate or the first order.
        let tls = match (&config.tls, &config.acme) {
            (Some(files), _) => Some(Tls::new(Certs::with(files.pair.clone()))),
            (None, Some(_)) => Some(Tls::new(Certs::new())),
            (None, None) => None,
        };
        Shared {
            broker,
            hub_stats,
            notifier: Mutex::new(notifier),
            tails: Arc::new(Tails::new(config.tail_dir.clone())),
            spools: Arc::new(Spools::new(
                config.data_dir.clone(),
                config.spool_max_bytes,
                config.producers.clone(),
                config.disk,
            )),
            config,
            metrics,
            conn_params,
            thread_cache: Arc::default(),
            series: Series::default(),
            room_rates: RoomRates::default(),
            acme,
            tls,
            started: Instant::now(),
            next_id: AtomicU64::new(1),
        }
    }

    /// The next connection id.
    pub fn next_connection_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Seconds since the server started.
    pub fn uptime_s(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Records second `t` of the series from the counters (the
    /// housekeeping thread's chore).
    pub fn sample_series(&self, t: u64) {
        let m = &self.metrics;
        self.series.sample(
            t,
            m.connections_current.load(Ordering::Relaxed),
            m.messages_in.load(Ordering::Relaxed),
            m.messages_out.load(Ordering::Relaxed),
        );
    }

    /// The body of `GET /healthz`.
    pub fn health(&self) -> serde_json::Value {
        serde_json::json!({
            "status": if self.broker.healthy() { "ok" } else { "degraded" },
            "connections": self.metrics.connections_current.load(Ordering::Relaxed),
            "uptime_s": self.uptime_s(),
            "broker": self.broker.name(),
        })
    }

    /// The body of `GET /metrics`.
    pub fn metrics_text(&self) -> String {
        let mut extra = self.hub_stats.render(Gauges {
            rooms: self.broker.local_rooms(),
            hub_clients: self.broker.clients(),
        });
        extra.push_str(&self.broker.metrics_text());
        extra.push_str(&self.tails.metrics_text());
        extra.push_str(&self.spools.metrics_text());
        extra.push_str(&self.thread_cache.render());
        if let Some(acme) = &self.acme {
            extra.push_str(&acme.render());
        }
        if let Some(tls) = &self.tls {
            extra.push_str(&tls.metrics_text());
        }
        self.metrics.render(self.uptime_s(), &extra)
    }

    /// Stops the notification thread, the broker's helper threads and the
    /// readiness thread, once every connection has ended.
    pub fn shutdown(&self) {
        self.conn_params.readiness.stop();
        let notifier = self
            .notifier
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(notifier) = notifier {
            notifier.stop();
        }
        self.broker.shutdown();
        self.spools.shutdown();
    }
}

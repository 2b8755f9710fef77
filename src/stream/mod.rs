//! Per-client streams (`start` / `stop`) and file following (`follow` /
//! `unfollow`) for one hub connection.
//!
//! A stream is two threads on one shared stop flag: a writer ([`writer`])
//! appending to the client's spool ([`spool`]) and a reader ([`reader`])
//! sending each new spooled line as `data`. Following is delegated to the
//! shared tailers of [`crate::follow`]. This type runs on the connection
//! thread: it validates requests, queues every reply on the connection's
//! outbox in order with the data, and on stop or close joins every thread
//! it started before it returns.

mod control;
mod janitor;
mod lease;
mod producer;
mod reader;
mod run;
mod spool;
mod spools;
mod writer;

pub use janitor::DiskLimits;
pub use lease::Leases;
pub use producer::ProducerSpec;
pub use spools::Spools;

use crate::follow::{Follows, Tails};
use crate::wire::{ErrorCode, WireError};
use crate::ws::Outbox;
use run::{Running, StartRequest};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// `interval_ms` when `start` gives none.
pub const DEFAULT_INTERVAL_MS: u64 = 2000;
/// Longest `interval_ms` accepted (a day).
const MAX_INTERVAL_MS: u64 = 86_400_000;
/// How long `start` waits for a replaced connection's stream to let go of
/// the spool.
const LEASE_WAIT: Duration = Duration::from_secs(2);

/// The streams and follows of one hub connection.
pub struct Streams {
    spools: Arc<Spools>,
    client_id: String,
    outbox: Arc<Outbox>,
    running: Option<Running>,
    follows: Follows,
}

impl Streams {
    /// Streams for `client_id` in `spools`, following files of `tails`,
    /// sending to `outbox`.
    pub fn new(
        spools: &Arc<Spools>,
        tails: &Arc<Tails>,
        client_id: &str,
        outbox: Arc<Outbox>,
    ) -> Streams {
        Streams {
            spools: spools.clone(),
            client_id: client_id.to_string(),
            follows: Follows::new(tails.clone(), outbox.clone()),
            outbox,
            running: None,
        }
    }

    /// Handles `start`, `stop`, `follow` and `unfollow`: `None` for any
    /// other type. On success the replies (and data) have been queued on the
    /// outbox, in order; an error is for the caller to send.
    pub fn handle(&mut self, ty: &str, message: &Value) -> Option<Result<(), WireError>> {
        Some(match ty {
            "start" => self.start(message),
            "stop" => self.stop(),
            "follow" => self.follows.follow(message),
            "unfollow" => self.follows.unfollow(message),
            _ => return None,
        })
    }

    /// Stops everything this connection runs; called when it ends.
    pub fn close(&mut self) {
        if let Some(mut running) = self.running.take() {
            running.finish();
        }
        self.follows.close();
    }

    fn start(&mut self, message: &Value) -> Result<(), WireError> {
        if let Some(running) = self.running.as_mut() {
            if !running.ended() {
                return Err(WireError::new(
                    ErrorCode::AlreadyRunning,
                    "this client's stream is already running; send stop first",
                ));
            }
            // It ended by itself (and said so): clear it away.
            running.finish();
            self.running = None;
        }
        let request = self.parse_start(message)?;
        let spools = &self.spools;
        let lease = spools.lease(&self.client_id, LEASE_WAIT).ok_or_else(|| {
            WireError::new(
                ErrorCode::AlreadyRunning,
                "another connection of this client still runs its stream",
            )
        })?;
        // The spool cannot be opened, or the OS refused a thread or the
        // producer's process: nothing of the stream is left running.
        let cannot = |e: std::io::Error| {
            log::error!("stream of {}: {e}", self.client_id);
            WireError::new(
                ErrorCode::Unavailable,
                format!("the stream could not start: {e}"),
            )
        };
        let spool =
            spool::Spool::open(&spools.dir, &self.client_id, spools.max_bytes).map_err(cannot)?;
        let start = spool.start_point(request.from, request.epoch.as_deref());
        let mut started = json!({
            "type": "started",
            "interval_ms": request.interval.as_millis() as u64,
            "epoch": spool.current().epoch,
        });
        if let Some((name, _)) = &request.producer {
            started["producer"] = json!(name);
        }
        if request.from.is_some() {
            // Where the replay really starts, and whether that is exactly
            // after the offset asked for.
            started["from"] = json!(start.pos);
            started["from_epoch"] = json!(start.gen.epoch);
            started["resumed"] = json!(start.resumed);
        }
        let running = Running::start(
            spool,
            start,
            &request,
            &self.client_id,
            &self.outbox,
            lease,
            started.to_string(),
        )
        .map_err(cannot)?;
        self.running = Some(running);
        Ok(())
    }

    fn parse_start(&self, message: &Value) -> Result<StartRequest, WireError> {
        let bad = |m: &str| WireError::new(ErrorCode::MissingField, m);
        let interval_ms = match &message["interval_ms"] {
            Value::Null => DEFAULT_INTERVAL_MS,
            v => v
                .as_u64()
                .filter(|ms| (1..=MAX_INTERVAL_MS).contains(ms))
                .ok_or_else(|| bad("`interval_ms` must be a whole number from 1 to 86400000"))?,
        };
        let producer = match &message["producer"] {
            Value::Null => None,
            Value::String(name) => {
                if !crate::names::is_valid(name) {
                    return Err(WireError::new(
                        ErrorCode::BadName,
                        "producer names are 1-64 of A-Z a-z 0-9 _ . - (not starting with .)",
                    ));
                }
                let spec = self
                    .spools
                    .producers
                    .iter()
                    .find(|p| &p.name == name)
                    .ok_or_else(|| {
                        WireError::new(
                            ErrorCode::UnknownProducer,
                            format!("no producer named {name:?} is configured"),
                        )
                    })?;
                Some((spec.name.clone(), spec.command.clone()))
            }
            other => {
                return Err(WireError::new(
                    ErrorCode::BadName,
                    format!("bad producer {other}: a producer name is a string"),
                ))
            }
        };
        let from = match &message["from"] {
            Value::Null => None,
            v => Some(
                v.as_u64()
                    .ok_or_else(|| bad("`from` must be a byte offset (a whole number)"))?,
            ),
        };
        let epoch = match &message["epoch"] {
            Value::Null => None,
            Value::String(e) => Some(e.clone()),
            _ => return Err(bad("`epoch` must be a string")),
        };
        Ok(StartRequest {
            interval: Duration::from_millis(interval_ms),
            producer,
            from,
            epoch,
        })
    }

    fn stop(&mut self) -> Result<(), WireError> {
        let not_running = |m: &str| WireError::new(ErrorCode::NotRunning, m);
        let Some(mut running) = self.running.take() else {
            return Err(not_running("no stream is running; send start first"));
        };
        let ended = running.ended();
        let lines = running.finish();
        if ended || !running.claim_report() {
            return Err(not_running("the stream had already ended by itself"));
        }
        // After the join: every `data` of the stream is already queued.
        self.outbox
            .send_text(&json!({"type": "stopped", "lines": lines}).to_string());
        Ok(())
    }
}

//! The pieces every thread of the Redis broker works with, handed to each
//! (they are shared: cloning is cheap).

use crate::broker::redis::inflight::InFlight;
use crate::broker::redis::keys::Keys;
use crate::broker::redis::link::{Health, Link};
use crate::broker::redis::local::Local;
use crate::broker::redis::scripts::Scripts;
use crate::hub::stats::HubStats;
use std::sync::Arc;

/// What the publisher, the subscriber and the heartbeat share.
#[derive(Clone)]
pub struct Parts {
    /// Opens connections.
    pub link: Link,
    /// Key and channel names.
    pub keys: Keys,
    /// The Lua scripts.
    pub scripts: Arc<Scripts>,
    /// What is known about reaching Redis.
    pub health: Arc<Health>,
    /// What this instance holds.
    pub local: Arc<Local>,
    /// The hub's counters.
    pub stats: Arc<HubStats>,
    /// What each connection has queued for the publisher.
    pub inflight: Arc<InFlight>,
}

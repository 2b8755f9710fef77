//! The recent events an operator wants named: which client was cut as a
//! slow consumer, rate-limited, refused, timed out in its head or
//! replaced, and when the broker went down or came back. A bounded ring
//! (the newest [`CAPACITY`]) behind a mutex: events are rare, and a storm
//! of them (a flood of refusals) costs one short lock each, never memory.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Mutex;

/// Events kept.
pub const CAPACITY: usize = 100;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A client that did not read was closed with 1008.
    SlowConsumer,
    /// A client went over `--max-messages-per-second` (its first refusal,
    /// and its close if it stayed over).
    RateLimited,
    /// A connection refused over a limit (503).
    Refused,
    /// A request head not complete in time (408).
    HeadTimeout,
    /// A hub connection replaced by a newer one with its id (4001).
    Replaced,
    /// The shared broker (Redis) cannot be reached.
    BrokerDown,
    /// The shared broker can be reached again.
    BrokerUp,
}

impl Kind {
    /// The name the contract gives this kind in `recent`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::SlowConsumer => "slow_consumer",
            Kind::RateLimited => "rate_limited",
            Kind::Refused => "refused",
            Kind::HeadTimeout => "head_timeout",
            Kind::Replaced => "replaced",
            Kind::BrokerDown => "broker_down",
            Kind::BrokerUp => "broker_up",
        }
    }
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Unix time in milliseconds.
    pub at: u64,
    /// What happened.
    pub kind: Kind,
    /// The hub `client_id` or text-room user where there is one, else the
    /// peer's `IP:PORT` (empty for the broker's own events).
    pub client: String,
    /// A human sentence: the address, the connection id, the reason.
    pub detail: String,
}

/// The name an event gives a client: its session's name for it (hub
/// `client_id`, text-room user), else its address.
pub fn client_name(name: Option<&str>, peer: Option<SocketAddr>) -> String {
    match name {
        Some(name) => name.to_string(),
        None => address(peer),
    }
}

/// `IP:PORT`, or `unknown`.
pub fn address(peer: Option<SocketAddr>) -> String {
    peer.map_or_else(|| "unknown".to_string(), |p| p.to_string())
}

/// The ring of recent events.
#[derive(Debug, Default)]
pub struct Events {
    ring: Mutex<VecDeque<Event>>,
}

impl Events {
    /// Records that `kind` happened to `client`, now.
    pub fn record(&self, kind: Kind, client: impl Into<String>, detail: impl Into<String>) {
        self.push(Event {
            at: crate::wire::unix_millis(),
            kind,
            client: client.into(),
            detail: detail.into(),
        });
    }

    /// Adds `event`, dropping the oldest past [`CAPACITY`].
    pub fn push(&self, event: Event) {
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        if ring.len() == CAPACITY {
            ring.pop_front();
        }
        ring.push_back(event);
    }

    /// Every event kept, newest first.
    pub fn recent(&self) -> Vec<Event> {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.iter().rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_hundred_newest_first() {
        let events = Events::default();
        for i in 0..250 {
            events.record(Kind::Refused, format!("c{i}"), "over the limit");
        }
        let recent = events.recent();
        assert_eq!(recent.len(), CAPACITY);
        assert_eq!(recent[0].client, "c249");
        assert_eq!(recent[CAPACITY - 1].client, "c150");
        assert!(recent.windows(2).all(|w| w[0].at >= w[1].at));
    }

    #[test]
    fn kinds_have_the_contracts_names() {
        let names: Vec<&str> = [
            Kind::SlowConsumer,
            Kind::RateLimited,
            Kind::Refused,
            Kind::HeadTimeout,
            Kind::Replaced,
            Kind::BrokerDown,
            Kind::BrokerUp,
        ]
        .iter()
        .map(|k| k.as_str())
        .collect();
        assert_eq!(
            names,
            [
                "slow_consumer",
                "rate_limited",
                "refused",
                "head_timeout",
                "replaced",
                "broker_down",
                "broker_up"
            ]
        );
    }
}

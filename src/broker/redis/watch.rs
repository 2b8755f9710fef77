//! The sentinel watcher thread (only with a `redis+sentinel://` URL): it
//! holds a subscription to `+switch-master` on one sentinel (the next one
//! when that fails), and asks the sentinels every second which master they
//! name (a sentinel names the promoted replica before it announces the
//! switch, which waits for the failover to end). When the master changed,
//! it tells the [`Link`] at once, so every connection moves within a
//! second or two instead of waiting for a timeout or a refused write. It
//! delivers nothing to clients and changes nothing in Redis.

use crate::broker::redis::link::Link;
use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::Duration;

/// How often the thread looks at its stop channel while subscribed.
const POLL: Duration = Duration::from_secs(1);
/// The pause before trying the next sentinel.
const RETRY: Duration = Duration::from_millis(500);

/// Watches the sentinels of `link` until `stop` is dropped.
pub fn run(link: Link, stop: Receiver<()>) {
    let Some(master) = link.sentinel_master().map(str::to_string) else {
        return;
    };
    let mut next = 0usize;
    loop {
        let Some((sentinels, order)) = link.sentinels() else {
            return;
        };
        let (host, port) = &order[next % order.len()];
        next += 1;
        match link.sentinel(&sentinels, host, *port) {
            Ok(mut con) => {
                let mut pubsub = con.as_pubsub();
                let subscribed = pubsub
                    .set_read_timeout(Some(POLL))
                    .and_then(|_| pubsub.subscribe("+switch-master"));
                if subscribed.is_ok() {
                    log::debug!("redis: watching sentinel {host}:{port} for failovers");
                    loop {
                        match stop.try_recv() {
                            Err(TryRecvError::Empty) => {}
                            _ => return,
                        }
                        match pubsub.get_message() {
                            Ok(msg) => {
                                let payload: String = msg.get_payload().unwrap_or_default();
                                if switched(&payload, &master) {
                                    link.lose_master(&format!(
                                        "a sentinel promoted a new master ({payload})"
                                    ));
                                }
                            }
                            Err(e) if e.is_timeout() => {
                                if let Ok(addr) = link.ask_sentinels(&sentinels) {
                                    link.sentinels_name(addr);
                                }
                            }
                            Err(e) => {
                                log::debug!("redis: sentinel {host}:{port} lost: {e}");
                                break;
                            }
                        }
                    }
                }
            }
            Err(e) => log::debug!("redis: sentinel {host}:{port}: {e}"),
        }
        match stop.recv_timeout(RETRY) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
    }
}

/// Whether a `+switch-master` message (`NAME OLD-IP OLD-PORT NEW-IP
/// NEW-PORT`) is about `master`.
fn switched(payload: &str, master: &str) -> bool {
    payload.split(' ').next() == Some(master)
}

#[cfg(test)]
mod tests {
    use super::switched;

    #[test]
    fn only_our_masters_switch_counts() {
        assert!(switched("main 10.0.0.1 6379 10.0.0.2 6379", "main"));
        assert!(!switched("main2 10.0.0.1 6379 10.0.0.2 6379", "main"));
        assert!(!switched("", "main"));
    }
}

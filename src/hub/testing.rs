//! Unit-test helpers for rooms: a member whose outbox the test reads, and
//! the texts queued on it.

use crate::hub::member::{Dialect, Member};
use crate::metrics::Metrics;
use crate::ws::{Outbox, Outgoing};
use crossbeam_channel::Receiver;
use std::sync::Arc;

/// A member on an outbox of 1 MiB, and the receiving end of its queue.
pub fn member(conn: u64, name: &str, dialect: Dialect) -> (Member, Receiver<Outgoing>) {
    let (outbox, rx) = Outbox::new(conn, 1 << 20, Arc::new(Metrics::default()));
    let m = Member {
        conn,
        name: name.into(),
        dialect,
        outbox,
    };
    (m, rx)
}

/// Every text frame queued so far (a buffer may hold several), and
/// `close CODE` for a close.
pub fn texts(rx: &Receiver<Outgoing>) -> Vec<String> {
    let mut out = Vec::new();
    for item in rx.try_iter() {
        match item {
            Outgoing::Frame(buf) => {
                let mut at = 0;
                while at < buf.len() {
                    let (n, head) = match buf[at + 1] & 0x7f {
                        126 => (u16::from_be_bytes([buf[at + 2], buf[at + 3]]) as usize, 4),
                        127 => panic!("no frames of 64 KiB or more in these tests"),
                        n => (n as usize, 2),
                    };
                    let body = &buf[at + head..at + head + n];
                    out.push(String::from_utf8(body.to_vec()).unwrap());
                    at += head + n;
                }
            }
            Outgoing::Close(c, _) => out.push(format!("close {c}")),
        }
    }
    out
}

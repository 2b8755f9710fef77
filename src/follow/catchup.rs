//! The catch-up of one follower that starts before the tailer's current
//! line (`from: "start"` or an offset): on its own thread it reads the file
//! from that offset and sends with [`Outbox::send_wait`], so a large replay
//! waits for the client instead of overflowing its queue, and the shared
//! tailer never waits for it. When it reaches the tailer's `line_end` it
//! marks the follower live under the tailer's lock, and from then on the
//! tailer sends: no line is missed or sent twice at the hand-over.

use super::lines::{data_json, next_line, notice_json};
use super::tailer::{Tailer, CHUNK};
use crate::ws::{frame, Outbox};
use std::os::unix::fs::FileExt;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Sends follower `id`'s lines from `cursor` until it is live, stopped, or
/// its connection is gone.
pub fn run(tailer: &Tailer, id: u64, mut cursor: u64, outbox: &Outbox, stop: &AtomicBool) {
    let mut buf = Vec::new();
    loop {
        let (file, epoch, upto, reset) = {
            let mut st = tailer.lock();
            let line_end = st.line_end;
            let Some(f) = st.followers.iter_mut().find(|f| f.id == id) else {
                return;
            };
            let reset = f.reset.take();
            if reset.is_some() {
                cursor = 0;
            } else if cursor >= line_end {
                f.live = true;
                return;
            }
            (st.file.clone(), st.epoch.clone(), line_end, reset)
        };
        if let Some(kind) = reset {
            let notice = frame::text(&notice_json(kind, &tailer.name));
            if !outbox.send_wait(notice.into(), stop) {
                return;
            }
            continue;
        }
        let want = ((upto - cursor) as usize).min(CHUNK);
        buf.resize(want, 0);
        let n = match file.read_at(&mut buf, cursor) {
            Ok(n) => n,
            Err(e) => {
                log::debug!("catch-up of {}: {e}", tailer.name);
                return;
            }
        };
        buf.truncate(n);
        // A truncation or rotation while reading makes these bytes moot.
        if tailer
            .lock()
            .followers
            .iter()
            .any(|f| f.id == id && f.reset.is_some())
        {
            continue;
        }
        if n == 0 {
            // Shorter than the tailer knew: it will notice the truncation.
            std::thread::park_timeout(std::time::Duration::from_millis(20));
            continue;
        }
        let mut used = 0;
        while let Some((body, len)) = next_line(&buf[used..]) {
            let offset = cursor + len as u64;
            let text = data_json(&tailer.name, &buf[used..used + body], offset, &epoch);
            if !outbox.send_wait(frame::text(&text).into(), stop) {
                return;
            }
            cursor = offset;
            used += len;
        }
        if used == 0 {
            // The last line reaches up to `upto` without a newline only if
            // it was cut at MAX_LINE, which next_line handles; be safe.
            cursor = upto;
        }
    }
}

/// Starts [`run`] on its own thread.
pub fn spawn(
    tailer: Arc<Tailer>,
    id: u64,
    cursor: u64,
    outbox: Arc<Outbox>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("tail-catchup".into())
        .stack_size(128 * 1024)
        .spawn(move || run(&tailer, id, cursor, &outbox, &stop))
}

//! The reader thread of a stream: follows the spool from a start point and
//! sends each complete line as `data` with its offset and epoch, moving on
//! to the next generation when the writer rotates. It waits for the client
//! with [`Outbox::send_wait`] (a replay of a big spool must not overflow the
//! client's queue) and parks when it has caught up; the writer unparks it
//! after each append, the owner on stop.

use super::control::Control;
use super::spool::{Gen, Spool, StartPoint};
use crate::ws::Outbox;
use serde_json::json;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Bytes read from the spool at once.
const CHUNK: usize = 256 * 1024;
/// A safety net only: the writer unparks the reader after every append.
const IDLE_PARK: Duration = Duration::from_secs(5);

/// The `data` message of one spooled line.
pub fn data_json(line: &[u8], offset: u64, epoch: &str) -> String {
    json!({
        "type": "data",
        "payload": String::from_utf8_lossy(line),
        "offset": offset,
        "epoch": epoch,
    })
    .to_string()
}

/// Runs until stopped, the connection closes, or the stream has ended and
/// every spooled line has been sent; then, in that last case, sends the
/// stream's `stopped` with the reason.
pub fn run(spool: &Spool, start: StartPoint, outbox: &Outbox, ctl: &Control) {
    let mut gen = start.gen;
    let mut pos = start.pos;
    let mut buf = Vec::new();
    while !ctl.stopping() {
        let len = gen.len.load(Ordering::Acquire);
        if pos < len {
            let sent = send_chunk(&gen, &mut pos, len, &mut buf, outbox, ctl);
            // A replay's big buffer is not kept by a stream that then idles.
            if buf.capacity() > 64 * 1024 {
                buf = Vec::new();
            }
            match sent {
                Ok(true) => continue,
                Ok(false) => return,
                Err(e) => {
                    log::error!("spool read failed: {e}");
                    ctl.end("spool_error", format!("the spool could not be read: {e}"));
                    break;
                }
            }
        }
        if gen.sealed.load(Ordering::Acquire) {
            if let Some(next) = spool.next_after(&gen) {
                if !Arc::ptr_eq(&next, &gen) {
                    gen = next;
                    pos = 0;
                    continue;
                }
            }
        }
        if ctl.ending().is_some() {
            // The writer wrote its last line before recording the end, so
            // one more look at `len` has seen everything.
            if gen.len.load(Ordering::Acquire) > pos {
                continue;
            }
            break;
        }
        std::thread::park_timeout(IDLE_PARK);
    }
    if let Some(ending) = ctl.ending() {
        if !ctl.stopping() && ctl.claim_report() {
            let stopped = json!({
                "type": "stopped",
                "lines": ctl.lines.load(Ordering::Acquire),
                "reason": ending.reason,
                "message": ending.message,
            });
            outbox.send_text(&stopped.to_string());
        }
    }
}

/// Sends the complete lines in `[pos, len)` (one chunk of them); false when
/// the stream stopped or the connection closed meanwhile.
fn send_chunk(
    gen: &Gen,
    pos: &mut u64,
    len: u64,
    buf: &mut Vec<u8>,
    outbox: &Outbox,
    ctl: &Control,
) -> std::io::Result<bool> {
    let want = ((len - *pos) as usize).min(CHUNK);
    buf.resize(want, 0);
    gen.file.read_exact_at(buf, *pos)?;
    // `len` is a line boundary; a chunk cut short of it ends at its last
    // newline (lines are at most MAX_LINE, well under CHUNK).
    let end = if *pos + want as u64 == len {
        want
    } else {
        buf.iter()
            .rposition(|&b| b == b'\n')
            .map_or(want, |i| i + 1)
    };
    for line in buf[..end].split_inclusive(|&b| b == b'\n') {
        let offset = *pos + line.len() as u64;
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        let frame = crate::ws::frame::text(&data_json(body, offset, &gen.epoch));
        if !outbox.send_wait(frame.into(), &ctl.stop) {
            return Ok(false);
        }
        ctl.lines.fetch_add(1, Ordering::AcqRel);
        *pos = offset;
    }
    Ok(true)
}

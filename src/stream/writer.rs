//! The writer thread of a stream: appends lines to the spool, either a
//! timestamped line every interval or a producer's stdout, and wakes the
//! reader after each. It sleeps on the stream's wake channel, whose sender
//! the owner drops on `stop`, so a stop takes effect at once rather than
//! after the interval.

use super::control::Control;
use super::producer::{describe_exit, Producer};
use super::spool::Spool;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::io::{BufRead, BufReader, ErrorKind};
use std::process::ChildStdout;
use std::thread::Thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Producer lines longer than this are cut into pieces of this size, so one
/// runaway line cannot hold unbounded memory.
pub const MAX_LINE: usize = 64 * 1024;

/// The line `[<unix seconds with ms>] data_<n>`, newline included.
pub fn interval_line(now: SystemTime, n: u64) -> String {
    let ms = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    format!("[{}.{:03}] data_{n}\n", ms / 1000, ms % 1000)
}

/// Writes a line at once and then one every `interval` until stopped.
pub fn run_interval(
    spool: &Spool,
    interval: Duration,
    wake: &Receiver<()>,
    reader: &Thread,
    ctl: &Control,
) {
    let mut next = Instant::now();
    for n in 1.. {
        match wake.recv_deadline(next) {
            Err(RecvTimeoutError::Timeout) => {}
            // The owner dropped the sender: stop.
            _ => return,
        }
        if ctl.stopping() {
            return;
        }
        if let Err(e) = spool.append(interval_line(SystemTime::now(), n).as_bytes()) {
            fail(ctl, reader, &e);
            return;
        }
        reader.unpark();
        next += interval;
        // After a stall (a suspended host), go on from now, not in a burst.
        let now = Instant::now();
        if next < now {
            next = now + interval;
        }
    }
}

/// Appends the producer's stdout, line by line, until it ends or the stream
/// is stopped; a producer that exits by itself ends the stream.
pub fn run_producer(
    spool: &Spool,
    stdout: ChildStdout,
    producer: &Producer,
    wake: &Receiver<()>,
    reader: &Thread,
    ctl: &Control,
) {
    let mut input = BufReader::with_capacity(MAX_LINE, stdout);
    let mut line = Vec::new();
    loop {
        let buf = match input.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        if buf.is_empty() {
            break;
        }
        let (take, complete) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        line.extend_from_slice(&buf[..take]);
        input.consume(take);
        if (complete || line.len() >= MAX_LINE) && !flush(spool, &mut line, reader, ctl) {
            return;
        }
    }
    if !line.is_empty() && !flush(spool, &mut line, reader, ctl) {
        return;
    }
    if ctl.stopping() {
        return;
    }
    // Its stdout is closed: wait for the exit (or a stop) and say so.
    let status = loop {
        if let Some(status) = producer.try_reap() {
            break status;
        }
        match wake.recv_timeout(Duration::from_millis(20)) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
    };
    let message = format!("producer {} {}", producer.name, describe_exit(Some(status)));
    log::info!("{message}");
    ctl.end("producer_exited", message);
    reader.unpark();
}

/// Appends `line` (adding its newline) unless stopping; false to end.
fn flush(spool: &Spool, line: &mut Vec<u8>, reader: &Thread, ctl: &Control) -> bool {
    if ctl.stopping() {
        return false;
    }
    if line.last() != Some(&b'\n') {
        line.push(b'\n');
    }
    if let Err(e) = spool.append(line) {
        fail(ctl, reader, &e);
        return false;
    }
    line.clear();
    reader.unpark();
    true
}

fn fail(ctl: &Control, reader: &Thread, e: &std::io::Error) {
    log::error!("spool write failed: {e}");
    ctl.end(
        "spool_error",
        format!("the spool could not be written: {e}"),
    );
    reader.unpark();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_lines_carry_seconds_with_millis() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_007);
        assert_eq!(interval_line(t, 3), "[1700000000.007] data_3\n");
    }
}

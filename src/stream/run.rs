//! One running stream: starts its writer and reader threads (and producer),
//! and on stop tears them down in the only safe order: raise the flag, wake
//! every sleeper, end the producer's process group, join every thread.
//! Nothing of a stream outlives [`Running::finish`].

use super::control::Control;
use super::lease::Lease;
use super::producer::Producer;
use super::spool::{Spool, StartPoint};
use super::{reader, writer};
use crate::ws::Outbox;
use crossbeam_channel::Sender;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Stack of a stream thread: reading, JSON encoding and logging only.
const STACK: usize = 128 * 1024;

/// What `start` asked for, validated.
#[derive(Debug, Clone)]
pub struct StartRequest {
    /// Period of the timestamped lines.
    pub interval: Duration,
    /// The producer to run instead, with its command.
    pub producer: Option<(String, String)>,
    /// Resume after this offset.
    pub from: Option<u64>,
    /// ...of this spool generation.
    pub epoch: Option<String>,
}

/// A stream's threads and the means to stop them.
pub struct Running {
    ctl: Arc<Control>,
    wake: Option<Sender<()>>,
    writer: Option<JoinHandle<()>>,
    reader: Option<JoinHandle<()>>,
    stderr: Option<JoinHandle<()>>,
    producer: Option<Arc<Producer>>,
    _lease: Lease,
}

impl Running {
    /// Starts the threads (and the producer); `started` is queued once
    /// they all run, before the reader can send any `data`. When the OS
    /// refuses one of them, whatever had started is stopped and joined
    /// before the error is returned, and `started` is never sent.
    pub fn start(
        spool: Spool,
        start: StartPoint,
        request: &StartRequest,
        client_id: &str,
        outbox: &Arc<Outbox>,
        lease: Lease,
        started: String,
    ) -> std::io::Result<Running> {
        let spool = Arc::new(spool);
        let ctl = Arc::new(Control::default());
        let (wake, wake_rx) = crossbeam_channel::bounded::<()>(0);
        let mut producer = None;
        let mut stdout = None;
        let mut stderr = None;
        if let Some((name, command)) = &request.producer {
            let (p, out, logger) = Producer::spawn(name, command, client_id)?;
            producer = Some(Arc::new(p));
            stdout = Some(out);
            stderr = Some(logger);
        }
        let mut running = Running {
            ctl: ctl.clone(),
            wake: Some(wake),
            writer: None,
            reader: None,
            stderr,
            producer: producer.clone(),
            _lease: lease,
        };
        // The reader waits for `go`, sent once every thread is running and
        // `started` is queued: if the OS refuses a thread, the client gets
        // an error and no `started` and no `data`.
        let (go, go_rx) = crossbeam_channel::bounded::<()>(1);
        let reader = {
            let (spool, ctl, outbox) = (spool.clone(), ctl.clone(), outbox.clone());
            std::thread::Builder::new()
                .name("stream-reader".into())
                .stack_size(STACK)
                .spawn(move || {
                    if go_rx.recv().is_ok() {
                        reader::run(&spool, start, &outbox, &ctl);
                    }
                })
        };
        let reader = match reader {
            Ok(r) => r,
            Err(e) => {
                running.finish();
                return Err(e);
            }
        };
        let reader_thread = reader.thread().clone();
        running.reader = Some(reader);
        let interval = request.interval;
        let writer = std::thread::Builder::new()
            .name("stream-writer".into())
            .stack_size(STACK)
            .spawn(move || match (producer, stdout) {
                (Some(p), Some(out)) => {
                    writer::run_producer(&spool, out, &p, &wake_rx, &reader_thread, &ctl)
                }
                _ => writer::run_interval(&spool, interval, &wake_rx, &reader_thread, &ctl),
            });
        match writer {
            Ok(w) => running.writer = Some(w),
            Err(e) => {
                // The reader ends unstarted when `go` is dropped.
                drop(go);
                running.finish();
                return Err(e);
            }
        }
        outbox.send_text(&started);
        let _ = go.send(());
        Ok(running)
    }

    /// Whether the stream ended by itself and has said so with `stopped`.
    pub fn ended(&self) -> bool {
        self.ctl.reported()
    }

    /// Claims the stream's one `stopped`, for `stop` (false when the stream
    /// already sent its own).
    pub fn claim_report(&self) -> bool {
        self.ctl.claim_report()
    }

    /// Stops and joins everything; returns the `data` messages sent.
    pub fn finish(&mut self) -> u64 {
        self.ctl.stop.store(true, Ordering::Release);
        // Dropping the only sender wakes the writer's wait at once.
        self.wake.take();
        if let Some(reader) = &self.reader {
            reader.thread().unpark();
        }
        if let Some(producer) = self.producer.take() {
            producer.terminate();
            producer.reap();
        }
        for handle in [self.writer.take(), self.reader.take(), self.stderr.take()]
            .into_iter()
            .flatten()
        {
            if handle.join().is_err() {
                log::error!("a stream thread panicked");
            }
        }
        self.ctl.lines.load(Ordering::Acquire)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.finish();
    }
}

//! One scripted client: runs the scenario's steps, once per iteration, on
//! its own thread, until its iterations are done or the run stops it. A
//! failed step (a refused connect, an expect that times out, a capture that
//! finds nothing) is counted as an error of that step and ends the
//! iteration; the connection is closed at the end of every iteration.
//! Waits (think, expect, the pause after a failed iteration) end at once
//! when the run interrupts the client.

use crate::bench::client::{self, error_kind, is_timeout, ConnectError, Limiter, Socket};
use crate::bench::echo;
use crate::bench::live::Live;
use crate::bench::script::dial::Dialer;
use crate::bench::script::duration::Jitter;
use crate::bench::script::file::{Kind, Repeat, Script, Step};
use crate::bench::script::matcher::Miss;
use crate::bench::script::template::{Template, Unset, Values};
use crate::bench::stats::Latencies;
use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tungstenite::{Bytes, Message};

/// How often a client waiting for a message looks whether it is stopped.
const POLL: Duration = Duration::from_millis(100);
/// The pause after a failed iteration, so a server that refuses every
/// client is not hammered in a tight loop.
const AFTER_FAILURE: Duration = Duration::from_secs(1);

/// A latency metric: its histogram and the errors of its steps.
pub struct Metric {
    /// Latencies in µs.
    pub latency: Latencies,
    /// Steps of this metric that failed (timeouts included).
    pub errors: AtomicU64,
}

/// What every client of a run shares.
pub struct Shared {
    /// The scenario.
    pub script: Script,
    /// Live counters (connected, messages, errors by kind).
    pub live: Arc<Live>,
    /// The metrics, indexed like `script.metrics`.
    pub metrics: Vec<Metric>,
    /// Connection attempts in flight at once.
    pub limiter: Limiter,
    /// How connect steps connect.
    pub dialer: Dialer,
    /// Bound on a connect and its handshake.
    pub connect_timeout: Duration,
    /// Messages sent.
    pub sent: AtomicU64,
    /// Messages received.
    pub received: AtomicU64,
    /// Iterations that ran every step.
    pub iterations: AtomicU64,
    /// Iterations a step failed in.
    pub failed: AtomicU64,
}

impl Shared {
    /// The shared state of a run of `script`.
    pub fn new(
        script: Script,
        live: Arc<Live>,
        dialer: Dialer,
        concurrency: usize,
        timeout: Duration,
    ) -> Shared {
        let metrics = script
            .metrics
            .iter()
            .map(|_| Metric {
                latency: Latencies::new(),
                errors: AtomicU64::new(0),
            })
            .collect();
        Shared {
            script,
            live,
            metrics,
            limiter: Limiter::new(concurrency),
            dialer,
            connect_timeout: timeout,
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            iterations: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }
}

/// How the run stops a client: `finish` asks it to stop after its
/// iteration; the sender of `interrupt` dropped stops it at once.
pub struct Control {
    /// Stop after the current iteration.
    pub finish: Arc<AtomicBool>,
    /// Disconnected: stop now.
    pub interrupt: Receiver<()>,
}

impl Control {
    fn interrupted(&self) -> bool {
        matches!(self.interrupt.try_recv(), Err(TryRecvError::Disconnected))
    }

    /// Waits `d`; false when interrupted meanwhile.
    fn wait(&self, d: Duration) -> bool {
        !matches!(
            self.interrupt.recv_timeout(d),
            Err(RecvTimeoutError::Disconnected)
        )
    }
}

/// Why a step did not complete.
enum Stop {
    /// The run interrupted the client.
    Interrupted,
    /// The step failed (already counted).
    Failed,
}

/// One client's state across its steps.
struct Client<'a> {
    shared: &'a Shared,
    control: &'a Control,
    index: usize,
    row: &'a [String],
    ws: Option<Socket>,
    vars: Vec<Option<String>>,
    /// Sends so far, the one being rendered included (`{{n}}`).
    n: u64,
    /// When the latest send (or handshake) ended: expect latencies start here.
    since: Instant,
    /// The message the last expect matched, and its JSON parse.
    last: Option<(String, Option<Value>)>,
    jitter: Jitter,
}

/// Runs client `index`: iterations until `iterations` (if any) are done, or
/// the run stops it.
pub fn run(shared: &Shared, index: usize, control: &Control, iterations: Option<u64>) {
    let mut c = Client {
        shared,
        control,
        index,
        row: shared.script.feeder.row(index),
        ws: None,
        vars: vec![None; shared.script.vars.len()],
        n: 0,
        since: Instant::now(),
        last: None,
        jitter: Jitter::new(index as u64 ^ crate::bench::stats::now_us()),
    };
    let mut done = 0u64;
    let more = |done: u64| iterations.map_or(true, |max| done < max);
    while !control.finish.load(Relaxed) && more(done) {
        let outcome = c.steps(&shared.script.steps);
        c.disconnect();
        done += 1;
        match outcome {
            Ok(()) => {
                shared.iterations.fetch_add(1, Relaxed);
            }
            Err(Stop::Interrupted) => return,
            Err(Stop::Failed) => {
                shared.failed.fetch_add(1, Relaxed);
                if more(done) && !control.finish.load(Relaxed) && !control.wait(AFTER_FAILURE) {
                    return;
                }
            }
        }
    }
}

impl Client<'_> {
    fn steps(&mut self, steps: &[Step]) -> Result<(), Stop> {
        for step in steps {
            if self.control.interrupted() {
                return Err(Stop::Interrupted);
            }
            self.step(step)?;
        }
        Ok(())
    }

    /// Counts a failure of `step` as an error named by its metric or line.
    fn fail(&self, step: &Step, what: &str) -> Stop {
        let name = match &step.kind {
            Kind::Expect { metric, .. } => {
                self.shared.metrics[*metric].errors.fetch_add(1, Relaxed);
                self.shared.script.metrics[*metric].clone()
            }
            Kind::Connect { .. } => {
                self.shared.metrics[0].errors.fetch_add(1, Relaxed);
                format!("line {} connect", step.line)
            }
            Kind::Send { .. } => format!("line {} send", step.line),
            Kind::Capture { .. } => format!("line {} capture", step.line),
            _ => format!("line {}", step.line),
        };
        self.shared.live.error(format!("{name}: {what}"));
        Stop::Failed
    }

    /// A failed connect, counted like a failed step, with the refused
    /// upgrade's body kept as the sample of its kind.
    fn refused(&self, step: &Step, e: ConnectError) -> Stop {
        let kind = format!("line {} connect: {}", step.line, e.kind);
        self.shared.live.refused_body(&kind, e.body.as_deref());
        self.fail(step, &e.kind)
    }

    fn render(&self, step: &Step, t: &Template) -> Result<String, Stop> {
        t.render(&self.values()).map_err(|Unset(i)| {
            let var = &self.shared.script.vars[i];
            self.fail(step, &format!("{{{{{var}}}}} not captured"))
        })
    }

    fn values(&self) -> Values<'_> {
        Values {
            client: self.index,
            n: self.n,
            row: self.row,
            vars: &self.vars,
        }
    }

    fn step(&mut self, step: &Step) -> Result<(), Stop> {
        match &step.kind {
            Kind::Connect {
                url,
                headers,
                subprotocols,
            } => {
                self.disconnect();
                let url = self.render(step, url)?;
                let mut rendered = Vec::with_capacity(headers.len());
                for (name, value) in headers {
                    rendered.push((name.as_str(), self.render(step, value)?));
                }
                // Timed from the permit: waiting for one is the tool's
                // queue, not the server's handshake.
                let (connected, took) = {
                    let _permit = self.shared.limiter.acquire();
                    let started = Instant::now();
                    let c = self.shared.dialer.connect(
                        &url,
                        &rendered,
                        subprotocols,
                        self.shared.connect_timeout,
                    );
                    (c, started.elapsed())
                };
                let ws = connected.map_err(|e| self.refused(step, e))?;
                self.shared.metrics[0]
                    .latency
                    .add(&[took.as_micros() as u64]);
                self.shared.live.connected.fetch_add(1, Relaxed);
                self.ws = Some(ws);
                self.since = Instant::now();
            }
            Kind::Send { body, binary } => {
                // `{{n}}` counts this send: an expect after it sees the same n.
                self.n += 1;
                let text = self.render(step, body)?;
                let message = if *binary {
                    Message::Binary(Bytes::from(text.into_bytes()))
                } else {
                    Message::text(text)
                };
                let Some(ws) = self.ws.as_mut() else {
                    return Err(self.fail(step, "not connected"));
                };
                if let Err(e) = ws.send(message) {
                    let kind = error_kind(&e);
                    return Err(self.fail(step, &kind));
                }
                self.since = Instant::now();
                self.shared.sent.fetch_add(1, Relaxed);
                self.shared.live.add_messages(1);
            }
            Kind::Expect {
                timeout, metric, ..
            } => {
                let deadline = Instant::now() + *timeout;
                let found = self.expect(step, deadline)?;
                let us = self.since.elapsed().as_micros() as u64;
                self.shared.metrics[*metric].latency.add(&[us]);
                self.last = Some(found);
            }
            Kind::Capture { var, source } => {
                let value = self
                    .last
                    .as_ref()
                    .and_then(|(text, json)| source.take(text, json.as_ref()));
                match value {
                    Some(v) => self.vars[*var] = Some(v),
                    None => return Err(self.fail(step, "nothing to capture")),
                }
            }
            Kind::Think(span) => {
                if !self.control.wait(span.at(self.jitter.unit())) {
                    return Err(Stop::Interrupted);
                }
            }
            Kind::Loop { repeat, body } => {
                let start = Instant::now();
                let mut round = 0u64;
                loop {
                    let more = match repeat {
                        Repeat::Times(n) => round < *n,
                        Repeat::For(d) => start.elapsed() < *d,
                    };
                    if !more {
                        break;
                    }
                    self.steps(body)?;
                    round += 1;
                }
            }
            Kind::Close => self.disconnect(),
        }
        Ok(())
    }

    /// Reads until a message matches `step`'s expectation or `deadline`.
    fn expect(&mut self, step: &Step, deadline: Instant) -> Result<(String, Option<Value>), Stop> {
        let Kind::Expect {
            condition, regex, ..
        } = &step.kind
        else {
            return Err(Stop::Failed);
        };
        loop {
            if self.control.interrupted() {
                return Err(Stop::Interrupted);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(self.fail(step, "timeout"));
            }
            let Some(ws) = self.ws.as_mut() else {
                return Err(self.fail(step, "not connected"));
            };
            client::set_read_timeout(ws, Some((deadline - now).min(POLL)));
            let text = match ws.read() {
                Ok(Message::Text(t)) => t.as_str().to_string(),
                Ok(Message::Binary(b)) => String::from_utf8_lossy(&b).into_owned(),
                Ok(Message::Close(_)) => return Err(self.fail(step, "closed by server")),
                Ok(_) => continue,
                Err(e) if is_timeout(&e) => continue,
                Err(e) => {
                    let kind = error_kind(&e);
                    return Err(self.fail(step, &kind));
                }
            };
            self.shared.received.fetch_add(1, Relaxed);
            self.shared.live.add_messages(1);
            if let Some(re) = regex {
                if !re.is_match(&text) {
                    continue;
                }
            }
            let json: Option<Value> = serde_json::from_str(&text).ok();
            if let Some(cond) = condition {
                let Some(v) = &json else { continue };
                match cond.check(v, &self.values()) {
                    Ok(()) => {}
                    Err(Miss::No) => continue,
                    Err(Miss::Unset(Unset(i))) => {
                        let var = &self.shared.script.vars[i];
                        return Err(self.fail(step, &format!("{{{{{var}}}}} not captured")));
                    }
                }
            }
            return Ok((text, json));
        }
    }

    /// Closes the connection, if one is open.
    fn disconnect(&mut self) {
        if let Some(mut ws) = self.ws.take() {
            echo::close(&mut ws);
            self.shared.live.connected.fetch_sub(1, Relaxed);
        }
        self.last = None;
    }
}

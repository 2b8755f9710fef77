//! `strand bench pubsub`: fan-out through any pub/sub server. N
//! subscribers connect to `--url` and (optionally) send a subscribe
//! message and wait for its acknowledgement; then one publisher sends K
//! messages at R per second, over a WebSocket or as HTTP POSTs to a URL the
//! user names, each carrying an id (0 to K-1) and its send time (Unix µs)
//! that the tool put in it through `{{id}}` and `{{now_us}}`. Subscribers
//! take both back out of what they receive (a JSON path or a regex), so
//! delivery latency, loss, duplicates and reordering are counted per
//! subscriber, as `fanout` counts them for strand's rooms, for a server
//! whose protocol the tool does not know.

use crate::bench::client::{error_kind, set_read_timeout, Connector, Fleet, Limiter, Ready};
use crate::bench::live::{Live, Progress};
use crate::bench::post::Poster;
use crate::bench::receivers::Receivers;
use crate::bench::report::Report;
use crate::bench::script::matcher::{self, Condition, Path, Source};
use crate::bench::script::template::{unix_us, Names, Template, Values};
use crate::bench::stats::now_us;
use crate::bench::tls::Trust;
use crate::bench::{secs, Common};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tungstenite::Message;

/// The flags of `strand bench pubsub`.
#[derive(Debug, Clone, clap::Args)]
pub struct PubsubArgs {
    /// The shared flags (`--url`: where subscribers connect, path included).
    #[command(flatten)]
    pub common: Common,
    /// Subscribers, one thread each.
    #[arg(long, default_value_t = 100)]
    pub subscribers: usize,
    /// What a subscriber sends once connected (a template: `{{client}}` is
    /// its index); none for a server that subscribes by URL.
    #[arg(long, value_name = "TEMPLATE")]
    pub subscribe: Option<String>,
    /// A JSON condition the answer to `--subscribe` meets
    /// (`$.type == "subscribed"`); publishing starts when every subscriber
    /// has it.
    #[arg(long, value_name = "CONDITION")]
    pub ack: Option<String>,
    /// Where to publish: `ws://`/`wss://` (one WebSocket) or
    /// `http://`/`https://` (a POST per message); `--url` by default.
    #[arg(long, value_name = "URL")]
    pub publish_url: Option<String>,
    /// The message published: a template with `{{id}}` and `{{now_us}}`,
    /// e.g. `{"type":"publish","topic":"t","data":{"id":{{id}},"at":{{now_us}}}}`.
    #[arg(long, value_name = "TEMPLATE")]
    pub publish: String,
    /// A header of every HTTP POST, `'Name: value'` (repeatable;
    /// `Content-Type: application/json` unless given).
    #[arg(long = "publish-header", value_name = "'NAME: VALUE'")]
    pub publish_headers: Vec<String>,
    /// Where a delivered message carries the id: a JSON path (`$.data.id`)
    /// or a regex whose first group is it.
    #[arg(long, value_name = "PATH|REGEX")]
    pub id: String,
    /// Where it carries the send time (Unix µs), as `--id`.
    #[arg(long, value_name = "PATH|REGEX")]
    pub sent: String,
    /// Messages the publisher sends.
    #[arg(long, default_value_t = 100)]
    pub messages: u64,
    /// Messages per second (0: as fast as it can).
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Seconds to wait for late deliveries after the last message is sent.
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    pub grace: f64,
}

/// Names a pub/sub template may use besides client, n and now_us: `id`
/// in `--publish`, none in `--subscribe` and `--ack`.
struct IdOnly(bool);

impl Names for IdOnly {
    fn column(&self, _: &str) -> Option<usize> {
        None
    }
    fn variable(&self, name: &str) -> Option<usize> {
        (self.0 && name == "id").then_some(0)
    }
}

/// Where a delivered message carries a number.
fn source(text: &str) -> Result<Source, String> {
    if text.trim_start().starts_with('$') {
        Ok(Source::Json(Path::parse(text)?))
    } else {
        Ok(Source::Regex(matcher::regex(text)?))
    }
}

/// The id and send time in a delivered text, the time on [`now_us`]'s
/// clock (`offset` is Unix µs minus it).
fn stamp_of(text: &str, id: &Source, sent: &Source, offset: u64) -> Option<(u64, u64)> {
    let json: Option<Value> = serde_json::from_str(text).ok();
    let number = |s: &Source| s.take(text, json.as_ref())?.trim().parse::<u64>().ok();
    Some((number(id)?, number(sent)?.saturating_sub(offset)))
}

struct Run {
    connector: Connector,
    subscribe: Option<Template>,
    ack: Option<Condition>,
    id: Source,
    sent: Source,
    offset: u64,
    timeout: Duration,
    limiter: Limiter,
    live: Arc<Live>,
    rx: Receivers,
}

/// Runs the scenario.
pub fn run(a: &PubsubArgs) -> Result<Report, String> {
    a.common.unsegmented("pubsub")?;
    let connector = a.common.connector()?;
    let publish =
        Template::parse(&a.publish, &IdOnly(true)).map_err(|e| format!("--publish: {e}"))?;
    let subscribe = a
        .subscribe
        .as_deref()
        .map(|t| Template::parse(t, &IdOnly(false)))
        .transpose()
        .map_err(|e| format!("--subscribe: {e}"))?;
    let ack = a
        .ack
        .as_deref()
        .map(|c| Condition::parse(c, &IdOnly(false)))
        .transpose()
        .map_err(|e| format!("--ack: {e}"))?;
    let publisher = publisher(a, &connector)?;
    let live = Live::new(a.subscribers as u64);
    let (rx, completions) = Receivers::new(a.messages);
    let run = Arc::new(Run {
        connector,
        subscribe,
        ack,
        id: source(&a.id).map_err(|e| format!("--id: {e}"))?,
        sent: source(&a.sent).map_err(|e| format!("--sent: {e}"))?,
        offset: unix_us().saturating_sub(now_us()),
        timeout: a.common.timeout(),
        limiter: Limiter::new(a.common.connect_concurrency),
        live: live.clone(),
        rx,
    });
    let progress = Progress::start(&live, a.common.quiet);
    let r = run.clone();
    let fleet = Fleet::spawn(a.subscribers, "bench-sub", &live, move |i, ready| {
        subscriber(&r, i, ready)
    });
    let connected = fleet.wait_ready() as u64;
    progress.note(&format!("{connected} of {} subscribed", a.subscribers));

    let first_send_us = now_us();
    let sent = if connected > 0 {
        publish_all(&run, a, publisher, &publish)
    } else {
        0
    };
    let deadline = Instant::now() + secs(a.grace);
    run.rx
        .wait_complete(&completions, connected as usize, deadline);
    fleet.join();
    drop(progress);

    let target = &run.connector.target;
    let mut report = Report::new("pubsub", &target.url(&target.path));
    report.count("subscribers", "subscribers", a.subscribers as u64);
    report.count("connected", "connected", connected);
    report.set_connected(connected);
    report.subprotocol(&run.connector);
    let via = a.publish_url.as_deref().unwrap_or(&a.common.url);
    report.add("published to", via.to_string(), "publish_url", via.into());
    report.count("messages sent", "sent", sent);
    report.real("offered rate (msg/s)", "offered_rate", a.rate, 1);
    run.rx.report(&mut report, first_send_us);
    report.run_of(&live, Some(&run.rx.latency));
    Ok(report)
}

/// How the publisher reaches the server.
enum Publisher {
    Ws(Connector),
    Http(Poster),
}

fn publisher(a: &PubsubArgs, connector: &Connector) -> Result<Publisher, String> {
    let url = a.publish_url.as_deref().unwrap_or(&a.common.url);
    if url.starts_with("http://") || url.starts_with("https://") {
        let trust = Trust {
            cacert: a.common.connect.cacert.as_deref(),
            insecure: a.common.connect.insecure,
        };
        let poster = Poster::new(url, &a.publish_headers, &trust, a.common.timeout())
            .map_err(|e| format!("--publish-url: {e}"))?;
        Ok(Publisher::Http(poster))
    } else {
        Ok(Publisher::Ws(connector.to(url)?))
    }
}

fn subscriber(run: &Run, index: usize, ready: Ready) {
    let connected = {
        let _permit = run.limiter.acquire();
        run.connector
            .connect(&run.connector.target.path, run.timeout)
    };
    let mut ws = match connected {
        Ok(ws) => ws,
        Err(e) => {
            run.live.connect_error(&e);
            return ready.failed();
        }
    };
    let values = Values {
        client: index,
        n: 0,
        row: &[],
        vars: &[],
    };
    if let Some(t) = &run.subscribe {
        let text = t.render(&values).unwrap_or_default();
        if let Err(e) = ws.send(Message::text(text)) {
            run.live.error(format!("subscribe: {}", error_kind(&e)));
            return ready.failed();
        }
    }
    if let Some(cond) = &run.ack {
        let deadline = Instant::now() + run.timeout;
        loop {
            let now = Instant::now();
            if now >= deadline {
                run.live.error("ack: timeout");
                return ready.failed();
            }
            set_read_timeout(&ws, Some(deadline - now));
            match ws.read() {
                Ok(Message::Text(t)) => {
                    let acked = serde_json::from_str::<Value>(&t)
                        .is_ok_and(|v| cond.check(&v, &values).is_ok());
                    if acked {
                        break;
                    }
                }
                Ok(Message::Close(_)) => {
                    run.live.error("ack: closed by server");
                    return ready.failed();
                }
                Ok(_) => {}
                Err(e) if crate::bench::client::is_timeout(&e) => {}
                Err(e) => {
                    run.live.error(format!("ack: {}", error_kind(&e)));
                    return ready.failed();
                }
            }
        }
    }
    run.rx.receive(ws, index, ready, &run.live, true, |text| {
        stamp_of(text, &run.id, &run.sent, run.offset)
    });
}

/// Sends the K messages at the rate; returns how many went out.
fn publish_all(run: &Run, a: &PubsubArgs, publisher: Publisher, publish: &Template) -> u64 {
    let start = Instant::now();
    let mut sent = 0;
    let render = |id: u64| {
        let vars = [Some(id.to_string())];
        let v = Values {
            client: 0,
            n: id,
            row: &[],
            vars: &vars,
        };
        publish.render(&v).unwrap_or_default()
    };
    let due = |seq: u64| {
        if a.rate > 0.0 {
            start + Duration::from_secs_f64(seq as f64 / a.rate)
        } else {
            start
        }
    };
    match publisher {
        Publisher::Ws(connector) => {
            let mut ws = match connector.connect(&connector.target.path, run.timeout) {
                Ok(ws) => ws,
                Err(e) => {
                    run.live.error(format!("publisher: {}", e.kind));
                    return 0;
                }
            };
            for id in 0..a.messages {
                // Read what the server sends the publisher while waiting,
                // so it never becomes a slow consumer.
                loop {
                    let now = Instant::now();
                    let at = due(id);
                    if at <= now {
                        break;
                    }
                    set_read_timeout(&ws, Some(at - now));
                    match ws.read() {
                        Ok(_) => {}
                        Err(e) if crate::bench::client::is_timeout(&e) => {}
                        Err(_) => break,
                    }
                }
                if let Err(e) = ws.send(Message::text(render(id))) {
                    run.live.error(format!("publisher: {}", error_kind(&e)));
                    break;
                }
                sent += 1;
            }
            crate::bench::echo::close(&mut ws);
        }
        Publisher::Http(mut poster) => {
            for id in 0..a.messages {
                crate::bench::fanout::pace(start, id, a.rate);
                match poster.post(&render(id)) {
                    Ok(status) if (200..300).contains(&status) => sent += 1,
                    Ok(status) => run.live.error(format!("publisher: http {status}")),
                    Err(kind) => run.live.error(format!("publisher: {kind}")),
                }
            }
        }
    }
    sent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_come_out_of_json_or_a_regex() {
        let id = source("$.data.id").unwrap();
        let sent = source("$.data.at").unwrap();
        let text = r#"{"type":"message","data":{"id":7,"at":1000500}}"#;
        assert_eq!(stamp_of(text, &id, &sent, 1000), Some((7, 999_500)));
        assert_eq!(stamp_of(r#"{"type":"subscribed"}"#, &id, &sent, 0), None);
        assert_eq!(stamp_of("not json", &id, &sent, 0), None);
        let id = source(r"id=(\d+)").unwrap();
        let sent = source(r"at=(\d+)").unwrap();
        assert_eq!(stamp_of("msg id=3 at=42", &id, &sent, 2), Some((3, 40)));
        assert!(source("(").is_err());
        assert!(source("$.").is_err());
    }

    #[test]
    fn publish_templates_know_id() {
        let t = Template::parse(r#"{"id":{{id}},"at":{{now_us}}}"#, &IdOnly(true)).unwrap();
        let vars = [Some("5".to_string())];
        let v = Values {
            client: 0,
            n: 5,
            row: &[],
            vars: &vars,
        };
        let v: Value = serde_json::from_str(&t.render(&v).unwrap()).unwrap();
        assert_eq!(v["id"], 5);
        assert!(v["at"].as_u64().unwrap() > 1_600_000_000_000_000);
        assert!(Template::parse("{{seq}}", &IdOnly(true)).is_err());
        assert!(Template::parse("sub {{id}}", &IdOnly(false)).is_err());
        assert!(Template::parse("sub {{client}}", &IdOnly(false)).is_ok());
    }
}

//! The result of a run: a two-column table for people (stdout) and the same
//! figures as one JSON object for machines (`--json`), with each latency's
//! HDR buckets so results merge exactly; and the figures thresholds are
//! evaluated on.
//!
//! The JSON also carries the table's layout (`table`: each row's label,
//! key and how it merges: `sum`, `max`, `rate`, `latency`, `errors`,
//! `delivery`, `first`), so `strand bench merge` rebuilds the same table
//! from several results without knowing the scenario.

use crate::bench::client::Connector;
use crate::bench::live::Live;
use crate::bench::stats::{buckets, human_us, now_us, unix_ms, Delivery, Latencies, Summary};
use crate::bench::threshold::{Figures, Verdict};
use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// The figures of one run, in the order they were added.
pub struct Report {
    title: String,
    rows: Vec<(String, String)>,
    json: Map<String, Value>,
    layout: Vec<Value>,
    connected: Option<u64>,
    figures: Figures,
}

impl Report {
    /// A report titled e.g. `echo ws://127.0.0.1:8000/ws`.
    pub fn new(scenario: &str, url: &str) -> Report {
        let mut json = Map::new();
        json.insert("scenario".into(), json!(scenario));
        json.insert("url".into(), json!(url));
        Report {
            title: format!("strand bench {scenario} {url}"),
            rows: Vec::new(),
            json,
            layout: Vec::new(),
            connected: None,
            figures: Figures::default(),
        }
    }

    /// The run's `label` (`--label`, else `SCENARIO URL`) and `segment`.
    pub fn set_run(&mut self, common: &crate::bench::Common) {
        let label = common
            .label
            .clone()
            .unwrap_or_else(|| self.title.trim_start_matches("strand bench ").to_string());
        self.json.insert("label".into(), json!(label));
        if let Some(s) = common.segment {
            self.json.insert("segment".into(), json!(s.to_string()));
        }
    }

    /// How many clients connected at least once (a run where none did
    /// fails: exit 1).
    pub fn set_connected(&mut self, n: u64) {
        self.connected = Some(n);
        self.json.insert("clients_connected".into(), json!(n));
    }

    /// Whether the run says no client connected.
    pub fn none_connected(&self) -> bool {
        self.connected == Some(0)
    }

    /// A figure: its table label and text, and its JSON key and value;
    /// merged results keep the first one's.
    pub fn add(&mut self, label: &str, text: String, key: &str, value: Value) {
        self.layout
            .push(json!({"label": label, "key": key, "merge": "first", "text": text}));
        self.put(label, text, key, value);
    }

    /// A row and its JSON, without layout.
    fn put(&mut self, label: &str, text: String, key: &str, value: Value) {
        self.rows.push((label.to_string(), text));
        self.json.insert(key.to_string(), value);
    }

    /// A value thresholds can name by `key` (`rate` is kept for the main
    /// rate, see [`Report::rate`]).
    fn figure(&mut self, key: &str, x: f64) {
        if key != "rate" {
            self.figures.values.insert(key.into(), x);
        }
    }

    /// A count, summed when results merge (a figure thresholds can name
    /// by `key`).
    pub fn count(&mut self, label: &str, key: &str, n: u64) {
        self.layout
            .push(json!({"label": label, "key": key, "merge": "sum"}));
        self.put(label, n.to_string(), key, json!(n));
        self.figure(key, n as f64);
    }

    /// An integer setting of the run (a message size), the largest kept
    /// when results merge.
    pub fn setting(&mut self, label: &str, key: &str, n: u64) {
        self.layout
            .push(json!({"label": label, "key": key, "merge": "max"}));
        self.put(label, n.to_string(), key, json!(n));
        self.figure(key, n as f64);
    }

    /// A real number (a duration, an offered rate), shown with `decimals`,
    /// the largest kept when results merge (a figure thresholds can name by
    /// `key`).
    pub fn real(&mut self, label: &str, key: &str, x: f64, decimals: usize) {
        let x = if x.is_finite() { x } else { 0.0 };
        self.layout
            .push(json!({"label": label, "key": key, "merge": "max", "decimals": decimals}));
        self.put(label, format!("{x:.decimals$}"), key, json!(x));
        self.figure(key, x);
    }

    /// The scenario's main rate: `count` (the figure at JSON path `of`,
    /// e.g. `messages` or `delivery.delivered`) over the window between
    /// the [`now_us`] instants `from_us` and `to_us`. Thresholds know it
    /// as `rate`; merged results recompute it over their common window.
    pub fn rate(&mut self, label: &str, key: &str, of: &str, count: u64, from_us: u64, to_us: u64) {
        self.rate_over(label, key, of, count, unix_ms(from_us), unix_ms(to_us));
    }

    /// [`Report::rate`] over a window in Unix milliseconds.
    pub fn rate_over(
        &mut self,
        label: &str,
        key: &str,
        of: &str,
        count: u64,
        from_ms: f64,
        to_ms: f64,
    ) {
        let span = (to_ms - from_ms) / 1e3;
        let x = if span > 0.0 { count as f64 / span } else { 0.0 };
        self.layout.push(json!({
            "label": label, "key": key, "merge": "rate", "of": of,
            "from_ms": from_ms, "to_ms": to_ms,
        }));
        self.put(label, format!("{x:.0}"), key, json!(x));
        self.figure(key, x);
        self.figures.values.insert("rate".into(), x);
    }

    /// Latency percentiles and HDR buckets under `key` (values in µs in
    /// the JSON); the first latency added is the main one for thresholds.
    pub fn latency(&mut self, label: &str, key: &str, h: &Histogram<u64>) {
        let s = &Summary::of(h);
        let text = if s.count == 0 {
            "no samples".to_string()
        } else {
            format!(
                "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (n={})",
                human_us(s.p50),
                human_us(s.p90),
                human_us(s.p99),
                human_us(s.p999),
                human_us(s.max),
                s.count
            )
        };
        let mut value = serde_json::to_value(s).unwrap_or(Value::Null);
        value["histogram"] = json!(buckets(h));
        self.layout
            .push(json!({"label": label, "key": key, "merge": "latency"}));
        self.put(label, text, &format!("{key}_us"), value);
        self.figures.latencies.insert(key.into(), h.clone());
        self.figures.main.get_or_insert_with(|| key.into());
    }

    /// Loss and duplicates over all receivers.
    pub fn delivery(&mut self, d: &Delivery) {
        let text = format!(
            "{} of {} delivered; lost {} ({} receivers, most {}), duplicated {}, reordered {}",
            d.delivered,
            d.receivers * d.expected_each,
            d.lost,
            d.receivers_with_loss,
            d.max_lost,
            d.duplicates,
            d.reordered
        );
        let value = serde_json::to_value(d).unwrap_or(Value::Null);
        self.layout
            .push(json!({"label": "delivery", "key": "delivery", "merge": "delivery"}));
        self.put("delivery", text, "delivery", value);
        for (key, n) in [
            ("delivered", d.delivered),
            ("lost", d.lost),
            ("duplicates", d.duplicates),
            ("reordered", d.reordered),
        ] {
            self.figures.values.insert(key.into(), n as f64);
        }
    }

    /// The client errors of the run, by kind.
    pub fn errors(&mut self, live: &Live) {
        self.errors_of(live.errors(), &live.error_kinds(), &live.error_samples());
    }

    /// The client errors: how many, by kind, and one body per refused
    /// upgrade's status.
    pub fn errors_of(
        &mut self,
        total: u64,
        kinds: &BTreeMap<String, u64>,
        samples: &BTreeMap<String, String>,
    ) {
        let mut text = total.to_string();
        if !kinds.is_empty() {
            let parts: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
            text.push_str(&format!(" ({})", parts.join(", ")));
        }
        self.figures.values.insert("errors".into(), total as f64);
        let value = json!({ "total": total, "kinds": kinds, "samples": samples });
        self.layout
            .push(json!({"label": "errors", "key": "errors", "merge": "errors"}));
        self.put("errors", text, "errors", value);
        for (kind, body) in samples {
            self.rows
                .push((format!("  {kind} body"), format!("{body:?}")));
        }
    }

    /// What the run's live counters add: its errors (a row), and in the
    /// JSON its start (`started_at_ms`, Unix ms), `duration_s` and `series`
    /// (one entry a second, with the p99 of `main` in that second).
    pub fn run_of(&mut self, live: &Live, main: Option<&Latencies>) {
        self.errors(live);
        let p99 = main.map(|l| l.p99_by_second()).unwrap_or_default();
        self.json.insert(
            "started_at_ms".into(),
            json!(unix_ms(live.started_us).round() as u64),
        );
        let duration = now_us().saturating_sub(live.started_us) as f64 / 1e6;
        self.json.insert("duration_s".into(), json!(duration));
        self.json.insert("series".into(), json!(live.series(&p99)));
    }

    /// The subprotocol the server chose (when the run offered some): the
    /// most frequent choice, and every choice with its count.
    pub fn subprotocol(&mut self, connector: &Connector) {
        if !connector.offers_subprotocols() {
            return;
        }
        let chosen = connector.subprotocols_chosen();
        let top = chosen
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(p, _)| p.clone());
        let text = if chosen.is_empty() {
            "no connection".to_string()
        } else {
            let parts: Vec<String> = chosen
                .iter()
                .map(|(p, n)| {
                    let p = if p.is_empty() { "none" } else { p };
                    format!("{p} ({n})")
                })
                .collect();
            parts.join(", ")
        };
        let top = top.filter(|p| !p.is_empty());
        self.add("subprotocol", text, "subprotocol", json!(top));
        self.json.insert("subprotocols".into(), json!(chosen));
    }

    /// The figures thresholds are evaluated on.
    pub fn figures(&self) -> &Figures {
        &self.figures
    }

    /// The thresholds' verdicts: a row each, and `thresholds` in the JSON.
    pub fn thresholds(&mut self, verdicts: &[Verdict]) {
        for v in verdicts {
            let actual = match v.actual {
                None => "no such figure or no samples".to_string(),
                Some(a) if v.time => human_us(a.round() as u64),
                Some(a) if a.fract() == 0.0 => format!("{a:.0}"),
                Some(a) => format!("{a:.2}"),
            };
            let verdict = if v.ok { "ok" } else { "CROSSED" };
            self.rows.push((
                format!("threshold {}", v.expr),
                format!("{verdict} ({} {actual})", v.metric),
            ));
        }
        self.json.insert("thresholds".into(), json!(verdicts));
    }

    /// The table for people.
    pub fn table(&self) -> String {
        let width = self.rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
        let mut out = format!("{}\n", self.title);
        for (label, text) in &self.rows {
            out.push_str(&format!("  {label:<width$}  {text}\n"));
        }
        out
    }

    /// Sets a top-level JSON key that has no row (`series`, `merged`...).
    pub fn set_json(&mut self, key: &str, value: Value) {
        self.json.insert(key.into(), value);
    }

    /// The JSON object, pretty-printed, with the table's layout.
    pub fn json_text(&self) -> String {
        let mut json = self.json.clone();
        json.insert("table".into(), json!(self.layout));
        let mut s = serde_json::to_string_pretty(&json).unwrap_or_default();
        s.push('\n');
        s
    }

    /// The JSON object.
    pub fn json(&self) -> &Map<String, Value> {
        &self.json
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_json_carry_the_same_figures() {
        let mut r = Report::new("echo", "ws://x:1/ws");
        r.count("clients", "clients", 3);
        r.rate_over("messages/s", "msgs_per_s", "messages", 2470, 0.0, 2000.0);
        let mut h = crate::bench::stats::histogram();
        h.record_n(40, 6).unwrap();
        h.record_n(50, 3).unwrap();
        h.record(1500).unwrap();
        r.latency("rtt", "rtt", &h);
        let live = Live::new(3);
        live.error("refused");
        live.error("refused");
        live.connect_error(&crate::bench::client::ConnectError {
            kind: "http 401".into(),
            body: Some("no token".into()),
        });
        r.errors(&live);
        let table = r.table();
        assert!(table.contains("messages/s       1235"), "{table}");
        assert!(table.contains("p50 40 µs"), "{table}");
        assert!(table.contains("p99 1.50 ms"), "{table}");
        assert!(table.contains("3 (http 401 1, refused 2)"), "{table}");
        assert!(table.contains("http 401 body  \"no token\""), "{table}");
        let j: Value = serde_json::from_str(&r.json_text()).unwrap();
        assert_eq!(j["clients"], 3);
        assert_eq!(j["rtt_us"]["p99"], 1500);
        assert_eq!(
            j["rtt_us"]["histogram"],
            json!([[40, 6], [50, 3], [1500, 1]])
        );
        assert_eq!(j["errors"]["kinds"]["refused"], 2);
        assert_eq!(j["errors"]["samples"]["http 401"], "no token");
        let f = r.figures();
        assert_eq!(f.main.as_deref(), Some("rtt"));
        assert_eq!(f.values["rate"], 1235.0);
        assert_eq!(f.values["errors"], 3.0);
        assert_eq!(f.values["clients"], 3.0);
    }

    #[test]
    fn thresholds_show_their_verdicts() {
        use crate::bench::threshold::{evaluate, Threshold};
        let mut r = Report::new("echo", "ws://x:1/ws");
        let mut h = crate::bench::stats::histogram();
        h.record(2_000).unwrap();
        r.latency("rtt", "rtt", &h);
        let t: Vec<_> = ["p(99)<1ms", "avg<5ms"]
            .iter()
            .map(|s| Threshold::parse(s).unwrap())
            .collect();
        let verdicts = evaluate(&t, r.figures());
        r.thresholds(&verdicts);
        let table = r.table();
        assert!(
            table.contains("threshold p(99)<1ms  CROSSED (rtt 2.00 ms)"),
            "{table}"
        );
        assert!(
            table.contains("threshold avg<5ms    ok (rtt 2.00 ms)"),
            "{table}"
        );
        let j: Value = serde_json::from_str(&r.json_text()).unwrap();
        assert_eq!(
            j["thresholds"][0],
            json!({"expr": "p(99)<1ms", "metric": "rtt", "actual": 2000.0, "ok": false})
        );
    }
}

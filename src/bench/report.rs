//! The result of a run: a two-column table for people (stdout) and the same
//! figures as one JSON object for machines (`--json`), with each latency's
//! HDR buckets so results merge exactly; and the figures thresholds are
//! evaluated on.

use crate::bench::client::Connector;
use crate::bench::live::Live;
use crate::bench::stats::{buckets, human_us, Delivery, Summary};
use crate::bench::threshold::{Figures, Verdict};
use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

/// The figures of one run, in the order they were added.
pub struct Report {
    title: String,
    rows: Vec<(String, String)>,
    json: Map<String, Value>,
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
            connected: None,
            figures: Figures::default(),
        }
    }

    /// How many clients connected at least once (a run where none did
    /// fails: exit 1).
    pub fn set_connected(&mut self, n: u64) {
        self.connected = Some(n);
    }

    /// Whether the run says no client connected.
    pub fn none_connected(&self) -> bool {
        self.connected == Some(0)
    }

    /// A figure: its table label and text, and its JSON key and value.
    pub fn add(&mut self, label: &str, text: String, key: &str, value: Value) {
        self.rows.push((label.to_string(), text));
        self.json.insert(key.to_string(), value);
    }

    /// A count or other integer (a figure thresholds can name by `key`).
    pub fn count(&mut self, label: &str, key: &str, n: u64) {
        self.add(label, n.to_string(), key, json!(n));
        self.figures.values.insert(key.into(), n as f64);
    }

    /// A real number, shown with `decimals` (a figure thresholds can name
    /// by `key`).
    pub fn real(&mut self, label: &str, key: &str, x: f64, decimals: usize) {
        let x = if x.is_finite() { x } else { 0.0 };
        self.add(label, format!("{x:.decimals$}"), key, json!(x));
        self.figures.values.insert(key.into(), x);
    }

    /// The scenario's main rate (per second): a [`Report::real`] that
    /// thresholds also know as `rate`.
    pub fn rate(&mut self, label: &str, key: &str, x: f64) {
        self.real(label, key, x, 0);
        let x = self.figures.values[key];
        self.figures.values.entry("rate".into()).or_insert(x);
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
        self.add(label, text, &format!("{key}_us"), value);
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
        self.add("delivery", text, "delivery", value);
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
        let kinds = live.error_kinds();
        let mut text = live.errors().to_string();
        if !kinds.is_empty() {
            let parts: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
            text.push_str(&format!(" ({})", parts.join(", ")));
        }
        self.figures
            .values
            .insert("errors".into(), live.errors() as f64);
        let samples = live.error_samples();
        let value = json!({ "total": live.errors(), "kinds": kinds, "samples": samples });
        self.add("errors", text, "errors", value);
        for (kind, body) in samples {
            self.rows
                .push((format!("  {kind} body"), format!("{body:?}")));
        }
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

    /// The JSON object, pretty-printed.
    pub fn json_text(&self) -> String {
        let mut s = serde_json::to_string_pretty(&self.json).unwrap_or_default();
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
        r.rate("messages/s", "msgs_per_s", 1234.567);
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
        assert_eq!(f.values["rate"], 1234.567);
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

//! The result of a run: a two-column table for people (stdout) and the same
//! figures as one JSON object for machines (`--json`).

use crate::bench::live::Live;
use crate::bench::stats::{human_us, Delivery, Summary};
use serde_json::{json, Map, Value};

/// The figures of one run, in the order they were added.
pub struct Report {
    title: String,
    rows: Vec<(String, String)>,
    json: Map<String, Value>,
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
        }
    }

    /// A figure: its table label and text, and its JSON key and value.
    pub fn add(&mut self, label: &str, text: String, key: &str, value: Value) {
        self.rows.push((label.to_string(), text));
        self.json.insert(key.to_string(), value);
    }

    /// A line of the table only.
    pub fn row(&mut self, label: &str, text: String) {
        self.rows.push((label.to_string(), text));
    }

    /// A JSON figure only.
    pub fn insert(&mut self, key: &str, value: Value) {
        self.json.insert(key.to_string(), value);
    }

    /// A count or other integer.
    pub fn count(&mut self, label: &str, key: &str, n: u64) {
        self.add(label, n.to_string(), key, json!(n));
    }

    /// A rate or other real number, shown with `decimals`.
    pub fn real(&mut self, label: &str, key: &str, x: f64, decimals: usize) {
        let x = if x.is_finite() { x } else { 0.0 };
        self.add(label, format!("{x:.decimals$}"), key, json!(x));
    }

    /// Latency percentiles under `key` (values in µs in the JSON).
    pub fn latency(&mut self, label: &str, key: &str, s: &Summary) {
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
        let value = serde_json::to_value(s).unwrap_or(Value::Null);
        self.add(label, text, &format!("{key}_us"), value);
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
    }

    /// The client errors of the run, by kind.
    pub fn errors(&mut self, live: &Live) {
        let kinds = live.error_kinds();
        let mut text = live.errors().to_string();
        if !kinds.is_empty() {
            let parts: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
            text.push_str(&format!(" ({})", parts.join(", ")));
        }
        let value = json!({ "total": live.errors(), "kinds": kinds });
        self.add("errors", text, "errors", value);
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
        r.real("messages/s", "msgs_per_s", 1234.567, 1);
        r.latency(
            "rtt",
            "rtt",
            &Summary {
                count: 10,
                p50: 40,
                p90: 50,
                p99: 1500,
                p999: 1500,
                max: 2_000_000,
                mean: 60,
            },
        );
        let live = Live::new(3);
        live.error("refused");
        live.error("refused");
        r.errors(&live);
        let table = r.table();
        assert!(table.contains("messages/s  1234.6"), "{table}");
        assert!(table.contains("p50 40 µs"), "{table}");
        assert!(table.contains("p99 1.50 ms"), "{table}");
        assert!(table.contains("2 (refused 2)"), "{table}");
        let j: Value = serde_json::from_str(&r.json_text()).unwrap();
        assert_eq!(j["clients"], 3);
        assert_eq!(j["rtt_us"]["p99"], 1500);
        assert_eq!(j["errors"]["kinds"]["refused"], 2);
    }
}

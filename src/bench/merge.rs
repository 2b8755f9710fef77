//! `strand bench merge FILE...`: one result from the `--json` results of
//! several runs of one scenario (the segments of a run over several
//! machines), merged exactly: latencies from their HDR buckets re-recorded
//! (never averages of percentiles), counts summed, rates recomputed over
//! the window all the runs cover, thresholds evaluated anew.
//!
//! It reads only the JSON, guided by the table layout each result carries
//! (see [`Report`]); it runs nothing and opens no socket.

use crate::bench::report::Report;
use crate::bench::stats::{add_buckets, histogram, Delivery};
use crate::bench::threshold;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

/// The flags of `strand bench merge`.
#[derive(Debug, Clone, clap::Args)]
pub struct MergeArgs {
    /// `--json` results of one scenario to merge.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Also write the merged result as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Also write the merged result as a self-contained HTML report to this file.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// A threshold on the merged figures (repeatable; as for a run).
    #[arg(long = "threshold", value_name = "EXPR")]
    pub thresholds: Vec<String>,
    /// A name for the merged result (default: the first result's).
    #[arg(long, value_name = "TEXT")]
    pub label: Option<String>,
}

/// Runs `strand bench merge`: the same table as a run, the same exit
/// status (99 when a threshold is crossed, 1 when a file cannot be read or
/// merged, or no client connected).
pub fn run(a: &MergeArgs) -> ExitCode {
    let merged = threshold::parse_all(&a.thresholds).and_then(|t| {
        let inputs = a
            .files
            .iter()
            .map(|f| {
                let text = std::fs::read_to_string(f)
                    .map_err(|e| format!("cannot read {}: {e}", f.display()))?;
                serde_json::from_str::<Value>(&text)
                    .map_err(|e| format!("{}: not JSON: {e}", f.display()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((t, merge(&inputs)?))
    });
    let (thresholds, mut report) = match merged {
        Ok(m) => m,
        Err(message) => {
            eprintln!("strand bench merge: {message}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(label) = &a.label {
        report.set_json("label", json!(label));
    }
    let verdicts = threshold::evaluate(&thresholds, report.figures());
    report.thresholds(&verdicts);
    let out = crate::bench::Output {
        json: a.json.as_deref(),
        html: a.html.as_deref(),
    };
    crate::bench::finish(&report, &verdicts, out)
}

/// Merges results of one scenario (at least one).
pub fn merge(inputs: &[Value]) -> Result<Report, String> {
    let first = inputs.first().ok_or("nothing to merge")?;
    let scenario = first["scenario"]
        .as_str()
        .ok_or("a result without a scenario")?;
    if let Some(other) = inputs.iter().find(|i| i["scenario"] != scenario) {
        return Err(format!(
            "cannot merge {scenario} with {}",
            other["scenario"]
        ));
    }
    let layout = first["table"]
        .as_array()
        .ok_or("a result without its table layout (written by an older strand bench?)")?;
    let mut report = Report::new(scenario, first["url"].as_str().unwrap_or("?"));
    for row in layout {
        merge_row(&mut report, row, inputs)?;
    }
    if inputs.iter().any(|i| i.get("clients_connected").is_some()) {
        report.set_connected(sum(inputs, "clients_connected"));
    }
    let start = inputs
        .iter()
        .filter_map(|i| i["started_at_ms"].as_f64())
        .fold(f64::INFINITY, f64::min);
    let end = inputs
        .iter()
        .filter_map(|i| Some(i["started_at_ms"].as_f64()? + i["duration_s"].as_f64()? * 1e3))
        .fold(f64::NEG_INFINITY, f64::max);
    if start.is_finite() {
        report.set_json("started_at_ms", json!(start as u64));
        report.set_json("duration_s", json!(((end - start) / 1e3).max(0.0)));
        report.set_json("series", json!(merge_series(inputs, start)));
    }
    report.set_json("label", first["label"].clone());
    let parts: Vec<Value> = inputs
        .iter()
        .map(|i| {
            i.get("segment")
                .or(i.get("label"))
                .cloned()
                .unwrap_or(Value::Null)
        })
        .collect();
    report.set_json("merged", json!(parts));
    Ok(report)
}

/// Adds to `report` one row of the layout, merged over `inputs`.
fn merge_row(report: &mut Report, row: &Value, inputs: &[Value]) -> Result<(), String> {
    let label = row["label"].as_str().unwrap_or("?");
    let key = row["key"].as_str().ok_or("a layout row without a key")?;
    match row["merge"].as_str().unwrap_or("first") {
        "sum" => report.count(label, key, sum(inputs, key)),
        "max" => {
            let most = inputs
                .iter()
                .filter_map(|i| i[key].as_f64())
                .fold(0.0, f64::max);
            match row["decimals"].as_u64() {
                Some(d) => report.real(label, key, most, d as usize),
                None => report.setting(label, key, most as u64),
            }
        }
        "rate" => {
            let of = row["of"].as_str().unwrap_or(key);
            let count = inputs.iter().filter_map(|i| at_path(i, of)).sum();
            let windows: Vec<(f64, f64)> = inputs
                .iter()
                .filter_map(|i| {
                    let r = layout_row(i, key)?;
                    Some((r["from_ms"].as_f64()?, r["to_ms"].as_f64()?))
                })
                .collect();
            let from = windows.iter().map(|w| w.0).fold(f64::INFINITY, f64::min);
            let to = windows
                .iter()
                .map(|w| w.1)
                .fold(f64::NEG_INFINITY, f64::max);
            let (from, to) = if from <= to { (from, to) } else { (0.0, 0.0) };
            report.rate_over(label, key, of, count, from, to);
        }
        "latency" => {
            let mut h = histogram();
            for input in inputs {
                let buckets = input[format!("{key}_us")]["histogram"]
                    .as_array()
                    .ok_or_else(|| format!("no histogram under {key}_us"))?;
                let pairs: Vec<[u64; 2]> = buckets
                    .iter()
                    .filter_map(|b| Some([b[0].as_u64()?, b[1].as_u64()?]))
                    .collect();
                add_buckets(&mut h, &pairs);
            }
            report.latency(label, key, &h);
        }
        "errors" => {
            let mut kinds = BTreeMap::new();
            let mut samples = BTreeMap::new();
            for input in inputs {
                let e = &input[key];
                for (k, n) in e["kinds"].as_object().into_iter().flatten() {
                    *kinds.entry(k.clone()).or_insert(0) += n.as_u64().unwrap_or(0);
                }
                for (k, body) in e["samples"].as_object().into_iter().flatten() {
                    let body = body.as_str().unwrap_or_default().to_string();
                    samples.entry(k.clone()).or_insert(body);
                }
            }
            let total = inputs.iter().filter_map(|i| i[key]["total"].as_u64()).sum();
            report.errors_of(total, &kinds, &samples);
        }
        "delivery" => {
            let field =
                |name: &'static str| inputs.iter().filter_map(move |i| i[key][name].as_u64());
            let d = Delivery {
                receivers: field("receivers").sum(),
                expected_each: field("expected_each").max().unwrap_or(0),
                delivered: field("delivered").sum(),
                lost: field("lost").sum(),
                receivers_with_loss: field("receivers_with_loss").sum(),
                max_lost: field("max_lost").max().unwrap_or(0),
                duplicates: field("duplicates").sum(),
                reordered: field("reordered").sum(),
            };
            report.delivery(&d);
        }
        _ => {
            let text = row["text"].as_str().unwrap_or_default().to_string();
            report.add(label, text, key, inputs[0][key].clone());
        }
    }
    Ok(())
}

/// The sum of the integer `key` over `inputs`.
fn sum(inputs: &[Value], key: &str) -> u64 {
    inputs.iter().filter_map(|i| i[key].as_u64()).sum()
}

/// The integer at a dotted path (`delivery.delivered`).
fn at_path(v: &Value, path: &str) -> Option<u64> {
    path.split('.').try_fold(v, |v, k| v.get(k))?.as_u64()
}

/// The layout row of `key` in a result.
fn layout_row<'a>(input: &'a Value, key: &str) -> Option<&'a Value> {
    input["table"].as_array()?.iter().find(|r| r["key"] == key)
}

/// The inputs' series on one clock: each entry moved to its Unix second,
/// counted from `start_ms`; messages, errors and connections summed, and
/// the largest p99 of a second kept (an upper bound: percentiles of
/// different runs do not merge exactly).
fn merge_series(inputs: &[Value], start_ms: f64) -> Vec<Value> {
    let origin = (start_ms / 1e3).floor() as i64;
    let mut seconds: BTreeMap<i64, [u64; 3]> = BTreeMap::new();
    let mut p99: BTreeMap<i64, u64> = BTreeMap::new();
    for input in inputs {
        let Some(base) = input["started_at_ms"].as_f64() else {
            continue;
        };
        for entry in input["series"].as_array().into_iter().flatten() {
            let t = entry["t"].as_f64().unwrap_or(0.0);
            let slot = (base / 1e3 + t).floor() as i64 - origin;
            let sums = seconds.entry(slot).or_default();
            for (n, name) in ["messages", "errors", "connections"].iter().enumerate() {
                sums[n] += entry[name].as_u64().unwrap_or(0);
            }
            if let Some(p) = entry["p99_us"].as_u64() {
                let most = p99.entry(slot).or_default();
                *most = (*most).max(p);
            }
        }
    }
    seconds
        .iter()
        .map(|(t, [messages, errors, connections])| {
            json!({
                "t": t,
                "messages": messages,
                "errors": errors,
                "connections": connections,
                "p99_us": p99.get(t),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::live::Live;

    /// A small echo-like result of `messages` round trips of `us` each.
    fn result(segment: &str, messages: u64, us: u64, started_ms: f64) -> Value {
        let mut r = Report::new("echo", "ws://x:1/ws");
        r.count("clients", "clients", 2);
        r.setting("message size (bytes)", "size", 64);
        r.count("messages echoed", "messages", messages);
        r.real("elapsed (s)", "elapsed_s", 1.0, 3);
        r.rate_over(
            "messages/s",
            "msgs_per_s",
            "messages",
            messages,
            started_ms,
            started_ms + 1000.0,
        );
        let mut h = histogram();
        h.record_n(us, messages).unwrap();
        r.latency("round trip", "rtt", &h);
        let live = Live::new(2);
        live.error("refused");
        r.errors(&live);
        r.set_connected(2);
        r.set_json("segment", json!(segment));
        r.set_json("started_at_ms", json!(started_ms));
        r.set_json("duration_s", json!(1.0));
        r.set_json(
            "series",
            json!([{"t": 0, "messages": messages, "errors": 1, "connections": 2, "p99_us": us}]),
        );
        serde_json::from_str(&r.json_text()).unwrap()
    }

    #[test]
    fn results_merge_exactly() {
        let a = result("1/2", 100, 40, 1_000_000.0);
        let b = result("2/2", 300, 4000, 1_001_000.0);
        let merged = merge(&[a, b]).unwrap();
        let j: Value = serde_json::from_str(&merged.json_text()).unwrap();
        assert_eq!(j["clients"], 4);
        assert_eq!(j["size"], 64);
        assert_eq!(j["messages"], 400);
        assert_eq!(j["clients_connected"], 4);
        assert_eq!(j["rtt_us"]["count"], 400);
        assert_eq!(j["rtt_us"]["p50"], 4001, "3 significant figures");
        assert_eq!(j["rtt_us"]["histogram"], json!([[40, 100], [4001, 300]]));
        // 400 messages over the 2 s both windows cover.
        assert_eq!(j["msgs_per_s"], 200.0);
        assert_eq!(j["errors"]["total"], 2);
        assert_eq!(j["errors"]["kinds"]["refused"], 2);
        assert_eq!(j["merged"], json!(["1/2", "2/2"]));
        assert_eq!(j["started_at_ms"], 1_000_000);
        assert_eq!(j["duration_s"], 2.0);
        assert_eq!(
            j["series"],
            json!([
                {"t": 0, "messages": 100, "errors": 1, "connections": 2, "p99_us": 40},
                {"t": 1, "messages": 300, "errors": 1, "connections": 2, "p99_us": 4000},
            ])
        );
        assert_eq!(merged.figures().values["rate"], 200.0);
        let table = merged.table();
        assert!(table.contains("messages echoed       400"), "{table}");
        // A merged result merges again.
        let again = merge(std::slice::from_ref(&j)).unwrap();
        let k: Value = serde_json::from_str(&again.json_text()).unwrap();
        assert_eq!(k["rtt_us"], j["rtt_us"]);
        assert_eq!(k["msgs_per_s"], j["msgs_per_s"]);
    }

    #[test]
    fn different_scenarios_or_no_layout_do_not_merge() {
        let a = result("1/2", 1, 1, 0.0);
        let mut b = a.clone();
        b["scenario"] = json!("hold");
        assert!(merge(&[a.clone(), b])
            .err()
            .unwrap()
            .contains("cannot merge"));
        let mut c = a.clone();
        c.as_object_mut().unwrap().remove("table");
        assert!(merge(&[c]).err().unwrap().contains("layout"));
        assert!(merge(&[]).is_err());
    }
}

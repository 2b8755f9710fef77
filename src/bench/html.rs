//! Bench reports to look at: one self-contained HTML page (inline SVG, no
//! script, nothing fetched) drawn from the `--json` results of one or more
//! runs, and `strand bench report FILE... --html OUT [--svg OUT]` that
//! overlays several runs with their labels for a before/after comparison.
//!
//! The page shows each latency's percentile distribution on a log axis of
//! 1/(1-p) from p50 to p99.99 (as the HdrHistogram plotter draws it),
//! messages per second, p99 and connections over time, errors by cause, and
//! the figures themselves as tables whose numbers are the JSON's.
//!
//! The reader is tolerant: a key that is missing or of another shape means
//! a chart or a row that is missing, never an error. This module reads
//! results only; it runs nothing and knows no scenario's internals.

use crate::bench::svg::{self, escape, Axis, BarChart, Line, LineChart, Scale};
use serde_json::{Map, Value};
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The highest percentile a distribution chart reaches: 1 - 10^-DEPTH.
const DEPTH: f64 = 4.0;
/// Points per distribution curve.
const CURVE_POINTS: usize = 200;
/// Keys shown in the page's header, not in its table of figures.
const HEADER_KEYS: &[&str] = &["scenario", "url", "label", "started_at_ms"];

/// The flags of `strand bench report`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// The `--json` results of the runs to show, in legend order.
    #[arg(required = true, value_name = "JSON")]
    pub files: Vec<PathBuf>,
    /// Write the HTML report here.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Write the first latency distribution chart alone as SVG here (for
    /// markdown, which embeds an `.svg` but not a page).
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// The runs' names in the legend, in order (default: each JSON's
    /// `label`, else its file name).
    #[arg(long, value_name = "NAME")]
    pub label: Vec<String>,
    /// The page's title (default: the runs' scenario and labels).
    #[arg(long, value_name = "TEXT")]
    pub title: Option<String>,
}

/// One run's results and its name in the legend.
#[derive(Debug, Clone)]
pub struct Run {
    /// Its name in legends and tables.
    pub label: String,
    json: Map<String, Value>,
}

impl Run {
    /// A run from its JSON object (anything else reads as an empty run);
    /// `label` wins over the JSON's own `label`, which wins over `fallback`.
    pub fn new(json: Value, label: Option<&str>, fallback: &str) -> Run {
        let json = match json {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let label = label
            .map(str::to_string)
            .or_else(|| json.get("label").and_then(Value::as_str).map(String::from))
            .unwrap_or_else(|| fallback.to_string());
        Run { label, json }
    }

    fn str(&self, key: &str) -> Option<&str> {
        self.json.get(key).and_then(Value::as_str)
    }

    /// The latency summaries (`X_us` objects with a count), by key.
    fn latencies(&self) -> impl Iterator<Item = (&str, &Map<String, Value>)> {
        self.json.iter().filter_map(|(k, v)| {
            let m = v.as_object()?;
            (k.ends_with("_us") && m.contains_key("count")).then_some((k.as_str(), m))
        })
    }

    /// The per-second samples, if the run has them.
    fn series(&self) -> &[Value] {
        self.json
            .get("series")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }
}

/// `strand bench report`: reads the runs, writes the page and the SVG.
pub fn report(a: &ReportArgs) -> ExitCode {
    if a.html.is_none() && a.svg.is_none() {
        eprintln!("strand bench report: nothing to write: give --html FILE and/or --svg FILE");
        return ExitCode::FAILURE;
    }
    let mut runs = Vec::new();
    for (i, file) in a.files.iter().enumerate() {
        let value = match std::fs::read_to_string(file)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<Value>(&t).map_err(|e| e.to_string()))
        {
            Ok(v) => v,
            Err(e) => {
                eprintln!("strand bench report: cannot read {}: {e}", file.display());
                return ExitCode::FAILURE;
            }
        };
        let fallback = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("run {}", i + 1));
        runs.push(Run::new(
            value,
            a.label.get(i).map(String::as_str),
            &fallback,
        ));
    }
    if let Some(path) = &a.html {
        if let Err(e) = write(path, &page(&runs, a.title.as_deref())) {
            eprintln!("strand bench report: {e}");
            return ExitCode::FAILURE;
        }
    }
    if let Some(path) = &a.svg {
        let Some(chart) = first_distribution(&runs) else {
            eprintln!("strand bench report: no latency figures to draw in --svg");
            return ExitCode::FAILURE;
        };
        if let Err(e) = write(path, &format!("{chart}\n")) {
            eprintln!("strand bench report: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

/// Writes `text` to `path`, naming the file in the error.
pub fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// What a latency key measures, for titles: `rtt_us` is `round trip latency`.
fn metric_name(key: &str) -> String {
    let base = key.strip_suffix("_us").unwrap_or(key);
    match base {
        "rtt" => "round trip latency".into(),
        "connect" => "connect time".into(),
        "latency" => "delivery latency".into(),
        other => other.replace('_', " "),
    }
}

/// The HTML page of `runs` (one run, or several overlaid).
pub fn page(runs: &[Run], title: Option<&str>) -> String {
    let title = title
        .map(String::from)
        .unwrap_or_else(|| default_title(runs));
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta name=\"color-scheme\" content=\"light dark\">\
         <title>{t}</title><style>{PAGE_STYLE}</style></head><body><main>\
         <h1>{t}</h1>",
        t = escape(&title)
    );
    runs_list(&mut out, runs);
    out.push_str("<h2>Latency</h2>");
    let keys = latency_keys(runs);
    if keys.is_empty() {
        out.push_str("<p>No latency figures in these results.</p>");
    }
    for key in &keys {
        if let Some(chart) = distribution_chart(runs, key) {
            figure(&mut out, &chart);
        }
    }
    latency_table(&mut out, runs, &keys);
    over_time(&mut out, runs);
    errors(&mut out, runs);
    thresholds(&mut out, runs);
    figures_table(&mut out, runs);
    out.push_str(
        "<p class=\"note\">Drawn by <code>strand bench</code> from the runs' <code>--json</code> \
         results. Latencies in microseconds.</p></main></body></html>\n",
    );
    out
}

const PAGE_STYLE: &str = "\
:root{color-scheme:light dark;--fg:#1d1f23;--bg:#fff;--muted:#666;--line:#ddd;--bad:#b00020;--ok:#1b7a3a}\
@media (prefers-color-scheme:dark){:root{--fg:#e6e6e6;--bg:#16181c;--muted:#aaa;--line:#333;--bad:#ff6b81;--ok:#5bd38a}}\
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.45 system-ui,sans-serif}\
main{max-width:980px;margin:0 auto;padding:16px}\
h1{font-size:1.4em;margin:.2em 0 .6em}h2{font-size:1.15em;margin:1.4em 0 .4em;border-bottom:1px solid var(--line)}\
figure{margin:12px 0}figure svg{width:100%;height:auto;display:block}\
table{border-collapse:collapse;margin:8px 0;font-variant-numeric:tabular-nums}\
th,td{padding:3px 10px;border-bottom:1px solid var(--line);text-align:right}\
th:first-child,td:first-child,td.t{text-align:left}thead th{border-bottom:2px solid var(--line)}\
.scroll{overflow-x:auto}.note{color:var(--muted);font-size:.9em}.ok{color:var(--ok)}.bad{color:var(--bad)}\
.swatch{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:6px;vertical-align:-1px}\
.k0{background:#0072b2}.k1{background:#d55e00}.k2{background:#009e73}.k3{background:#cc79a7}.k4{background:#e69f00}.k5{background:#56b4e9}";

fn default_title(runs: &[Run]) -> String {
    match runs {
        [one] => format!(
            "strand bench {} {}",
            one.str("scenario").unwrap_or("run"),
            one.str("url").unwrap_or("")
        )
        .trim_end()
        .to_string(),
        _ => {
            let labels: Vec<&str> = runs.iter().map(|r| r.label.as_str()).collect();
            format!("strand bench: {}", labels.join(" vs "))
        }
    }
}

/// The list of runs: colour, label, scenario, URL, start, duration.
fn runs_list(out: &mut String, runs: &[Run]) {
    out.push_str("<ul class=\"runs\">");
    for (i, run) in runs.iter().enumerate() {
        let _ = write!(
            out,
            "<li><span class=\"swatch k{}\"></span><strong>{}</strong>",
            i % svg::COLOURS,
            escape(&run.label)
        );
        for key in ["scenario", "url"] {
            if let Some(v) = run.str(key) {
                let _ = write!(out, " · {}", escape(v));
            }
        }
        if let Some(ms) = run.json.get("started_at_ms").and_then(Value::as_u64) {
            let _ = write!(out, " · started {}", utc(ms));
        }
        if let Some(s) = run.json.get("duration_s").and_then(Value::as_f64) {
            let _ = write!(out, " · {} s", svg::trim(s, 1));
        }
        out.push_str("</li>");
    }
    out.push_str("</ul>");
}

/// Unix milliseconds as `YYYY-MM-DD HH:MM:SS UTC`.
fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Days to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

fn figure(out: &mut String, chart: &str) {
    let _ = write!(out, "<figure>{chart}</figure>");
}

/// The latency keys of all runs, each once, in key order.
fn latency_keys(runs: &[Run]) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for run in runs {
        for (k, m) in run.latencies() {
            if count(m) > 0 && !keys.iter().any(|x| x == k) {
                keys.push(k.to_string());
            }
        }
    }
    keys.sort();
    keys
}

fn count(m: &Map<String, Value>) -> u64 {
    m.get("count").and_then(Value::as_u64).unwrap_or(0)
}

/// The position of percentile `q` on the distribution's x axis: log10 of
/// 1/(1-q), so p90 is 1, p99 is 2, p99.9 is 3.
fn x_of_quantile(q: f64) -> f64 {
    (1.0 / (1.0 - q)).log10()
}

/// The curve of a latency summary: (quantile, µs) points from p50 to
/// p99.99, from its HDR buckets when it has them, else from its own
/// percentiles (four points).
pub fn quantile_curve(m: &Map<String, Value>) -> Vec<(f64, f64)> {
    let mut buckets: Vec<(u64, u64)> = m
        .get("histogram")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|b| Some((b.get(0)?.as_u64()?, b.get(1)?.as_u64()?)))
                .filter(|(_, n)| *n > 0)
                .collect()
        })
        .unwrap_or_default();
    buckets.sort_unstable();
    let total: u64 = buckets.iter().map(|(_, n)| n).sum();
    if total == 0 {
        let at = |k: &str| m.get(k).and_then(Value::as_u64);
        return [(0.5, "p50"), (0.9, "p90"), (0.99, "p99"), (0.999, "p999")]
            .iter()
            .filter_map(|(q, k)| Some((*q, at(k)? as f64)))
            .collect();
    }
    let lo = x_of_quantile(0.5);
    let mut points = Vec::with_capacity(CURVE_POINTS + 1);
    let (mut i, mut seen) = (0, 0u64);
    for step in 0..=CURVE_POINTS {
        let x = lo + (DEPTH - lo) * step as f64 / CURVE_POINTS as f64;
        let q = 1.0 - 10f64.powf(-x);
        // The smallest value with at least q of the samples at or below it.
        let want = ((q * total as f64).ceil() as u64).clamp(1, total);
        while seen + buckets[i].1 < want && i + 1 < buckets.len() {
            seen += buckets[i].1;
            i += 1;
        }
        points.push((q, buckets[i].0 as f64));
    }
    points
}

/// The percentile distribution of `key` for every run that has it.
fn distribution_chart(runs: &[Run], key: &str) -> Option<String> {
    let mut lines = Vec::new();
    let (mut lo, mut hi) = (f64::MAX, 0f64);
    for (i, run) in runs.iter().enumerate() {
        let Some(m) = run.json.get(key).and_then(Value::as_object) else {
            continue;
        };
        let curve = quantile_curve(m);
        for (_, v) in &curve {
            lo = lo.min(v.max(1.0));
            hi = hi.max(*v);
        }
        lines.push(Line {
            label: run.label.clone(),
            colour: i,
            points: curve
                .iter()
                .map(|(q, v)| Some((x_of_quantile(*q), *v)))
                .collect(),
        });
    }
    if lines.iter().all(|l| l.points.is_empty()) {
        return None;
    }
    if runs.len() == 1 {
        lines[0].label.clear();
    }
    let y_ticks = svg::log_ticks(lo, hi.max(lo * 1.5));
    let (y_lo, y_hi) = (y_ticks[0], y_ticks[y_ticks.len() - 1]);
    let x_ticks = ["50%", "90%", "99%", "99.9%", "99.99%"]
        .iter()
        .zip([0.5, 0.9, 0.99, 0.999, 0.9999])
        .map(|(l, q)| (x_of_quantile(q), l.to_string()))
        .collect();
    Some(svg::line_chart(&LineChart {
        name: format!("{} by percentile", metric_name(key)),
        x: Axis {
            scale: Scale::Linear {
                lo: x_of_quantile(0.5),
                hi: DEPTH,
            },
            ticks: x_ticks,
            title: "percentile (log scale of 1/(1-p))".into(),
        },
        y: Axis {
            scale: Scale::Log { lo: y_lo, hi: y_hi },
            ticks: y_ticks.iter().map(|v| (*v, svg::short_us(*v))).collect(),
            title: metric_name(key),
        },
        lines,
    }))
}

/// The first latency distribution (round trip first), for `--svg`.
pub fn first_distribution(runs: &[Run]) -> Option<String> {
    let mut keys = latency_keys(runs);
    keys.sort_by_key(|k| (k != "rtt_us", k != "latency_us", k.clone()));
    keys.iter().find_map(|k| distribution_chart(runs, k))
}

/// The latency figures as numbers: a row per run and metric, in µs.
fn latency_table(out: &mut String, runs: &[Run], keys: &[String]) {
    if keys.is_empty() {
        return;
    }
    const COLUMNS: [(&str, &str); 7] = [
        ("count", "n"),
        ("p50", "p50"),
        ("p90", "p90"),
        ("p99", "p99"),
        ("p999", "p99.9"),
        ("max", "max"),
        ("mean", "mean"),
    ];
    out.push_str("<div class=\"scroll\"><table class=\"latency\"><thead><tr><th>metric (µs)</th>");
    if runs.len() > 1 {
        out.push_str("<th>run</th>");
    }
    for (_, title) in COLUMNS {
        let _ = write!(out, "<th>{title}</th>");
    }
    out.push_str("</tr></thead><tbody>");
    for key in keys {
        for (i, run) in runs.iter().enumerate() {
            let Some(m) = run.json.get(key.as_str()).and_then(Value::as_object) else {
                continue;
            };
            let _ = write!(out, "<tr><td>{}</td>", escape(&metric_name(key)));
            if runs.len() > 1 {
                let _ = write!(out, "<td class=\"t\">{}</td>", escape(&run.label));
            }
            for (field, _) in COLUMNS {
                let text = m.get(field).map(value_text).unwrap_or_default();
                let _ = write!(
                    out,
                    "<td data-run=\"{i}\" data-key=\"{}.{field}\">{}</td>",
                    escape(key),
                    escape(&text)
                );
            }
            out.push_str("</tr>");
        }
    }
    out.push_str("</tbody></table></div>");
}

/// A JSON scalar as table text: integers as the JSON has them, fractions
/// to at most three decimals.
fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Number(n) if n.is_f64() => svg::trim(n.as_f64().unwrap_or(0.0), 3),
        other => other.to_string(),
    }
}

/// Messages per second, p99 and connections over time, when the runs
/// carry per-second samples.
fn over_time(out: &mut String, runs: &[Run]) {
    let charts = [
        (
            "messages",
            "messages per second over time",
            "messages per second",
        ),
        ("p99_us", "p99 latency over time", "p99 latency"),
        ("connections", "connections over time", "connections"),
    ];
    let mut drawn = Vec::new();
    for (field, name, title) in charts {
        let mut lines = Vec::new();
        let (mut t_hi, mut y_hi) = (0f64, 0f64);
        for (i, run) in runs.iter().enumerate() {
            let points: Vec<Option<(f64, f64)>> = run
                .series()
                .iter()
                .map(|s| {
                    let t = s.get("t")?.as_f64()?;
                    let y = s.get(field)?.as_f64()?;
                    t_hi = t_hi.max(t);
                    y_hi = y_hi.max(y);
                    Some((t, y))
                })
                .collect();
            if points.iter().any(Option::is_some) {
                let label = if runs.len() == 1 { "" } else { &run.label };
                lines.push(Line {
                    label: label.to_string(),
                    colour: i,
                    points,
                });
            }
        }
        if lines.is_empty() {
            continue;
        }
        let t_ticks = svg::linear_ticks(t_hi, 8);
        let y_ticks = svg::linear_ticks(y_hi, 5);
        let is_us = field.ends_with("_us");
        drawn.push(svg::line_chart(&LineChart {
            name: name.into(),
            x: Axis {
                scale: Scale::Linear {
                    lo: 0.0,
                    hi: t_ticks[t_ticks.len() - 1],
                },
                ticks: t_ticks
                    .iter()
                    .map(|t| (*t, format!("{} s", svg::trim(*t, 1))))
                    .collect(),
                title: "seconds since the start".into(),
            },
            y: Axis {
                scale: Scale::Linear {
                    lo: 0.0,
                    hi: y_ticks[y_ticks.len() - 1],
                },
                ticks: y_ticks
                    .iter()
                    .map(|v| {
                        let label = if is_us {
                            svg::short_us(*v)
                        } else {
                            short_count(*v)
                        };
                        (*v, label)
                    })
                    .collect(),
                title: title.into(),
            },
            lines,
        }));
    }
    if drawn.is_empty() {
        return;
    }
    out.push_str("<h2>Over time</h2>");
    for chart in drawn {
        figure(out, &chart);
    }
}

/// A count as a short tick label: `950`, `20k`, `1.5M`.
fn short_count(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", svg::trim(v / 1e6, 1))
    } else if v >= 1e3 {
        format!("{}k", svg::trim(v / 1e3, 1))
    } else {
        svg::trim(v, 1)
    }
}

/// Errors by cause: a bar per run in each cause.
fn errors(out: &mut String, runs: &[Run]) {
    let kinds_of = |run: &Run| -> Vec<(String, f64)> {
        run.json
            .get("errors")
            .and_then(|e| e.get("kinds"))
            .and_then(Value::as_object)
            .map(|k| {
                k.iter()
                    .filter_map(|(name, n)| Some((name.clone(), n.as_f64()?)))
                    .collect()
            })
            .unwrap_or_default()
    };
    if !runs.iter().any(|r| r.json.contains_key("errors")) {
        return;
    }
    out.push_str("<h2>Errors</h2>");
    let mut categories: Vec<String> = Vec::new();
    for run in runs {
        for (k, _) in kinds_of(run) {
            if !categories.contains(&k) {
                categories.push(k);
            }
        }
    }
    out.push_str("<ul>");
    for run in runs {
        let total = run.json.get("errors").and_then(|e| e.get("total"));
        let _ = write!(
            out,
            "<li>{}: errors <span data-key=\"errors.total\">{}</span></li>",
            escape(&run.label),
            total.map(value_text).unwrap_or_else(|| "?".into())
        );
    }
    out.push_str("</ul>");
    if categories.is_empty() {
        return;
    }
    let series = runs
        .iter()
        .enumerate()
        .map(|(i, run)| {
            let kinds = kinds_of(run);
            let values = categories
                .iter()
                .map(|c| kinds.iter().find(|(k, _)| k == c).map_or(0.0, |(_, n)| *n))
                .collect();
            let label = if runs.len() == 1 {
                String::new()
            } else {
                run.label.clone()
            };
            (label, i, values)
        })
        .collect();
    figure(
        out,
        &svg::bar_chart(&BarChart {
            name: "errors by cause".into(),
            categories,
            series,
        }),
    );
}

/// The thresholds and their verdicts, when the runs have any.
fn thresholds(out: &mut String, runs: &[Run]) {
    let rows: Vec<(&Run, &Value)> = runs
        .iter()
        .flat_map(|r| {
            r.json
                .get("thresholds")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(move |t| (r, t))
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    out.push_str("<h2>Thresholds</h2><table><thead><tr><th>run</th><th>threshold</th><th>actual</th><th>verdict</th></tr></thead><tbody>");
    for (run, t) in rows {
        let ok = t.get("ok").and_then(Value::as_bool);
        let verdict = match ok {
            Some(true) => "<td class=\"ok\">held</td>",
            Some(false) => "<td class=\"bad\">crossed</td>",
            None => "<td></td>",
        };
        let _ = write!(
            out,
            "<tr><td class=\"t\">{}</td><td class=\"t\"><code>{}</code></td><td>{}</td>{verdict}</tr>",
            escape(&run.label),
            escape(&t.get("expr").map(value_text).unwrap_or_default()),
            escape(&t.get("actual").map(value_text).unwrap_or_default()),
        );
    }
    out.push_str("</tbody></table>");
}

/// Every other figure of the runs: a row per key, a column per run.
fn figures_table(out: &mut String, runs: &[Run]) {
    let mut keys: Vec<String> = Vec::new();
    let flat: Vec<Vec<(String, String)>> = runs.iter().map(flatten).collect();
    for rows in &flat {
        for (k, _) in rows {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
    }
    if keys.is_empty() {
        return;
    }
    out.push_str(
        "<h2>Figures</h2><div class=\"scroll\"><table class=\"figures\"><thead><tr><th>figure</th>",
    );
    for run in runs {
        let _ = write!(out, "<th>{}</th>", escape(&run.label));
    }
    out.push_str("</tr></thead><tbody>");
    for key in &keys {
        let _ = write!(out, "<tr><td>{}</td>", escape(key));
        for (i, rows) in flat.iter().enumerate() {
            let text = rows
                .iter()
                .find(|(k, _)| k == key)
                .map_or("", |(_, v)| v.as_str());
            let _ = write!(
                out,
                "<td data-run=\"{i}\" data-key=\"{}\">{}</td>",
                escape(key),
                escape(text)
            );
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
}

/// A run's scalar figures, objects flattened one level as `key.field`;
/// latencies, errors, thresholds, series and the header's keys are shown
/// elsewhere.
fn flatten(run: &Run) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    for (k, v) in &run.json {
        if HEADER_KEYS.contains(&k.as_str())
            || matches!(k.as_str(), "errors" | "thresholds" | "series")
            || run.latencies().any(|(l, _)| l == k)
        {
            continue;
        }
        match v {
            Value::Object(m) => {
                for (f, x) in m {
                    if !x.is_object() && !x.is_array() {
                        rows.push((format!("{k}.{f}"), value_text(x)));
                    }
                }
            }
            Value::Array(_) => {}
            scalar => rows.push((k.clone(), value_text(scalar))),
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample(label: &str, p50: u64) -> Run {
        Run::new(
            json!({
                "scenario": "echo", "url": "ws://127.0.0.1:9/ws", "label": label,
                "started_at_ms": 1_700_000_000_000u64, "duration_s": 3.0,
                "clients": 10, "msgs_per_s": 12345.6,
                "rtt_us": {"count": 1000, "p50": p50, "p90": 90, "p99": 990, "p999": 1500,
                           "max": 2000, "mean": 70,
                           "histogram": [[p50, 500], [90, 400], [990, 90], [1500, 9], [2000, 1]]},
                "delivery": {"lost": 0, "duplicates": 1},
                "errors": {"total": 3, "kinds": {"refused": 2, "timeout": 1}},
                "thresholds": [{"expr": "p(99)<50ms", "metric": "rtt", "actual": 0.99, "ok": true}],
                "series": [{"t": 1, "messages": 100, "errors": 0, "connections": 10, "p99_us": 900},
                           {"t": 2, "messages": 0, "errors": 0, "connections": 10, "p99_us": null},
                           {"t": 3, "messages": 120, "errors": 3, "connections": 9, "p99_us": 950}]
            }),
            None,
            "x",
        )
    }

    #[test]
    fn the_curve_follows_the_buckets_from_p50_to_p9999() {
        let run = sample("a", 40);
        let m = run.json["rtt_us"].as_object().unwrap();
        let curve = quantile_curve(m);
        assert_eq!(curve.len(), CURVE_POINTS + 1);
        assert!((curve[0].0 - 0.5).abs() < 1e-9);
        assert!((curve[CURVE_POINTS].0 - 0.9999).abs() < 1e-9);
        let at = |q: f64| curve.iter().rfind(|(x, _)| *x <= q + 1e-9).unwrap().1;
        assert_eq!(at(0.5), 40.0);
        assert_eq!(at(0.9), 90.0);
        assert_eq!(at(0.99), 990.0);
        assert_eq!(at(0.999), 1500.0);
        assert_eq!(at(0.9999), 2000.0);
    }

    #[test]
    fn without_buckets_the_curve_is_the_summary_percentiles() {
        let m = json!({"count": 5, "p50": 1, "p90": 2, "p99": 3, "p999": 4, "max": 5});
        let curve = quantile_curve(m.as_object().unwrap());
        assert_eq!(
            curve,
            vec![(0.5, 1.0), (0.9, 2.0), (0.99, 3.0), (0.999, 4.0)]
        );
    }

    #[test]
    fn a_page_has_every_chart_and_the_json_figures() {
        let html = page(&[sample("a", 40)], None);
        for name in [
            "round trip latency by percentile",
            "messages per second over time",
            "p99 latency over time",
            "connections over time",
            "errors by cause",
        ] {
            assert!(
                html.contains(&format!("role=\"img\" aria-label=\"{name}\"")),
                "{name}"
            );
        }
        assert!(html.contains("<title>strand bench echo ws://127.0.0.1:9/ws</title>"));
        assert!(html.contains("data-key=\"rtt_us.p50\">40<"));
        assert!(html.contains("data-key=\"rtt_us.p99\">990<"));
        assert!(html.contains("data-key=\"msgs_per_s\">12345.6<"));
        assert!(html.contains("data-key=\"delivery.duplicates\">1<"));
        assert!(html.contains("data-key=\"errors.total\">3<"));
        assert!(html.contains("2023-11-14 22:13:20 UTC"));
        assert!(html.contains("p(99)&lt;50ms"));
        // Nothing that runs or fetches.
        assert!(!html.contains("<script") && !html.contains("src="));
    }

    #[test]
    fn two_runs_share_the_charts_with_a_legend() {
        let html = page(&[sample("before", 40), sample("after", 30)], None);
        assert!(html.contains("<title>strand bench: before vs after</title>"));
        let chart = html
            .split("aria-label=\"round trip latency by percentile\"")
            .nth(1)
            .unwrap();
        let chart = &chart[..chart.find("</svg>").unwrap()];
        assert!(chart.contains(">before</text>") && chart.contains(">after</text>"));
        assert!(chart.contains("l c0") && chart.contains("l c1"));
        assert!(html.contains("data-run=\"1\" data-key=\"rtt_us.p50\">30<"));
    }

    #[test]
    fn missing_or_odd_keys_mean_missing_charts() {
        for json in [
            json!({}),
            json!([1, 2]),
            json!({"rtt_us": {"count": 0}, "series": "no", "errors": 7}),
            json!({"rtt_us": {"count": 3, "histogram": [["x"], [5]]}, "series": [{"t": null}]}),
        ] {
            let html = page(&[Run::new(json, Some("odd"), "x")], None);
            assert!(html.ends_with("</html>\n"));
            assert!(!html.contains("over time"), "{html}");
        }
        assert!(first_distribution(&[Run::new(json!({}), None, "x")]).is_none());
    }

    #[test]
    fn labels_come_from_the_flag_then_the_json_then_the_file() {
        assert_eq!(Run::new(json!({"label": "j"}), Some("f"), "x").label, "f");
        assert_eq!(Run::new(json!({"label": "j"}), None, "x").label, "j");
        assert_eq!(Run::new(json!({}), None, "x").label, "x");
    }
}

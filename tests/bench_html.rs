//! `strand bench ... --html` and `strand bench report`: the report of a real
//! echo run against a strand on port 0 carries the JSON's figures, two runs
//! overlay with both labels, bad input is a clear error, and (the heavy
//! test) the pages open in Chromium offline with their charts found by role
//! and name (tests/browser/report.mjs, driven by playwright-core).
mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::Server;

fn strand(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strand"))
        .args(args)
        .output()
        .expect("run strand")
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/bench_html")
        .join(name)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `strand bench echo` against a fresh strand with `--json` and
/// `--html` into `dir`; returns the JSON and the page.
fn echo_run(dir: &Path) -> (Value, String) {
    let server = Server::start(&[]);
    let (json, html) = (dir.join("echo.json"), dir.join("echo.html"));
    let url = server.url("/ws");
    let out = strand(&[
        "bench",
        "echo",
        "--url",
        &url,
        "--clients",
        "3",
        "--messages",
        "200",
        "-q",
        "--json",
        path(&json),
        "--html",
        path(&html),
    ]);
    assert!(out.status.success(), "bench echo failed: {out:?}");
    let j: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    (j, std::fs::read_to_string(&html).unwrap())
}

/// The text of the table cell `data-run=RUN data-key=KEY`.
fn cell<'a>(html: &'a str, run: usize, key: &str) -> &'a str {
    let needle = format!("data-run=\"{run}\" data-key=\"{key}\">");
    let at = html
        .find(&needle)
        .unwrap_or_else(|| panic!("no cell {key} of run {run} in the page"))
        + needle.len();
    &html[at..at + html[at..].find('<').unwrap()]
}

#[test]
fn the_report_of_a_real_run_carries_the_json_figures() {
    let dir = tempfile::tempdir().unwrap();
    let (j, html) = echo_run(dir.path());
    assert_eq!(j["rtt_us"]["count"], 600, "{j}");
    for field in ["count", "p50", "p90", "p99", "p999", "max", "mean"] {
        assert_eq!(
            cell(&html, 0, &format!("rtt_us.{field}")),
            j["rtt_us"][field].to_string(),
            "rtt_us.{field}"
        );
    }
    for key in ["clients", "connected", "messages"] {
        assert_eq!(cell(&html, 0, key), j[key].to_string(), "{key}");
    }
    // Fractions are shown to three decimals.
    let rate: f64 = cell(&html, 0, "msgs_per_s").parse().unwrap();
    assert!(
        (rate - j["msgs_per_s"].as_f64().unwrap()).abs() <= 0.0005,
        "{rate} {j}"
    );
    assert!(html.contains("role=\"img\" aria-label=\"round trip latency by percentile\""));
    assert!(html.contains(&format!(
        "<title>strand bench echo {}</title>",
        j["url"].as_str().unwrap()
    )));
    // Self-contained: no script, nothing to fetch.
    assert!(!html.contains("<script") && !html.contains(" src=") && !html.contains("<link"));
}

#[test]
fn report_overlays_two_runs_with_both_labels() {
    let dir = tempfile::tempdir().unwrap();
    let (html, svg) = (dir.path().join("r.html"), dir.path().join("r.svg"));
    let (before, after) = (fixture("before.json"), fixture("after.json"));
    let out = strand(&[
        "bench",
        "report",
        path(&before),
        path(&after),
        "--html",
        path(&html),
        "--svg",
        path(&svg),
    ]);
    assert!(out.status.success(), "{out:?}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<title>strand bench: before vs after</title>"));
    let chart = page
        .split("aria-label=\"round trip latency by percentile\"")
        .nth(1)
        .expect("the distribution chart");
    let chart = &chart[..chart.find("</svg>").unwrap()];
    assert!(chart.contains(">before</text>") && chart.contains(">after</text>"));
    for (run, file) in [(0, &before), (1, &after)] {
        let j: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        assert_eq!(
            cell(&page, run, "rtt_us.p50"),
            j["rtt_us"]["p50"].to_string()
        );
        assert_eq!(
            cell(&page, run, "rtt_us.p99"),
            j["rtt_us"]["p99"].to_string()
        );
    }
    for name in [
        "messages per second over time",
        "p99 latency over time",
        "errors by cause",
    ] {
        assert!(page.contains(&format!("aria-label=\"{name}\"")), "{name}");
    }
    // The bare SVG is the distribution chart alone, legend and all.
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg.contains("aria-label=\"round trip latency by percentile\""));
    assert!(svg.contains(">before</text>") && svg.contains(">after</text>"));

    // --label names the runs instead of their JSON.
    let out = strand(&[
        "bench",
        "report",
        path(&before),
        path(&after),
        "--label",
        "strand",
        "--label",
        "tokio",
        "--html",
        path(&html),
    ]);
    assert!(out.status.success(), "{out:?}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<title>strand bench: strand vs tokio</title>"));
}

#[test]
fn report_says_what_is_wrong_with_its_input() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("r.html");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{not json").unwrap();
    let missing = dir.path().join("missing.json");
    for (args, says) in [
        (vec![path(&bad), "--html", path(&html)], "cannot read"),
        (vec![path(&missing), "--html", path(&html)], "cannot read"),
        (vec![path(&bad)], "nothing to write"),
    ] {
        let mut all = vec!["bench", "report"];
        all.extend(args);
        let out = strand(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(says),
            "{all:?}: {err}"
        );
    }
    // A JSON of another shape is an empty run, drawn without charts.
    let odd = dir.path().join("odd.json");
    std::fs::write(&odd, "[1, 2, 3]").unwrap();
    let out = strand(&["bench", "report", path(&odd), "--html", path(&html)]);
    assert!(out.status.success(), "{out:?}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("No latency figures") && !page.contains("role=\"img\""));
}

#[test]
fn heavy_bench_report_in_chromium_offline() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        root.join("tests/browser/node_modules/playwright-core")
            .is_dir(),
        "tests/browser/node_modules is missing: run `npm ci` in tests/browser (.ci/test does)"
    );
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: `apt-get install chromium` (.ci/test does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = echo_run(dir.path());
    let compared = dir.path().join("compared.html");
    let out = strand(&[
        "bench",
        "report",
        path(&fixture("before.json")),
        path(&fixture("after.json")),
        "--html",
        path(&compared),
    ]);
    assert!(out.status.success(), "{out:?}");
    let status = Command::new("node")
        .arg("--test")
        .arg("--test-reporter=spec")
        .arg(root.join("tests/browser/report.mjs"))
        .current_dir(root)
        .env("REPORT_RUN", dir.path().join("echo.html"))
        .env("REPORT_RUN_P99", j["rtt_us"]["p99"].to_string())
        .env("REPORT_COMPARED", &compared)
        .status()
        .expect("run node (is it installed?)");
    assert!(
        status.success(),
        "the report's browser test failed: {status}"
    );
}

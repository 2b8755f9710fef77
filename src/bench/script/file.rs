//! The scenario file: TOML read into a validated [`Script`] before any
//! client starts. Every mistake (an unknown key, a step with two kinds, a
//! template naming a variable no earlier step captures, a bad regex, a
//! duration or a threshold that does not parse) is refused with the line it
//! is on. No I/O but reading the file and its CSV feeder.

use crate::bench::script::duration::{self, Span};
use crate::bench::script::feeder::Feeder;
use crate::bench::script::matcher::{self, Condition, Path, Source};
use crate::bench::script::stages::{Plan, Stage};
use crate::bench::script::template::{Names, Template};
use crate::bench::threshold::{Stat, Threshold};
use regex_lite::Regex;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path as FsPath;
use std::time::Duration;
use toml::Spanned;

/// The metric every connect step records: the handshake's duration.
pub const CONNECT_METRIC: &str = "connect";
/// An expect step's timeout when neither it nor the file sets one.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client asked to stop may take to finish its iteration.
const DEFAULT_GRACEFUL: Duration = Duration::from_secs(30);
/// Most clients a file may ask for (each is a thread; the OS stops far
/// sooner, but a typo must not allocate a slot table for billions).
const MOST_CLIENTS: usize = 1_000_000;

/// A loaded scenario.
#[derive(Debug)]
pub struct Script {
    /// Its name (the file's `name`, else the file name).
    pub name: String,
    /// How many clients run, and for how long.
    pub load: Load,
    /// How long a stopped client may take to finish its iteration.
    pub graceful_ramp_down: Duration,
    /// The CSV feeder (empty without `csv`).
    pub feeder: Feeder,
    /// The file's thresholds, then those of the command line.
    pub thresholds: Vec<Threshold>,
    /// The steps each client runs, once per iteration.
    pub steps: Vec<Step>,
    /// Names of the captured variables, by index.
    pub vars: Vec<String>,
    /// Names of the latency metrics, by index (`connect` first).
    pub metrics: Vec<String>,
}

/// How many clients run, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Load {
    /// `clients` each run `iterations` iterations.
    Iterations {
        /// Clients.
        clients: usize,
        /// Iterations each.
        iterations: u64,
    },
    /// Clients started and stopped over time; each iterates until stopped.
    Stages(Plan),
}

impl Load {
    /// The most clients at once.
    pub fn peak(&self) -> usize {
        match self {
            Load::Iterations { clients, .. } => *clients,
            Load::Stages(plan) => plan.peak(),
        }
    }
}

/// One step, with the line it starts on.
#[derive(Debug, Clone)]
pub struct Step {
    /// The line in the file.
    pub line: usize,
    /// What it does.
    pub kind: Kind,
}

/// What a step does.
#[derive(Debug, Clone)]
pub enum Kind {
    /// Open the client's connection (closing one still open).
    Connect {
        /// `ws://` or `wss://` URL.
        url: Template,
        /// Extra request headers.
        headers: Vec<(String, Template)>,
        /// Subprotocols offered.
        subprotocols: Vec<String>,
    },
    /// Send a message.
    Send {
        /// Its text.
        body: Template,
        /// Send the text's bytes as a binary message.
        binary: bool,
    },
    /// Read until a message matches, within `timeout`.
    Expect {
        /// A JSON condition the message must satisfy.
        condition: Option<Condition>,
        /// A regex the message's text must match.
        regex: Option<Regex>,
        /// How long to wait.
        timeout: Duration,
        /// The latency metric (index into [`Script::metrics`]).
        metric: usize,
    },
    /// Take a value from the message the last expect matched.
    Capture {
        /// The variable (index into [`Script::vars`]).
        var: usize,
        /// Where the value is.
        source: Source,
    },
    /// Wait.
    Think(Span),
    /// Repeat steps.
    Loop {
        /// How often or how long.
        repeat: Repeat,
        /// The steps.
        body: Vec<Step>,
    },
    /// Close the connection.
    Close,
}

/// How a loop repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// This many times.
    Times(u64),
    /// Until this long has passed since the loop began.
    For(Duration),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    name: Option<String>,
    url: Option<String>,
    clients: Option<usize>,
    iterations: Option<u64>,
    stages: Option<Vec<RawStage>>,
    graceful_ramp_down: Option<String>,
    csv: Option<String>,
    timeout: Option<String>,
    #[serde(default)]
    thresholds: Vec<Spanned<String>>,
    #[serde(default)]
    step: Vec<Spanned<RawStep>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStage {
    target: usize,
    duration: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawRepeat {
    Times(u64),
    For(String),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStep {
    connect: Option<String>,
    headers: Option<BTreeMap<String, String>>,
    subprotocols: Option<Vec<String>>,
    send: Option<String>,
    binary: Option<bool>,
    expect: Option<String>,
    regex: Option<String>,
    timeout: Option<String>,
    metric: Option<String>,
    capture: Option<String>,
    json: Option<String>,
    think: Option<String>,
    #[serde(rename = "loop")]
    repeat: Option<RawRepeat>,
    #[serde(rename = "do")]
    body: Option<Vec<Spanned<RawStep>>>,
    close: Option<bool>,
}

/// An error with the line it is on.
fn at(line: usize, what: impl std::fmt::Display) -> String {
    format!("line {line}: {what}")
}

/// The 1-based line of byte offset `pos` in `text`.
fn line_of(text: &str, pos: usize) -> usize {
    text.as_bytes()[..pos.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Reads and validates the scenario at `path`; `url` (from `--url`)
/// replaces the file's `url`, `thresholds` (from `--threshold`) add to its
/// own. An error says `line N: ...` where it can.
pub fn load(path: &FsPath, url: Option<&str>, thresholds: &[Threshold]) -> Result<Script, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
    let dir = path.parent().unwrap_or(FsPath::new("."));
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    parse(&text, dir, &name, url, thresholds)
}

/// As [`load`], from the file's text; `dir` is where its CSV is looked for.
pub fn parse(
    text: &str,
    dir: &FsPath,
    default_name: &str,
    url: Option<&str>,
    thresholds: &[Threshold],
) -> Result<Script, String> {
    let raw: RawFile = toml::from_str(text).map_err(|e| match e.span() {
        Some(span) => at(line_of(text, span.start), e.message()),
        None => e.message().to_string(),
    })?;
    let timeout = match &raw.timeout {
        Some(t) => duration::parse(t).map_err(|e| format!("timeout: {e}"))?,
        None => DEFAULT_TIMEOUT,
    };
    let graceful_ramp_down = match &raw.graceful_ramp_down {
        Some(t) => duration::parse(t).map_err(|e| format!("graceful_ramp_down: {e}"))?,
        None => DEFAULT_GRACEFUL,
    };
    let load = match (&raw.stages, raw.clients, raw.iterations) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err("stages and clients/iterations exclude each other".into())
        }
        (Some(stages), None, None) => {
            let mut plan = Plan { stages: Vec::new() };
            for s in stages {
                let d = duration::parse(&s.duration).map_err(|e| format!("stages: {e}"))?;
                plan.stages.push(Stage {
                    target: s.target,
                    duration: d,
                });
            }
            if plan.peak() == 0 {
                return Err("stages: no stage has a target above 0".into());
            }
            Load::Stages(plan)
        }
        (None, clients, iterations) => Load::Iterations {
            clients: clients.unwrap_or(1),
            iterations: iterations.unwrap_or(1),
        },
    };
    if load.peak() > MOST_CLIENTS {
        return Err(format!(
            "{} clients: at most {MOST_CLIENTS} (each is a thread)",
            load.peak()
        ));
    }
    let feeder = match &raw.csv {
        Some(file) => {
            let csv_path = dir.join(file);
            let csv = std::fs::read_to_string(&csv_path)
                .map_err(|e| format!("csv: cannot read {}: {e}", csv_path.display()))?;
            Feeder::parse(&csv).map_err(|e| format!("csv {}: {e}", csv_path.display()))?
        }
        None => Feeder::default(),
    };
    let base = url.map(str::to_string).or(raw.url.clone());
    let mut scope = Scope {
        text,
        base,
        columns: feeder.columns.clone(),
        vars: Vec::new(),
        metrics: vec![CONNECT_METRIC.to_string()],
        timeout,
        connected: false,
        matched: false,
    };
    if raw.step.is_empty() {
        return Err("no [[step]]: a scenario needs at least a connect step".into());
    }
    let steps = scope.steps(&raw.step)?;
    let mut all_thresholds = Vec::new();
    for t in &raw.thresholds {
        let line = line_of(text, t.span().start);
        let parsed = Threshold::parse(t.get_ref())
            .map_err(|e| at(line, e.strip_prefix("--threshold ").unwrap_or(&e)))?;
        scope.knows(&parsed).map_err(|e| at(line, e))?;
        all_thresholds.push(parsed);
    }
    for t in thresholds {
        scope.knows(t)?;
        all_thresholds.push(t.clone());
    }
    Ok(Script {
        name: raw.name.unwrap_or_else(|| default_name.to_string()),
        load,
        graceful_ramp_down,
        feeder,
        thresholds: all_thresholds,
        steps,
        vars: scope.vars,
        metrics: scope.metrics,
    })
}

/// What the steps read so far declare, in file order.
struct Scope<'t> {
    text: &'t str,
    base: Option<String>,
    columns: Vec<String>,
    vars: Vec<String>,
    metrics: Vec<String>,
    timeout: Duration,
    /// Whether a connect step came before (and no close since).
    connected: bool,
    /// Whether an expect step came before (a capture has a message).
    matched: bool,
}

impl Names for Scope<'_> {
    fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }
    fn variable(&self, name: &str) -> Option<usize> {
        self.vars.iter().position(|v| v == name)
    }
}

impl Scope<'_> {
    fn steps(&mut self, raw: &[Spanned<RawStep>]) -> Result<Vec<Step>, String> {
        raw.iter()
            .map(|s| {
                let line = line_of(self.text, s.span().start);
                let kind = self.step(s.get_ref(), line).map_err(|e| at(line, e))?;
                Ok(Step { line, kind })
            })
            .collect()
    }

    fn step(&mut self, s: &RawStep, line: usize) -> Result<Kind, String> {
        let kinds: Vec<&str> = [
            ("connect", s.connect.is_some()),
            ("send", s.send.is_some()),
            ("expect", s.expect.is_some()),
            ("capture", s.capture.is_some()),
            ("think", s.think.is_some()),
            ("loop", s.repeat.is_some()),
            ("close", s.close.is_some()),
        ]
        .iter()
        .filter(|(_, present)| *present)
        .map(|(k, _)| *k)
        .collect();
        let kind = match kinds.as_slice() {
            [one] => *one,
            [] => {
                return Err(
                    "a step needs one of connect, send, expect, capture, think, loop, close".into(),
                )
            }
            many => {
                return Err(format!(
                    "a step has one kind, this one has {}",
                    many.join(" and ")
                ))
            }
        };
        let allowed: &[&str] = match kind {
            "connect" => &["headers", "subprotocols"],
            "send" => &["binary"],
            "expect" => &["regex", "timeout", "metric"],
            "capture" => &["json", "regex"],
            "loop" => &["do"],
            _ => &[],
        };
        for (key, present) in [
            ("headers", s.headers.is_some()),
            ("subprotocols", s.subprotocols.is_some()),
            ("binary", s.binary.is_some()),
            ("regex", s.regex.is_some()),
            ("timeout", s.timeout.is_some()),
            ("metric", s.metric.is_some()),
            ("json", s.json.is_some()),
            ("do", s.body.is_some()),
        ] {
            if present && !allowed.contains(&key) {
                return Err(format!("{key} does not belong to a {kind} step"));
            }
        }
        let needs_connection = |scope: &Self| {
            if scope.connected {
                Ok(())
            } else {
                Err(format!("{kind} before any connect step (or after close)"))
            }
        };
        Ok(match kind {
            "connect" => {
                let url = self.url(s.connect.as_deref().unwrap_or_default())?;
                let mut headers = Vec::new();
                for (name, value) in s.headers.iter().flatten() {
                    headers.push((name.clone(), Template::parse(value, self)?));
                }
                self.connected = true;
                Kind::Connect {
                    url,
                    headers,
                    subprotocols: s.subprotocols.clone().unwrap_or_default(),
                }
            }
            "send" => {
                needs_connection(self)?;
                Kind::Send {
                    body: Template::parse(s.send.as_deref().unwrap_or_default(), self)?,
                    binary: s.binary.unwrap_or(false),
                }
            }
            "expect" => {
                needs_connection(self)?;
                let text = s.expect.as_deref().unwrap_or_default().trim();
                let condition = match text {
                    "*" => None,
                    t if t.starts_with('$') => Some(Condition::parse(t, self)?),
                    _ => {
                        return Err(format!(
                            "expect {text:?}: a JSON condition starts with $ (\"*\": any message)"
                        ))
                    }
                };
                let regex = s.regex.as_deref().map(matcher::regex).transpose()?;
                let timeout = match &s.timeout {
                    Some(t) => duration::parse(t)?,
                    None => self.timeout,
                };
                let name = match &s.metric {
                    Some(m) => {
                        if m == CONNECT_METRIC || !is_metric_name(m) {
                            return Err(format!(
                                "metric {m:?}: letters, digits, '_', '-' or '.', and not {CONNECT_METRIC:?}"
                            ));
                        }
                        m.clone()
                    }
                    None => format!("expect_line{line}"),
                };
                self.matched = true;
                Kind::Expect {
                    condition,
                    regex,
                    timeout,
                    metric: self.metric(name),
                }
            }
            "capture" => {
                if !self.matched {
                    return Err("capture takes from the message an expect matched: no expect step comes before it".into());
                }
                let name = s.capture.clone().unwrap_or_default();
                if !is_metric_name(&name) || ["client", "n", "now_us"].contains(&name.as_str()) {
                    return Err(format!("capture {name:?}: a variable name is letters, digits, '_', '-' or '.', and not client, n or now_us"));
                }
                let source = match (&s.json, &s.regex) {
                    (Some(p), None) => Source::Json(Path::parse(p)?),
                    (None, Some(r)) => Source::Regex(matcher::regex(r)?),
                    _ => {
                        return Err(
                            "capture takes json = PATH or regex = PATTERN (one of them)".into()
                        )
                    }
                };
                let var = match self.variable(&name) {
                    Some(i) => i,
                    None => {
                        self.vars.push(name);
                        self.vars.len() - 1
                    }
                };
                Kind::Capture { var, source }
            }
            "think" => Kind::Think(Span::parse(s.think.as_deref().unwrap_or_default())?),
            "loop" => {
                let repeat = match &s.repeat {
                    Some(RawRepeat::Times(n)) => Repeat::Times(*n),
                    Some(RawRepeat::For(d)) => Repeat::For(duration::parse(d)?),
                    None => Repeat::Times(0),
                };
                let body = s.body.as_deref().unwrap_or_default();
                if body.is_empty() {
                    return Err("a loop needs steps: do = [ ... ] or [[step.do]]".into());
                }
                Kind::Loop {
                    repeat,
                    body: self.steps(body)?,
                }
            }
            _ => {
                if s.close != Some(true) {
                    return Err("close = true is the only form of close".into());
                }
                needs_connection(self)?;
                self.connected = false;
                Kind::Close
            }
        })
    }

    /// A connect step's URL: absolute, or a path after the base URL.
    fn url(&self, text: &str) -> Result<Template, String> {
        let full = if text.starts_with('/') {
            let base = self.base.as_deref().ok_or_else(|| {
                format!(
                    "connect {text:?} is a path: set url = \"ws://HOST:PORT\" at the top, or --url"
                )
            })?;
            format!("{}{text}", base.trim_end_matches('/'))
        } else if text.starts_with("ws://") || text.starts_with("wss://") {
            text.to_string()
        } else {
            return Err(format!(
                "connect {text:?}: a ws:// or wss:// URL, or a path starting with /"
            ));
        };
        Template::parse(&full, self)
    }

    /// Whether `t` names a metric this scenario measures (a figure of the
    /// report such as `errors` is checked when it is evaluated).
    fn knows(&self, t: &Threshold) -> Result<(), String> {
        let name = match (&t.metric, &t.stat) {
            (Some(m), _) => m,
            (None, Stat::Value(_)) => return Ok(()),
            (None, _) => {
                return Err(format!(
                    "{:?}: name the metric, e.g. {}:{}",
                    t.expr,
                    self.metrics.last().map_or(CONNECT_METRIC, |m| m.as_str()),
                    t.expr
                ))
            }
        };
        if self.metrics.contains(name) {
            Ok(())
        } else {
            Err(format!(
                "{:?}: no metric {name:?} (this scenario measures {})",
                t.expr,
                self.metrics.join(", ")
            ))
        }
    }

    fn metric(&mut self, name: String) -> usize {
        match self.metrics.iter().position(|m| *m == name) {
            Some(i) => i,
            None => {
                self.metrics.push(name);
                self.metrics.len() - 1
            }
        }
    }
}

fn is_metric_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "chat"
url = "ws://127.0.0.1:9"
clients = 3
iterations = 2
thresholds = ["join:p(99)<50ms"]

[[step]]
connect = "/ws/chat/u{{client}}"
headers = { Authorization = "Bearer t{{client}}" }
subprotocols = ["chat.v1"]

[[step]]
send = '{"type":"join","room":"r"}'

[[step]]
expect = '$.type == "joined" && $.room == "r"'
metric = "join"
timeout = "2s"

[[step]]
capture = "seq"
json = "$.seq"

[[step]]
loop = 3
do = [
  { send = '{"type":"message","room":"r","text":"{{seq}}-{{n}}"}' },
  { expect = "*", regex = 'text' },
  { think = "10ms..20ms" },
]

[[step]]
close = true
"#;

    fn parse_text(text: &str) -> Result<Script, String> {
        parse(text, FsPath::new("."), "t", None, &[])
    }

    #[test]
    fn a_full_file_loads_with_lines_and_names() {
        let s = parse_text(GOOD).unwrap();
        assert_eq!(s.name, "chat");
        assert_eq!(
            s.load,
            Load::Iterations {
                clients: 3,
                iterations: 2
            }
        );
        assert_eq!(s.thresholds.len(), 1);
        assert_eq!(s.thresholds[0].metric.as_deref(), Some("join"));
        assert_eq!(s.vars, ["seq"]);
        assert_eq!(s.metrics, ["connect", "join", "expect_line29"]);
        let lines: Vec<usize> = s.steps.iter().map(|s| s.line).collect();
        assert_eq!(lines, [8, 13, 16, 21, 25, 33]);
        let Kind::Connect {
            headers,
            subprotocols,
            ..
        } = &s.steps[0].kind
        else {
            panic!("{:?}", s.steps[0]);
        };
        assert_eq!(headers.len(), 1);
        assert_eq!(subprotocols, &["chat.v1"]);
        let Kind::Loop { repeat, body } = &s.steps[4].kind else {
            panic!("{:?}", s.steps[4]);
        };
        assert_eq!(*repeat, Repeat::Times(3));
        assert_eq!(body.len(), 3);
    }

    #[test]
    fn the_url_flag_replaces_the_files_and_thresholds_add() {
        let extra = Threshold::parse("errors==0").unwrap();
        let s = parse(
            GOOD,
            FsPath::new("."),
            "t",
            Some("ws://10.0.0.1:80/"),
            std::slice::from_ref(&extra),
        )
        .unwrap();
        let Kind::Connect { url, .. } = &s.steps[0].kind else {
            panic!();
        };
        let v = crate::bench::script::template::Values {
            client: 4,
            n: 0,
            row: &[],
            vars: &[],
        };
        assert_eq!(url.render(&v).unwrap(), "ws://10.0.0.1:80/ws/chat/u4");
        assert_eq!(s.thresholds[1], extra);
    }

    #[test]
    fn stages_and_loops_for_a_time() {
        let s = parse_text(
            r#"
stages = [{ target = 10, duration = "1s" }, { target = 0, duration = "500ms" }]
graceful_ramp_down = "2s"
[[step]]
connect = "ws://127.0.0.1:9/ws"
[[step]]
loop = "30s"
[[step.do]]
send = "ping"
"#,
        )
        .unwrap();
        let Load::Stages(plan) = &s.load else {
            panic!()
        };
        assert_eq!(plan.peak(), 10);
        assert_eq!(s.graceful_ramp_down, Duration::from_secs(2));
        let Kind::Loop { repeat, body } = &s.steps[1].kind else {
            panic!()
        };
        assert_eq!(*repeat, Repeat::For(Duration::from_secs(30)));
        assert_eq!(body[0].line, 8);
    }

    /// The error of `body` after a connect step on line 2.
    fn error_of(body: &str) -> String {
        let text = format!("[[step]]\nconnect = \"ws://h:1/\"\n{body}");
        parse_text(&text)
            .err()
            .unwrap_or_else(|| panic!("accepted: {text}"))
    }

    #[test]
    fn mistakes_are_refused_with_their_line() {
        let cases = [
            (
                "[[step]]\nsend = \"{{seq}}\"\n",
                "line 3: {{seq}} is not client",
            ),
            ("[[step]]\nsned = \"x\"\n", "line 4: unknown field `sned`"),
            (
                "[[step]]\nsend = \"x\"\nexpect = \"*\"\n",
                "line 3: a step has one kind, this one has send and expect",
            ),
            (
                "[[step]]\nsend = \"x\"\ntimeout = \"1s\"\n",
                "line 3: timeout does not belong to a send step",
            ),
            (
                "[[step]]\nexpect = 'type == \"x\"'\n",
                "line 3: expect \"type == \\\"x\\\"\": a JSON condition starts with $",
            ),
            (
                "[[step]]\nexpect = '$.type == x'\n",
                "line 3: \"$.type == x\": x is not a JSON value",
            ),
            (
                "[[step]]\nexpect = '*'\nregex = '('\n",
                "line 3: regex \"(\"",
            ),
            (
                "[[step]]\nexpect = '*'\ntimeout = 'soon'\n",
                "line 3: \"soon\" is not a duration",
            ),
            (
                "[[step]]\ncapture = \"x\"\njson = \"$.x\"\n",
                "line 3: capture takes from the message an expect matched",
            ),
            (
                "[[step]]\nthink = \"2s..1s\"\n",
                "line 3: \"2s..1s\": the range ends before it starts",
            ),
            ("[[step]]\nloop = 2\n", "line 3: a loop needs steps"),
            (
                "[[step]]\nclose = true\n[[step]]\nsend = \"x\"\n",
                "line 5: send before any connect step",
            ),
            (
                "[[step]]\nexpect = '*'\nmetric = 'connect'\n",
                "line 3: metric \"connect\"",
            ),
            (
                "[[step]]\nsend = \"x\"\nbinary = \"yes\"\n",
                "line 5: invalid type",
            ),
            ("[[step]]\nsend = \"x\"\n[\n", "line 5:"),
        ];
        for (body, want) in cases {
            let e = error_of(body);
            assert!(e.starts_with(want), "{body:?}\n got: {e}\nwant: {want}");
        }
        assert!(parse_text("clients = 2\n")
            .unwrap_err()
            .contains("no [[step]]"));
        assert!(parse_text("[[step]]\nconnect = \"/ws\"\n")
            .unwrap_err()
            .starts_with("line 1: connect \"/ws\" is a path"));
        assert!(parse_text("clients = 1\nstages = []\n[[step]]\nclose=true\n").is_err());
        let huge = parse_text("clients = 2000000000\n[[step]]\nconnect = \"ws://h:1/\"\n");
        assert!(huge.unwrap_err().contains("at most 1000000"));
    }

    #[test]
    fn csv_columns_are_known_to_templates() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("users.csv"), "user,token\nann,a1\nbob,b2\n").unwrap();
        let text = "csv = \"users.csv\"\n[[step]]\nconnect = \"ws://h:1/{{csv.user}}\"\n[[step]]\nsend = \"{{csv.tokn}}\"\n";
        let e = parse(text, dir.path(), "t", None, &[]).unwrap_err();
        assert!(
            e.starts_with("line 4: {{csv.tokn}}: the CSV feeder has no column"),
            "{e}"
        );
        let ok = text.replace("tokn", "token");
        let s = parse(&ok, dir.path(), "t", None, &[]).unwrap();
        assert_eq!(s.feeder.row(1), ["bob", "b2"]);
        let missing = parse(
            "csv = \"nope.csv\"\n[[step]]\nclose=true\n",
            dir.path(),
            "t",
            None,
            &[],
        );
        assert!(missing.unwrap_err().starts_with("csv: cannot read"));
    }
}

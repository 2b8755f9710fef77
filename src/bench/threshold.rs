//! Thresholds: pass/fail conditions on a run's figures in k6's forms
//! (`p(99)<50ms`, `p(99.9)<=200ms`, `avg<10ms`, `max<1s`, `errors==0`,
//! `rate>=1000`, `connect:p(99)<20ms`), parsed from the command line and
//! evaluated against named figures.
//!
//! Pure logic, free of I/O: it knows neither scenarios nor sockets. A
//! scenario (or the scripted runner) hands [`evaluate`] its figures as
//! [`Figures`]: latency histograms by metric name, the main one first, and
//! plain values (`errors`, `rate`, `connected`...) by name.

use hdrhistogram::Histogram;
use std::collections::BTreeMap;

/// A statistic of a latency histogram, or a plain named value.
#[derive(Debug, Clone, PartialEq)]
pub enum Stat {
    /// `p(N)`: the N-th percentile.
    Percentile(f64),
    /// `avg`: the mean.
    Avg,
    /// `med`: the median.
    Med,
    /// `min`: the smallest sample.
    Min,
    /// `max`: the largest sample.
    Max,
    /// `count`: how many samples.
    Count,
    /// A value by name (`errors`, `rate`, `connected`...).
    Value(String),
}

impl Stat {
    /// Whether the statistic is a time (its bound takes a unit, µs inside).
    fn is_time(&self) -> bool {
        !matches!(self, Stat::Count | Stat::Value(_))
    }
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl Op {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Eq => a == b,
            Op::Ne => a != b,
        }
    }
}

/// One threshold, as parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The expression as given.
    pub expr: String,
    /// The latency metric named before `:` (none: the main one).
    pub metric: Option<String>,
    /// What is compared.
    pub stat: Stat,
    /// How.
    pub op: Op,
    /// With what: microseconds for a time, else the number as given.
    pub bound: f64,
}

/// A threshold's verdict on a run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Verdict {
    /// The expression as given.
    pub expr: String,
    /// The metric it was evaluated on (`rtt`, `errors`...).
    pub metric: String,
    /// The figure compared (µs for a time); `None` when the run has no
    /// such figure or no samples, which fails the threshold.
    pub actual: Option<f64>,
    /// Whether it held.
    pub ok: bool,
    /// Whether `actual` is a time in µs (for showing it).
    #[serde(skip)]
    pub time: bool,
}

/// The figures of a run that thresholds look at.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    /// The main latency metric (thresholds without a `metric:` use it).
    pub main: Option<String>,
    /// Latency histograms (µs) by metric name.
    pub latencies: BTreeMap<String, Histogram<u64>>,
    /// Plain values by name.
    pub values: BTreeMap<String, f64>,
}

impl Threshold {
    /// Parses `[METRIC:]STAT OP NUMBER[UNIT]`.
    pub fn parse(text: &str) -> Result<Threshold, String> {
        let bad = |why: &str| format!("--threshold {text:?}: {why}");
        let expr: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let (at, op, len) = ["<=", ">=", "==", "!=", "<", ">"]
            .iter()
            .filter_map(|o| expr.find(o).map(|i| (i, *o)))
            .min_by_key(|(i, o)| (*i, std::cmp::Reverse(o.len())))
            .map(|(i, o)| (i, op_of(o), o.len()))
            .ok_or_else(|| bad("no comparison (<, <=, >, >=, ==, !=)"))?;
        let (left, right) = (&expr[..at], &expr[at + len..]);
        let (metric, stat_text) = match left.split_once(':') {
            Some((m, s)) if !m.is_empty() => (Some(m.to_string()), s),
            Some(_) => return Err(bad("empty metric name before ':'")),
            None => (None, left),
        };
        let stat = stat_of(stat_text).map_err(|w| bad(&w))?;
        if metric.is_some() && matches!(stat, Stat::Value(_)) {
            return Err(bad("a metric: takes p(N), avg, med, min, max or count"));
        }
        let bound = if stat.is_time() {
            duration_us(right).map_err(|w| bad(&w))?
        } else {
            right
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| bad(&format!("{right:?} is not a number")))?
        };
        Ok(Threshold {
            expr: text.trim().to_string(),
            metric,
            stat,
            op,
            bound,
        })
    }

    /// This threshold's verdict on `figures`.
    pub fn evaluate(&self, figures: &Figures) -> Verdict {
        let (metric, actual) = match &self.stat {
            Stat::Value(name) => (name.clone(), figures.values.get(name).copied()),
            stat => {
                let name = self.metric.clone().or_else(|| figures.main.clone());
                let h = name.as_ref().and_then(|n| figures.latencies.get(n));
                let actual = h.and_then(|h| latency_stat(h, stat));
                (name.unwrap_or_default(), actual)
            }
        };
        let ok = actual.is_some_and(|a| self.op.holds(a, self.bound));
        Verdict {
            expr: self.expr.clone(),
            metric,
            actual,
            ok,
            time: self.stat.is_time(),
        }
    }
}

/// Every threshold's verdict on `figures`, in order.
pub fn evaluate(thresholds: &[Threshold], figures: &Figures) -> Vec<Verdict> {
    thresholds.iter().map(|t| t.evaluate(figures)).collect()
}

/// Parses every `--threshold`.
pub fn parse_all(texts: &[String]) -> Result<Vec<Threshold>, String> {
    texts.iter().map(|t| Threshold::parse(t)).collect()
}

fn op_of(o: &str) -> Op {
    match o {
        "<=" => Op::Le,
        ">=" => Op::Ge,
        "==" => Op::Eq,
        "!=" => Op::Ne,
        "<" => Op::Lt,
        _ => Op::Gt,
    }
}

fn stat_of(s: &str) -> Result<Stat, String> {
    if let Some(p) = s.strip_prefix("p(").and_then(|r| r.strip_suffix(')')) {
        let p: f64 = p
            .parse()
            .map_err(|_| format!("{p:?} is not a percentile"))?;
        if !(0.0..=100.0).contains(&p) {
            return Err(format!("percentile {p} is not within 0..100"));
        }
        return Ok(Stat::Percentile(p));
    }
    Ok(match s {
        "avg" => Stat::Avg,
        "med" => Stat::Med,
        "min" => Stat::Min,
        "max" => Stat::Max,
        "count" => Stat::Count,
        "" => return Err("nothing to compare".into()),
        name if name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') =>
        {
            Stat::Value(name.to_string())
        }
        other => return Err(format!("{other:?} is not a statistic or a figure")),
    })
}

/// A duration in microseconds: `250us`, `250µs`, `50ms`, `1.5s`, or a bare
/// number of milliseconds (k6's unit for a trend).
pub fn duration_us(s: &str) -> Result<f64, String> {
    let (number, scale) = if let Some(n) = s.strip_suffix("us").or(s.strip_suffix("µs")) {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1e6)
    } else {
        (s, 1e3)
    };
    number
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .map(|x| x * scale)
        .ok_or_else(|| format!("{s:?} is not a duration (e.g. 250us, 50ms, 1s)"))
}

fn latency_stat(h: &Histogram<u64>, stat: &Stat) -> Option<f64> {
    if h.is_empty() {
        return None;
    }
    Some(match stat {
        Stat::Percentile(p) => h.value_at_quantile(p / 100.0) as f64,
        Stat::Avg => h.mean(),
        Stat::Med => h.value_at_quantile(0.5) as f64,
        Stat::Min => h.min() as f64,
        Stat::Max => h.max() as f64,
        Stat::Count => h.len() as f64,
        Stat::Value(_) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Threshold {
        Threshold::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn k6_forms_parse() {
        let p = t("p(99)<50ms");
        assert_eq!(
            (p.metric, p.stat, p.op, p.bound),
            (None, Stat::Percentile(99.0), Op::Lt, 50_000.0)
        );
        let p = t("p(99.9) <= 200ms");
        assert_eq!(
            (p.stat, p.op, p.bound),
            (Stat::Percentile(99.9), Op::Le, 200_000.0)
        );
        assert_eq!(p.expr, "p(99.9) <= 200ms");
        assert_eq!(
            (t("avg<10ms").stat, t("avg<10ms").bound),
            (Stat::Avg, 10_000.0)
        );
        assert_eq!(t("max<1s").bound, 1e6);
        assert_eq!(t("med<250us").bound, 250.0);
        assert_eq!(t("min>=3µs").bound, 3.0);
        assert_eq!(t("p(50)<20").bound, 20_000.0, "bare numbers are ms");
        let e = t("errors==0");
        assert_eq!(
            (e.stat, e.op, e.bound),
            (Stat::Value("errors".into()), Op::Eq, 0.0)
        );
        let r = t("rate>=1000");
        assert_eq!(
            (r.stat, r.op, r.bound),
            (Stat::Value("rate".into()), Op::Ge, 1000.0)
        );
        let c = t("connect:p(99)<20ms");
        assert_eq!(c.metric.as_deref(), Some("connect"));
        assert_eq!(t("rtt:count>100").stat, Stat::Count);
        assert_eq!(t("connected!=0").op, Op::Ne);
        assert_eq!(t("x>1").op, Op::Gt);
    }

    #[test]
    fn bad_expressions_say_why() {
        for (bad, why) in [
            ("p(99)", "no comparison"),
            ("p(101)<1ms", "within 0..100"),
            ("p(x)<1ms", "not a percentile"),
            ("avg<fast", "not a duration"),
            ("errors==none", "not a number"),
            ("rtt:errors==0", "a metric: takes"),
            (":p(99)<1ms", "empty metric"),
            ("<3", "nothing to compare"),
            ("p[99]<3", "not a statistic"),
        ] {
            let e = Threshold::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    fn figures() -> Figures {
        let mut rtt = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for us in 1..=1000 {
            rtt.record(us).unwrap();
        }
        let mut connect = rtt.clone();
        connect.reset();
        connect.record(30_000).unwrap();
        let mut f = Figures {
            main: Some("rtt".into()),
            ..Figures::default()
        };
        f.latencies.insert("rtt".into(), rtt);
        f.latencies.insert("connect".into(), connect);
        f.values.insert("errors".into(), 0.0);
        f.values.insert("rate".into(), 1500.0);
        f
    }

    #[test]
    fn verdicts_on_figures() {
        let f = figures();
        let v = |s: &str| t(s).evaluate(&f);
        assert!(v("p(99)<1ms").ok);
        assert_eq!(v("p(99)<1ms").actual, Some(990.0));
        assert_eq!(v("p(99)<1ms").metric, "rtt");
        assert!(!v("p(99)<900us").ok);
        assert!(v("avg<=501us").ok);
        assert!(v("max==1000us").ok);
        assert!(v("errors==0").ok);
        assert!(!v("rate>=2000").ok);
        assert_eq!(v("rate>=2000").actual, Some(1500.0));
        let c = v("connect:p(99)<20ms");
        assert!(!c.ok);
        assert_eq!(c.metric, "connect");
        assert!(c.actual.unwrap() >= 30_000.0);
        assert!(v("rtt:count==1000").ok);
    }

    #[test]
    fn a_missing_figure_or_empty_metric_fails() {
        let mut f = figures();
        let missing = t("lost==0").evaluate(&f);
        assert_eq!((missing.actual, missing.ok), (None, false));
        let unknown = t("nope:p(50)<1s").evaluate(&f);
        assert_eq!((unknown.actual, unknown.ok), (None, false));
        f.latencies.get_mut("rtt").unwrap().reset();
        assert!(!t("p(99)<1s").evaluate(&f).ok);
        let all = evaluate(&[t("errors==0"), t("rate>1")], &f);
        assert!(all.iter().all(|v| v.ok));
    }
}

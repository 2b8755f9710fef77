//! Drawing primitives for the bench reports: pure functions from numbers
//! to SVG text (axes with ticks, line charts with gaps, grouped bar charts,
//! a legend). Each chart is a self-contained `<svg>` with `role="img"`, an
//! accessible name and its own small style sheet (light and dark), so it
//! reads the same inline in a page or alone as an `.svg` file.
//!
//! This module knows nothing of benchmarks or JSON: what a chart means is
//! `html`'s business.

use std::fmt::Write;

/// Size of every chart's drawing (the viewBox; the page scales it).
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 320.0;
/// Margins around the plot area: left for the y labels, top for the legend.
const LEFT: f64 = 72.0;
const RIGHT: f64 = 36.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 48.0;
/// How many series get a colour of their own (then they repeat).
pub const COLOURS: usize = 6;

/// The style every chart carries: the Okabe-Ito colours (distinct for
/// colour-blind readers), lightened where the background is dark.
const STYLE: &str = "<style>\
.bg{fill:#fff}.fg{fill:#222;font:12px system-ui,sans-serif}.title{font-weight:600;font-size:14px}\
.grid{stroke:#ddd;stroke-width:1}.axis{stroke:#666;stroke-width:1}\
.l{fill:none;stroke-width:2;stroke-linejoin:round}\
.c0{stroke:#0072b2;fill:#0072b2}.c1{stroke:#d55e00;fill:#d55e00}.c2{stroke:#009e73;fill:#009e73}\
.c3{stroke:#cc79a7;fill:#cc79a7}.c4{stroke:#e69f00;fill:#e69f00}.c5{stroke:#56b4e9;fill:#56b4e9}\
.l.c0,.l.c1,.l.c2,.l.c3,.l.c4,.l.c5{fill:none}\
@media (prefers-color-scheme:dark){.bg{fill:#16181c}.fg{fill:#e6e6e6}.grid{stroke:#333}.axis{stroke:#999}\
.c0{stroke:#4ea8ff;fill:#4ea8ff}.c1{stroke:#ff8a4c;fill:#ff8a4c}.c2{stroke:#3fd0a0;fill:#3fd0a0}}\
</style>";

/// How values map onto an axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    /// Evenly from `lo` to `hi`.
    Linear {
        /// The value at the low end.
        lo: f64,
        /// The value at the high end.
        hi: f64,
    },
    /// By their logarithm, from `lo` to `hi` (both above zero).
    Log {
        /// The value at the low end.
        lo: f64,
        /// The value at the high end.
        hi: f64,
    },
}

impl Scale {
    /// Where `v` falls, 0 at the low end and 1 at the high end (clamped a
    /// little beyond, so a stray point stays near the frame).
    pub fn fraction(&self, v: f64) -> f64 {
        let f = match *self {
            Scale::Linear { lo, hi } => (v - lo) / (hi - lo),
            Scale::Log { lo, hi } => (v.max(lo * 1e-3).ln() - lo.ln()) / (hi.ln() - lo.ln()),
        };
        if f.is_finite() {
            f.clamp(-0.05, 1.05)
        } else {
            0.0
        }
    }
}

/// An axis: its scale, its ticks (value and label) and its title.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    /// How values map onto it.
    pub scale: Scale,
    /// Where its ticks are and what they say.
    pub ticks: Vec<(f64, String)>,
    /// What it measures, with its unit.
    pub title: String,
}

/// One line of a chart: its legend label, its colour index and its
/// points; `None` breaks the line (no data there).
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Its name in the legend.
    pub label: String,
    /// Its colour, an index into the palette (wraps around).
    pub colour: usize,
    /// Its points, `(x, y)`.
    pub points: Vec<Option<(f64, f64)>>,
}

/// A chart of lines over two axes.
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    /// The accessible name, also drawn as the chart's title.
    pub name: String,
    /// The horizontal axis.
    pub x: Axis,
    /// The vertical axis.
    pub y: Axis,
    /// The lines, drawn in order.
    pub lines: Vec<Line>,
}

/// A horizontal bar chart: one group per category, one bar per series in
/// each group.
#[derive(Debug, Clone, PartialEq)]
pub struct BarChart {
    /// The accessible name, also drawn as the chart's title.
    pub name: String,
    /// The groups, top to bottom.
    pub categories: Vec<String>,
    /// Each series: its legend label, colour index and one value per
    /// category.
    pub series: Vec<(String, usize, Vec<f64>)>,
}

/// Escapes text for SVG and HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A number with at most `decimals` decimals and no trailing zeros.
pub fn trim(x: f64, decimals: usize) -> String {
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Microseconds as a short tick label: `50 µs`, `1.5 ms`, `2 s`.
pub fn short_us(us: f64) -> String {
    if us < 1e3 {
        format!("{} µs", trim(us, 1))
    } else if us < 1e6 {
        format!("{} ms", trim(us / 1e3, 2))
    } else {
        format!("{} s", trim(us / 1e6, 2))
    }
}

/// Round tick values (steps of 1, 2 or 5 times a power of ten) covering
/// `0..=hi`, about `n` of them; `hi` is raised to the last tick.
pub fn linear_ticks(hi: f64, n: usize) -> Vec<f64> {
    let hi = if hi.is_finite() && hi > 0.0 { hi } else { 1.0 };
    let raw = hi / n.max(1) as f64;
    let power = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * power);
    let count = (hi / step - 1e-9).ceil() as usize;
    (0..=count).map(|i| i as f64 * step).collect()
}

/// Tick values 1, 2 and 5 times the powers of ten from below `lo` to above
/// `hi` (both above zero), thinned to the powers alone when there are many.
pub fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let lo = if lo.is_finite() && lo > 0.0 { lo } else { 1.0 };
    let hi = if hi.is_finite() && hi > lo {
        hi
    } else {
        lo * 10.0
    };
    let first = lo.log10().floor() as i32;
    let last = hi.log10().ceil() as i32;
    let mults: &[f64] = if last - first > 3 {
        &[1.0]
    } else {
        &[1.0, 2.0, 5.0]
    };
    let all: Vec<f64> = (first..=last)
        .flat_map(|e| mults.iter().map(move |m| m * 10f64.powi(e)))
        .collect();
    // From the last tick at or below `lo` to the first at or above `hi`.
    let start = all.iter().rposition(|t| *t <= lo).unwrap_or(0);
    let end = all.iter().position(|t| *t >= hi).unwrap_or(all.len() - 1);
    all[start..=end].to_vec()
}

fn x_of(axis: &Axis, v: f64) -> f64 {
    LEFT + axis.scale.fraction(v) * (WIDTH - LEFT - RIGHT)
}

fn y_of(axis: &Axis, v: f64) -> f64 {
    HEIGHT - BOTTOM - axis.scale.fraction(v) * (HEIGHT - TOP - BOTTOM)
}

/// The opening of a chart: its accessible name, style, background, title.
fn open(out: &mut String, name: &str, height: f64) {
    let name = escape(name);
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {height}\" \
         role=\"img\" aria-label=\"{name}\"><title>{name}</title>{STYLE}\
         <rect class=\"bg\" width=\"{WIDTH}\" height=\"{height}\"/>\
         <text class=\"fg title\" x=\"{LEFT}\" y=\"16\">{name}</text>"
    );
}

/// A legend on one line under the title (nothing for a single unnamed
/// series).
fn legend(out: &mut String, entries: &[(&str, usize)]) {
    if entries.len() < 2 && entries.iter().all(|(l, _)| l.is_empty()) {
        return;
    }
    let mut x = LEFT;
    for (label, colour) in entries {
        let _ = write!(
            out,
            "<rect class=\"c{}\" x=\"{x}\" y=\"23\" width=\"14\" height=\"4\"/>\
             <text class=\"fg\" x=\"{}\" y=\"29\">{}</text>",
            colour % COLOURS,
            x + 18.0,
            escape(label)
        );
        x += 30.0 + 7.0 * label.chars().count() as f64;
    }
}

/// Draws a line chart.
pub fn line_chart(c: &LineChart) -> String {
    let mut out = String::new();
    open(&mut out, &c.name, HEIGHT);
    let entries: Vec<(&str, usize)> = c
        .lines
        .iter()
        .map(|l| (l.label.as_str(), l.colour))
        .collect();
    legend(&mut out, &entries);
    let (x0, x1) = (LEFT, WIDTH - RIGHT);
    let (y0, y1) = (HEIGHT - BOTTOM, TOP);
    for (v, label) in &c.y.ticks {
        let y = y_of(&c.y, *v);
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{x0}\" x2=\"{x1}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
             <text class=\"fg\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            x0 - 6.0,
            y + 4.0,
            escape(label)
        );
    }
    for (v, label) in &c.x.ticks {
        let x = x_of(&c.x, *v);
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{y0}\" y2=\"{y1}\"/>\
             <text class=\"fg\" x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            y0 + 16.0,
            escape(label)
        );
    }
    let _ = write!(
        out,
        "<path class=\"axis\" d=\"M{x0} {y1}V{y0}H{x1}\" fill=\"none\"/>\
         <text class=\"fg\" x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>\
         <text class=\"fg\" transform=\"translate(14 {:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
        (x0 + x1) / 2.0,
        HEIGHT - 8.0,
        escape(&c.x.title),
        (y0 + y1) / 2.0,
        escape(&c.y.title)
    );
    for line in &c.lines {
        let mut d = String::new();
        let mut pen_down = false;
        for p in &line.points {
            match p {
                Some((x, y)) if x.is_finite() && y.is_finite() => {
                    let cmd = if pen_down { 'L' } else { 'M' };
                    let _ = write!(d, "{cmd}{:.1} {:.1}", x_of(&c.x, *x), y_of(&c.y, *y));
                    pen_down = true;
                }
                _ => pen_down = false,
            }
        }
        if !d.is_empty() {
            let _ = write!(
                out,
                "<path class=\"l c{}\" d=\"{d}\"><title>{}</title></path>",
                line.colour % COLOURS,
                escape(&line.label)
            );
        }
    }
    out.push_str("</svg>");
    out
}

/// Draws a horizontal bar chart, each bar labelled with its value; its
/// height grows with the number of bars.
pub fn bar_chart(c: &BarChart) -> String {
    const BAR: f64 = 18.0;
    const GAP: f64 = 12.0;
    let per_group = c.series.len().max(1) as f64 * BAR + GAP;
    let height = TOP + 8.0 + c.categories.len() as f64 * per_group + 8.0;
    let mut out = String::new();
    open(&mut out, &c.name, height);
    let entries: Vec<(&str, usize)> = c
        .series
        .iter()
        .map(|(l, colour, _)| (l.as_str(), *colour))
        .collect();
    legend(&mut out, &entries);
    let hi = c
        .series
        .iter()
        .flat_map(|(_, _, v)| v.iter().copied())
        .fold(0.0, f64::max);
    let left = 180.0;
    let right = WIDTH - RIGHT - 60.0;
    for (g, category) in c.categories.iter().enumerate() {
        let top = TOP + 8.0 + g as f64 * per_group;
        let _ = write!(
            out,
            "<text class=\"fg\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left - 8.0,
            top + (per_group - GAP) / 2.0 + 4.0,
            escape(category)
        );
        for (s, (label, colour, values)) in c.series.iter().enumerate() {
            let v = values.get(g).copied().unwrap_or(0.0);
            let w = if hi > 0.0 {
                v / hi * (right - left)
            } else {
                0.0
            };
            let y = top + s as f64 * BAR;
            let _ = write!(
                out,
                "<rect class=\"c{}\" x=\"{left}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{:.1}\">\
                 <title>{}: {}</title></rect>\
                 <text class=\"fg\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                colour % COLOURS,
                BAR - 3.0,
                escape(label),
                trim(v, 3),
                left + w + 4.0,
                y + BAR / 2.0 + 3.0,
                trim(v, 3)
            );
        }
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_ticks_are_round_and_cover_the_range() {
        assert_eq!(linear_ticks(9.0, 5), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(linear_ticks(100.0, 4), vec![0.0, 50.0, 100.0]);
        assert_eq!(linear_ticks(0.0, 4), vec![0.0, 0.5, 1.0]);
        assert_eq!(linear_ticks(f64::NAN, 4), vec![0.0, 0.5, 1.0]);
    }

    #[test]
    fn log_ticks_bracket_the_range() {
        assert_eq!(
            log_ticks(30.0, 700.0),
            vec![20.0, 50.0, 100.0, 200.0, 500.0, 1000.0]
        );
        let wide = log_ticks(3.0, 2e6);
        assert_eq!(wide.first(), Some(&1.0));
        assert_eq!(wide.last(), Some(&1e7));
        assert_eq!(wide.len(), 8);
    }

    #[test]
    fn scales_map_to_fractions() {
        let lin = Scale::Linear { lo: 0.0, hi: 10.0 };
        assert_eq!(lin.fraction(5.0), 0.5);
        assert_eq!(lin.fraction(100.0), 1.05);
        let log = Scale::Log { lo: 1.0, hi: 100.0 };
        assert!((log.fraction(10.0) - 0.5).abs() < 1e-9);
        assert_eq!(Scale::Linear { lo: 1.0, hi: 1.0 }.fraction(1.0), 0.0);
    }

    #[test]
    fn labels_are_short_and_escaped() {
        assert_eq!(short_us(50.0), "50 µs");
        assert_eq!(short_us(1500.0), "1.5 ms");
        assert_eq!(short_us(2_000_000.0), "2 s");
        assert_eq!(escape("<a & 'b'>"), "&lt;a &amp; &#39;b&#39;&gt;");
    }

    fn chart(lines: Vec<Line>) -> LineChart {
        LineChart {
            name: "rtt <by> percentile".into(),
            x: Axis {
                scale: Scale::Linear { lo: 0.0, hi: 4.0 },
                ticks: vec![(0.0, "p0".into())],
                title: "percentile".into(),
            },
            y: Axis {
                scale: Scale::Log { lo: 1.0, hi: 1e3 },
                ticks: vec![(10.0, "10 µs".into())],
                title: "latency".into(),
            },
            lines,
        }
    }

    #[test]
    fn a_line_chart_is_an_image_with_its_name_and_breaks_at_gaps() {
        let svg = line_chart(&chart(vec![
            Line {
                label: "before".into(),
                colour: 0,
                points: vec![
                    Some((0.0, 1.0)),
                    Some((1.0, 10.0)),
                    None,
                    Some((2.0, 100.0)),
                ],
            },
            Line {
                label: "after".into(),
                colour: 7,
                points: vec![],
            },
        ]));
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("role=\"img\" aria-label=\"rtt &lt;by&gt; percentile\""));
        // Two runs: a legend with both labels, the second in colour 7 % 6.
        assert!(svg.contains(">before</text>") && svg.contains(">after</text>"));
        assert!(svg.contains("class=\"c1\""));
        // The gap starts a new subpath; an empty line draws no path.
        let path = svg.split("class=\"l c0\" d=\"").nth(1).unwrap();
        let d = &path[..path.find('"').unwrap()];
        assert_eq!(d.matches('M').count(), 2, "{d}");
        assert!(!svg.contains("class=\"l c1\""));
        assert!(svg.ends_with("</svg>"));
    }

    #[test]
    fn a_bar_chart_labels_each_bar_with_its_value() {
        let svg = bar_chart(&BarChart {
            name: "errors by cause".into(),
            categories: vec!["refused".into(), "timeout".into()],
            series: vec![("run".into(), 0, vec![3.0, 1.0])],
        });
        assert!(svg.contains("aria-label=\"errors by cause\""));
        assert!(svg.contains(">refused</text>"));
        assert!(svg.contains("<title>run: 3</title>"));
        assert!(svg.contains(">1</text>"));
    }
}

//! Templates of a scenario file: text with `{{client}}` (the client's
//! index), `{{n}}` (its sends so far, 1 in its first send), `{{now_us}}` (Unix time in
//! microseconds when rendered), `{{csv.COLUMN}}` (the client's row of the
//! CSV feeder) and `{{NAME}}` (a value captured earlier). Names resolve
//! when the file is loaded, so a typo is refused before the run; rendering
//! is pure but for the clock.

use std::time::{SystemTime, UNIX_EPOCH};

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Client,
    Counter,
    NowUs,
    /// A column of the feeder's row, by index.
    Csv(usize),
    /// A captured variable, by index.
    Var(usize),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Part>);

/// What names a template may use: the feeder's columns and the variables
/// captured before it.
pub trait Names {
    /// The index of CSV column `name`.
    fn column(&self, name: &str) -> Option<usize>;
    /// The index of captured variable `name`.
    fn variable(&self, name: &str) -> Option<usize>;
}

/// The values a template is rendered with: one client's.
pub struct Values<'a> {
    /// The client's index.
    pub client: usize,
    /// The client's send counter.
    pub n: u64,
    /// The client's CSV row (empty without a feeder).
    pub row: &'a [String],
    /// The captured variables (`None` until captured).
    pub vars: &'a [Option<String>],
}

/// An error while rendering: a variable not captured (yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unset(pub usize);

impl Template {
    /// Parses `text`, resolving its names with `names`.
    pub fn parse(text: &str, names: &dyn Names) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| format!("unclosed {{{{ in {text:?}"))?;
            let name = after[..close].trim();
            parts.push(match name {
                "client" => Part::Client,
                "n" => Part::Counter,
                "now_us" => Part::NowUs,
                _ => match name.strip_prefix("csv.") {
                    Some(col) => Part::Csv(names.column(col).ok_or_else(|| {
                        format!("{{{{{name}}}}}: the CSV feeder has no column {col:?}")
                    })?),
                    None => Part::Var(names.variable(name).ok_or_else(|| {
                        format!(
                            "{{{{{name}}}}} is not client, n, now_us, csv.COLUMN \
                             or a variable captured by an earlier step"
                        )
                    })?),
                },
            });
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template(parts))
    }

    /// Whether the template is plain text (renders the same every time).
    pub fn is_constant(&self) -> bool {
        self.0.iter().all(|p| matches!(p, Part::Text(_)))
    }

    /// Renders with `v`.
    pub fn render(&self, v: &Values) -> Result<String, Unset> {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Client => out.push_str(&v.client.to_string()),
                Part::Counter => out.push_str(&v.n.to_string()),
                Part::NowUs => out.push_str(&unix_us().to_string()),
                Part::Csv(i) => out.push_str(v.row.get(*i).map_or("", |s| s.as_str())),
                Part::Var(i) => match v.vars.get(*i) {
                    Some(Some(value)) => out.push_str(value),
                    _ => return Err(Unset(*i)),
                },
            }
        }
        Ok(out)
    }
}

/// Microseconds since the Unix epoch: what `{{now_us}}` puts in a message,
/// comparable across processes and, with synchronised clocks, machines.
pub fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Columns `user`, `token`; variables `seq`, `room`.
    pub struct Fixed;

    impl Names for Fixed {
        fn column(&self, name: &str) -> Option<usize> {
            ["user", "token"].iter().position(|c| *c == name)
        }
        fn variable(&self, name: &str) -> Option<usize> {
            ["seq", "room"].iter().position(|c| *c == name)
        }
    }

    #[test]
    fn renders_every_kind_of_name() {
        let t = Template::parse(
            r#"{"c":{{client}},"n":{{ n }},"u":"{{csv.user}}","s":{{seq}}}"#,
            &Fixed,
        )
        .unwrap();
        let row = vec!["ann".to_string(), "t0k".to_string()];
        let vars = vec![Some("41".to_string()), None];
        let v = Values {
            client: 3,
            n: 9,
            row: &row,
            vars: &vars,
        };
        assert_eq!(t.render(&v).unwrap(), r#"{"c":3,"n":9,"u":"ann","s":41}"#);
        assert!(!t.is_constant());
        let room = Template::parse("r-{{room}}", &Fixed).unwrap();
        assert_eq!(room.render(&v), Err(Unset(1)));
    }

    #[test]
    fn now_us_is_unix_time() {
        let t = Template::parse("{{now_us}}", &Fixed).unwrap();
        let v = Values {
            client: 0,
            n: 0,
            row: &[],
            vars: &[],
        };
        let before = unix_us();
        let at: u64 = t.render(&v).unwrap().parse().unwrap();
        assert!(at >= before && at <= unix_us());
    }

    #[test]
    fn unknown_names_are_refused_at_parse() {
        assert!(Template::parse("plain", &Fixed).unwrap().is_constant());
        let e = Template::parse("{{csv.email}}", &Fixed).unwrap_err();
        assert!(e.contains("no column \"email\""), "{e}");
        let e = Template::parse("{{sqe}}", &Fixed).unwrap_err();
        assert!(e.contains("{{sqe}}"), "{e}");
        assert!(Template::parse("{{client", &Fixed).is_err());
    }
}

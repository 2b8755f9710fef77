//! What an `expect` step waits for and what a `capture` step takes: a
//! small JSON path (`$.a.b`, `$.list[0]`, `$['odd key']`), conditions on it
//! (`$.type == "joined"`, `$.n >= 3`, `$.room` alone: present and not
//! null, several joined by `&&`), a regex, and the value a path or a
//! regex's first group yields. Pure: no I/O, unit-tested.

use crate::bench::script::template::{Names, Template, Unset, Values};
use regex_lite::Regex;
use serde_json::Value;

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// A JSON path: `$` then `.key`, `['key']` or `[N]` segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path(Vec<Segment>);

impl Path {
    /// Parses a path (it must start with `$`).
    pub fn parse(text: &str) -> Result<Path, String> {
        let bad = |why: &str| format!("JSON path {text:?}: {why}");
        let mut rest = text
            .trim()
            .strip_prefix('$')
            .ok_or_else(|| bad("must start with $"))?;
        let mut segments = Vec::new();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('.') {
                let end = r.find(['.', '[']).unwrap_or(r.len());
                if end == 0 {
                    return Err(bad("empty key after '.'"));
                }
                segments.push(Segment::Key(r[..end].to_string()));
                rest = &r[end..];
            } else if let Some(r) = rest.strip_prefix('[') {
                let end = r.find(']').ok_or_else(|| bad("unclosed '['"))?;
                let inner = r[..end].trim();
                let quoted = inner
                    .strip_prefix('\'')
                    .and_then(|s| s.strip_suffix('\''))
                    .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')));
                segments.push(match quoted {
                    Some(key) => Segment::Key(key.to_string()),
                    None => Segment::Index(
                        inner
                            .parse()
                            .map_err(|_| bad("[...] holds an index or a quoted key"))?,
                    ),
                });
                rest = &r[end + 1..];
            } else {
                return Err(bad("expected '.' or '[' after $"));
            }
        }
        Ok(Path(segments))
    }

    /// The value at this path in `v`.
    pub fn get<'v>(&self, v: &'v Value) -> Option<&'v Value> {
        self.0.iter().try_fold(v, |v, s| match s {
            Segment::Key(k) => v.get(k.as_str()),
            Segment::Index(i) => v.get(*i),
        })
    }
}

/// A comparison of a path's value with a literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// One clause of a condition.
#[derive(Debug, Clone)]
struct Clause {
    path: Path,
    /// The operator and the literal (a template of JSON text), or `None`
    /// for "present and not null".
    compare: Option<(Op, Template)>,
}

/// A condition on a JSON message: clauses that must all hold.
#[derive(Debug, Clone)]
pub struct Condition(Vec<Clause>);

/// Why a message did not match (or could not be checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Miss {
    /// It does not match.
    No,
    /// A variable the condition uses is not captured.
    Unset(Unset),
}

impl Condition {
    /// Parses `PATH [OP LITERAL] [&& ...]`; literals are JSON text and may
    /// hold templates (`$.from == "{{csv.user}}"`).
    pub fn parse(text: &str, names: &dyn Names) -> Result<Condition, String> {
        let mut clauses = Vec::new();
        for clause in split_outside_quotes(text, "&&") {
            clauses.push(parse_clause(clause.trim(), names)?);
        }
        Ok(Condition(clauses))
    }

    /// Whether `message` (parsed JSON) satisfies every clause.
    pub fn check(&self, message: &Value, v: &Values) -> Result<(), Miss> {
        for c in &self.0 {
            let found = c.path.get(message);
            let Some((op, literal)) = &c.compare else {
                match found {
                    Some(x) if !x.is_null() => continue,
                    _ => return Err(Miss::No),
                }
            };
            let text = literal.render(v).map_err(Miss::Unset)?;
            // A literal that renders to something that is not JSON (an
            // unquoted captured word) is compared as a string.
            let want = serde_json::from_str(&text).unwrap_or(Value::String(text));
            if !compare(found.unwrap_or(&Value::Null), *op, &want) {
                return Err(Miss::No);
            }
        }
        Ok(())
    }
}

fn parse_clause(text: &str, names: &dyn Names) -> Result<Clause, String> {
    const OPS: [(&str, Op); 6] = [
        ("==", Op::Eq),
        ("!=", Op::Ne),
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("<", Op::Lt),
        (">", Op::Gt),
    ];
    let found = OPS
        .iter()
        .filter_map(|(s, op)| first_outside_quotes(text, s).map(|i| (i, *s, *op)))
        .min_by_key(|(i, s, _)| (*i, std::cmp::Reverse(s.len())));
    let Some((at, sym, op)) = found else {
        return Ok(Clause {
            path: Path::parse(text)?,
            compare: None,
        });
    };
    let path = Path::parse(&text[..at])?;
    let literal = text[at + sym.len()..].trim();
    if literal.is_empty() {
        return Err(format!("{text:?}: nothing to compare with after {sym}"));
    }
    let template = Template::parse(literal, names)?;
    if template.is_constant() && serde_json::from_str::<Value>(literal).is_err() {
        return Err(format!(
            "{text:?}: {literal} is not a JSON value (quote a string: \"{literal}\")"
        ));
    }
    Ok(Clause {
        path,
        compare: Some((op, template)),
    })
}

fn compare(found: &Value, op: Op, want: &Value) -> bool {
    if let (Some(a), Some(b)) = (found.as_f64(), want.as_f64()) {
        return match op {
            Op::Eq => a == b,
            Op::Ne => a != b,
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
        };
    }
    match (op, found.as_str(), want.as_str()) {
        (Op::Eq, ..) => found == want,
        (Op::Ne, ..) => found != want,
        (Op::Lt, Some(a), Some(b)) => a < b,
        (Op::Le, Some(a), Some(b)) => a <= b,
        (Op::Gt, Some(a), Some(b)) => a > b,
        (Op::Ge, Some(a), Some(b)) => a >= b,
        _ => false,
    }
}

/// Byte offset of the first `needle` in `text` outside double quotes.
fn first_outside_quotes(text: &str, needle: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            _ if !quoted && text[i..].starts_with(needle) => return Some(i),
            _ => {}
        }
    }
    None
}

fn split_outside_quotes<'t>(mut text: &'t str, sep: &str) -> Vec<&'t str> {
    let mut parts = Vec::new();
    while let Some(i) = first_outside_quotes(text, sep) {
        parts.push(&text[..i]);
        text = &text[i + sep.len()..];
    }
    parts.push(text);
    parts
}

/// Where a capture takes its value from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The value at a JSON path (a string's content, else its JSON text).
    Json(Path),
    /// A regex's first group (or its whole match when it has none).
    Regex(Regex),
}

impl Source {
    /// The value in `text` (`json` is its parse, when it is JSON).
    pub fn take(&self, text: &str, json: Option<&Value>) -> Option<String> {
        match self {
            Source::Json(path) => match path.get(json?)? {
                Value::String(s) => Some(s.clone()),
                Value::Null => None,
                other => Some(other.to_string()),
            },
            Source::Regex(re) => {
                let caps = re.captures(text)?;
                caps.get(1)
                    .or_else(|| caps.get(0))
                    .map(|m| m.as_str().into())
            }
        }
    }
}

/// Compiles a regex, naming the pattern in the error.
pub fn regex(pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|e| format!("regex {pattern:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::script::template::tests::Fixed;
    use serde_json::json;

    fn values<'a>(vars: &'a [Option<String>], row: &'a [String]) -> Values<'a> {
        Values {
            client: 2,
            n: 0,
            row,
            vars,
        }
    }

    fn holds(cond: &str, msg: &Value) -> bool {
        let row = vec!["ann".to_string(), "x".to_string()];
        let vars = vec![Some("7".to_string()), Some("lobby".to_string())];
        Condition::parse(cond, &Fixed)
            .unwrap()
            .check(msg, &values(&vars, &row))
            .is_ok()
    }

    #[test]
    fn paths_reach_keys_indexes_and_quoted_keys() {
        let v = json!({"a": {"b": [10, {"c d": "x"}]}});
        assert_eq!(Path::parse("$.a.b[0]").unwrap().get(&v), Some(&json!(10)));
        assert_eq!(
            Path::parse("$.a.b[1]['c d']").unwrap().get(&v),
            Some(&json!("x"))
        );
        assert_eq!(Path::parse("$").unwrap().get(&v), Some(&v));
        assert_eq!(Path::parse("$.a.z").unwrap().get(&v), None);
        for bad in ["a.b", "$.", "$[x]", "$.a[0", "$a"] {
            assert!(Path::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn conditions_compare_strings_numbers_and_presence() {
        let m = json!({"type": "joined", "room": "lobby", "seq": 7, "n": null});
        assert!(holds(r#"$.type == "joined""#, &m));
        assert!(!holds(r#"$.type == "left""#, &m));
        assert!(holds(r#"$.type != "left""#, &m));
        assert!(holds("$.room", &m));
        assert!(!holds("$.n", &m), "null is not present");
        assert!(!holds("$.missing", &m));
        assert!(holds("$.seq >= 7 && $.seq < 8", &m));
        assert!(holds("$.seq == 7.0", &m));
        assert!(!holds("$.seq > 7", &m));
        assert!(holds(r#"$.type == "joined" && $.room == "lobby""#, &m));
        assert!(!holds(r#"$.type == "joined" && $.room == "hall""#, &m));
        // A quoted literal may hold the operators and the separator.
        assert!(holds(r#"$.x != "a && b == c""#, &json!({"x": "y"})));
    }

    #[test]
    fn literals_may_be_templates() {
        let m = json!({"room": "lobby", "from": "ann", "seq": 7, "to": 2});
        assert!(holds(r#"$.room == "{{room}}""#, &m));
        assert!(holds("$.seq == {{seq}}", &m));
        assert!(holds(r#"$.from == "{{csv.user}}""#, &m));
        assert!(holds("$.to == {{client}}", &m));
        // An unquoted captured word is compared as a string.
        assert!(holds("$.room == {{room}}", &m));
        let c = Condition::parse("$.x == {{seq}}", &Fixed).unwrap();
        assert_eq!(
            c.check(&m, &values(&[None, None], &[])),
            Err(Miss::Unset(Unset(0)))
        );
    }

    #[test]
    fn malformed_conditions_are_refused() {
        assert!(Condition::parse("$.type == joined", &Fixed).is_err());
        assert!(Condition::parse("$.type ==", &Fixed).is_err());
        assert!(Condition::parse("type == \"a\"", &Fixed).is_err());
        assert!(Condition::parse("$.a && ", &Fixed).is_err());
    }

    #[test]
    fn captures_from_paths_and_regex_groups() {
        let text = r#"{"seq": 12, "room": "r1", "meta": {"k": [1]}}"#;
        let v: Value = serde_json::from_str(text).unwrap();
        let take = |s: Source| s.take(text, Some(&v));
        assert_eq!(
            take(Source::Json(Path::parse("$.seq").unwrap())),
            Some("12".into())
        );
        assert_eq!(
            take(Source::Json(Path::parse("$.room").unwrap())),
            Some("r1".into())
        );
        assert_eq!(
            take(Source::Json(Path::parse("$.meta").unwrap())),
            Some(r#"{"k":[1]}"#.into())
        );
        assert_eq!(take(Source::Json(Path::parse("$.none").unwrap())), None);
        assert_eq!(
            take(Source::Regex(regex(r#""seq": (\d+)"#).unwrap())),
            Some("12".into())
        );
        assert_eq!(
            Source::Regex(regex(r"r\d").unwrap()).take("in r7 now", None),
            Some("r7".into())
        );
        assert_eq!(
            Source::Json(Path::parse("$.a").unwrap()).take("pong", None),
            None
        );
        assert!(regex("(").is_err());
    }
}

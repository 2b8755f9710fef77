//! The CSV feeder of a scenario: a header row naming the columns, then one
//! row per client (client I reads row I modulo the rows). Plain CSV:
//! comma-separated, fields optionally in double quotes with `""` for a
//! quote; no line breaks inside a field. Pure parsing.

/// The columns and rows of a CSV file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Feeder {
    /// The header's column names.
    pub columns: Vec<String>,
    /// The data rows, each as long as `columns`.
    pub rows: Vec<Vec<String>>,
}

impl Feeder {
    /// Parses CSV text; an error names its line.
    pub fn parse(text: &str) -> Result<Feeder, String> {
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());
        let (_, header) = lines.next().ok_or("the CSV file is empty")?;
        let columns = fields(header).map_err(|e| format!("line 1: {e}"))?;
        let mut rows = Vec::new();
        for (i, line) in lines {
            let row = fields(line).map_err(|e| format!("line {}: {e}", i + 1))?;
            if row.len() != columns.len() {
                return Err(format!(
                    "line {}: {} fields, the header has {}",
                    i + 1,
                    row.len(),
                    columns.len()
                ));
            }
            rows.push(row);
        }
        if rows.is_empty() {
            return Err("the CSV file has a header but no rows".into());
        }
        Ok(Feeder { columns, rows })
    }

    /// Client `index`'s row (empty without a feeder).
    pub fn row(&self, index: usize) -> &[String] {
        if self.rows.is_empty() {
            &[]
        } else {
            &self.rows[index % self.rows.len()]
        }
    }
}

fn fields(line: &str) -> Result<Vec<String>, String> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("a quoted field is not closed".into()),
                }
            }
            match chars.next() {
                None => {
                    out.push(field);
                    return Ok(out);
                }
                Some(',') => {}
                Some(c) => return Err(format!("{c:?} after a closing quote")),
            }
        } else {
            loop {
                match chars.next() {
                    Some(',') => break,
                    Some(c) => field.push(c),
                    None => {
                        out.push(field.trim().to_string());
                        return Ok(out);
                    }
                }
            }
            field = field.trim().to_string();
        }
        out.push(field);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_rows_and_quotes() {
        let f = Feeder::parse("user,token\nann, t1\n\"bob, jr\",\"say \"\"hi\"\"\"\r\n\n").unwrap();
        assert_eq!(f.columns, ["user", "token"]);
        assert_eq!(f.rows.len(), 2);
        assert_eq!(f.row(0), ["ann", "t1"]);
        assert_eq!(f.row(1), ["bob, jr", "say \"hi\""]);
        assert_eq!(f.row(2), ["ann", "t1"], "rows repeat");
        assert_eq!(Feeder::default().row(3), [] as [String; 0]);
    }

    #[test]
    fn malformed_csv_names_the_line() {
        assert_eq!(
            Feeder::parse("a,b\n1\n").unwrap_err(),
            "line 2: 1 fields, the header has 2"
        );
        assert!(Feeder::parse("a\n\"x\n")
            .unwrap_err()
            .starts_with("line 2:"));
        assert!(Feeder::parse("").is_err());
        assert!(Feeder::parse("a,b\n").is_err());
    }
}

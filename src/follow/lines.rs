//! Where lines end in a followed file's bytes. Pure, shared by the tailer
//! and the catch-up reader so both cut a file into the same lines.

/// A line longer than this without a newline is sent as it is, so a file
/// with no newlines cannot grow a tailer's buffer without bound.
pub const MAX_LINE: usize = 64 * 1024;

/// The first line of `buf`: `(body length, bytes used)`, the newline not in
/// the body but used; `None` while the line is incomplete.
pub fn next_line(buf: &[u8]) -> Option<(usize, usize)> {
    let window = &buf[..buf.len().min(MAX_LINE)];
    match window.iter().position(|&b| b == b'\n') {
        Some(i) => Some((i, i + 1)),
        None if buf.len() >= MAX_LINE => Some((MAX_LINE, MAX_LINE)),
        None => None,
    }
}

/// The JSON of one `data` message of `file`.
pub fn data_json(file: &str, body: &[u8], offset: u64, epoch: &str) -> String {
    serde_json::json!({
        "type": "data",
        "file": file,
        "payload": String::from_utf8_lossy(body),
        "offset": offset,
        "epoch": epoch,
    })
    .to_string()
}

/// The JSON of a `truncated` or `rotated` notice.
pub fn notice_json(kind: &str, file: &str) -> String {
    serde_json::json!({"type": kind, "file": file}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_lines_end_at_their_newline() {
        assert_eq!(next_line(b"ab\ncd"), Some((2, 3)));
        assert_eq!(next_line(b"\n"), Some((0, 1)));
    }

    #[test]
    fn a_partial_line_waits() {
        assert_eq!(next_line(b"abc"), None);
        assert_eq!(next_line(b""), None);
    }

    #[test]
    fn an_overlong_line_is_cut() {
        let long = vec![b'x'; MAX_LINE + 5];
        assert_eq!(next_line(&long), Some((MAX_LINE, MAX_LINE)));
    }
}

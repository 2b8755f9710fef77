//! One HTTP/1.1 request head (and a small body), parsed with httparse from
//! the bytes received so far. Pure: the bytes come from the request-head
//! door ([`crate::http::door`]), which does the reading. Heads over 8 KiB
//! are refused with 431 before they are parsed.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The largest request head accepted.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// The largest request body accepted (`POST /broadcast`).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// How long a client may take, from the moment its connection is
/// accepted, to send its whole head and body.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_HEADERS: usize = 48;

/// A parsed request head, plus its body for requests that carry one.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string, without `?`.
    pub query: Option<String>,
    /// Header names (lowercased) and values.
    pub headers: Vec<(String, String)>,
    /// The body (read only for requests with a `Content-Length`).
    pub body: Vec<u8>,
    /// Bytes read past the head and body (a client's first frames).
    pub leftover: Vec<u8>,
    /// The client's address (set by the router; `None` when unknown).
    pub peer: Option<SocketAddr>,
}

/// Why a request could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The head is over [`MAX_HEAD_BYTES`] or has too many headers: 431.
    HeadTooLarge,
    /// The body is over [`MAX_BODY_BYTES`]: 413.
    BodyTooLarge,
    /// Not HTTP: 400, with httparse's reason.
    Malformed(String),
    /// The socket closed, failed or timed out: no answer is possible.
    Io(io::Error),
}

impl Request {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether header `name` lists `token` (comma-separated, any case).
    pub fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// The value of query parameter `key`, percent-decoded.
    pub fn query_param(&self, key: &str) -> Option<String> {
        self.query.as_deref()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == key).then(|| percent_decode(v))
        })
    }

    /// Reads a request from a blocking `stream`, waiting at most
    /// [`HEAD_TIMEOUT`] for each read (for embedding and tests; the server
    /// reads heads through its door instead).
    pub fn read_from(stream: &mut TcpStream) -> Result<Request, ReadError> {
        stream
            .set_read_timeout(Some(HEAD_TIMEOUT))
            .map_err(ReadError::Io)?;
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 4096];
        loop {
            if let Some(request) = complete(&buf)? {
                stream.set_read_timeout(None).map_err(ReadError::Io)?;
                return Ok(request);
            }
            match stream.read(&mut chunk).map_err(ReadError::Io)? {
                0 => return Err(ReadError::Io(io::ErrorKind::UnexpectedEof.into())),
                n => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// The request in `buf` once its head and the body its `Content-Length`
/// announces are complete; `None` while more bytes are needed. Bytes past
/// the body are the request's `leftover`.
pub fn complete(buf: &[u8]) -> Result<Option<Request>, ReadError> {
    let (mut request, head_len) = match parse_head(buf)? {
        Some(parsed) => parsed,
        None if buf.len() >= MAX_HEAD_BYTES => return Err(ReadError::HeadTooLarge),
        None => return Ok(None),
    };
    let length = match request.header("content-length") {
        None => 0,
        Some(v) => v
            .trim()
            .parse::<usize>()
            .map_err(|_| ReadError::Malformed("bad Content-Length".into()))?,
    };
    if length > MAX_BODY_BYTES {
        return Err(ReadError::BodyTooLarge);
    }
    let rest = &buf[head_len..];
    if rest.len() < length {
        return Ok(None);
    }
    request.body = rest[..length].to_vec();
    request.leftover = rest[length..].to_vec();
    Ok(Some(request))
}

/// The most bytes a request may take before it is complete: a head and
/// the largest body.
pub const MAX_REQUEST_BYTES: usize = MAX_HEAD_BYTES + MAX_BODY_BYTES;

/// Parses a complete head from `buf`; `None` while more bytes are needed.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Request, usize)>, ReadError> {
    let mut headers = vec![httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let head_len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(ReadError::HeadTooLarge),
        Err(e) => return Err(ReadError::Malformed(e.to_string())),
    };
    if head_len > MAX_HEAD_BYTES {
        return Err(ReadError::HeadTooLarge);
    }
    framing(parsed.headers)?;
    let target = parsed.path.unwrap_or("/");
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (target, None),
    };
    let request = Request {
        method: parsed.method.unwrap_or("").to_string(),
        path: path.to_string(),
        query,
        headers: parsed
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect(),
        body: Vec::new(),
        leftover: Vec::new(),
        peer: None,
    };
    Ok(Some((request, head_len)))
}

/// The body's framing must be unambiguous (request smuggling, as in
/// hyper's and others' advisories): strand reads a body only by
/// `Content-Length`, so `Transfer-Encoding` is refused, and every
/// `Content-Length` must be plain digits and the same.
fn framing(headers: &[httparse::Header<'_>]) -> Result<(), ReadError> {
    let mut length: Option<&[u8]> = None;
    for h in headers {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(ReadError::Malformed(
                "Transfer-Encoding is not accepted; send Content-Length".into(),
            ));
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            let value = h.value.trim_ascii();
            if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
                return Err(ReadError::Malformed("bad Content-Length".into()));
            }
            if length.is_some_and(|l| l != value) {
                return Err(ReadError::Malformed("conflicting Content-Length".into()));
            }
            length = Some(value);
        }
    }
    Ok(())
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            // Bytes, not `&s[..]`: a `%` before a multi-byte character
            // must not slice inside it (found by fuzzing: a panic).
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(digit: u8) -> Option<u8> {
    (digit as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_path_query_and_headers() {
        let raw = b"GET /ws/chat/a?token=x%2Ey&z HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\n\r\nrest";
        let (req, n) = parse_head(raw).unwrap().unwrap();
        assert_eq!(req.path, "/ws/chat/a");
        assert_eq!(req.query_param("token").as_deref(), Some("x.y"));
        assert_eq!(req.query_param("z").as_deref(), Some(""));
        assert!(req.header_has_token("connection", "upgrade"));
        assert_eq!(&raw[n..], b"rest");
    }

    #[test]
    fn percent_before_a_multibyte_character_is_kept() {
        let raw = "GET /ws?token=%z\u{3bb}y&a=%41%4 HTTP/1.1\r\n\r\n";
        let (req, _) = parse_head(raw.as_bytes()).unwrap().unwrap();
        assert_eq!(req.query_param("token").as_deref(), Some("%z\u{3bb}y"));
        assert_eq!(req.query_param("a").as_deref(), Some("A%4"));
    }

    #[test]
    fn ambiguous_body_framing_is_malformed() {
        for head in [
            "POST /broadcast HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST /broadcast HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST /broadcast HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            "POST /broadcast HTTP/1.1\r\nContent-Length: 0x5\r\n\r\n",
        ] {
            assert!(
                matches!(parse_head(head.as_bytes()), Err(ReadError::Malformed(_))),
                "{head}"
            );
        }
        let same = "POST /b HTTP/1.1\r\nContent-Length: 5\r\ncontent-length:  5 \r\n\r\n";
        assert!(parse_head(same.as_bytes()).unwrap().is_some());
    }

    #[test]
    fn partial_heads_ask_for_more() {
        assert!(parse_head(b"GET / HTTP/1.1\r\nHost:").unwrap().is_none());
    }

    #[test]
    fn garbage_is_malformed() {
        assert!(matches!(
            parse_head(b"\x00\x01 nonsense\r\n\r\n"),
            Err(ReadError::Malformed(_))
        ));
    }
}

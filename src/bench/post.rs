//! The HTTP publisher of `strand bench pubsub`: POSTs message bodies to a
//! URL the user names, over one kept-alive HTTP/1.1 connection (TLS for
//! `https://`, with the run's trust), opening a new one when the server
//! closes it. A minimal client: requests carry `Content-Length`; answers
//! are read by `Content-Length`, chunked, or to the end of a closed
//! connection; no redirects, no proxies. It knows nothing of what it posts.

use crate::bench::client::io_kind;
use crate::bench::tls::{self, Trust};
use rustls::pki_types::ServerName;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// Bytes of a body a header line or chunk size may not exceed.
const MAX_LINE: usize = 8192;

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// A kept-alive HTTP/1.1 connection that POSTs to one URL.
pub struct Poster {
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    host: String,
    path: String,
    addr: SocketAddr,
    headers: String,
    timeout: Duration,
    conn: Option<BufReader<Box<dyn Stream>>>,
}

impl Poster {
    /// A poster to `url` (`http://` or `https://`) sending `headers`
    /// (`Name: value` each) with every request.
    pub fn new(
        url: &str,
        headers: &[String],
        trust: &Trust,
        timeout: Duration,
    ) -> Result<Poster, String> {
        let (secure, rest, port) = if let Some(r) = url.strip_prefix("https://") {
            (true, r, 443)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r, 80)
        } else {
            return Err(format!("expected an http:// or https:// URL, got {url:?}"));
        };
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if host.is_empty() {
            return Err(format!("no host in {url:?}"));
        }
        let with_port = match host.rsplit_once(':') {
            Some((_, p)) if p.parse::<u16>().is_ok() => host.to_string(),
            _ => format!("{host}:{port}"),
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {with_port}: {e}"))?
            .next()
            .ok_or_else(|| format!("{with_port} resolves to no address"))?;
        let mut lines = String::new();
        for h in headers {
            crate::bench::client::parse_header(h)?;
            lines.push_str(h.trim());
            lines.push_str("\r\n");
        }
        if !headers
            .iter()
            .any(|h| h.to_ascii_lowercase().starts_with("content-type:"))
        {
            lines.push_str("Content-Type: application/json\r\n");
        }
        let tls = if secure {
            let name = host
                .rsplit_once(':')
                .filter(|(_, p)| p.parse::<u16>().is_ok())
                .map_or(host, |(h, _)| h)
                .trim_start_matches('[')
                .trim_end_matches(']');
            let name = ServerName::try_from(name.to_string())
                .map_err(|_| format!("{name:?} is not a TLS server name"))?;
            Some((tls::client_config(trust)?, name))
        } else {
            None
        };
        Ok(Poster {
            tls,
            host: host.to_string(),
            path: path.to_string(),
            addr,
            headers: lines,
            timeout,
            conn: None,
        })
    }

    fn open(&self) -> Result<BufReader<Box<dyn Stream>>, String> {
        let tcp = TcpStream::connect_timeout(&self.addr, self.timeout).map_err(|e| io_kind(&e))?;
        let _ = tcp.set_nodelay(true);
        let _ = tcp.set_read_timeout(Some(self.timeout));
        let _ = tcp.set_write_timeout(Some(self.timeout));
        let stream: Box<dyn Stream> = match &self.tls {
            Some((config, name)) => {
                let conn = rustls::ClientConnection::new(config.clone(), name.clone())
                    .map_err(|e| format!("tls: {e}"))?;
                Box::new(rustls::StreamOwned::new(conn, tcp))
            }
            None => Box::new(tcp),
        };
        Ok(BufReader::new(stream))
    }

    /// POSTs `body`; returns the answer's status. A connection the server
    /// closed since the last request is reopened once.
    pub fn post(&mut self, body: &str) -> Result<u16, String> {
        let request = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\n{}Content-Length: {}\r\n\r\n{body}",
            self.path,
            self.host,
            self.headers,
            body.len()
        );
        let reused = self.conn.is_some();
        match self.exchange(&request) {
            Err(_) if reused => {
                self.conn = None;
                self.exchange(&request)
            }
            other => other,
        }
    }

    fn exchange(&mut self, request: &str) -> Result<u16, String> {
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => self.open()?,
        };
        let stream = conn.get_mut();
        stream
            .write_all(request.as_bytes())
            .and_then(|_| stream.flush())
            .map_err(|e| io_kind(&e))?;
        let (status, keep) = read_answer(&mut conn)?;
        if keep {
            self.conn = Some(conn);
        }
        Ok(status)
    }
}

fn line(r: &mut impl BufRead) -> Result<String, String> {
    let mut s = String::new();
    let n = r
        .by_ref()
        .take(MAX_LINE as u64)
        .read_line(&mut s)
        .map_err(|e| io_kind(&e))?;
    if n == 0 {
        return Err("closed".into());
    }
    Ok(s.trim_end().to_string())
}

/// Reads an answer; returns its status and whether the connection can
/// carry the next request.
fn read_answer(r: &mut impl BufRead) -> Result<(u16, bool), String> {
    let status_line = line(r)?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {status_line:?}"))?;
    let mut length = None;
    let mut chunked = false;
    let mut keep = !status_line.starts_with("HTTP/1.0");
    loop {
        let h = line(r)?;
        if h.is_empty() {
            break;
        }
        let Some((name, value)) = h.split_once(':') else {
            continue;
        };
        let value = value.trim().to_ascii_lowercase();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse::<u64>().ok(),
            "transfer-encoding" => chunked = value.contains("chunked"),
            "connection" if value == "close" => keep = false,
            "connection" if value == "keep-alive" => keep = true,
            _ => {}
        }
    }
    let no_body = status == 204 || status == 304 || (100..200).contains(&status);
    if no_body {
    } else if chunked {
        loop {
            let size = u64::from_str_radix(line(r)?.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| "bad chunk size".to_string())?;
            discard(r, size)?;
            line(r)?;
            if size == 0 {
                break;
            }
        }
    } else if let Some(n) = length {
        discard(r, n)?;
    } else {
        // The body ends when the server closes.
        let _ = std::io::copy(r, &mut std::io::sink());
        keep = false;
    }
    Ok((status, keep))
}

fn discard(r: &mut impl Read, n: u64) -> Result<(), String> {
    let copied = std::io::copy(&mut r.take(n), &mut std::io::sink()).map_err(|e| io_kind(&e))?;
    if copied < n {
        return Err("closed".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(text: &str) -> Result<(u16, bool), String> {
        read_answer(&mut std::io::Cursor::new(text.as_bytes().to_vec()))
    }

    #[test]
    fn answers_by_length_chunks_or_close() {
        assert_eq!(answer("HTTP/1.1 204 No Content\r\n\r\n"), Ok((204, true)));
        assert_eq!(
            answer("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
            Ok((200, true))
        );
        assert_eq!(
            answer(
                "HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
            ),
            Ok((202, true))
        );
        assert_eq!(answer("HTTP/1.1 500 Oops\r\n\r\nbody"), Ok((500, false)));
        assert_eq!(
            answer("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"),
            Ok((200, false))
        );
        assert!(answer("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort").is_err());
        assert!(answer("SSH-2.0\r\n").is_err());
        assert!(answer("").is_err());
    }

    #[test]
    fn urls_and_headers() {
        let t = Trust::default();
        let d = Duration::from_secs(1);
        let p = Poster::new("http://127.0.0.1:9/publish", &["X-Key: k".into()], &t, d).unwrap();
        assert_eq!(
            (p.host.as_str(), p.path.as_str()),
            ("127.0.0.1:9", "/publish")
        );
        assert!(p.headers.contains("X-Key: k\r\n"));
        assert!(p.headers.contains("Content-Type: application/json\r\n"));
        assert!(Poster::new("ws://127.0.0.1:9/", &[], &t, d).is_err());
        assert!(Poster::new("http://127.0.0.1:9/", &["nocolon".into()], &t, d).is_err());
    }
}

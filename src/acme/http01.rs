//! The `--acme-http` listener: plain HTTP that answers
//! `GET /.well-known/acme-challenge/TOKEN` with the key authorization while
//! its `http-01` challenge is on, and every other request with a 308
//! redirect to the same path and query over `https://`.
//!
//! One thread, one short request at a time (a validation or a redirect is
//! a few hundred bytes; a client has 5 s to send its head). It must not
//! serve anything else: strand's endpoints are on the TLS port only.

use super::challenge::Tokens;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a client may take to send its request head.
const HEAD_DEADLINE: Duration = Duration::from_secs(5);
/// The largest request head read.
const MAX_HEAD: usize = 8192;
const PREFIX: &str = "/.well-known/acme-challenge/";

/// Serves `listener` on a thread of its own, for the life of the process.
/// `https_port` is the serving port redirects point at.
pub fn spawn(
    listener: TcpListener,
    tokens: Arc<Tokens>,
    https_port: u16,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("acme-http".into())
        .spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(stream) => {
                        if let Err(e) = answer(stream, &tokens, https_port) {
                            log::debug!("acme-http: {e}");
                        }
                    }
                    Err(e) => {
                        log::warn!("acme-http: accept: {e}");
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        })
}

fn answer(mut stream: TcpStream, tokens: &Tokens, https_port: u16) -> std::io::Result<()> {
    let head = read_head(&mut stream)?;
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    let reply = match request.parse(&head) {
        Ok(httparse::Status::Complete(_)) => respond(&request, tokens, https_port),
        _ => plain(400, "Bad Request", "bad request\n"),
    };
    stream.write_all(reply.as_bytes())?;
    stream.flush()
}

/// Reads up to the end of the head, within [`HEAD_DEADLINE`].
fn read_head(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let deadline = Instant::now() + HEAD_DEADLINE;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        stream.set_write_timeout(Some(HEAD_DEADLINE))?;
        match stream.read(&mut buf)? {
            0 => break,
            n => head.extend_from_slice(&buf[..n]),
        }
    }
    Ok(head)
}

/// The answer to one parsed request.
fn respond(request: &httparse::Request<'_, '_>, tokens: &Tokens, https_port: u16) -> String {
    let path = request.path.unwrap_or("/");
    if let Some(token) = path.strip_prefix(PREFIX) {
        if let Some(key_authorization) = tokens.answer(token) {
            return plain(200, "OK", &key_authorization);
        }
    }
    let host = request
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("host"))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .and_then(host_name);
    match host {
        Some(host) => {
            let port = if https_port == 443 {
                String::new()
            } else {
                format!(":{https_port}")
            };
            format!(
                "HTTP/1.1 308 Permanent Redirect\r\nLocation: https://{host}{port}{path}\r\n\
                 Content-Length: 0\r\nConnection: close\r\n\r\n"
            )
        }
        None => plain(400, "Bad Request", "a Host header is required\n"),
    }
}

/// The name in a Host header, without its port; `None` when it is not a
/// plausible host (a redirect must not be steered to arbitrary text).
fn host_name(host: &str) -> Option<&str> {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(']') || host.starts_with('[') => {
            if port.chars().all(|c| c.is_ascii_digit()) {
                name
            } else {
                host
            }
        }
        _ => host,
    };
    let fine = |c: char| c.is_ascii_alphanumeric() || "-.[]:".contains(c);
    (!name.is_empty() && name.chars().all(fine)).then_some(name)
}

fn plain(status: u16, reason: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(listener_port: u16, text: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", listener_port)).unwrap();
        stream.write_all(text.as_bytes()).unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        reply
    }

    #[test]
    fn a_token_is_answered_and_everything_else_redirected() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let tokens = Arc::new(Tokens::default());
        let responder = super::super::challenge::Responder {
            certs: crate::tls::certs::Certs::new(),
            http: Some(tokens.clone()),
        };
        responder
            .present("http-01", "x", "tok", "tok.thumb")
            .unwrap();
        spawn(listener, tokens, 8443).unwrap();
        let reply = request(
            port,
            "GET /.well-known/acme-challenge/tok HTTP/1.1\r\nHost: example.org\r\n\r\n",
        );
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(reply.ends_with("\r\n\r\ntok.thumb"), "{reply}");
        let reply = request(
            port,
            "GET /.well-known/acme-challenge/other HTTP/1.1\r\nHost: example.org:80\r\n\r\n",
        );
        assert!(
            reply.contains(
                "Location: https://example.org:8443/.well-known/acme-challenge/other\r\n"
            ),
            "{reply}"
        );
        let reply = request(port, "GET /rooms?x=1 HTTP/1.1\r\nHost: example.org\r\n\r\n");
        assert!(reply.starts_with("HTTP/1.1 308"), "{reply}");
        assert!(
            reply.contains("Location: https://example.org:8443/rooms?x=1\r\n"),
            "{reply}"
        );
        let reply = request(port, "GET / HTTP/1.1\r\nHost: a b\r\n\r\n");
        assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    }

    #[test]
    fn host_names_lose_their_port() {
        assert_eq!(host_name("example.org:80"), Some("example.org"));
        assert_eq!(host_name("example.org"), Some("example.org"));
        assert_eq!(host_name("[::1]:80"), Some("[::1]"));
        assert_eq!(host_name("x/y"), None);
    }
}

//! HTTPS to the ACME directory: a small blocking HTTP/1.1 client on
//! rustls with the `ring` provider and `httparse`, one request per
//! connection (`Connection: close`), bodies by `Content-Length`, chunked
//! or to the end. It trusts `--acme-ca` when given, else the platform's
//! roots, else the bundled Mozilla roots (a static binary in an empty
//! container has no platform roots).
//!
//! Its own rather than `ureq`: ACME needs GET, HEAD and POST of small
//! bodies to one host, and `ureq` with its HTTP stack cost the static
//! binary 0.67 MB, past its budget.
//!
//! It must not know ACME: it sends bytes and returns the status, the
//! headers ACME uses and the body; errors are the caller's to read.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// One answer.
#[derive(Debug)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// `Replay-Nonce`.
    pub nonce: Option<String>,
    /// `Location` (an account's or an order's URL).
    pub location: Option<String>,
    /// `Retry-After`, as sent.
    pub retry_after: Option<String>,
    /// `Content-Type`.
    pub content_type: String,
    /// The body.
    pub body: Vec<u8>,
}

/// Answers larger than this are refused (a certificate chain is a few KB).
const MAX_REPLY: usize = 1 << 20;
/// How long connecting, and then each read or write, may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// An HTTPS client for one directory.
pub struct Transport {
    config: Arc<ClientConfig>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport").finish_non_exhaustive()
    }
}

/// The roots to trust: `ca` (PEM) when given, else the platform's, else
/// Mozilla's.
fn roots(ca: Option<&Path>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    if let Some(path) = ca {
        let fail = |e: String| format!("--acme-ca {}: {e}", path.display());
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| fail(e.to_string()))? {
            roots
                .add(cert.map_err(|e| fail(e.to_string()))?)
                .map_err(|e| fail(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(fail("no PEM certificate in it".into()));
        }
        return Ok(roots);
    }
    let native = rustls_native_certs::load_native_certs();
    let (added, _) = roots.add_parsable_certificates(native.certs);
    if added == 0 {
        log::info!("acme: no platform CA roots found; trusting the bundled Mozilla roots");
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    Ok(roots)
}

/// The parts of an `https://` URL.
#[derive(Debug, PartialEq)]
struct Url<'a> {
    host: &'a str,
    port: u16,
    /// Path and query, `/` at least.
    target: &'a str,
    /// `host[:port]` as the Host header says it.
    authority: &'a str,
}

fn parse_url(url: &str) -> Result<Url<'_>, String> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| format!("{url}: not an https:// URL"))?;
    let (authority, target) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'?' => {
            return Err(format!("{url}: a query without a path"))
        }
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (
            host,
            port.parse()
                .map_err(|_| format!("{url}: bad port {port:?}"))?,
        ),
        _ => (authority, 443),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || authority.contains('@') {
        return Err(format!("{url}: no usable host"));
    }
    Ok(Url {
        host,
        port,
        target,
        authority,
    })
}

impl Transport {
    /// A client trusting `ca` (see [`roots`]).
    pub fn new(ca: Option<&Path>) -> Result<Transport, String> {
        let mut config = ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots(ca)?)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Transport {
            config: Arc::new(config),
        })
    }

    /// `GET url`.
    pub fn get(&self, url: &str) -> Result<Reply, String> {
        self.request("GET", url, None)
    }

    /// `HEAD url` (a fresh nonce).
    pub fn head(&self, url: &str) -> Result<Reply, String> {
        self.request("HEAD", url, None)
    }

    /// `POST url` with a JWS body.
    pub fn post(&self, url: &str, jws: &str) -> Result<Reply, String> {
        self.request("POST", url, Some(jws))
    }

    fn request(&self, method: &str, url: &str, body: Option<&str>) -> Result<Reply, String> {
        let parts = parse_url(url)?;
        let fail = |e: &dyn std::fmt::Display| format!("{url}: {e}");
        let socket = connect(parts.host, parts.port).map_err(|e| fail(&e))?;
        let name = ServerName::try_from(parts.host.to_string()).map_err(|e| fail(&e))?;
        let session = ClientConnection::new(self.config.clone(), name).map_err(|e| fail(&e))?;
        let mut stream = StreamOwned::new(session, socket);
        let mut head = format!(
            "{method} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {}\r\nAccept: */*\r\n\
             Connection: close\r\n",
            parts.target,
            parts.authority,
            crate::SERVER_NAME
        );
        if let Some(body) = body {
            head.push_str(&format!(
                "Content-Type: application/jose+json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(body.unwrap_or_default().as_bytes());
        stream.write_all(&request).map_err(|e| fail(&e))?;
        stream.flush().map_err(|e| fail(&e))?;
        let raw = read_reply(&mut stream).map_err(|e| fail(&e))?;
        parse_reply(&raw, method == "HEAD").map_err(|e| fail(&e))
    }
}

/// Connects to the first address of `host` that answers.
fn connect(host: &str, port: u16) -> std::io::Result<TcpStream> {
    let mut last = None;
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, TIMEOUT) {
            Ok(socket) => {
                socket.set_read_timeout(Some(TIMEOUT))?;
                socket.set_write_timeout(Some(TIMEOUT))?;
                return Ok(socket);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("the name has no address")))
}

/// Reads until the server closes. A close without TLS `close_notify`
/// ends the reply too: whether it is whole is checked when parsing.
fn read_reply(stream: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(raw),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {
                return Ok(raw)
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        if raw.len() > MAX_REPLY {
            return Err(std::io::Error::other("the reply is over 1 MiB"));
        }
    }
}

/// Parses a whole reply; `head_only` for the answer to HEAD.
fn parse_reply(raw: &[u8], head_only: bool) -> Result<Reply, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(raw) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err("the reply ended inside its head".into()),
        Err(e) => return Err(format!("not an HTTP reply: {e}")),
    };
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(|v| v.trim().to_string())
    };
    let status = response.code.unwrap_or(0);
    let rest = &raw[head_len..];
    let body = if head_only || status == 204 || status == 304 {
        Vec::new()
    } else if header("transfer-encoding").is_some_and(|te| te.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)?
    } else if let Some(length) = header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| format!("bad Content-Length {length:?}"))?;
        rest.get(..length)
            .ok_or("the reply ended inside its body")?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Reply {
        status,
        nonce: header("replay-nonce"),
        location: header("location"),
        retry_after: header("retry-after"),
        content_type: header("content-type").unwrap_or_default(),
        body,
    })
}

/// A chunked body, decoded; it must end with its last (empty) chunk.
fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("the reply ended inside a chunk size")?;
        let line = std::str::from_utf8(&rest[..line_end]).map_err(|_| "a bad chunk size")?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let size =
            usize::from_str_radix(size, 16).map_err(|_| format!("bad chunk size {size:?}"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        let chunk = rest.get(..size).ok_or("the reply ended inside a chunk")?;
        body.extend_from_slice(chunk);
        rest = rest
            .get(size..)
            .and_then(|r| r.strip_prefix(b"\r\n"))
            .ok_or("a chunk without its CRLF")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_host_port_and_target() {
        let url = parse_url("https://127.0.0.1:14000/dir").unwrap();
        assert_eq!(
            (url.host, url.port, url.target),
            ("127.0.0.1", 14000, "/dir")
        );
        assert_eq!(url.authority, "127.0.0.1:14000");
        let url = parse_url("https://acme-v02.api.letsencrypt.org/directory").unwrap();
        assert_eq!((url.host, url.port), ("acme-v02.api.letsencrypt.org", 443));
        assert_eq!(parse_url("https://ca").unwrap().target, "/");
        let url = parse_url("https://[::1]:8443/a?b=c").unwrap();
        assert_eq!((url.host, url.port, url.target), ("::1", 8443, "/a?b=c"));
        assert!(parse_url("http://ca/dir").is_err());
        assert!(parse_url("https://ca:x/dir").is_err());
        assert!(parse_url("https://user@ca/dir").is_err());
    }

    #[test]
    fn replies_by_length_chunked_and_to_the_end() {
        let reply = parse_reply(
            b"HTTP/1.1 201 Created\r\nReplay-Nonce: abc\r\nLocation: https://ca/o/1\r\n\
              Content-Length: 2\r\n\r\n{}",
            false,
        )
        .unwrap();
        assert_eq!(reply.status, 201);
        assert_eq!(reply.nonce.as_deref(), Some("abc"));
        assert_eq!(reply.location.as_deref(), Some("https://ca/o/1"));
        assert_eq!(reply.body, b"{}");
        let reply = parse_reply(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nRetry-After: 3\r\n\r\n\
              4;ext=1\r\nabcd\r\n2\r\nef\r\n0\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!(reply.body, b"abcdef");
        assert_eq!(reply.retry_after.as_deref(), Some("3"));
        let reply = parse_reply(b"HTTP/1.1 200 OK\r\n\r\nto the end", false).unwrap();
        assert_eq!(reply.body, b"to the end");
        let head = parse_reply(
            b"HTTP/1.1 200 OK\r\nReplay-Nonce: n\r\nContent-Length: 10\r\n\r\n",
            true,
        )
        .unwrap();
        assert!(head.body.is_empty());
    }

    #[test]
    fn cut_replies_are_errors() {
        assert!(parse_reply(b"HTTP/1.1 200 OK\r\nContent-Le", false).is_err());
        assert!(parse_reply(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", false).is_err());
        let cut = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nab";
        assert!(parse_reply(cut, false).is_err());
        let unended = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n";
        assert!(parse_reply(unended, false).is_err());
        assert!(parse_reply(b"SSH-2.0-OpenSSH\r\n\r\n", false).is_err());
    }

    #[test]
    fn a_missing_ca_file_or_one_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = Transport::new(Some(&dir.path().join("none.pem"))).unwrap_err();
        assert!(err.starts_with("--acme-ca"), "{err}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "nothing").unwrap();
        let err = Transport::new(Some(&empty)).unwrap_err();
        assert!(err.contains("no PEM certificate"), "{err}");
    }
}

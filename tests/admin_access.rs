//! The one rule for operators, over real sockets: with `--admin-token`,
//! `GET /admin/stats` and `POST /broadcast` need it as a Bearer token (401
//! without or with another); without one they answer loopback clients
//! only (403 from another address); `GET /admin` needs nothing; strand
//! warns at start when it listens beyond loopback without a token.
mod support;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use support::{assert_json_error, Server, WAIT};

const BROADCAST: &str = r#"{"message":"hi"}"#;

/// This machine's first non-loopback IPv4 address, if it has one.
fn outside_address() -> Option<IpAddr> {
    let out = std::process::Command::new("hostname")
        .arg("-I")
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|a| a.parse::<IpAddr>().ok())
        .find(|a| a.is_ipv4() && !a.is_loopback())
}

/// `method path` sent to `addr` with `headers`; (status, body).
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

#[test]
fn with_a_token_the_bearer_is_required_for_stats_and_broadcast() {
    let server = Server::start(&["--admin-token", "s3cret"]);
    for (method, path, body) in [
        ("GET", "/admin/stats", ""),
        ("POST", "/broadcast", BROADCAST),
    ] {
        let (status, text) = server.http(method, path, &[], body);
        assert_eq!(status, 401, "{method} {path} without a token: {text}");
        assert_json_error(&text);
        let (status, _) = server.http(method, path, &["Authorization: Bearer wrong"], body);
        assert_eq!(status, 401, "{method} {path} with a wrong token");
        let (status, _) = server.http(method, path, &["Authorization: Basic s3cret"], body);
        assert_eq!(status, 401, "{method} {path} with another scheme");
        let (status, text) = server.http(method, path, &["Authorization: Bearer s3cret"], body);
        assert_eq!(status, 200, "{method} {path} with the token: {text}");
    }
    // The token in the query is not a Bearer: refused.
    let (status, _) = server.http("GET", "/admin/stats?token=s3cret", &[], "");
    assert_eq!(status, 401);
    // The page itself needs no token.
    let (status, page) = server.http("GET", "/admin", &[], "");
    assert_eq!(status, 200);
    assert!(
        page.contains("<html") || page.contains("<!doctype"),
        "{page}"
    );
}

#[test]
fn without_a_token_only_loopback_clients_are_answered() {
    let Some(outside) = outside_address() else {
        eprintln!("skipped: this machine has no non-loopback IPv4 address (the pure rule is tested in http::operator)");
        return;
    };
    let server = Server::start_bound("0.0.0.0:0", &[]);
    let warning = server.wait_log("without --admin-token");
    assert!(warning.contains("WARN"), "{warning}");
    let port = server.addr.port();
    let loopback = SocketAddr::from(([127, 0, 0, 1], port));
    let outside = SocketAddr::new(outside, port);
    for (method, path, body) in [
        ("GET", "/admin/stats", ""),
        ("POST", "/broadcast", BROADCAST),
    ] {
        let (status, text) = request(loopback, method, path, &[], body);
        assert_eq!(status, 200, "{method} {path} from loopback: {text}");
        let (status, text) = request(outside, method, path, &[], body);
        assert_eq!(status, 403, "{method} {path} from {outside}: {text}");
        assert_json_error(&text);
        // A Bearer token means nothing when none is configured.
        let (status, _) = request(outside, method, path, &["Authorization: Bearer x"], body);
        assert_eq!(status, 403);
    }
    // Everything else is still served to anyone.
    assert_eq!(request(outside, "GET", "/healthz", &[], "").0, 200);
    assert_eq!(request(outside, "GET", "/admin", &[], "").0, 200);
}

#[test]
fn a_token_opens_the_operator_view_to_other_addresses_and_silences_the_warning() {
    let Some(outside) = outside_address() else {
        eprintln!("skipped: this machine has no non-loopback IPv4 address");
        return;
    };
    let server = Server::start_bound("0.0.0.0:0", &["--admin-token", "t0k"]);
    let outside = SocketAddr::new(outside, server.addr.port());
    let (status, _) = request(
        outside,
        "GET",
        "/admin/stats",
        &["Authorization: Bearer t0k"],
        "",
    );
    assert_eq!(status, 200);
    let (status, _) = request(
        outside,
        "POST",
        "/broadcast",
        &["Authorization: Bearer t0k"],
        BROADCAST,
    );
    assert_eq!(status, 200);
    assert_eq!(request(outside, "GET", "/admin/stats", &[], "").0, 401);
    assert!(!server.log_text().contains("without --admin-token"));
}

#[test]
fn listening_on_loopback_logs_no_warning() {
    let server = Server::start(&[]);
    assert_eq!(server.http("GET", "/admin/stats", &[], "").0, 200);
    assert!(!server.log_text().contains("without --admin-token"));
}

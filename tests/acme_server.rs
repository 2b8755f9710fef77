//! `--acme-domain` end to end: the strand binary obtains its certificate
//! from a real `pebble` and serves `https://` and `wss://` with it (a
//! client verifies it against pebble's root), by `tls-alpn-01` on its
//! serving port and by `http-01` on `--acme-http`; a restart orders
//! nothing; a short-lived certificate is renewed; and while a renewal
//! fails, the old certificate keeps serving.
mod acme_util;
mod support;

use acme_util::{free_port, https_get, served_leaf, wait_for, wss_echo, Pebble, PebbleOptions};
use std::time::Duration;
use support::Server;

/// Starts strand on `port` ordering `localhost` from `pebble`, in `dir`.
fn strand(dir: tempfile::TempDir, port: u16, pebble: &Pebble, extra: &[&str]) -> Server {
    let directory = pebble.directory();
    let ca = pebble.https_ca.to_str().unwrap().to_string();
    let mut args = vec![
        "--acme-domain",
        "localhost",
        "--acme-directory",
        &directory,
        "--acme-ca",
        &ca,
        "--acme-email",
        "ops@example.org",
    ];
    args.extend_from_slice(extra);
    Server::start_in_bound(dir, &format!("127.0.0.1:{port}"), &args)
}

/// Lines of the server's log that contain `needle`.
fn count(server: &Server, needle: &str) -> usize {
    server.log_text().matches(needle).count()
}

const INSTALLED: &str = "acme: new certificate for localhost installed";

/// Waits for the `n`th certificate installed by ACME.
fn wait_installed(server: &Server, pebble: &Pebble, n: usize, limit: Duration) {
    let deadline = std::time::Instant::now() + limit;
    while count(server, INSTALLED) < n {
        assert!(
            std::time::Instant::now() < deadline,
            "certificate {n} not installed; strand:\n{}\npebble:\n{}",
            server.log_text(),
            pebble.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The value of `name` in `/metrics`, over HTTPS.
fn metric(port: u16, root: &str, name: &str) -> f64 {
    let (_, text) = https_get(port, "localhost", root, "/metrics").unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no metric {name} in\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_certificate_by_tls_alpn_01_serves_https_and_wss() {
    let port = free_port();
    let pebble = Pebble::start(PebbleOptions {
        tls_port: port,
        http_port: free_port(),
        reject_nonces: true,
        ..PebbleOptions::default()
    });
    let server = strand(tempfile::tempdir().unwrap(), port, &pebble, &[]);
    wait_installed(&server, &pebble, 1, acme_util::ACME_WAIT);
    let root = pebble.issuing_root();
    let (status, body) = https_get(port, "localhost", &root, "/healthz").unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(wss_echo(port, "localhost", &root).unwrap(), "over wss");
    assert!(server
        .log_text()
        .contains("acme: answering tls-alpn-01 for localhost"));
    assert_eq!(
        metric(port, &root, "strand_acme_orders_total{result=\"ok\"}"),
        1.0
    );
    assert!(
        metric(
            port,
            &root,
            "strand_tls_certificate_expiry_timestamp_seconds"
        ) > 1.7e9
    );
    // The state is kept, private.
    let acme = server.dir.path().join("data/acme");
    for file in [
        "account.key",
        "account.url",
        "localhost.crt",
        "localhost.key",
    ] {
        let meta = std::fs::metadata(acme.join(file)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{file}");
    }
}

#[test]
fn a_certificate_by_http_01_and_the_plain_port_redirects_to_https() {
    let port = free_port();
    let http_port = free_port();
    let pebble = Pebble::start(PebbleOptions {
        tls_port: free_port(),
        http_port,
        ..PebbleOptions::default()
    });
    let http = format!("127.0.0.1:{http_port}");
    let server = strand(
        tempfile::tempdir().unwrap(),
        port,
        &pebble,
        &["--acme-http", &http],
    );
    wait_installed(&server, &pebble, 1, acme_util::ACME_WAIT);
    assert!(server
        .log_text()
        .contains("acme: answering http-01 for localhost"));
    let root = pebble.issuing_root();
    assert_eq!(
        https_get(port, "localhost", &root, "/healthz").unwrap().0,
        200
    );
    assert_eq!(wss_echo(port, "localhost", &root).unwrap(), "over wss");
    // Everything else on the plain port goes to https://, path and query kept.
    use std::io::{Read, Write};
    let mut plain = std::net::TcpStream::connect(&http).unwrap();
    write!(
        plain,
        "GET /rooms?x=1 HTTP/1.1\r\nHost: localhost:{http_port}\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    plain.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 308 "), "{reply}");
    assert!(
        reply.contains(&format!(
            "\r\nLocation: https://localhost:{port}/rooms?x=1\r\n"
        )),
        "{reply}"
    );
}

#[test]
fn heavy_acme_a_restart_orders_nothing() {
    let port = free_port();
    let pebble = Pebble::start(PebbleOptions {
        tls_port: port,
        http_port: free_port(),
        ..PebbleOptions::default()
    });
    let mut first = strand(tempfile::tempdir().unwrap(), port, &pebble, &[]);
    wait_installed(&first, &pebble, 1, acme_util::ACME_WAIT);
    let root = pebble.issuing_root();
    let leaf = served_leaf(port, "localhost", &root).unwrap();
    first.signal(libc::SIGTERM);
    first.wait_exit();
    let dir = std::mem::replace(&mut first.dir, tempfile::tempdir().unwrap());
    drop(first);
    let second = strand(dir, port, &pebble, &[]);
    second.wait_log("acme: serving the kept certificate for localhost");
    // Served at once, the same certificate, and no order placed.
    assert_eq!(served_leaf(port, "localhost", &root).unwrap(), leaf);
    assert_eq!(pebble.issued(), 1);
    let ordered = |result: &str| {
        metric(
            port,
            &root,
            &format!("strand_acme_orders_total{{result=\"{result}\"}}"),
        )
    };
    assert_eq!(ordered("ok"), 0.0);
    assert_eq!(count(&second, "acme: ordering"), 0, "{}", second.log_text());
}

#[test]
fn heavy_acme_a_short_lived_certificate_is_renewed() {
    let port = free_port();
    // 12 s: renewal at 2/3, 8 s after issue.
    let pebble = Pebble::start(PebbleOptions {
        tls_port: port,
        http_port: free_port(),
        validity_secs: Some(12),
        ..PebbleOptions::default()
    });
    let server = strand(tempfile::tempdir().unwrap(), port, &pebble, &[]);
    wait_installed(&server, &pebble, 1, acme_util::ACME_WAIT);
    let root = pebble.issuing_root();
    let first = served_leaf(port, "localhost", &root).unwrap();
    wait_installed(&server, &pebble, 2, acme_util::ACME_WAIT);
    let second = served_leaf(port, "localhost", &root).unwrap();
    assert_ne!(first, second, "the renewed certificate serves");
    assert!(pebble.issued() >= 2);
    assert!(metric(port, &root, "strand_acme_orders_total{result=\"ok\"}") >= 2.0);
}

#[test]
fn heavy_acme_the_old_certificate_serves_while_a_renewal_fails() {
    let port = free_port();
    let mut pebble = Pebble::start(PebbleOptions {
        tls_port: port,
        http_port: free_port(),
        validity_secs: Some(30),
        ..PebbleOptions::default()
    });
    let server = strand(tempfile::tempdir().unwrap(), port, &pebble, &[]);
    wait_installed(&server, &pebble, 1, acme_util::ACME_WAIT);
    let root = pebble.issuing_root();
    let leaf = served_leaf(port, "localhost", &root).unwrap();
    // The CA goes away before the renewal (20 s after issue).
    pebble.stop();
    wait_for("a failed renewal", acme_util::ACME_WAIT, || {
        count(
            &server,
            "acme: order for localhost failed: the CA could not be reached",
        ) > 0
    });
    let line = server.wait_log("acme: order for localhost failed");
    assert!(line.contains("next attempt in"), "{line}");
    assert!(
        line.contains("the current certificate serves until"),
        "{line}"
    );
    assert_eq!(served_leaf(port, "localhost", &root).unwrap(), leaf);
    assert_eq!(
        https_get(port, "localhost", &root, "/healthz").unwrap().0,
        200
    );
    assert_eq!(
        metric(
            port,
            &root,
            "strand_acme_orders_total{result=\"unreachable\"}"
        ),
        1.0
    );
}

/// Runs `strand serve` with `args` to its end (a refused start).
fn refused(data: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strand"))
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{args:?} started");
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn bad_acme_flags_refuse_to_start_and_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = busy.local_addr().unwrap().to_string();
    let missing = dir.path().join("missing.pem");
    let missing = missing.to_str().unwrap();
    for (args, needle) in [
        (
            &["--acme-domain", "*.example.org"][..],
            "wildcards need dns-01",
        ),
        (&["--acme-domain", "127.0.0.1"][..], "not IP addresses"),
        (&["--acme-domain", "a..b"][..], "not a DNS name"),
        (
            &[
                "--acme-domain",
                "example.org",
                "--acme-directory",
                "http://ca/dir",
            ][..],
            "an ACME directory is an https:// URL",
        ),
        (
            &["--acme-domain", "example.org", "--acme-email", "nobody"][..],
            "--acme-email",
        ),
        (
            &["--acme-domain", "example.org", "--acme-ca", missing][..],
            "--acme-ca",
        ),
        (
            &["--acme-domain", "example.org", "--acme-http", &busy][..],
            "--acme-http",
        ),
        (
            &[
                "--acme-domain",
                "example.org",
                "--tls-cert",
                missing,
                "--tls-key",
                missing,
            ][..],
            "not both",
        ),
    ] {
        let err = refused(&data, args);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    // A damaged account key is an error, not a silently new account.
    std::fs::create_dir_all(data.join("acme")).unwrap();
    std::fs::write(data.join("acme/account.key"), "garbage").unwrap();
    let err = refused(&data, &["--acme-domain", "example.org"]);
    assert!(err.contains("account.key"), "{err}");
}

#[test]
fn http_01_on_the_socket_the_service_manager_passes_named_acme_http() {
    let (port, http_port) = (free_port(), free_port());
    let pebble = Pebble::start(PebbleOptions {
        tls_port: free_port(),
        http_port,
        ..PebbleOptions::default()
    });
    // systemd-socket-activate holds both sockets, names them, and starts
    // strand on the first connection.
    let mut activate = std::process::Command::new("/usr/bin/systemd-socket-activate");
    activate
        .args(["-l", &format!("127.0.0.1:{port}")])
        .args(["-l", &format!("127.0.0.1:{http_port}")])
        .arg("--fdname=https:acme-http")
        .arg(env!("CARGO_BIN_EXE_strand"));
    let poke = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + acme_util::ACME_WAIT;
        loop {
            if let Ok(stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                return stream;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no listener on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let directory = pebble.directory();
    let ca = pebble.https_ca.to_str().unwrap().to_string();
    let server = Server::start_command(
        dir,
        activate,
        &data,
        &[
            "--acme-domain",
            "localhost",
            "--acme-directory",
            &directory,
            "--acme-ca",
            &ca,
        ],
    );
    drop(poke.join().unwrap());
    assert_eq!(server.addr.port(), port, "the passed socket serves");
    server.wait_log(&format!(
        "acme: http-01 and redirects to https on 127.0.0.1:{http_port}"
    ));
    wait_installed(&server, &pebble, 1, acme_util::ACME_WAIT);
    assert!(server
        .log_text()
        .contains("acme: answering http-01 for localhost"));
    let root = pebble.issuing_root();
    assert_eq!(wss_echo(port, "localhost", &root).unwrap(), "over wss");
    use std::io::{Read, Write};
    let mut plain = std::net::TcpStream::connect(("127.0.0.1", http_port)).unwrap();
    write!(plain, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut reply = String::new();
    plain.read_to_string(&mut reply).unwrap();
    assert!(
        reply.contains(&format!(
            "\r\nLocation: https://localhost:{port}/healthz\r\n"
        )),
        "{reply}"
    );
}

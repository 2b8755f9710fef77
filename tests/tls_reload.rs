//! Reloading `--tls-cert`/`--tls-key` without a restart: files replaced by
//! rename (as certbot and Kubernetes do) or rewritten and SIGHUP; the new
//! pair serves new handshakes within 5 s while an open connection keeps
//! working; a pair that does not match is logged and the old one serves on.
mod support;
mod tls_util;

use std::path::Path;
use std::time::{Duration, Instant};
use support::Server;
use tls_util::{metric_in, wss, Leaf, TestCa};
use tungstenite::Message;

/// The contract's bound for a new pair to serve.
const RELOAD_WITHIN: Duration = Duration::from_secs(5);

fn start(ca: &TestCa) -> (Server, Leaf) {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    let leaf = ca.leaf();
    let (cert, key) = leaf.write(&certs);
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    (
        Server::start_in(dir, &["--tls-cert", &cert, "--tls-key", &key]),
        leaf,
    )
}

fn certs_dir(server: &Server) -> std::path::PathBuf {
    server.dir.path().join("certs")
}

/// Replaces `dir/name` with `text` by writing a temporary file and
/// renaming it over the old one.
fn replace_by_rename(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// The leaf a new handshake is shown.
fn served_leaf(server: &Server, ca: &TestCa) -> Vec<u8> {
    let stream = tls_util::connect(server.addr, ca.client(&[])).expect("handshake");
    tls_util::peer_leaf(&stream)
}

/// Waits (at most [`RELOAD_WITHIN`]) for new handshakes to be shown `want`.
fn wait_for_leaf(server: &Server, ca: &TestCa, want: &[u8]) {
    let started = Instant::now();
    while served_leaf(server, ca) != want {
        assert!(
            started.elapsed() < RELOAD_WITHIN,
            "the new certificate is not served after {RELOAD_WITHIN:?}; log:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn echo(ws: &mut tungstenite::WebSocket<impl std::io::Read + std::io::Write>, text: &str) {
    ws.send(Message::text(text)).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text(text));
}

#[test]
fn files_replaced_by_rename_serve_new_handshakes_and_keep_open_connections() {
    let ca = TestCa::new();
    let (server, old) = start(&ca);
    let mut open = wss(server.addr, ca.client(&[]), "/ws");
    echo(&mut open, "before");
    assert_eq!(served_leaf(&server, &ca), old.der);

    let new = ca.leaf_until((2041, 6, 1));
    let dir = certs_dir(&server);
    replace_by_rename(&dir, "key.pem", &new.key_pem);
    replace_by_rename(&dir, "cert.pem", &new.chain_pem);
    wait_for_leaf(&server, &ca, &new.der);
    echo(&mut open, "after, on the old session");
    let (_, text) = tls_util::https(server.addr, ca.client(&[]), "GET", "/metrics", &[], "");
    assert_eq!(
        metric_in(&text, "strand_tls_certificate_expiry_timestamp_seconds"),
        Some(2_253_657_600.0),
        "the gauge follows the new leaf (2041-06-01)"
    );
}

#[test]
fn sighup_reloads_rewritten_files_and_a_mismatched_pair_keeps_the_old_one() {
    let ca = TestCa::new();
    let (server, old) = start(&ca);
    let mut open = wss(server.addr, ca.client(&[]), "/ws");
    let dir = certs_dir(&server);

    // A key that is not the certificate's: logged, the old pair serves on.
    let stranger = ca.leaf();
    std::fs::write(dir.join("key.pem"), &stranger.key_pem).unwrap();
    server.signal(libc::SIGHUP);
    server.wait_log("TLS reload (SIGHUP): the key does not match the certificate");
    assert_eq!(served_leaf(&server, &ca), old.der);
    echo(&mut open, "still here");

    // The matching pair, rewritten in place, then SIGHUP.
    let new = ca.leaf();
    std::fs::write(dir.join("key.pem"), &new.key_pem).unwrap();
    std::fs::write(dir.join("cert.pem"), &new.chain_pem).unwrap();
    server.signal(libc::SIGHUP);
    wait_for_leaf(&server, &ca, &new.der);
    echo(&mut open, "and still here");
    assert!(server.log_text().contains("serving the new certificate"));
}

#[test]
fn sighup_without_tls_is_logged_not_fatal() {
    let server = Server::start(&[]);
    server.signal(libc::SIGHUP);
    server.wait_log("SIGHUP: no certificate to reload");
    let (status, _) = server.get_json("/healthz");
    assert_eq!(status, 200);
}

//! strand's ACME client against a real `pebble`: first the fixture proven
//! with Debian's `lego`, then strand's client library obtaining a
//! certificate by `http-01` (its `--acme-http` listener) and by
//! `tls-alpn-01` (its `Certs` behind a TLS listener made here), the latter
//! with pebble's default 5 % nonce rejection so `badNonce` retries run.
mod acme_util;

use acme_util::{free_port, served_leaf, Pebble, PebbleOptions};
use std::net::TcpListener;
use std::process::Command;
use std::sync::Arc;
use strand::acme::challenge::{Responder, Tokens};
use strand::acme::client::Client;
use strand::acme::jws::AccountKey;
use strand::acme::transport::Transport;
use strand::tls::certs::{pair_from_pem, server_config, Certs};

#[test]
fn the_pebble_fixture_issues_to_lego_by_tls_alpn_01() {
    let tls_port = free_port();
    let pebble = Pebble::start(PebbleOptions {
        tls_port,
        http_port: free_port(),
        ..PebbleOptions::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("lego")
        .args(["--server", &pebble.directory()])
        .args(["--email", "test@example.org", "--accept-tos"])
        .args(["--domains", "localhost", "--tls"])
        .args(["--tls.port", &format!("127.0.0.1:{tls_port}")])
        .arg("--path")
        .arg(dir.path())
        .arg("run")
        .env("LEGO_CA_CERTIFICATES", &pebble.https_ca)
        .output()
        .expect("lego (install it: apt-get install lego)");
    assert!(
        out.status.success(),
        "lego failed: {}\npebble:\n{}",
        String::from_utf8_lossy(&out.stderr),
        pebble.log_text()
    );
    let chain = std::fs::read_to_string(dir.path().join("certificates/localhost.crt")).unwrap();
    assert!(chain.contains("BEGIN CERTIFICATE"));
    assert_eq!(pebble.issued(), 1);
}

/// Serves `certs` over TLS on `listener` until the test ends: each
/// connection gets its handshake (a tls-alpn-01 validation needs no more).
fn serve_tls(listener: TcpListener, certs: Arc<Certs>) {
    let config = server_config(certs);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let config = config.clone();
            std::thread::spawn(move || {
                let Ok(mut conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                stream
                    .set_read_timeout(Some(std::time::Duration::from_secs(10)))
                    .unwrap();
                while conn.is_handshaking() {
                    if conn.complete_io(&mut stream).is_err() {
                        return;
                    }
                }
                // Hold the connection until the client closes it.
                let _ = conn.complete_io(&mut stream);
            });
        }
    });
}

/// Runs strand's client for `localhost` against `pebble`; the chain and key.
fn obtain(pebble: &Pebble, responder: &Responder) -> (String, String) {
    let key = AccountKey::generate().unwrap();
    let transport = Transport::new(Some(&pebble.https_ca)).unwrap();
    let mut client = Client::connect(transport, &key, &pebble.directory())
        .unwrap_or_else(|e| panic!("directory: {e}"));
    let account = client.account(Some("test@example.org")).unwrap();
    assert!(account.starts_with("https://127.0.0.1:"), "{account}");
    let issued = client
        .order(&["localhost".to_string()], responder)
        .unwrap_or_else(|e| panic!("order: {e}\npebble:\n{}", pebble.log_text()));
    (issued.chain_pem, issued.key_pem)
}

#[test]
fn strand_s_client_obtains_a_certificate_by_http_01() {
    let http = TcpListener::bind("127.0.0.1:0").unwrap();
    let pebble = Pebble::start(PebbleOptions {
        http_port: http.local_addr().unwrap().port(),
        tls_port: free_port(),
        ..PebbleOptions::default()
    });
    let tokens = Arc::new(Tokens::default());
    strand::acme::http01::spawn(http, tokens.clone(), 443).unwrap();
    let responder = Responder {
        certs: Certs::new(),
        http: Some(tokens),
    };
    let (chain, key) = obtain(&pebble, &responder);
    let pair = pair_from_pem(chain.as_bytes(), key.as_bytes()).expect("a matching pair");
    // The chain verifies against pebble's issuing root.
    let tls = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = tls.local_addr().unwrap().port();
    serve_tls(tls, Certs::with(pair.clone()));
    let leaf = served_leaf(port, "localhost", &pebble.issuing_root()).unwrap();
    assert_eq!(leaf, pair.cert[0].to_vec());
    assert!(
        pebble.log_text().contains("validate w/ HTTP"),
        "validated by http-01:\n{}",
        pebble.log_text()
    );
}

#[test]
fn strand_s_client_obtains_a_certificate_by_tls_alpn_01_despite_rejected_nonces() {
    let tls = TcpListener::bind("127.0.0.1:0").unwrap();
    let tls_port = tls.local_addr().unwrap().port();
    let pebble = Pebble::start(PebbleOptions {
        http_port: free_port(),
        tls_port,
        reject_nonces: true,
        ..PebbleOptions::default()
    });
    let certs = Certs::new();
    serve_tls(tls, certs.clone());
    let responder = Responder {
        certs: certs.clone(),
        http: None,
    };
    // Several orders, so that at 5 % some nonce is refused.
    for _ in 0..3 {
        let (chain, key) = obtain(&pebble, &responder);
        certs.install(pair_from_pem(chain.as_bytes(), key.as_bytes()).unwrap());
        let leaf = served_leaf(tls_port, "localhost", &pebble.issuing_root()).unwrap();
        assert_eq!(leaf, certs.current().unwrap().cert[0].to_vec());
    }
    assert_eq!(pebble.issued(), 3);
}

//! A close strand starts reaches a client that is still sending: after a
//! message over the limit (1009) the server reads and discards what the
//! client still sends, so the client reads the code, then a clean end,
//! never a reset; under TLS the end is a `close_notify`.
//!
//! The case from the issue: with the default limit, echo one 1 MiB
//! message, then send one frame of 1 MiB + 1 bytes in one write and read.
//! Before the fix, 1 run in 3 got EPIPE or a reset instead of the 1009.
mod support;
mod tls_util;

use std::io::{Read, Write};
use support::Server;
use tls_util::TestCa;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

const MIB: usize = 1 << 20;

/// Echoes 1 MiB, sends 1 MiB + 1, and checks that the 1009 arrives, then
/// the end of the stream without a reset (and with `close_notify` under
/// TLS).
fn oversized_message_gets_its_1009(ws: &mut WebSocket<MaybeTlsStream<std::net::TcpStream>>) {
    let fits = vec![1u8; MIB];
    ws.send(Message::binary(fits.clone())).unwrap();
    assert_eq!(ws.read().unwrap(), Message::binary(fits));
    ws.send(Message::binary(vec![2u8; MIB + 1]))
        .expect("the whole frame is sent: the server keeps reading");
    let code = loop {
        match ws.read() {
            Ok(Message::Close(Some(frame))) => break u16::from(frame.code),
            Ok(Message::Close(None)) => break 1005,
            Ok(_) => continue,
            Err(e) => panic!("no close frame, the connection ended with: {e}"),
        }
    };
    assert_eq!(code, 1009);
    // Then the end of the stream, clean: under TLS a close_notify (rustls
    // reports an end without one as UnexpectedEof), never a reset.
    let mut rest = Vec::new();
    let ended = match ws.get_mut() {
        MaybeTlsStream::Plain(s) => s.read_to_end(&mut rest),
        MaybeTlsStream::Rustls(s) => s.read_to_end(&mut rest),
        _ => unreachable!(),
    };
    ended.expect("a clean end after the close frame");
}

#[test]
fn an_oversized_message_is_answered_1009_not_a_reset() {
    let server = Server::start(&[]);
    for _ in 0..5 {
        let stream = std::net::TcpStream::connect(server.addr).unwrap();
        stream.set_read_timeout(Some(support::WAIT)).unwrap();
        let (mut ws, _) =
            tungstenite::client_tls_with_config(server.url("/ws"), stream, None, None).unwrap();
        oversized_message_gets_its_1009(&mut ws);
    }
    let (_, text) = server.http("GET", "/metrics", &[], "");
    assert!(text.contains("strand_close_codes_sent_total{code=\"1009\"} 5"));
}

#[test]
fn an_oversized_message_over_tls_is_answered_1009_then_close_notify() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ca.leaf().write(dir.path());
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let server = Server::start_in(dir, &["--tls-cert", &cert, "--tls-key", &key]);
    for _ in 0..5 {
        let mut ws = tls_util::wss(server.addr, ca.client(&[]), "/ws");
        oversized_message_gets_its_1009(&mut ws);
    }
}

#[test]
fn a_client_that_keeps_sending_after_the_close_is_cut_within_two_seconds() {
    let server = Server::start(&["--max-message-bytes", "1000"]);
    let mut raw = support::RawClient::connect(&server, "/ws");
    raw.send(true, 0x2, &[0u8; 1001]);
    assert_eq!(raw.expect_close(), 1009);
    // The client ignores the close and floods: the server discards what
    // it sends and ends the connection 2 s after its close at the latest.
    let started = std::time::Instant::now();
    let chunk = [0u8; 4096];
    let mut writes = 0;
    while raw.stream.write_all(&chunk).is_ok() {
        writes += 1;
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "still taking bytes after 5 s ({writes} writes)"
        );
    }
    assert!(writes > 0);
}

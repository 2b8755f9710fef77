//! Who may upgrade: cross-origin browsers (403 unless allowed) and, with
//! `--jwt-secret`, HS256 tokens whose `sub` names the path's identity (401).
mod support;

use serde_json::json;
use strand::http::access::sign_jwt;
use support::Server;

fn upgrade_status(server: &Server, path: &str, extra: &str) -> u16 {
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n",
        server.addr
    );
    let mut s = std::net::TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(support::WAIT)).unwrap();
    std::io::Write::write_all(&mut s, req.as_bytes()).unwrap();
    let mut head = [0u8; 12];
    std::io::Read::read_exact(&mut s, &mut head).unwrap();
    std::str::from_utf8(&head[9..12]).unwrap().parse().unwrap()
}

fn now() -> u64 {
    strand::wire::unix_millis() / 1000
}

#[test]
fn cross_origin_upgrades_are_refused_unless_allowed() {
    let server = Server::start(&[]);
    assert_eq!(
        upgrade_status(&server, "/ws", ""),
        101,
        "no Origin: not a browser"
    );
    let own = format!("Origin: http://{}\r\n", server.addr);
    assert_eq!(upgrade_status(&server, "/ws", &own), 101, "same origin");
    assert_eq!(
        upgrade_status(&server, "/ws", "Origin: http://evil.test\r\n"),
        403
    );

    let server = Server::start(&["--allowed-origin", "https://app.test"]);
    assert_eq!(
        upgrade_status(&server, "/ws", "Origin: https://app.test\r\n"),
        101
    );
    assert_eq!(
        upgrade_status(&server, "/ws", "Origin: https://other.test\r\n"),
        403
    );

    let server = Server::start(&["--allowed-origin", "*"]);
    assert_eq!(
        upgrade_status(&server, "/ws", "Origin: https://anything.test\r\n"),
        101
    );
}

#[test]
fn with_a_jwt_secret_every_upgrade_needs_a_valid_token_for_its_identity() {
    let secret = "test-secret";
    let server = Server::start(&["--jwt-secret", secret]);
    let alice = sign_jwt(
        &json!({"sub": "alice", "exp": now() + 60}),
        secret.as_bytes(),
    );
    let expired = sign_jwt(
        &json!({"sub": "alice", "exp": now() - 1}),
        secret.as_bytes(),
    );
    let forged = sign_jwt(&json!({"sub": "alice", "exp": now() + 60}), b"wrong");

    assert_eq!(
        upgrade_status(&server, "/ws/chat/alice", ""),
        401,
        "no token"
    );
    assert_eq!(
        upgrade_status(&server, &format!("/ws/chat/alice?token={alice}"), ""),
        101
    );
    let bearer = format!("Authorization: Bearer {alice}\r\n");
    assert_eq!(upgrade_status(&server, "/ws/chat/alice", &bearer), 101);
    assert_eq!(
        upgrade_status(&server, "/ws/general/alice", &bearer),
        101,
        "text room user"
    );
    assert_eq!(
        upgrade_status(&server, "/ws", &bearer),
        101,
        "echo has no identity"
    );
    assert_eq!(
        upgrade_status(&server, "/ws/chat/bob", &bearer),
        401,
        "sub is alice, not bob"
    );
    assert_eq!(upgrade_status(&server, "/ws/general/bob", &bearer), 401);
    assert_eq!(
        upgrade_status(&server, &format!("/ws/chat/alice?token={expired}"), ""),
        401
    );
    assert_eq!(
        upgrade_status(&server, &format!("/ws/chat/alice?token={forged}"), ""),
        401
    );
    assert_eq!(
        upgrade_status(&server, "/ws/chat/alice?token=garbage", ""),
        401
    );
    // Plain HTTP is not behind the token.
    assert_eq!(server.get_json("/healthz").0, 200);
}

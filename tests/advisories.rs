//! Regression tests for the known advisories of the field (tungstenite,
//! websockets, ws, uWebSockets, hyper/httparse): each attack gets the
//! contract's answer (an HTTP status or a close code), costs bounded time
//! and memory, and a bystander connected before it is still served after.
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::{RawClient, Server, WAIT};
use tungstenite::Message;

const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CONT: u8 = 0x0;

/// An echo client connected before the attack.
struct Bystander(tungstenite::WebSocket<TcpStream>);

impl Bystander {
    fn new(server: &Server) -> Bystander {
        Bystander(server.ws("/ws"))
    }

    /// Still served: an echo comes back.
    fn still_served(&mut self) {
        self.0.send(Message::text("still here")).unwrap();
        loop {
            match self.0.read().expect("bystander read") {
                Message::Text(t) => return assert_eq!(t.as_str(), "still here"),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("bystander got {other:?}"),
            }
        }
    }
}

#[test]
fn many_header_fields_get_431() {
    // httparse's own advisory class: a head of many small fields, well
    // under 8 KiB, is refused rather than parsed into an unbounded list.
    let server = Server::start(&[]);
    let mut bystander = Bystander::new(&server);
    let mut head = String::from("GET /healthz HTTP/1.1\r\nHost: x\r\n");
    for i in 0..200 {
        head.push_str(&format!("X-{i}: a\r\n"));
    }
    head.push_str("\r\n");
    assert!(head.len() < 8 * 1024);
    let (status, _, body) = server.http_raw(head.as_bytes());
    assert_eq!(status, 431);
    support::assert_json_error(&body);
    bystander.still_served();
}

#[test]
fn one_huge_header_gets_431() {
    let server = Server::start(&[]);
    let mut bystander = Bystander::new(&server);
    for size in [9 * 1024, 1 << 20] {
        let head = format!(
            "GET /ws HTTP/1.1\r\nHost: x\r\nCookie: {}\r\n\r\n",
            "c".repeat(size)
        );
        // The server answers once it has 8 KiB, without reading the rest.
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let _ = s.write_all(head.as_bytes());
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 431"), "{size}: {answer}");
    }
    bystander.still_served();
}

#[test]
fn ambiguous_body_framing_gets_400() {
    // Request smuggling (hyper and others): strand reads bodies by
    // Content-Length only, and refuses anything ambiguous.
    let server = Server::start(&[]);
    let mut bystander = Bystander::new(&server);
    for extra in [
        "Transfer-Encoding: chunked\r\n",
        "Content-Length: 16\r\nContent-Length: 5\r\n",
        "Content-Length: +16\r\n",
    ] {
        let request =
            format!("POST /broadcast HTTP/1.1\r\nHost: x\r\n{extra}\r\n{{\"message\":\"hi\"}}");
        let (status, _, body) = server.http_raw(request.as_bytes());
        assert_eq!(status, 400, "{extra}");
        support::assert_json_error(&body);
    }
    bystander.still_served();
}

#[test]
fn a_frame_declaring_2_pow_62_bytes_closes_with_1009_at_once() {
    let server = Server::start(&[]);
    let mut bystander = Bystander::new(&server);
    let rss = server.rss_kib();
    let mut c = RawClient::connect(&server, "/ws");
    let mut frame = vec![0x80 | BINARY, 0x80 | 127];
    frame.extend_from_slice(&(1u64 << 62).to_be_bytes());
    frame.extend_from_slice(&[1, 2, 3, 4, b'x' ^ 1]);
    c.send_bytes(&frame);
    assert_eq!(c.expect_close(), 1009);
    c.expect_eof();
    // Nothing was reserved for the declared length.
    assert!(
        server.rss_kib() < rss + 16 * 1024,
        "RSS grew by {} KiB",
        server.rss_kib() - rss
    );
    bystander.still_served();
}

#[test]
fn heavy_a_message_of_200000_one_byte_fragments_echoes_whole() {
    let server = Server::start(&[]);
    let mut bystander = Bystander::new(&server);
    let mut c = RawClient::connect(&server, "/ws");
    let n = 200_000;
    let mut stream = Vec::with_capacity(n * 7);
    for i in 0..n {
        let opcode = if i == 0 { BINARY } else { CONT };
        stream.extend(RawClient::frame(i == n - 1, 0, opcode, &[(i % 251) as u8]));
    }
    let started = Instant::now();
    c.send_bytes(&stream);
    let f = c.read_data_frame().unwrap();
    assert_eq!((f.fin, f.opcode, f.payload.len()), (true, BINARY, n));
    assert!(f
        .payload
        .iter()
        .enumerate()
        .all(|(i, b)| *b == (i % 251) as u8));
    // Bounded time (generous: a debug build on a loaded machine).
    assert!(started.elapsed() < Duration::from_secs(30));
    bystander.still_served();
}

#[test]
fn rsv_bits_without_an_extension_close_with_1002() {
    let server = Server::start(&[]);
    let mut bystander = Bystander::new(&server);
    for rsv in [1u8, 2, 4] {
        for opcode in [TEXT, 0x9] {
            let mut c = RawClient::connect(&server, "/ws");
            c.send_bytes(&RawClient::frame(true, rsv, opcode, b"x"));
            assert_eq!(c.expect_close(), 1002, "rsv {rsv} opcode {opcode}");
            c.expect_eof();
        }
    }
    // On a compressed-looking continuation too.
    let mut c = RawClient::connect(&server, "/ws");
    c.send(false, TEXT, b"a");
    c.send_bytes(&RawClient::frame(true, 4, CONT, b"b"));
    assert_eq!(c.expect_close(), 1002);
    bystander.still_served();
}

#[test]
fn garbage_instead_of_a_head_gets_400() {
    let server = Server::start(&[]);
    let mut bystander = Bystander::new(&server);
    for garbage in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 TLS hello\r\n\r\n"[..],
        b"\x00\x01\x02\x03\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET /ws HTTP/1.1\r\nHost x\r\n\r\n",
    ] {
        let (status, _, body) = server.http_raw(garbage);
        assert_eq!(status, 400, "{:?}", String::from_utf8_lossy(garbage));
        support::assert_json_error(&body);
    }
    bystander.still_served();
}

#[test]
fn garbage_after_the_upgrade_closes_with_1002() {
    let server = Server::start(&[]);
    let mut bystander = Bystander::new(&server);
    for garbage in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"\x81\x05hello", // unmasked
        &[0xff; 16],      // every bit set (a header complete enough to judge)
    ] {
        for path in ["/ws", "/ws/room/u", "/ws/chat/c"] {
            let mut c = RawClient::connect(&server, path);
            c.send_bytes(garbage);
            assert_eq!(c.expect_close(), 1002, "{path}: {garbage:?}");
            c.expect_eof();
        }
    }
    bystander.still_served();
}

#[test]
fn a_cross_origin_browser_upgrade_gets_403() {
    let server = Server::start(&[]);
    let mut bystander = Bystander::new(&server);
    let upgrade = |origin: &str| {
        let request = format!(
            "GET /ws/chat/victim HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: {origin}\r\n\r\n",
            server.addr
        );
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut head = [0u8; 12];
        s.read_exact(&mut head).unwrap();
        let status = String::from_utf8_lossy(&head[9..12])
            .parse::<u16>()
            .unwrap();
        (status, s)
    };
    assert_eq!(upgrade("https://evil.example").0, 403);
    assert_eq!(upgrade("null").0, 403);
    // A look-alike of the server's own origin is another origin.
    assert_eq!(
        upgrade(&format!("http://{}.evil.example", server.addr.ip())).0,
        403
    );
    // The server's own origin upgrades (kept open while counted).
    let (status, _own) = upgrade(&format!("http://{}", server.addr));
    assert_eq!(status, 101);
    assert_eq!(server.get_json("/healthz").1["connections"], 2);
    bystander.still_served();
}

#[test]
fn a_bad_percent_escape_in_a_token_gets_401() {
    // Found by fuzzing: a `%` before a multi-byte character used to panic
    // the connection's thread.
    let server = Server::start(&["--jwt-secret", "s3cret"]);
    let request = "GET /ws?token=%z\u{3bb}y HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
                   Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    let (status, _, body) = server.http_raw(request.as_bytes());
    assert_eq!(status, 401);
    support::assert_json_error(&body);
    assert_eq!(server.metric("strand_panics_total"), 0.0);
    assert!(
        !server.log_text().contains("panic"),
        "{}",
        server.log_text()
    );
}

#[test]
fn heavy_a_flooder_beside_a_quiet_client_leaves_its_round_trip_low() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
    use std::sync::Arc;
    let server = Server::start(&[]);
    let mut quiet = server.ws("/ws");
    let addr = server.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let echoed = Arc::new(AtomicU64::new(0));
    let (flooding, counted) = (stop.clone(), echoed.clone());
    // The flooder sends 16 KiB messages as fast as the server takes them
    // and reads the echoes (so it is never a slow consumer).
    let flooder = std::thread::spawn(move || {
        let stream = TcpStream::connect(addr).unwrap();
        let (mut ws, _) = tungstenite::client(format!("ws://{addr}/ws"), stream).unwrap();
        ws.get_mut().set_nonblocking(true).unwrap();
        let message = Message::binary(vec![7u8; 16 * 1024]);
        while !flooding.load(Relaxed) {
            let _ = ws.write(message.clone());
            let _ = ws.flush();
            while let Ok(m) = ws.read() {
                if m.is_binary() {
                    counted.fetch_add(1, Relaxed);
                }
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut worst = Duration::ZERO;
    let mut trips = 0u64;
    // Round trips while the flood runs: at least 100 of them, and until
    // the flooder has had 2,000 messages (32 MiB) echoed meanwhile.
    while trips < 100 || echoed.load(Relaxed) < 2000 {
        assert!(Instant::now() < deadline, "the flood never got going");
        let text = format!("ping {trips}");
        let sent = Instant::now();
        quiet.send(Message::text(text.clone())).unwrap();
        loop {
            if let Message::Text(t) = quiet.read().unwrap() {
                assert_eq!(t.as_str(), text);
                break;
            }
        }
        worst = worst.max(sent.elapsed());
        trips += 1;
    }
    stop.store(true, Relaxed);
    flooder.join().unwrap();
    // Correctness, not speed: every round trip came back, in order, and
    // none waited behind the flood for long (a generous bound).
    assert!(worst < Duration::from_secs(2), "worst round trip {worst:?}");
    eprintln!(
        "{trips} round trips beside a flood of {} echoed 16 KiB messages: worst {worst:?}",
        echoed.load(Relaxed)
    );
}

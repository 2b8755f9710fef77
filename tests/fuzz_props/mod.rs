//! The fuzzed properties, one function per target, each taking arbitrary
//! bytes. Shared by the short run in `cargo test` (tests/fuzz.rs, which
//! feeds them seeds and random mutations) and the long coverage-guided run
//! (fuzz/fuzz_targets/*.rs, cargo-fuzz with libFuzzer, see docs/FUZZING.md).
//! Each panics when its property fails; none may panic otherwise.
#![allow(dead_code)]

#[path = "../client_frame/mod.rs"]
mod client_frame;

use client_frame::client_frame;
use serde_json::{json, Value};
use std::io::{self, Read};
use strand::http::request::{parse_head, MAX_HEAD_BYTES};
use strand::names;
use strand::session::request::{decode, parse, Request};
use strand::wire::ErrorCode;
use strand::ws::reader::{FrameReader, Inbound};
use tungstenite::Message;

/// A small deterministic generator, seeded from the input.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15 | 1)
    }
    pub fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Consumes bytes of the input as a source of choices.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }
    fn seed(&mut self) -> u64 {
        let mut s = [0u8; 8];
        for b in &mut s {
            *b = self.byte();
        }
        u64::from_le_bytes(s)
    }
}

// ---------------------------------------------------------------- heads

/// `parse_head` on any bytes: never panics; a complete head ends inside the
/// input and within 8 KiB; every shorter prefix of it is incomplete (not an
/// error and not another head), which is what reading a head in pieces
/// relies on; and its parts are usable (routing, query, headers).
pub fn head(data: &[u8]) {
    let Ok(parsed) = parse_head(data) else { return };
    let Some((request, len)) = parsed else {
        return;
    };
    assert!(
        len <= data.len() && len <= MAX_HEAD_BYTES,
        "head of {len} bytes"
    );
    // Any prefix: the parser is called again as bytes arrive.
    for cut in [0, 1, len / 3, len / 2, len - 1] {
        if cut >= len {
            continue;
        }
        match parse_head(&data[..cut]) {
            Ok(None) => {}
            Ok(Some((_, n))) => panic!("a {cut}-byte prefix is a complete head of {n}"),
            // httparse may see an error earlier only if the full head has one.
            Err(_) => panic!("a {cut}-byte prefix of a valid head is an error"),
        }
    }
    let again = parse_head(&data[..len])
        .ok()
        .flatten()
        .expect("the head alone");
    assert_eq!(again.1, len);
    assert_eq!(again.0.path, request.path);
    let _ = strand::http::router::route(&request.method, &request.path);
    let _ = request.query_param("token");
    let _ = request.header_has_token("connection", "upgrade");
    assert!(!request.path.contains('?'));
}

// ---------------------------------------------------------------- names

/// The naming rule, written out independently.
fn name_by_the_book(s: &str) -> bool {
    let n = s.chars().count();
    (1..=64).contains(&n)
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
}

/// `names::is_valid` agrees with the rule as the contract words it, on
/// raw strings and as a URL path segment (HTTP 400 exactly for bad names).
pub fn names(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    assert_eq!(names::is_valid(&s), name_by_the_book(&s), "{s:?}");
    if !s.contains('/') {
        use strand::http::router::{route, Route, WsRoute};
        let r = route("GET", &format!("/ws/chat/{s}"));
        if name_by_the_book(&s) {
            assert!(
                matches!(r, Ok(Route::Ws(WsRoute::Hub { ref client_id })) if *client_id == s),
                "{s:?}"
            );
        } else if let Err(response) = r {
            assert_eq!(response.status, 400, "{s:?}");
        } else {
            panic!("a bad name was routed: {s:?}");
        }
    }
}

// ---------------------------------------------------------------- the hub

const TYPES: [&str; 12] = [
    "join_room",
    "leave_room",
    "message",
    "direct",
    "presence",
    "echo",
    "start",
    "stop",
    "follow",
    "unfollow",
    "dance",
    "",
];
const FIELDS: [&str; 8] = [
    "room_name",
    "to",
    "content",
    "since",
    "epoch",
    "timestamp",
    "file",
    "producer",
];

/// Any JSON value, shaped by the input.
fn value(b: &mut Bytes, depth: u8) -> Value {
    match b.byte() % 10 {
        0 => Value::Null,
        1 => json!(b.byte() % 2 == 0),
        2 => json!(b.byte() as i64 - 128),
        3 => json!(f64::from(b.byte()) / 3.0),
        4 => json!(u64::MAX - u64::from(b.byte())),
        5 if depth < 3 => Value::Array((0..b.byte() % 3).map(|_| value(b, depth + 1)).collect()),
        6 if depth < 3 => {
            let mut o = serde_json::Map::new();
            for _ in 0..b.byte() % 3 {
                let k = FIELDS[b.byte() as usize % FIELDS.len()];
                o.insert(k.into(), value(b, depth + 1));
            }
            Value::Object(o)
        }
        7 => json!(["general", "a.b-c_9", ".x", "a b", "", "é", "x/y"][b.byte() as usize % 7]),
        _ => {
            let n = b.byte() as usize % 70;
            json!(String::from_utf8_lossy(b.take(n)))
        }
    }
}

/// Hub decoding: arbitrary text never panics and gets an `error` or a
/// request; a structured message (a known type, name fields of any JSON
/// type) gets exactly the contract's answer for its name fields: absent or
/// null is `missing_field`, anything but a valid name string is `bad_name`,
/// and a decoded request only ever carries valid names.
pub fn hub_decode(data: &[u8]) {
    let (mode, rest) = data.split_first().unwrap_or((&0, &[]));
    let message = if mode % 2 == 0 {
        match parse(&String::from_utf8_lossy(rest)) {
            Ok(m) => m,
            Err(e) => {
                assert_eq!(e.code, ErrorCode::InvalidJson);
                return;
            }
        }
    } else {
        let mut b = Bytes(rest);
        let mut o = serde_json::Map::new();
        o.insert("type".into(), json!(TYPES[b.byte() as usize % TYPES.len()]));
        for _ in 0..b.byte() % 5 {
            let k = FIELDS[b.byte() as usize % FIELDS.len()];
            let v = value(&mut b, 0);
            o.insert(k.into(), v);
        }
        let m = Value::Object(o);
        // The text a client would send parses back to the same message.
        assert_eq!(parse(&m.to_string()).unwrap(), m);
        m
    };
    let result = decode(&message);
    let valid = |field: &str| message[field].as_str().is_some_and(names::is_valid);
    let absent = |field: &str| message[field].is_null();
    let name_field = match message["type"].as_str() {
        Some("join_room" | "leave_room" | "presence") => Some("room_name"),
        Some("direct") => Some("to"),
        _ => None,
    };
    match &result {
        Ok(request) => {
            for name in names_in(request) {
                assert!(
                    names::is_valid(name),
                    "{message} decoded a bad name {name:?}"
                );
            }
            if let Some(f) = name_field {
                assert!(valid(f), "{message} accepted");
            }
        }
        Err(e) if e.code == ErrorCode::BadName => {
            let culprit = ["room_name", "to"].iter().any(|f| !absent(f) && !valid(f));
            assert!(culprit, "{message}: bad_name without a bad name field");
        }
        Err(e) => {
            if let Some(f) = name_field {
                // A bad name is reported before any other field.
                assert!(
                    valid(f) || absent(f) || e.code == ErrorCode::BadName,
                    "{message}: {:?} for a bad {f}",
                    e.code
                );
                if absent(f) && f == "room_name" {
                    assert_eq!(e.code, ErrorCode::MissingField, "{message}");
                }
            }
            assert!(!e.message.is_empty());
        }
    }
}

fn names_in<'a>(request: &'a Request<'a>) -> Vec<&'a str> {
    match request {
        Request::JoinRoom { room, .. }
        | Request::LeaveRoom { room }
        | Request::Presence { room } => vec![room],
        Request::Message { room, .. } => room.iter().copied().collect(),
        Request::Direct { to, .. } => vec![to],
        Request::Echo { .. } | Request::Other(_) => vec![],
    }
}

// ---------------------------------------------------------------- frames

/// The largest message the fuzzed reader accepts (strand's read config,
/// with a smaller limit so that oversized cases are cheap).
pub const FUZZ_MAX_MESSAGE: usize = 64 * 1024;

/// A socket for the reader: returns the bytes in chunks of random sizes,
/// and `WouldBlock` at random points, as a non-blocking socket does;
/// writes (tungstenite's automatic pongs) are discarded.
pub struct ChunkedSocket {
    data: Vec<u8>,
    at: usize,
    rng: Rng,
    /// (bytes handed out, `WouldBlock`s returned), readable by the caller
    /// while the reader owns the socket.
    pub progress: std::rc::Rc<std::cell::Cell<(usize, usize)>>,
}

impl ChunkedSocket {
    pub fn new(data: Vec<u8>, seed: u64) -> ChunkedSocket {
        ChunkedSocket {
            data,
            at: 0,
            rng: Rng::new(seed),
            progress: Default::default(),
        }
    }
}

impl Read for ChunkedSocket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.rng.below(4) == 0 {
            let (at, blocks) = self.progress.get();
            self.progress.set((at, blocks + 1));
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let left = self.data.len() - self.at;
        let max = match self.rng.below(3) {
            0 => 1,
            1 => 1 + self.rng.below(16) as usize,
            _ => 1 + self.rng.below(4096) as usize,
        };
        let n = left.min(max).min(buf.len());
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        self.progress.set((self.at, self.progress.get().1));
        Ok(n)
    }
}

/// What the reader made of a byte stream.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// Every data message, in order, then the peer's close.
    Closed(Vec<Message>),
    /// Every data message read before the error.
    Failed(Vec<Message>, String),
}

/// Reads `bytes` with the engine's own frame reader
/// ([`strand::ws::reader::FrameReader`], strand's read configuration)
/// through a [`ChunkedSocket`] until a close, an error or the end of the
/// input.
pub fn read_all(bytes: Vec<u8>, seed: u64) -> Outcome {
    let config = strand::ws::reader::config(FUZZ_MAX_MESSAGE);
    let total = bytes.len();
    let socket = ChunkedSocket::new(bytes, seed);
    let progress = socket.progress.clone();
    let mut reader = FrameReader::new(socket, Vec::new(), config);
    let mut messages = Vec::new();
    // Each read either makes progress or blocks; bounded by the input.
    for _ in 0..(total * 8 + 64) {
        match reader.read() {
            Some(Inbound::Close(_)) => return Outcome::Closed(messages),
            Some(Inbound::Message(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            Some(Inbound::Message(m)) => messages.push(m),
            Some(Inbound::Failed(_, reason)) => return Outcome::Failed(messages, reason),
            Some(Inbound::Gone) => return Outcome::Failed(messages, "input ended".into()),
            None => {
                let (at, blocks) = progress.get();
                if at == total && blocks > total * 4 + 64 {
                    return Outcome::Failed(messages, "input ended".into());
                }
            }
        }
    }
    panic!("the reader made no progress on {total} bytes");
}

/// The frame reader: messages framed from the input (text and binary,
/// fragmented at random, pings between fragments, random masks) and read
/// in random chunks with `WouldBlock` at random points come out whole,
/// equal and in order, followed by the close; an oversized one is an
/// error; and bytes that are not frames (or frames cut short or corrupted)
/// give an error or a close, never a panic or a hang.
pub fn frames(data: &[u8]) {
    let mut b = Bytes(data);
    let seed = b.seed();
    let mode = b.byte();
    if mode % 4 == 0 {
        // Garbage, maybe after a valid prefix.
        let mut stream = client_frame(true, 0, 1, b"hello", [1, 2, 3, 4]);
        if mode & 0x10 == 0 {
            stream.clear();
        }
        stream.extend_from_slice(b.0);
        let _ = read_all(stream, seed);
        return;
    }
    let mut rng = Rng::new(seed);
    let mut stream = Vec::new();
    let mut expected = Vec::new();
    let mut oversized = false;
    let mut sent = 0usize;
    while !b.0.is_empty() && expected.len() < 16 {
        let binary = b.byte() % 2 == 0;
        let len = match b.byte() % 8 {
            0 => 0,
            7 => 1 + rng.below(FUZZ_MAX_MESSAGE as u64 + 2048) as usize,
            _ => b.byte() as usize,
        };
        let mut payload: Vec<u8> = b.take(len).to_vec();
        while payload.len() < len {
            payload.push(rng.next() as u8);
        }
        let message = if binary {
            Message::binary(payload.clone())
        } else {
            let text = String::from_utf8_lossy(&payload).into_owned();
            payload = text.clone().into_bytes();
            Message::text(text)
        };
        let pieces = 1 + rng.below(if payload.len() > 4096 { 4 } else { 12 }) as usize;
        let mut cuts: Vec<usize> = (1..pieces)
            .map(|_| rng.below(payload.len() as u64 + 1) as usize)
            .collect();
        cuts.sort_unstable();
        let mut bounds = vec![0];
        bounds.extend(cuts);
        bounds.push(payload.len());
        for (i, w) in bounds.windows(2).enumerate() {
            let opcode = if i > 0 {
                0
            } else if binary {
                2
            } else {
                1
            };
            let last = i == bounds.len() - 2;
            let mask = (rng.next() as u32).to_be_bytes();
            stream.extend(client_frame(last, 0, opcode, &payload[w[0]..w[1]], mask));
            if rng.below(4) == 0 {
                stream.extend(client_frame(true, 0, 9, b"ping", mask));
            }
        }
        sent += 1;
        if payload.len() > FUZZ_MAX_MESSAGE {
            oversized = true;
            break;
        }
        expected.push(message);
    }
    stream.extend(client_frame(
        true,
        0,
        8,
        &1000u16.to_be_bytes(),
        [9, 9, 9, 9],
    ));
    match read_all(stream, seed) {
        Outcome::Closed(got) => {
            assert!(!oversized, "an oversized message was accepted");
            assert_eq!(got, expected);
        }
        Outcome::Failed(got, error) => {
            assert!(oversized, "{sent} valid messages failed: {error}");
            assert!(
                error.contains("Space limit exceeded") || error.contains("too long"),
                "{error}"
            );
            assert_eq!(got, expected, "the messages before the oversized one");
        }
    }
}

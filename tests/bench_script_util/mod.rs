//! Servers that are not strand, for `strand bench run` and `strand bench
//! pubsub`: a small JSON pub/sub server (WebSocket subscribe and publish,
//! and HTTP `POST /publish`) and a silent server that accepts and never
//! answers. Each runs on threads of the test process, on port 0.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tungstenite::Message;

/// How long a connection thread waits for a read before it sends what is
/// queued for it (one thread per connection reads and writes).
const POLL: Duration = Duration::from_millis(2);

type Topics = Arc<Mutex<HashMap<String, Vec<crossbeam_channel::Sender<String>>>>>;

/// A running JSON pub/sub server.
pub struct PubSub {
    /// `ws://127.0.0.1:PORT`.
    pub ws_url: String,
    /// `http://127.0.0.1:PORT/publish`.
    pub post_url: String,
    /// Messages published (over either door).
    pub published: Arc<AtomicU64>,
    /// Headers `X-Bench-User` seen on upgrades.
    pub users: Arc<Mutex<Vec<String>>>,
}

impl PubSub {
    /// Starts the server.
    pub fn start() -> PubSub {
        let topics: Topics = Arc::default();
        let published = Arc::new(AtomicU64::new(0));
        let users = Arc::new(Mutex::new(Vec::new()));
        let ws = TcpListener::bind("127.0.0.1:0").unwrap();
        let http = TcpListener::bind("127.0.0.1:0").unwrap();
        let ws_url = format!("ws://{}", ws.local_addr().unwrap());
        let post_url = format!("http://{}/publish", http.local_addr().unwrap());
        let (t, p, u) = (topics.clone(), published.clone(), users.clone());
        std::thread::spawn(move || {
            let sessions = Arc::new(AtomicU64::new(0));
            for stream in ws.incoming().flatten() {
                let (t, p, u, s) = (t.clone(), p.clone(), u.clone(), sessions.clone());
                std::thread::spawn(move || ws_connection(stream, &t, &p, &u, &s));
            }
        });
        let (t, p) = (topics, published.clone());
        std::thread::spawn(move || {
            for stream in http.incoming().flatten() {
                let (t, p) = (t.clone(), p.clone());
                std::thread::spawn(move || http_connection(stream, &t, &p));
            }
        });
        PubSub {
            ws_url,
            post_url,
            published,
            users,
        }
    }
}

/// Delivers `data` to `topic`'s subscribers. Two topics misbehave on
/// purpose: `lossy` drops the messages whose `data.id` ends in 3, `twice`
/// delivers every message two times.
fn publish(topics: &Topics, published: &AtomicU64, topic: &str, data: &Value) {
    published.fetch_add(1, Ordering::SeqCst);
    if topic == "lossy" && data["id"].as_u64().is_some_and(|id| id % 10 == 3) {
        return;
    }
    let copies = if topic == "twice" { 2 } else { 1 };
    let text = json!({"type": "message", "topic": topic, "data": data}).to_string();
    let mut topics = topics.lock().unwrap();
    if let Some(subs) = topics.get_mut(topic) {
        for _ in 0..copies {
            subs.retain(|s| s.send(text.clone()).is_ok());
        }
    }
}

// tungstenite's handshake callback returns its (large) error response.
#[allow(clippy::result_large_err)]
fn ws_connection(
    stream: TcpStream,
    topics: &Topics,
    published: &AtomicU64,
    users: &Mutex<Vec<String>>,
    sessions: &AtomicU64,
) {
    let callback = |req: &tungstenite::handshake::server::Request,
                    resp: tungstenite::handshake::server::Response| {
        if let Some(user) = req.headers().get("x-bench-user") {
            users
                .lock()
                .unwrap()
                .push(user.to_str().unwrap_or("").to_string());
        }
        Ok(resp)
    };
    let Ok(mut ws) = tungstenite::accept_hdr(stream, callback) else {
        return;
    };
    let session = format!("s-{}", sessions.fetch_add(1, Ordering::SeqCst));
    let (tx, rx) = crossbeam_channel::unbounded::<String>();
    let hello = json!({"type": "hello", "session": session}).to_string();
    if ws.send(Message::text(hello)).is_err() {
        return;
    }
    let _ = ws.get_ref().set_read_timeout(Some(POLL));
    loop {
        for text in rx.try_iter() {
            if ws.send(Message::text(text)).is_err() {
                return;
            }
        }
        let msg = match ws.read() {
            Ok(Message::Text(t)) => t,
            Ok(Message::Close(_)) | Err(tungstenite::Error::ConnectionClosed) => return,
            Ok(_) => continue,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => return,
        };
        let Ok(v) = serde_json::from_str::<Value>(&msg) else {
            let _ = ws.send(Message::text(
                json!({"type": "error", "error": "not JSON"}).to_string(),
            ));
            continue;
        };
        let topic = v["topic"].as_str().unwrap_or("").to_string();
        match v["type"].as_str() {
            Some("subscribe") => {
                topics
                    .lock()
                    .unwrap()
                    .entry(topic.clone())
                    .or_default()
                    .push(tx.clone());
                let ok = json!({"type": "subscribed", "topic": topic}).to_string();
                if ws.send(Message::text(ok)).is_err() {
                    return;
                }
            }
            Some("publish") => publish(topics, published, &topic, &v["data"]),
            _ => {}
        }
    }
}

/// `POST /publish` with `{"topic": T, "data": D}`: 204 (keep-alive).
fn http_connection(stream: TcpStream, topics: &Topics, published: &AtomicU64) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let post = line.starts_with("POST /publish ");
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let answer = match serde_json::from_slice::<Value>(&body) {
            Ok(v) if post => {
                publish(
                    topics,
                    published,
                    v["topic"].as_str().unwrap_or(""),
                    &v["data"],
                );
                "HTTP/1.1 204 No Content\r\n\r\n"
            }
            _ => "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n",
        };
        if out.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// A server that completes WebSocket handshakes and then never sends.
pub fn silent_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let Ok(mut ws) = tungstenite::accept(stream) else {
                    return;
                };
                while ws.read().is_ok() {}
            });
        }
    });
    url
}

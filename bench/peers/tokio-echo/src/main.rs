//! The tokio peer: an idiomatic tokio-tungstenite server of strand's `/ws`
//! echo and plain-text rooms (`/ws/{room}/{user}`), for `docs/bench.sh` to
//! measure strand against what async Rust does with the same work.
//!
//! Built as fast as tokio allows, the way its own examples do it: the
//! multi-thread runtime (one worker per CPU the process may run on, so one
//! when pinned with `taskset`), one task per connection, a 4 KiB read
//! buffer and TCP_NODELAY as strand and the floor have. Rooms follow
//! tokio-tungstenite's `examples/server.rs`: a map of members' unbounded
//! senders; a message is sent to each member's channel by the publishing
//! task, and each member's task writes what is queued with one flush.
//! It has no limits, heartbeat, hub or slow-consumer bound: it does less
//! than strand per message, never more.
//!
//! With `--tls-cert FILE --tls-key FILE` it serves `wss://` instead, with
//! tokio-rustls on the same rustls and `ring` provider as strand: the TLS
//! handshake runs in the connection's task, then the same code serves it.
//!
//! Usage: `tokio-echo [ADDR] [--tls-cert FILE --tls-key FILE]` (default
//! `127.0.0.1:9001`, port 0 allowed); prints `listening on ADDR` on stdout.

use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

#[tokio::main]
async fn main() {
    let mut addr = "127.0.0.1:9001".to_string();
    let (mut cert, mut key) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--tls-cert" => cert = args.next(),
            "--tls-key" => key = args.next(),
            _ => addr = arg,
        }
    }
    let tls = match (cert, key) {
        (Some(cert), Some(key)) => Some(acceptor(&cert, &key)),
        (None, None) => None,
        _ => {
            eprintln!("tokio-echo: --tls-cert and --tls-key go together");
            std::process::exit(1);
        }
    };
    let listener = match TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("tokio-echo: cannot bind {addr}: {e}");
            std::process::exit(1);
        }
    };
    match listener.local_addr() {
        Ok(a) => println!("listening on {a}"),
        Err(e) => println!("listening on {addr} ({e})"),
    }
    let _ = std::io::stdout().flush();
    let rooms = Arc::new(Rooms::default());
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                let rooms = rooms.clone();
                match tls.clone() {
                    None => {
                        tokio::spawn(serve(stream, rooms));
                    }
                    Some(tls) => {
                        tokio::spawn(async move {
                            if let Ok(stream) = tls.accept(stream).await {
                                serve(stream, rooms).await;
                            }
                        });
                    }
                }
            }
            // Out of descriptors and the like: go on accepting.
            Err(e) => eprintln!("tokio-echo: accept: {e}"),
        }
    }
}

/// The TLS acceptor of a PEM chain and key (TLS 1.2 and 1.3, `ring`).
fn acceptor(cert: &str, key: &str) -> TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let fail = |what: &str, e: &dyn std::fmt::Display| -> ! {
        eprintln!("tokio-echo: {what}: {e}");
        std::process::exit(1)
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|c| c.collect())
        .unwrap_or_else(|e| fail(cert, &e));
    let key = PrivateKeyDer::from_pem_file(key).unwrap_or_else(|e| fail(key, &e));
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .unwrap_or_else(|e| fail("TLS versions", &e))
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap_or_else(|e| fail("certificate", &e));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsAcceptor::from(Arc::new(config))
}

/// What an upgrade asked for.
enum Route {
    Echo,
    Room { room: String, user: String },
}

/// The route of `path`, or the HTTP status that refuses it.
fn route(path: &str) -> Result<Route, StatusCode> {
    if path == "/ws" {
        return Ok(Route::Echo);
    }
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["", "ws", "chat", ..] => Err(StatusCode::NOT_FOUND),
        ["", "ws", room, user] if is_name(room) && is_name(user) => Ok(Route::Room {
            room: room.to_string(),
            user: user.to_string(),
        }),
        ["", "ws", _, _] => Err(StatusCode::BAD_REQUEST),
        _ => Err(StatusCode::NOT_FOUND),
    }
}

/// The contract's names: 1 to 64 of `A-Z a-z 0-9 _ . -`, not starting with `.`.
fn is_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

// The refusal's size is fixed by tungstenite's handshake `Callback`.
#[allow(clippy::result_large_err)]
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(stream: S, rooms: Arc<Rooms>) {
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let mut routed = None;
    let callback = |req: &Request, resp: Response| match route(req.uri().path()) {
        Ok(r) => {
            routed = Some(r);
            Ok(resp)
        }
        Err(status) => {
            let mut refusal = ErrorResponse::new(Some(format!("{{\"error\":\"{status}\"}}")));
            *refusal.status_mut() = status;
            Err(refusal)
        }
    };
    let Ok(ws) =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await
    else {
        return;
    };
    match routed {
        Some(Route::Echo) => echo(ws).await,
        Some(Route::Room { room, user }) => member(ws, &rooms, room, user).await,
        None => {}
    }
}

/// Text back as text, binary as binary. Pings are answered by tungstenite
/// (the pong goes out with the next read or write); a close is answered
/// on the read that follows it, which then ends the stream.
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(mut ws: WebSocketStream<S>) {
    while let Some(Ok(msg)) = ws.next().await {
        if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
            return;
        }
    }
}

/// A text-room member: its texts go to every member (itself included) as
/// `{user}: T`; what others send it is written in batches, one flush each.
async fn member<S: AsyncRead + AsyncWrite + Unpin>(
    mut ws: WebSocketStream<S>,
    rooms: &Rooms,
    room: String,
    user: String,
) {
    let (tx, mut rx) = unbounded_channel();
    let id = rooms.join(&room, &user, tx);
    loop {
        tokio::select! {
            incoming = ws.next() => match incoming {
                Some(Ok(Message::Text(t))) => {
                    if t.as_str() != "__pong__" {
                        rooms.publish(&room, format!("{user}: {t}"));
                    }
                }
                // Binary, pings (answered by tungstenite), pongs, and a
                // close (answered on the next read, which ends the stream).
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            },
            Some(out) = rx.recv() => {
                if ws.feed(out).await.is_err() {
                    break;
                }
                let mut failed = false;
                while let Ok(more) = rx.try_recv() {
                    if ws.feed(more).await.is_err() {
                        failed = true;
                        break;
                    }
                }
                if failed || ws.flush().await.is_err() {
                    break;
                }
            }
        }
    }
    rooms.leave(&room, id, &user);
}

/// The text rooms: for each, its members' outbound channels by member id.
#[derive(Default)]
struct Rooms {
    map: Mutex<HashMap<String, HashMap<u64, UnboundedSender<Message>>>>,
    next_id: AtomicU64,
}

impl Rooms {
    /// Tells the members of `room` that `user` joined, then adds it.
    fn join(&self, room: &str, user: &str, tx: UnboundedSender<Message>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let notice = text(format!("system: {user} joined {room}"));
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let members = map.entry(room.to_string()).or_default();
        for member in members.values() {
            let _ = member.send(notice.clone());
        }
        members.insert(id, tx);
        id
    }

    /// Sends `line` to every member of `room`.
    fn publish(&self, room: &str, line: String) {
        let msg = text(line);
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(members) = map.get(room) {
            for member in members.values() {
                let _ = member.send(msg.clone());
            }
        }
    }

    /// Removes member `id` of `room` and tells the rest that `user` left.
    fn leave(&self, room: &str, id: u64, user: &str) {
        let notice = text(format!("system: {user} left {room}"));
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let Some(members) = map.get_mut(room) else {
            return;
        };
        members.remove(&id);
        if members.is_empty() {
            map.remove(room);
            return;
        }
        for member in members.values() {
            let _ = member.send(notice.clone());
        }
    }
}

/// A text message whose clones share one buffer.
fn text(s: String) -> Message {
    Message::Text(Utf8Bytes::from(s))
}

//! A panic in one connection's session is logged, answered with close 1011,
//! counted, and ends only that connection: the engine is driven directly
//! with a session that panics, over a real socket.

use std::net::{TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use strand::metrics::Metrics;
use strand::ws::conn::{serve, ConnParams};
use strand::ws::Conn;
use strand::ws::Handler;
use tungstenite::Message;

struct Panicky;

impl Handler for Panicky {
    fn on_text(&mut self, conn: &mut Conn<'_>, text: &str) {
        if text == "boom" {
            panic!("a bug in a session");
        }
        conn.send_text(text);
    }
}

#[test]
fn a_panicking_session_closes_with_1011_and_the_thread_returns() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let metrics = Arc::new(Metrics::default());
    let params = ConnParams {
        ping_interval: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(30),
        max_message_bytes: 1 << 20,
        max_queue_bytes: 1 << 20,
        registry: Arc::default(),
        metrics: metrics.clone(),
        readiness: strand::ws::readiness::Readiness::start().unwrap(),
    };
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut stream = stream;
        let request = strand::http::Request::read_from(&mut stream).unwrap();
        let key = request.header("sec-websocket-key").unwrap().to_string();
        let handshake = strand::http::response::switching_protocols(&key);
        serve(
            1,
            stream,
            None,
            None,
            request.leftover,
            handshake,
            Box::new(Panicky),
            &params,
        )
        .unwrap();
    });
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (mut ws, _) = tungstenite::client(format!("ws://{addr}/ws"), stream).unwrap();
    ws.send(Message::text("fine")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("fine"));
    ws.send(Message::text("boom")).unwrap();
    match ws.read().unwrap() {
        Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1011),
        other => panic!("expected close 1011, got {other:?}"),
    }
    server
        .join()
        .expect("the connection thread returns normally");
    assert_eq!(metrics.panics.load(Ordering::Relaxed), 1);
    assert_eq!(metrics.closes_sent(1011), 1);
}

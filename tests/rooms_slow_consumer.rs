//! One member stops reading while a publisher floods its room: the stalled
//! member is closed with 1008 (or dropped), a healthy member of the same
//! room receives every message in order, and the server's memory stays
//! bounded because nothing queues without limit for the stalled client.
mod hub_util;
mod support;

use hub_util::text_member;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::{RawClient, Server};
use tungstenite::protocol::Role;
use tungstenite::{Message, WebSocket};

const MESSAGES: u64 = 60_000;
const PAYLOAD: usize = 1000;
/// Messages in flight at most, so the healthy member never holds more than
/// 32 KB unread (below the 64 KB queue limit) however slow the machine.
const WINDOW: u64 = 32;

/// Counts this room's messages on a reading thread, checking their order.
/// Returns the socket, so that it stays connected.
fn count_in_order(
    mut ws: WebSocket<TcpStream>,
    counter: Arc<AtomicU64>,
    me: &'static str,
) -> WebSocket<TcpStream> {
    let mut next = 0u64;
    while next < MESSAGES {
        match ws.read() {
            Ok(Message::Text(t)) => {
                let Some(rest) = t.strip_prefix("pub: ") else {
                    continue; // joins and leaves
                };
                let n: u64 = rest[..8].parse().unwrap();
                assert_eq!(n, next, "{me}: every message, in order");
                next += 1;
                counter.store(next, Ordering::Release);
            }
            Ok(_) => {}
            Err(e) => panic!("{me}: connection failed after {next} messages: {e}"),
        }
    }
    ws
}

#[test]
fn heavy_a_stalled_member_is_cut_off_and_the_healthy_one_gets_everything() {
    let server = Server::start(&["--max-queue-bytes", "65536", "--ping-interval", "600"]);
    // The publisher: raw frames written on one handle of the socket, the
    // room's echo read on another by tungstenite.
    let publisher = RawClient::connect(&server, "/ws/flood/pub");
    server.wait_until("pub joined", || {
        server.get_json("/rooms/flood/count").1["online"] == 1
    });
    let mut pub_out = publisher.stream.try_clone().unwrap();
    let pub_in =
        WebSocket::from_raw_socket(publisher.stream.try_clone().unwrap(), Role::Client, None);
    let healthy = text_member(&server, "flood", "healthy", 2);
    let mut stalled = text_member(&server, "flood", "stalled", 3);

    let rss_before = server.rss_kib();
    let healthy_n = Arc::new(AtomicU64::new(0));
    let pub_n = Arc::new(AtomicU64::new(0));
    let readers = [
        {
            let c = healthy_n.clone();
            std::thread::spawn(move || count_in_order(healthy, c, "healthy"))
        },
        {
            let c = pub_n.clone();
            std::thread::spawn(move || count_in_order(pub_in, c, "publisher"))
        },
    ];
    let mut rss_max = rss_before;
    let filler = "x".repeat(PAYLOAD - 8);
    for i in 0..MESSAGES {
        while i
            >= WINDOW
                + healthy_n
                    .load(Ordering::Acquire)
                    .min(pub_n.load(Ordering::Acquire))
        {
            std::thread::sleep(Duration::from_micros(200));
        }
        let text = format!("{i:08}{filler}");
        pub_out
            .write_all(&RawClient::frame(true, 0, 0x1, text.as_bytes()))
            .unwrap();
        if i % 5000 == 0 {
            rss_max = rss_max.max(server.rss_kib());
        }
    }
    let _still_connected: Vec<_> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    rss_max = rss_max.max(server.rss_kib());

    server.wait_until("the slow consumer is counted", || {
        server.metric("strand_slow_consumer_closes_total") >= 1.0
    });
    assert!(server.metric("strand_room_drops_total") >= 1.0);
    // The stalled client finds, after what the kernel had buffered, a 1008
    // close frame or the end of the connection.
    loop {
        match stalled.read() {
            Ok(Message::Close(frame)) => {
                assert_eq!(frame.map(|f| u16::from(f.code)), Some(1008));
                break;
            }
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    server.wait_until("the stalled member is gone", || {
        server.get_json("/rooms/flood/count").1["online"] == 2
    });
    let grown_mib = (rss_max.saturating_sub(rss_before)) / 1024;
    eprintln!(
        "RSS {rss_before} KiB before, at most {rss_max} KiB during a {} MB flood",
        MESSAGES * PAYLOAD as u64 / 1_000_000
    );
    assert!(
        grown_mib < 24,
        "RSS grew by {grown_mib} MiB while a stalled client was flooded"
    );
}

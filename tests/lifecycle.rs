//! A connection's life: heartbeat pings, idle timeout, graceful shutdown
//! with 1001, and no thread or descriptor left behind.
mod support;

use std::time::{Duration, Instant};
use support::{RawClient, Server};
use tungstenite::Message;

#[test]
fn the_server_pings_every_interval() {
    let server = Server::start(&["--ping-interval", "0.1"]);
    let mut c = RawClient::connect(&server, "/ws");
    for _ in 0..3 {
        let f = c.read_frame().unwrap();
        assert_eq!(f.opcode, 0x9, "expected a ping, got {f:?}");
    }
}

#[test]
fn a_silent_connection_is_closed_after_the_idle_timeout() {
    let server = Server::start(&["--idle-timeout", "0.3", "--ping-interval", "60"]);
    let mut c = RawClient::connect(&server, "/ws");
    let started = Instant::now();
    assert_eq!(c.expect_close(), 1000);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "closed too early"
    );
}

#[test]
fn a_client_that_answers_pings_stays_connected_past_the_idle_timeout() {
    let server = Server::start(&["--idle-timeout", "0.4", "--ping-interval", "0.1"]);
    let mut ws = server.ws("/ws");
    // tungstenite answers each ping with a pong as it reads.
    let mut pings = 0;
    let until = Instant::now() + Duration::from_millis(1200);
    while Instant::now() < until {
        match ws.read().unwrap() {
            Message::Ping(_) => pings += 1,
            other => panic!("unexpected {other:?}"),
        }
        ws.flush().unwrap();
    }
    assert!(pings >= 5, "only {pings} pings");
    ws.send(Message::text("alive")).unwrap();
    loop {
        match ws.read().unwrap() {
            Message::Text(t) => break assert_eq!(t.as_str(), "alive"),
            Message::Ping(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn sigterm_closes_every_connection_with_1001_and_exits_0() {
    let mut server = Server::start(&[]);
    let mut clients: Vec<_> = (0..5).map(|_| server.ws("/ws")).collect();
    for ws in &mut clients {
        ws.send(Message::text("x")).unwrap();
        assert_eq!(ws.read().unwrap(), Message::text("x"));
    }
    server.signal(libc::SIGTERM);
    for ws in &mut clients {
        assert_eq!(support::close_code(ws), 1001);
    }
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(0), "log:\n{}", server.log_text());
    assert!(server.log_text().contains("stopped"));
}

#[test]
fn sigint_with_no_clients_exits_0() {
    let mut server = Server::start(&[]);
    server.signal(libc::SIGINT);
    assert_eq!(server.wait_exit().code(), Some(0));
}

#[test]
fn heavy_no_thread_or_descriptor_outlives_500_connections() {
    let server = Server::start(&[]);
    // Warm up once so lazily created process-wide state is in the baseline.
    drop(server.ws("/ws"));
    let threads = server.settled_threads();
    let fds = server.fds();
    let settled = |n: usize, f: usize| server.live_threads() == n && server.fds() == f;
    for i in 0..500 {
        let mut ws = server.ws("/ws");
        ws.send(Message::text(i.to_string())).unwrap();
        ws.read().unwrap();
        if i % 2 == 0 {
            ws.close(None).unwrap();
            support::close_code(&mut ws);
        } // else: dropped without a close handshake
    }
    server.wait_until("threads and fds back to baseline", || settled(threads, fds));
    // Finished connection threads wait in the cache, within its bound.
    assert!(server.parked_threads() <= 64, "{:?}", server.thread_names());
}

#[test]
fn out_of_descriptors_the_server_refuses_and_recovers() {
    // 48 descriptors: enough for the server itself and a handful of clients.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in_with_nofile(dir, 48, &["--max-connections", "1000"]);
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..80 {
        match server.try_ws("/ws") {
            Ok(ws) => held.push(ws),
            Err(_) => refused += 1,
        }
        if refused > 0 && held.len() > 10 {
            break;
        }
    }
    assert!(refused > 0, "expected the OS to refuse some connections");
    drop(held);
    server.wait_until("service to return", || {
        server
            .try_ws("/ws")
            .map(|mut ws| {
                ws.send(Message::text("back")).is_ok() && matches!(ws.read(), Ok(Message::Text(_)))
            })
            .unwrap_or(false)
    });
}

//! 1,000 start/stop cycles, with disconnects between them and producers
//! among them, leave the server with the threads, descriptors and children
//! it had before.
mod support;

use serde_json::json;
use support::{next_of_type, send_json, Server};

/// The next message that is not another client's presence news.
fn next_msg(ws: &mut tungstenite::WebSocket<std::net::TcpStream>) -> serde_json::Value {
    loop {
        let v = support::next_json(ws);
        if v["type"] != "user_joined" && v["type"] != "user_left" {
            return v;
        }
    }
}
use tungstenite::Message;

fn children(pid: u32) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|ppid| ppid.parse::<u32>().ok())
                == Some(pid)
        })
        .count()
}

#[test]
fn heavy_start_stop_cycles_leave_nothing_behind() {
    let server = Server::start(&["--producer", "yes=while true; do echo y; sleep 0.01; done"]);
    // Warm up once so lazily created state is in the baseline.
    let mut ws = server.ws("/ws/chat/warm");
    next_of_type(&mut ws, "welcome");
    drop(ws);
    // The baseline is taken once no connection thread is left: a count
    // taken while the warm-up connection's threads exit would be too high.
    let threads = settled_threads(&server);
    let fds = server.fds();
    for i in 0..1000 {
        let mut ws = server.ws(&format!("/ws/chat/c{}", i % 50));
        next_of_type(&mut ws, "welcome");
        let start = if i % 10 == 0 {
            json!({"type": "start", "producer": "yes"})
        } else {
            json!({"type": "start", "interval_ms": 1})
        };
        send_json(&mut ws, start);
        assert_eq!(next_msg(&mut ws)["type"], "started");
        assert_eq!(next_msg(&mut ws)["type"], "data");
        match i % 3 {
            // stop, then a clean close
            0 => {
                send_json(&mut ws, json!({"type": "stop"}));
                next_of_type(&mut ws, "stopped");
                let _ = ws.close(None);
                while ws.read().is_ok() {}
            }
            // a clean close while streaming
            1 => {
                let _ = ws.send(Message::Close(None));
                while ws.read().is_ok() {}
            }
            // the client just vanishes
            _ => drop(ws),
        }
    }
    wait_threads(&server, threads);
    server.wait_until("descriptors back to the baseline", || server.fds() == fds);
    server.wait_until("no children", || children(server.pid()) == 0);
    eprintln!(
        "after 1000 cycles: {} threads, {} fds",
        server.threads(),
        server.fds()
    );
}

/// Waits for the server to have `n` threads; fails naming the threads.
fn wait_threads(server: &Server, n: usize) {
    let names = || {
        let mut names: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", server.pid()))
            .unwrap()
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
            .map(|n| n.trim().to_string())
            .collect();
        names.sort();
        names
    };
    let deadline = std::time::Instant::now() + support::WAIT;
    while server.threads() != n {
        assert!(
            std::time::Instant::now() < deadline,
            "{} threads, not {n}: {:?}",
            server.threads(),
            names()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The server's thread count once no connection thread ("conn", "read-N")
/// is left.
fn settled_threads(server: &Server) -> usize {
    let deadline = std::time::Instant::now() + support::WAIT;
    loop {
        let busy = std::fs::read_dir(format!("/proc/{}/task", server.pid()))
            .unwrap()
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
            .any(|n| n.starts_with("conn") || n.starts_with("read-"));
        if !busy {
            return server.threads();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "connection threads linger"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

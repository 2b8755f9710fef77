//! The floor: the simplest blocking thread-per-connection WebSocket echo
//! server, for `strand bench` to compare strand with.
//!
//! One thread per connection runs tungstenite's read-then-send loop and
//! nothing else (no routing, no limits, no heartbeat). Its only tuning is
//! the one strand also makes: a 4 KiB read buffer instead of tungstenite's
//! 128 KiB default (allocated per connection and zero-filled before every
//! read) and TCP_NODELAY.
//!
//! Usage: `cargo run --release --example floor_echo -- 127.0.0.1:0`; prints
//! `listening on ADDR` on stdout.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use tungstenite::protocol::WebSocketConfig;

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9000".into());
    let listener = match TcpListener::bind(&addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("floor_echo: cannot bind {addr}: {e}");
            std::process::exit(1);
        }
    };
    match listener.local_addr() {
        Ok(a) => println!("listening on {a}"),
        Err(e) => println!("listening on {addr} ({e})"),
    }
    let _ = std::io::stdout().flush();
    for stream in listener.incoming().flatten() {
        if let Err(e) = std::thread::Builder::new().spawn(move || serve(stream)) {
            eprintln!("floor_echo: no thread for a connection: {e}");
        }
    }
}

fn serve(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let Ok(mut ws) = tungstenite::accept_with_config(stream, Some(config)) else {
        return;
    };
    loop {
        match ws.read() {
            Ok(msg) if msg.is_text() || msg.is_binary() => {
                if ws.send(msg).is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

//! Helpers for the follow and stream tests: a server with a tail
//! directory, hub clients past their welcome, reading past presence news,
//! and writing to and following the files.
#![allow(dead_code)]

use crate::support::{next_json, next_of_type, send_json, Server};
use serde_json::Value;
use std::io::Write;
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use tungstenite::{Message, WebSocket};

/// A WebSocket client.
pub type Ws = WebSocket<TcpStream>;

/// Starts a server whose tail directory is `tail/` in its temporary
/// directory, and returns it with that directory's canonical path.
pub fn server_with_tail() -> (Server, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let tail = dir.path().join("tail");
    std::fs::create_dir(&tail).unwrap();
    let tail = tail.canonicalize().unwrap();
    let server = Server::start_in(dir, &["--tail-dir", tail.to_str().unwrap()]);
    (server, tail)
}

/// Connects hub client `id` and reads up to its welcome.
pub fn hub(server: &Server, id: &str) -> Ws {
    let mut ws = server.ws(&format!("/ws/chat/{id}"));
    next_of_type(&mut ws, "welcome");
    ws
}

/// The next message that is not another client's presence news.
pub fn next_msg(ws: &mut Ws) -> Value {
    loop {
        let v = next_json(ws);
        if v["type"] != "user_joined" && v["type"] != "user_left" {
            return v;
        }
    }
}

/// The next message (past presence news), which must be of type `ty`.
pub fn expect(ws: &mut Ws, ty: &str) -> Value {
    let v = next_msg(ws);
    assert_eq!(v["type"], ty, "{v}");
    v
}

/// Sends `msg`, which must be answered by an `error`; returns its code.
pub fn error_code(ws: &mut Ws, msg: Value) -> String {
    send_json(ws, msg.clone());
    let reply = next_msg(ws);
    assert_eq!(reply["type"], "error", "{msg} got {reply}");
    reply["code"].as_str().unwrap().to_string()
}

/// Sends a `follow` and returns its `following` reply.
pub fn follow(ws: &mut Ws, msg: Value) -> Value {
    send_json(ws, msg);
    expect(ws, "following")
}

/// The next message, which must be `data`: its payload and offset.
pub fn data(ws: &mut Ws) -> (String, u64) {
    let d = expect(ws, "data");
    (
        d["payload"].as_str().unwrap().to_string(),
        d["offset"].as_u64().unwrap(),
    )
}

/// Appends `text` to the file at `path`, creating it if need be.
pub fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// The file's identity as the server reports it: `dev:ino`.
pub fn epoch(path: &Path) -> String {
    let m = std::fs::metadata(path).unwrap();
    format!("{}:{}", m.dev(), m.ino())
}

/// Ends client number `i` of a leak test one of three ways, by `i % 3`:
/// sends `bye`, reads up to its `ack` and closes cleanly; closes cleanly
/// at once, in the middle of whatever it was doing; or just vanishes.
pub fn leave_one_of_three_ways(mut ws: Ws, i: usize, bye: Value, ack: &str) {
    match i % 3 {
        0 => {
            send_json(&mut ws, bye);
            next_of_type(&mut ws, ack);
            let _ = ws.close(None);
            while ws.read().is_ok() {}
        }
        1 => {
            let _ = ws.send(Message::Close(None));
            while ws.read().is_ok() {}
        }
        _ => drop(ws),
    }
}

//! `strand bench tail`: N followers connect to the JSON hub
//! (`/ws/chat/bench-tail-PID-I`) and send
//! `{"type":"follow","file":NAME,"from":"end"}`; once all are following,
//! the tool appends L stamped lines at R per second to `--file` (which must
//! lie in the server's `--tail-dir`; NAME is its file name), one `write`
//! per line. Each follower counts the `data` messages of that file:
//! append-to-delivery latency, lost and duplicated lines.

use crate::bench::client::{error_kind, Connector, Fleet, Limiter, Ready, Socket};
use crate::bench::fanout::pace;
use crate::bench::live::{Live, Progress};
use crate::bench::receivers::Receivers;
use crate::bench::report::Report;
use crate::bench::stats::{now_us, parse_stamp, stamp};
use crate::bench::{secs, Common};
use serde_json::{json, Value};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tungstenite::Message;

/// The flags of `strand bench tail`.
#[derive(Debug, Clone, clap::Args)]
pub struct TailArgs {
    /// The shared flags.
    #[command(flatten)]
    pub common: Common,
    /// The file to append to; it must be in the server's --tail-dir.
    #[arg(long, value_name = "PATH")]
    pub file: PathBuf,
    /// Followers, one thread each.
    #[arg(long, default_value_t = 10)]
    pub clients: usize,
    /// Lines to append.
    #[arg(long, default_value_t = 100)]
    pub lines: u64,
    /// Lines per second (0: as fast as possible).
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Bytes per line, without its newline.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Seconds to wait for late lines after the last one is appended.
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    pub grace: f64,
}

struct Run {
    connector: Connector,
    name: String,
    timeout: Duration,
    limiter: Limiter,
    live: Arc<Live>,
    rx: Receivers,
}

/// Runs the scenario.
pub fn run(a: &TailArgs) -> Result<Report, String> {
    a.common.unsegmented("tail")?;
    let connector = a.common.connector()?;
    let name = a
        .file
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("{} names no file", a.file.display()))?
        .to_string();
    // The file must exist before anyone follows it.
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&a.file)
        .map_err(|e| format!("cannot open {}: {e}", a.file.display()))?;
    let live = Live::new(a.clients as u64);
    let (rx, completions) = Receivers::new(a.lines);
    let run = Arc::new(Run {
        connector,
        name,
        timeout: a.common.timeout(),
        limiter: Limiter::new(a.common.connect_concurrency),
        live: live.clone(),
        rx,
    });
    let progress = Progress::start(&live, a.common.quiet);
    let r = run.clone();
    let fleet = Fleet::spawn(a.clients, "bench-tail", &live, move |i, ready| {
        follower(&r, i, ready)
    });
    let following = fleet.wait_ready();
    progress.note(&format!(
        "{following} of {} following {}",
        a.clients, run.name
    ));
    let first_append_us = now_us();
    let appended = if following > 0 {
        append(&mut file, a, &live)
    } else {
        0
    };
    run.rx
        .wait_complete(&completions, following, Instant::now() + secs(a.grace));
    fleet.join();
    drop(progress);

    let mut report = Report::new("tail", &run.connector.target.url("/ws/chat/bench-tail-N"));
    report.add(
        "file",
        a.file.display().to_string(),
        "file",
        json!(a.file.display().to_string()),
    );
    report.count("followers", "clients", a.clients as u64);
    report.count("following", "following", following as u64);
    report.set_connected(following as u64);
    report.subprotocol(&run.connector);
    report.count("lines appended", "appended", appended);
    report.real("offered rate (lines/s)", "rate", a.rate, 1);
    run.rx.report(&mut report, first_append_us);
    report.run_of(&live, Some(&run.rx.latency));
    Ok(report)
}

/// Appends the stamped lines, one write each; returns how many.
fn append(file: &mut File, a: &TailArgs, live: &Live) -> u64 {
    let start = Instant::now();
    for seq in 0..a.lines {
        pace(start, seq, a.rate);
        let mut line = stamp(seq, now_us(), a.size);
        line.push('\n');
        if let Err(e) = file.write_all(line.as_bytes()) {
            live.error(format!("append: {e}"));
            return seq;
        }
    }
    a.lines
}

fn follower(run: &Run, index: usize, ready: Ready) {
    let path = format!("/ws/chat/bench-tail-{}-{index}", std::process::id());
    let connected = {
        let _permit = run.limiter.acquire();
        run.connector
            .connect(&path, run.timeout)
            .map_err(|e| (e.kind, e.body))
            .and_then(|ws| follow(ws, &run.name).map_err(|k| (k, None)))
    };
    let ws = match connected {
        Ok(ws) => ws,
        Err((kind, body)) => {
            run.live
                .connect_error(&crate::bench::client::ConnectError { kind, body });
            return ready.failed();
        }
    };
    run.rx.receive(ws, index, ready, &run.live, false, |text| {
        data_line(text, &run.name)
    });
}

/// Sends `follow` and waits for `following`; an `error` reply fails.
fn follow(mut ws: Socket, name: &str) -> Result<Socket, String> {
    let request = json!({"type": "follow", "file": name, "from": "end"});
    ws.send(Message::text(request.to_string()))
        .map_err(|e| error_kind(&e))?;
    loop {
        let text = match ws.read() {
            Ok(Message::Text(t)) => t,
            Ok(Message::Close(_)) => return Err("closed by server".into()),
            Ok(_) => continue,
            Err(e) => return Err(error_kind(&e)),
        };
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        match v["type"].as_str() {
            Some("following") if v["file"] == name => return Ok(ws),
            Some("error") => {
                return Err(format!("follow: {}", v["code"].as_str().unwrap_or("?")));
            }
            _ => {}
        }
    }
}

/// The stamp of a `data` message of file `name`, if `text` is one.
pub fn data_line(text: &str, name: &str) -> Option<(u64, u64)> {
    // Cheap test first: most hub traffic is not a data line.
    if !text.contains("\"data\"") {
        return None;
    }
    let v: Value = serde_json::from_str(text).ok()?;
    if v["type"] != "data" || v["file"] != name {
        return None;
    }
    parse_stamp(v["payload"].as_str()?, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_lines_of_the_followed_file_only() {
        let line = stamp(3, 99, 20);
        let msg = json!({"type":"data","file":"a.log","payload":line,"offset":10}).to_string();
        assert_eq!(data_line(&msg, "a.log"), Some((3, 99)));
        assert_eq!(data_line(&msg, "b.log"), None);
        let other = json!({"type":"user_joined","client_id":"data"}).to_string();
        assert_eq!(data_line(&other, "a.log"), None);
        let foreign = json!({"type":"data","file":"a.log","payload":"hello"}).to_string();
        assert_eq!(data_line(&foreign, "a.log"), None);
    }
}

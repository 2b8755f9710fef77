//! The data directory stays bounded and usable: spools of clients not
//! seen for `--spool-retention` are deleted, the spools together stay
//! under `--data-max-bytes` (oldest first), a running stream's spool is
//! never deleted; an unusable `--data-dir` or `--tail-dir` is refused at
//! start; and when the OS refuses a stream's threads or process, `start`
//! (and `follow`) get `unavailable` and nothing is left behind.
mod follow_util;
mod support;

use follow_util::{error_code, hub, next_msg};
use serde_json::json;
use std::path::Path;
use std::process::Command;
use support::{send_json, Server};

fn refused(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_strand"))
        .args(["serve", "--bind", "127.0.0.1:0"])
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "started with {args:?}");
    assert_eq!(out.status.code(), Some(1), "{args:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn unusable_directories_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let file = file.to_str().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    for (args, says) in [
        (
            vec!["--data-dir", "/proc/xx"],
            "--data-dir /proc/xx is not usable: cannot create it",
        ),
        (
            vec!["--data-dir", "/proc"],
            "--data-dir /proc is not usable: cannot create a file in it",
        ),
        (vec!["--data-dir", file], "is not usable"),
        (
            vec!["--data-dir", data, "--tail-dir", "/proc/xx"],
            "--tail-dir /proc/xx is not usable",
        ),
        (
            vec!["--data-dir", data, "--tail-dir", file],
            "not a directory",
        ),
    ] {
        let err = refused(&args);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // A data directory that does not exist yet is created.
    let server = Server::start(&[]);
    assert!(server.dir.path().join("data").is_dir());
}

/// Waits for `path` to disappear.
fn wait_gone(server: &Server, path: &Path) {
    server.wait_until(&format!("{} to be deleted", path.display()), || {
        !path.exists()
    });
}

#[test]
fn spools_past_retention_go_but_a_running_streams_stays() {
    let server = Server::start(&[
        "--spool-retention",
        "1",
        "--producer",
        "quiet=echo hi; exec sleep 60",
    ]);
    let data = server.dir.path().join("data");
    // `busy` writes one line and then nothing: old by mtime, but running.
    let mut busy = hub(&server, "busy");
    send_json(&mut busy, json!({"type": "start", "producer": "quiet"}));
    assert_eq!(next_msg(&mut busy)["type"], "started");
    assert_eq!(next_msg(&mut busy)["payload"], "hi");
    // `gone` runs a stream after that and stops it.
    let mut gone = hub(&server, "gone");
    send_json(&mut gone, json!({"type": "start", "interval_ms": 5}));
    let first = next_msg(&mut gone);
    assert_eq!(first["type"], "started");
    assert_eq!(next_msg(&mut gone)["type"], "data");
    send_json(&mut gone, json!({"type": "stop"}));
    loop {
        if next_msg(&mut gone)["type"] == "stopped" {
            break;
        }
    }
    assert!(data.join("gone.spool").exists());
    // `gone` is deleted a second after its stream stopped; `busy`, idle
    // for longer, was in the same sweep and kept.
    wait_gone(&server, &data.join("gone.spool"));
    assert!(data.join("busy.spool").exists());
    assert!(server.metric("strand_spools_deleted_total{reason=\"retention\"}") >= 1.0);
    send_json(&mut busy, json!({"type": "stop"}));
    let stopped = loop {
        let v = next_msg(&mut busy);
        if v["type"] == "stopped" {
            break v;
        }
    };
    assert_eq!(stopped["lines"], 1);
    // Once stopped, it ages like any other.
    wait_gone(&server, &data.join("busy.spool"));
    // A client whose spool was deleted starts afresh.
    send_json(
        &mut gone,
        json!({"type": "start", "interval_ms": 5, "from": 0}),
    );
    let started = next_msg(&mut gone);
    assert_eq!(started["type"], "started");
    assert_ne!(started["epoch"], first["epoch"], "a new spool file");
    assert_eq!(next_msg(&mut gone)["offset"], 24, "nothing replayed");
}

/// Runs a fast stream for `id` until its spool rotated once (more than
/// `--spool-max-bytes` on disk), then stops it.
fn fill_spool(server: &Server, id: &str) {
    let mut ws = hub(server, id);
    send_json(&mut ws, json!({"type": "start", "interval_ms": 1}));
    assert_eq!(next_msg(&mut ws)["type"], "started");
    let mut epochs = std::collections::HashSet::new();
    while epochs.len() < 2 {
        let v = next_msg(&mut ws);
        epochs.insert(v["epoch"].as_str().unwrap().to_string());
    }
    send_json(&mut ws, json!({"type": "stop"}));
    while next_msg(&mut ws)["type"] != "stopped" {}
}

#[test]
fn the_data_directory_keeps_its_budget_oldest_first() {
    let server = Server::start(&["--spool-max-bytes", "1024", "--data-max-bytes", "3000"]);
    let data = server.dir.path().join("data");
    // Something that is not a spool is neither counted nor deleted.
    std::fs::write(data.join("notes.txt"), "x".repeat(10_000)).unwrap();
    for id in ["c1", "c2", "c3", "c4"] {
        fill_spool(&server, id);
    }
    // Each client holds over 1 KiB: the budget keeps the newest two.
    wait_gone(&server, &data.join("c2.spool"));
    assert!(!data.join("c1.spool").exists() && !data.join("c1.spool.1").exists());
    assert!(data.join("c4.spool").exists() && data.join("c4.spool.1").exists());
    assert!(data.join("notes.txt").exists());
    server.wait_until("the budget to be kept", || {
        let bytes = server.metric("strand_data_dir_bytes");
        bytes > 0.0 && bytes <= 3000.0
    });
    assert!(server.metric("strand_spools_deleted_total{reason=\"budget\"}") >= 2.0);
    assert_eq!(
        server.metric("strand_spools_deleted_total{reason=\"retention\"}"),
        0.0
    );
}

#[test]
fn a_stream_the_os_refuses_gets_unavailable_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let tail = dir.path().join("tail");
    std::fs::create_dir(&tail).unwrap();
    std::fs::write(tail.join("app.log"), "one\n").unwrap();
    let tail = tail.to_str().unwrap().to_string();
    // A user of its own, so that RLIMIT_NPROC counts this server's threads
    // and nothing else.
    let uid = 47_000 + std::process::id() % 1000;
    let Some(server) = Server::start_as_user(
        uid,
        &[
            "--tail-dir",
            &tail,
            "--producer",
            "tick=echo tick; sleep 60",
        ],
    ) else {
        eprintln!("skipped: only root can run the server as a user of its own");
        return;
    };
    let mut ws = hub(&server, "refused");
    let threads = server.threads();
    let fds = server.fds();
    // Not one more task for this user: every new thread or process fails.
    let pid = server.pid().to_string();
    let limit = |n: &str| {
        // As the same user: root may not change another user's limits here.
        let ok = Command::new("setpriv")
            .args([&format!("--reuid={uid}"), &format!("--regid={uid}")])
            .args(["--clear-groups", "--", "prlimit", "--pid", &pid])
            .arg(format!("--nproc={n}"))
            .status()
            .unwrap();
        assert!(ok.success());
    };
    // The soft limit only: lowering the hard one could not be undone here
    // (raising a hard limit needs CAP_SYS_RESOURCE in the host's namespace).
    let hard = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let hard = hard
        .lines()
        .find(|l| l.starts_with("Max processes"))
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap()
        .to_string();
    limit(&format!("{threads}:"));
    for (start, what) in [
        (json!({"type": "start", "interval_ms": 5}), "stream threads"),
        (json!({"type": "start", "producer": "tick"}), "producer"),
        (
            json!({"type": "follow", "file": "app.log"}),
            "tailer thread",
        ),
    ] {
        assert_eq!(error_code(&mut ws, start), "unavailable", "{what}");
        assert_eq!(server.threads(), threads, "{what}");
        assert_eq!(support::children(server.pid()), 0, "{what}");
    }
    assert_eq!(server.fds(), fds);
    assert_eq!(error_code(&mut ws, json!({"type": "stop"})), "not_running");
    // The connection is fine, and with the limit lifted the stream starts.
    limit(&format!("{hard}:"));
    send_json(&mut ws, json!({"type": "start", "producer": "tick"}));
    assert_eq!(next_msg(&mut ws)["type"], "started");
    assert_eq!(next_msg(&mut ws)["payload"], "tick");
    send_json(&mut ws, json!({"type": "stop"}));
    assert_eq!(next_msg(&mut ws)["type"], "stopped");
    server.wait_threads(threads);
    assert_eq!(support::children(server.pid()), 0);
}

#[test]
fn a_spool_that_cannot_be_written_ends_the_stream_with_spool_error() {
    let server = Server::start(&["--spool-max-bytes", "1024"]);
    let data = server.dir.path().join("data");
    let mut ws = hub(&server, "doomed");
    send_json(&mut ws, json!({"type": "start", "interval_ms": 2}));
    assert_eq!(next_msg(&mut ws)["type"], "started");
    assert_eq!(next_msg(&mut ws)["type"], "data");
    // The directory goes away: the next rotation cannot rename the spool.
    std::fs::remove_dir_all(&data).unwrap();
    let mut data_lines = 1;
    let stopped = loop {
        let v = next_msg(&mut ws);
        match v["type"].as_str() {
            Some("data") => data_lines += 1,
            Some("stopped") => break v,
            _ => panic!("unexpected {v}"),
        }
    };
    assert_eq!(stopped["reason"], "spool_error", "{stopped}");
    assert_eq!(
        stopped["lines"], data_lines,
        "every line written was sent first"
    );
    assert!(stopped["message"].as_str().unwrap().contains("spool"));
    // The stream is over; a new one starts (the directory is made again).
    assert_eq!(error_code(&mut ws, json!({"type": "stop"})), "not_running");
    send_json(&mut ws, json!({"type": "start", "interval_ms": 50}));
    assert_eq!(next_msg(&mut ws)["type"], "started");
    assert!(data.join("doomed.spool").exists());
}

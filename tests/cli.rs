//! The command line: help, environment variables (the flag wins), and
//! refusing bad values with a clear message rather than ignoring them.
mod support;

use std::process::Command;
use support::Server;

fn strand(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_strand"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn help_lists_subcommands_flags_and_their_environment_variables() {
    let out = strand(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "serve",
        "bench",
        "--max-connections",
        "STRAND_MAX_CONNECTIONS",
        "--jwt-secret",
        "[default: 127.0.0.1:8000]",
    ] {
        assert!(text.contains(needle), "help lacks {needle}:\n{text}");
    }
}

#[test]
fn bad_redis_flags_refuse_to_start_and_say_why() {
    for (args, needle) in [
        (&["--redis", "http://127.0.0.1:6379"][..], "--redis"),
        (
            &["--redis", "redis://127.0.0.1:1", "--redis-prefix", "a b"],
            "--redis-prefix",
        ),
        (
            &[
                "--redis",
                "redis://127.0.0.1:1",
                "--redis-presence-ttl",
                "0",
            ],
            "--redis-presence-ttl",
        ),
    ] {
        let mut all = vec!["serve", "--bind", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let out = strand(&all);
        assert!(!out.status.success(), "{args:?} started");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn bad_values_are_refused_with_a_usage_error() {
    let out = strand(&["--max-connections", "lots"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("auto"));
    let out = strand(&["--producer", "no-equals-sign"]);
    assert_eq!(out.status.code(), Some(2));
}

fn second_upgrade_status(server: &Server) -> u16 {
    let _first = server.ws("/ws");
    match server.try_ws("/ws") {
        Ok(_) => 101,
        Err(tungstenite::Error::Http(r)) => r.status().as_u16(),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn environment_variables_configure_and_flags_win() {
    let server = Server::start_env(&[("STRAND_MAX_CONNECTIONS", "1")], &[]);
    assert_eq!(second_upgrade_status(&server), 503);
    let server = Server::start_env(
        &[("STRAND_MAX_CONNECTIONS", "1")],
        &["--max-connections", "5"],
    );
    assert_eq!(second_upgrade_status(&server), 101);
}

#[test]
fn serve_logs_the_auto_ceiling_and_its_reason() {
    let server = Server::start(&[]);
    let line = server.wait_log("max connections:");
    assert!(line.contains("auto; bound by"), "{line}");
}

#[test]
fn bare_strand_with_no_subcommand_serves() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_strand"))
        .args(["--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let listening = stderr
        .lines()
        .map_while(Result::ok)
        .find(|l| l.contains("listening on "));
    let _ = child.kill();
    let _ = child.wait();
    assert!(listening.is_some(), "bare strand did not start serving");
}

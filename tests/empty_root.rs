//! The static binary alone in an empty directory, run there under `chroot`
//! (what a `FROM scratch` container holds: no loader, no libc, no /proc),
//! as root or, for another user, in a user namespace of its own:
//! it starts, serves `/healthz`, the page and an echo, says which OS limits
//! it could not read, and stops cleanly.
//!
//! The binary is built here by the README's command, `cargo static`, in the
//! dev profile rather than `--release`: static linking, the property under
//! test, is the same in both, and the release build (LTO, one codegen unit)
//! measured 148 s from scratch against 75 s, and ~50 s against ~2 s after a
//! source change, on this project's 2-core machine.
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use support::Server;
use tungstenite::Message;

#[test]
fn heavy_the_static_binary_serves_from_an_empty_root() {
    if !cfg!(all(
        target_os = "linux",
        target_arch = "x86_64",
        target_env = "gnu"
    )) {
        eprintln!("skipped: `cargo static` builds for x86_64-unknown-linux-gnu only");
        return;
    }
    // The check below can fail: the test's own binary is dynamic.
    assert!(has_program_interpreter(Path::new(env!(
        "CARGO_BIN_EXE_strand"
    ))));
    let binary = build_static();
    assert!(
        !has_program_interpreter(&binary),
        "{} asks for a dynamic loader",
        binary.display()
    );

    let root = tempfile::tempdir().unwrap();
    std::fs::copy(&binary, root.path().join("strand")).unwrap();
    assert_eq!(entries(root.path()), ["strand"]);
    let Some(launcher) = enter_root(root.path()) else {
        return;
    };
    let mut server = Server::start_command(root, launcher, Path::new("/data"), &[]);

    let limits = server.wait_log("max connections:");
    assert!(
        limits.contains(
            "unreadable here: kernel.pid_max, kernel.threads-max, vm.max_map_count, cgroup pids.max"
        ),
        "{limits}"
    );

    let (status, body) = server.http("GET", "/healthz", &[], "");
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");

    let (status, head, page) = server.http_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/html"),
        "{head}"
    );
    assert!(page.contains("<html"), "not the page: {page:.200}");

    let mut ws = server.ws("/ws");
    ws.send(Message::text("from an empty root")).unwrap();
    assert_eq!(support::next_text(&mut ws), "from an empty root");

    server.signal(libc::SIGTERM);
    assert_eq!(support::close_code(&mut ws), 1001);
    while ws.read().is_ok() {} // flushes the reply to the close
    assert_eq!(server.wait_exit().code(), Some(0), "{}", server.log_text());
}

/// A command that runs `/strand` with `root` as its root directory:
/// `chroot` as root, else `unshare -r chroot`, root in a user namespace of
/// its own (where the kernel allows one). `None`, after saying why, when
/// neither can enter it; a binary that cannot start there fails the test.
fn enter_root(root: &Path) -> Option<Command> {
    let launchers: [&[&str]; 2] = [&["chroot"], &["unshare", "--map-root-user", "chroot"]];
    let mut refusals = Vec::new();
    for launcher in launchers {
        let command = || {
            let mut c = Command::new(launcher[0]);
            c.args(&launcher[1..]).arg(root).arg("/strand");
            c
        };
        let probe = command().arg("--version").output();
        let probe = match probe {
            Ok(probe) => probe,
            Err(e) => {
                refusals.push(format!("{}: {e}", launcher.join(" ")));
                continue;
            }
        };
        let stderr = String::from_utf8_lossy(&probe.stderr);
        if probe.status.success() {
            let stdout = String::from_utf8_lossy(&probe.stdout);
            assert!(stdout.starts_with("strand "), "{stdout}");
            return Some(command());
        }
        // The launcher could not enter the root (no privilege, no user
        // namespaces), as opposed to the binary failing inside it.
        if stderr.contains("cannot change root directory") || stderr.starts_with("unshare:") {
            refusals.push(stderr.trim().to_string());
            continue;
        }
        panic!("in the empty root, `{}`: {stderr}", launcher.join(" "));
    }
    eprintln!("skipped: cannot enter an empty root here: {refusals:?}");
    None
}

/// Builds the static binary with the README's `cargo static`, in a target
/// directory of its own so it never waits on the lock of the one running
/// these tests.
fn build_static() -> PathBuf {
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("static");
    let status = Command::new(env!("CARGO"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["static", "--quiet", "--target-dir"])
        .arg(&target_dir)
        .status()
        .expect("run cargo");
    assert!(status.success(), "cargo static failed");
    target_dir.join("x86_64-unknown-linux-gnu/debug/strand")
}

/// Whether the ELF file names a program interpreter (PT_INTERP): the
/// dynamic loader an empty root does not have.
fn has_program_interpreter(path: &Path) -> bool {
    let elf = std::fs::read(path).unwrap();
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF file");
    let u16_at = |at: usize| u16::from_le_bytes(elf[at..at + 2].try_into().unwrap()) as usize;
    let u64_at = |at: usize| u64::from_le_bytes(elf[at..at + 8].try_into().unwrap()) as usize;
    let (table, entry_size, count) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    const PT_INTERP: u32 = 3;
    (0..count).any(|i| {
        let at = table + i * entry_size;
        u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) == PT_INTERP
    })
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

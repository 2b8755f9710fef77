//! Named producers: a command from the server's own configuration
//! (`--producer NAME=COMMAND`, never one named by a client), run with
//! `sh -c` in its own process group so that stopping it also stops whatever
//! it started (a pipeline, a `tail -f`), and always reaped.
//!
//! This module owns the child process; the writer thread reads its stdout,
//! a small logger thread its stderr.

use rustix::process::{kill_process_group, Pid, Signal};
use std::io::{self, BufRead, BufReader};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// `--producer NAME=COMMAND`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerSpec {
    /// The name a client gives in `start`.
    pub name: String,
    /// The command line, run by `sh -c`.
    pub command: String,
}

impl std::str::FromStr for ProducerSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, command) = s
            .split_once('=')
            .ok_or_else(|| format!("expected NAME=COMMAND, got {s:?}"))?;
        if !crate::names::is_valid(name) {
            return Err(format!(
                "producer name {name:?} must be 1-64 of A-Z a-z 0-9 _ . - (not starting with .)"
            ));
        }
        if command.trim().is_empty() {
            return Err(format!("producer {name:?} has an empty command"));
        }
        Ok(ProducerSpec {
            name: name.to_string(),
            command: command.to_string(),
        })
    }
}

/// How long a producer may take to exit after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_millis(300);

/// A running producer process.
#[derive(Debug)]
pub struct Producer {
    /// The producer's configured name.
    pub name: String,
    child: Mutex<Child>,
    group: Option<Pid>,
    reaped: Mutex<Option<ExitStatus>>,
}

impl Producer {
    /// Starts `command` for `client_id`; returns the producer, its stdout,
    /// and the thread that logs its stderr (joined by the caller).
    pub fn spawn(
        name: &str,
        command: &str,
        client_id: &str,
    ) -> io::Result<(Producer, ChildStdout, JoinHandle<()>)> {
        use std::os::unix::process::CommandExt;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(command)
            .env("STRAND_CLIENT_ID", client_id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()?;
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let group = Pid::from_raw(child.id() as i32);
        let producer = Producer {
            name: name.to_string(),
            child: Mutex::new(child),
            group,
            reaped: Mutex::new(None),
        };
        let label = format!("producer {name} of {client_id}");
        let logger = std::thread::Builder::new()
            .name("producer-stderr".into())
            .stack_size(64 * 1024)
            .spawn(move || log_stderr(stderr, &label));
        match logger {
            Ok(logger) => Ok((producer, stdout, logger)),
            Err(e) => {
                producer.terminate();
                producer.reap();
                Err(e)
            }
        }
    }

    /// The exit status if the producer has exited (reaping it), else `None`.
    pub fn try_reap(&self) -> Option<ExitStatus> {
        let mut reaped = self.reaped.lock().unwrap_or_else(|e| e.into_inner());
        if reaped.is_none() {
            let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
            *reaped = child.try_wait().ok().flatten();
        }
        *reaped
    }

    /// Sends SIGTERM to the producer's process group, unless it has already
    /// been reaped (its pid could then belong to someone else).
    pub fn terminate(&self) {
        self.signal(Signal::TERM);
    }

    /// After [`Producer::terminate`]: waits a short grace for the producer
    /// to exit, then sends SIGKILL to its whole group (stragglers that
    /// ignored SIGTERM or outlived `sh`) and reaps it. The group is killed
    /// while `sh` is a zombie, not yet reaped, so its id cannot have been
    /// reused. Afterwards nothing of the group holds its stdout open.
    pub fn reap(&self) -> Option<ExitStatus> {
        let deadline = Instant::now() + TERM_GRACE;
        let pid = self.group.map_or(0, |p| p.as_raw_nonzero().get());
        while Instant::now() < deadline && !exited(pid) {
            std::thread::sleep(Duration::from_millis(2));
        }
        self.signal(Signal::KILL);
        let mut reaped = self.reaped.lock().unwrap_or_else(|e| e.into_inner());
        if reaped.is_none() {
            let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
            *reaped = child.wait().ok();
        }
        *reaped
    }

    fn signal(&self, signal: Signal) {
        // Holding `reaped` keeps the pid ours while we signal it.
        let reaped = self.reaped.lock().unwrap_or_else(|e| e.into_inner());
        if reaped.is_none() {
            if let Some(group) = self.group {
                // ESRCH: the whole group is gone already; nothing to do.
                let _ = kill_process_group(group, signal);
            }
        }
    }
}

/// Whether process `pid` has exited (is a zombie, or gone), read from
/// /proc without reaping it.
fn exited(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => matches!(
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next()),
            None | Some("Z" | "X")
        ),
        Err(_) => true,
    }
}

fn log_stderr(stderr: ChildStderr, label: &str) {
    for line in BufReader::new(stderr).lines() {
        match line {
            Ok(line) => log::warn!("{label}: {line}"),
            Err(_) => break,
        }
    }
}

/// A sentence for people saying how the producer ended.
pub fn describe_exit(status: Option<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Some(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(sig)) => format!("was killed by signal {sig}"),
            _ => "exited".to_string(),
        },
        None => "exited".to_string(),
    }
}

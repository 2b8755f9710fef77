//! What strand takes from and tells a service manager (systemd, or any
//! launcher speaking its protocols): the listening socket it passes
//! (`LISTEN_FDS`, socket activation) and the notices that strand is ready
//! and that it is stopping (`NOTIFY_SOCKET`, `Type=notify`).
//!
//! With neither variable set every function here does nothing, so a plain
//! `strand serve` binds `--bind` as before. It knows nothing of the server
//! it serves for: the binary calls it around the accept loop.

use sd_notify::NotifyState;
use std::net::TcpListener;

/// The listening TCP socket passed through `LISTEN_FDS`, if any.
///
/// Call it before any thread starts: it clears `LISTEN_FDS` and
/// `LISTEN_PID` from the environment so children do not inherit them. A
/// passed descriptor that is not a listening TCP socket is an error
/// rather than something to bind around.
pub fn inherited_listener() -> Result<Option<TcpListener>, String> {
    let mut fds = listenfd::ListenFd::from_env();
    if fds.len() == 0 {
        return Ok(None);
    }
    let listener = fds
        .take_tcp_listener(0)
        .map_err(|e| format!("LISTEN_FDS: the first passed descriptor: {e}"))?
        .ok_or("LISTEN_FDS: no first descriptor")?;
    // A socket unit with Accept=yes passes one connection, not a listener.
    match rustix::net::sockopt::socket_acceptconn(&listener) {
        Ok(true) => {}
        Ok(false) => {
            return Err(
                "LISTEN_FDS: the passed TCP socket is not listening (socket unit with Accept=yes?)"
                    .into(),
            )
        }
        Err(e) => return Err(format!("LISTEN_FDS: the passed socket: {e}")),
    }
    if fds.len() > 1 {
        log::warn!(
            "LISTEN_FDS passed {} sockets; strand serves the first only",
            fds.len()
        );
    }
    Ok(Some(listener))
}

/// Tells the service manager that strand accepts connections on `addr`.
pub fn notify_ready(addr: &str) {
    let status = format!("listening on {addr}");
    send(&[NotifyState::Ready, NotifyState::Status(&status)]);
}

/// Tells the service manager that strand is closing its connections and
/// will exit.
pub fn notify_stopping() {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("closing connections with 1001"),
    ]);
}

fn send(states: &[NotifyState]) {
    // Keep NOTIFY_SOCKET set: the stopping notice comes later.
    if let Err(e) = sd_notify::notify(false, states) {
        log::warn!("cannot notify the service manager: {e}");
    }
}

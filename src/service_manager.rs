//! What strand takes from and tells a service manager (systemd, or any
//! launcher speaking its protocols): the listening sockets it passes
//! (`LISTEN_FDS`, socket activation; one named `acme-http` in
//! `LISTEN_FDNAMES` serves ACME's `http-01`) and the notices that strand is ready
//! and that it is stopping (`NOTIFY_SOCKET`, `Type=notify`).
//!
//! With neither variable set every function here does nothing, so a plain
//! `strand serve` binds `--bind` as before. It knows nothing of the server
//! it serves for: the binary calls it around the accept loop.

use sd_notify::NotifyState;
use std::net::TcpListener;

/// The name (`FileDescriptorName=` in a socket unit, `--fdname` of
/// `systemd-socket-activate`) of a passed socket that serves ACME's
/// `http-01` instead of `--acme-http`.
pub const ACME_HTTP_FDNAME: &str = "acme-http";

/// The listening sockets passed through `LISTEN_FDS`.
#[derive(Debug, Default)]
pub struct Inherited {
    /// The serving socket: the first not named [`ACME_HTTP_FDNAME`].
    pub serving: Option<TcpListener>,
    /// The socket named [`ACME_HTTP_FDNAME`] (`LISTEN_FDNAMES`), if any.
    pub acme_http: Option<TcpListener>,
}

/// The listening TCP socket passed through `LISTEN_FDS`, if any: see
/// [`inherited_listeners`].
pub fn inherited_listener() -> Result<Option<TcpListener>, String> {
    inherited_listeners().map(|inherited| inherited.serving)
}

/// The listening TCP sockets passed through `LISTEN_FDS`, by their names
/// in `LISTEN_FDNAMES`.
///
/// Call it before any thread starts: it clears `LISTEN_FDS`,
/// `LISTEN_PID` and `LISTEN_FDNAMES` from the environment so children do
/// not inherit them. A passed descriptor that is not a listening TCP
/// socket is an error rather than something to bind around.
pub fn inherited_listeners() -> Result<Inherited, String> {
    let names = std::env::var("LISTEN_FDNAMES").unwrap_or_default();
    std::env::remove_var("LISTEN_FDNAMES");
    let mut fds = listenfd::ListenFd::from_env();
    let mut inherited = Inherited::default();
    let mut unused = 0;
    for (i, name) in (0..fds.len()).zip(names.split(':').chain(std::iter::repeat(""))) {
        let listener = fds
            .take_tcp_listener(i)
            .map_err(|e| format!("LISTEN_FDS: passed descriptor {}: {e}", i + 3))?
            .ok_or_else(|| format!("LISTEN_FDS: no descriptor {}", i + 3))?;
        // A socket unit with Accept=yes passes one connection, not a listener.
        match rustix::net::sockopt::socket_acceptconn(&listener) {
            Ok(true) => {}
            Ok(false) => return Err(
                "LISTEN_FDS: the passed TCP socket is not listening (socket unit with Accept=yes?)"
                    .into(),
            ),
            Err(e) => return Err(format!("LISTEN_FDS: the passed socket: {e}")),
        }
        if name == ACME_HTTP_FDNAME && inherited.acme_http.is_none() {
            inherited.acme_http = Some(listener);
        } else if inherited.serving.is_none() {
            inherited.serving = Some(listener);
        } else {
            unused += 1;
        }
    }
    if unused > 0 {
        log::warn!(
            "LISTEN_FDS passed {} sockets; strand serves the first, and ACME http-01 on one named {ACME_HTTP_FDNAME:?}; {unused} unused",
            fds.len()
        );
    }
    Ok(inherited)
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

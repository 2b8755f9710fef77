//! Routing: which endpoint a request asks for, and the checks every
//! WebSocket upgrade passes (names, method, upgrade headers, origin, token,
//! connection limit) before the handshake is answered.
//!
//! [`route`] is pure (a path and method in, a [`Route`] or an error answer
//! out); [`handle`] does the I/O for one connection.

use crate::http::door::Arrival;
use crate::http::door::IpSlot;
use crate::http::request::ReadError;
use crate::http::response::{over_capacity, switching_protocols};
use crate::http::{access, Request, Response};
use crate::names;
use crate::session;
use crate::shared::Shared;
use crate::ws::conn;
use crate::ws::readiness::{Key, Readiness};
use crate::ws::Handler;
use rustls::ServerConnection;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::Ordering::{AcqRel, Relaxed};
use std::sync::Arc;

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /`: the web page.
    Page,
    /// `GET /healthz`.
    Health,
    /// `GET /metrics`.
    Metrics,
    /// `GET /rooms`, `GET /rooms/{room}/count`, `POST /broadcast`.
    RoomApi,
    /// `GET /files`.
    Files,
    /// A WebSocket endpoint.
    Ws(WsRoute),
}

/// The WebSocket endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsRoute {
    /// `/ws`: echo.
    Echo,
    /// `/ws/{room}/{user}`: a plain-text room.
    TextRoom {
        /// The room.
        room: String,
        /// The member's name.
        user: String,
    },
    /// `/ws/chat/{client_id}`: the JSON hub.
    Hub {
        /// The client's id.
        client_id: String,
    },
}

impl WsRoute {
    /// The name a JWT's `sub` must match, if this endpoint has one.
    pub fn identity(&self) -> Option<&str> {
        match self {
            WsRoute::Echo => None,
            WsRoute::TextRoom { user, .. } => Some(user),
            WsRoute::Hub { client_id } => Some(client_id),
        }
    }
}

/// Finds the route of `method` and `path`, or the error answer.
pub fn route(method: &str, path: &str) -> Result<Route, Response> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (route, methods): (Route, &[&str]) = match segments.as_slice() {
        [""] => (Route::Page, &["GET"]),
        ["healthz"] => (Route::Health, &["GET"]),
        ["metrics"] => (Route::Metrics, &["GET"]),
        ["rooms"] => (Route::RoomApi, &["GET"]),
        ["rooms", room, "count"] => {
            check_name(room)?;
            (Route::RoomApi, &["GET"])
        }
        ["broadcast"] => (Route::RoomApi, &["POST"]),
        ["files"] => (Route::Files, &["GET"]),
        ["ws"] => (Route::Ws(WsRoute::Echo), &["GET"]),
        ["ws", "chat", client_id] => {
            check_name(client_id)?;
            let client_id = client_id.to_string();
            (Route::Ws(WsRoute::Hub { client_id }), &["GET"])
        }
        ["ws", room, user] if *room != "chat" => {
            check_name(room)?;
            check_name(user)?;
            let (room, user) = (room.to_string(), user.to_string());
            (Route::Ws(WsRoute::TextRoom { room, user }), &["GET"])
        }
        _ => return Err(Response::error(404, &format!("no such path: {path}"))),
    };
    if !methods.contains(&method) {
        return Err(
            Response::error(405, &format!("{method} is not allowed on {path}"))
                .header(format!("Allow: {}", methods.join(", "))),
        );
    }
    Ok(route)
}

fn check_name(name: &str) -> Result<(), Response> {
    if names::is_valid(name) {
        Ok(())
    } else {
        Err(Response::error(
            400,
            &format!("bad name {name:?}: use 1-64 of A-Z a-z 0-9 _ . - (not starting with .)"),
        ))
    }
}

/// A WebSocket upgrade that passed every check and holds its connection
/// slot, ready for [`serve_websocket`].
pub struct Upgrade {
    stream: TcpStream,
    /// The socket's registration with the readiness thread, handed on
    /// (`None`: not registered yet).
    key: Option<Key>,
    /// The TLS session, on a TLS port.
    tls: Option<Box<ServerConnection>>,
    ready: Ready,
}

/// What an upgrade needs besides its socket.
struct Ready {
    id: u64,
    _slot: IpSlot,
    leftover: Vec<u8>,
    handshake: Vec<u8>,
    session: Box<dyn Handler>,
}

/// Answers one connection's request, read by the door
/// ([`crate::http::door`]), or returns the WebSocket upgrade it asks for.
/// The upgrade is returned, not served from here, so that the request's
/// stack frames are gone while the connection loop runs: a thread keeps
/// every stack page it ever touched, and these frames would push an idle
/// connection onto a third page.
#[inline(never)]
pub fn handle(shared: &Arc<Shared>, arrival: Arrival) -> Option<Upgrade> {
    let Arrival {
        stream,
        key,
        request,
        slot,
        tls,
    } = arrival;
    let stream = Answering { stream, tls };
    let readiness = &shared.conn_params.readiness;
    let request = match request {
        Ok(r) => Ok(r),
        Err(ReadError::Io(e)) => {
            log::debug!("request not read: {e}");
            return None;
        }
        Err(ReadError::HeadTooLarge) => Err(Response::error(431, "request head over 8 KiB")),
        Err(ReadError::BodyTooLarge) => Err(Response::error(413, "request body over 64 KiB")),
        Err(ReadError::Malformed(why)) => {
            Err(Response::error(400, &format!("malformed request: {why}")))
        }
    };
    let request = match request {
        Ok(request) => request,
        Err(response) => {
            forget(readiness, &stream, key);
            refuse_unread(shared, stream, response);
            return None;
        }
    };
    match route(&request.method, &request.path) {
        Ok(Route::Ws(ws)) => match upgrade(shared, slot, request, ws) {
            Ok(ready) => Some(Upgrade {
                stream: stream.stream,
                key,
                tls: stream.tls,
                ready,
            }),
            Err(response) => {
                forget(readiness, &stream, key);
                answer(shared, stream, response);
                None
            }
        },
        routed => {
            forget(readiness, &stream, key);
            respond(shared, stream, &request, routed);
            None
        }
    }
}

/// Removes the socket's registration with the readiness thread, if any.
fn forget(readiness: &Readiness, stream: &Answering, key: Option<Key>) {
    if let Some(key) = key {
        readiness.deregister(&stream.stream, key);
    }
}

/// A connection about to get a plain answer: its socket, and its TLS
/// session on a TLS port.
struct Answering {
    stream: TcpStream,
    tls: Option<Box<ServerConnection>>,
}

/// Answers a plain HTTP request. Kept out of line: a WebSocket thread lives
/// on with every stack page it ever touched, so the HTTP answers' frames
/// must not sit beneath the connection loop.
#[inline(never)]
fn respond(shared: &Shared, stream: Answering, request: &Request, routed: Result<Route, Response>) {
    let response = match routed {
        Err(response) => response,
        Ok(Route::Ws(_)) => Response::error(500, "upgrade routed as plain HTTP"),
        Ok(Route::Page) => Response::with_status(
            200,
            "text/html; charset=utf-8",
            crate::web::PAGE.as_bytes().to_vec(),
        ),
        Ok(Route::Health) => Response::json(&shared.health()),
        Ok(Route::Metrics) => Response::with_status(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            shared.metrics_text().into_bytes(),
        ),
        Ok(Route::RoomApi) => super::rooms::handle(shared, request),
        Ok(Route::Files) => super::files::files(&shared.tails),
    };
    answer(shared, stream, response);
}

fn answer(shared: &Shared, answering: Answering, response: Response) {
    shared.metrics.http_requests.fetch_add(1, Relaxed);
    let Answering { mut stream, tls } = answering;
    // The door read the request without blocking; the answer may block
    // (briefly: see the timeout) on this connection's own thread.
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_write_timeout(Some(std::time::Duration::from_secs(5)));
    let bytes = response.to_bytes();
    match tls {
        None => {
            let _ = stream.write_all(&bytes);
            let _ = stream.flush();
        }
        Some(mut session) => {
            // All of it sealed at once (a page is larger than rustls's
            // default buffer), then the end of the session, then written.
            session.set_buffer_limit(None);
            let _ = session.writer().write_all(&bytes);
            session.send_close_notify();
            while session.wants_write() {
                if session.write_tls(&mut stream).is_err() {
                    break;
                }
            }
        }
    }
}

/// Answers a request that was not read to its end. Closing a socket with
/// unread input makes the kernel send a reset, which can destroy the answer
/// before the client reads it; so the rest is read and discarded (briefly).
/// Out of line: `io::copy` takes 8 KiB of stack, see [`respond`].
#[inline(never)]
fn refuse_unread(shared: &Shared, stream: Answering, response: Response) {
    // Under TLS what is left is discarded as ciphertext, undecrypted.
    let mut reader = stream.stream.try_clone().ok();
    answer(shared, stream, response);
    if let Some(s) = reader.as_mut() {
        let _ = s.shutdown(std::net::Shutdown::Write);
        let _ = s.set_read_timeout(Some(std::time::Duration::from_millis(500)));
        let _ = std::io::copy(&mut std::io::Read::take(&*s, 1 << 20), &mut std::io::sink());
    }
}

/// Checks an upgrade request and takes a connection slot for it; the
/// answer to give instead when either fails.
#[inline(never)]
fn upgrade(
    shared: &Arc<Shared>,
    slot: IpSlot,
    request: Request,
    route: WsRoute,
) -> Result<Ready, Response> {
    let key = check_upgrade(shared, &request, &route)?;
    let metrics = &shared.metrics;
    let max = shared.config.max_connections as u64;
    if metrics.connections_current.fetch_add(1, AcqRel) >= max {
        metrics.connections_current.fetch_sub(1, AcqRel);
        metrics.connections_rejected.fetch_add(1, Relaxed);
        log::warn!("refusing an upgrade: {max} connections is the limit");
        return Err(over_capacity());
    }
    metrics.connections_total.fetch_add(1, Relaxed);
    let session: Box<dyn Handler> = match route {
        WsRoute::Echo => Box::new(session::echo::Echo::new(shared)),
        WsRoute::TextRoom { room, user } => Box::new(session::text_room::TextRoom::new(
            shared.clone(),
            room,
            user,
        )),
        WsRoute::Hub { client_id } => {
            Box::new(session::hub::HubSession::new(shared.clone(), client_id))
        }
    };
    Ok(Ready {
        id: shared.next_connection_id(),
        _slot: slot,
        // Only the bytes read past the head live on with the connection.
        leftover: request.leftover,
        handshake: switching_protocols(&key),
        session,
    })
}

/// Runs an upgraded connection to its end (see [`handle`]), then gives
/// back its connection slot.
#[inline(never)]
// Boxed so that the caller's frame, beneath the loop, holds a pointer only.
#[allow(clippy::boxed_local)]
pub fn serve_websocket(shared: &Shared, upgrade: Box<Upgrade>) {
    let Upgrade {
        stream,
        key,
        tls,
        ready,
    } = *upgrade;
    let Ready {
        id,
        _slot,
        leftover,
        handshake,
        session,
    } = ready;
    let result = conn::serve(
        id,
        stream,
        key,
        tls,
        leftover,
        handshake,
        session,
        &shared.conn_params,
    );
    shared.metrics.connections_current.fetch_sub(1, AcqRel);
    if let Err(e) = result {
        log::debug!("connection {id} not started: {e}");
    }
}

/// The upgrade checks, in the order a client would want to hear about them.
/// Returns the `Sec-WebSocket-Key`. Out of line for the reason of [`respond`].
#[inline(never)]
fn check_upgrade(shared: &Shared, request: &Request, route: &WsRoute) -> Result<String, Response> {
    if !request
        .header("upgrade")
        .is_some_and(|u| u.eq_ignore_ascii_case("websocket"))
    {
        return Err(
            Response::error(426, "this is a WebSocket endpoint: upgrade required")
                .header("Upgrade: websocket"),
        );
    }
    if !request.header_has_token("connection", "upgrade") {
        return Err(Response::error(400, "Connection: Upgrade is missing"));
    }
    if request.header("sec-websocket-version").map(str::trim) != Some("13") {
        return Err(
            Response::error(426, "only WebSocket version 13 is supported")
                .header("Sec-WebSocket-Version: 13"),
        );
    }
    let key = request
        .header("sec-websocket-key")
        .filter(|k| !k.trim().is_empty())
        .ok_or_else(|| Response::error(400, "Sec-WebSocket-Key is missing"))?;
    if !access::origin_allowed(request, &shared.config.allowed_origins) {
        return Err(Response::error(
            403,
            "cross-origin upgrade refused: origin not allowed",
        ));
    }
    if let Some(secret) = &shared.config.jwt_secret {
        let token = access::bearer_or_query_token(request).ok_or_else(|| {
            Response::error(
                401,
                "a token is required (?token= or Authorization: Bearer)",
            )
        })?;
        let sub = access::verify_jwt(&token, secret.as_bytes(), crate::wire::unix_millis() / 1000)
            .map_err(|e| Response::error(401, &format!("invalid token: {e:?}")))?;
        if let Some(identity) = route.identity() {
            if identity != sub {
                return Err(Response::error(
                    401,
                    &format!("this token is for {sub:?}, not {identity:?}"),
                ));
            }
        }
    }
    Ok(key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(method: &str, path: &str) -> u16 {
        match route(method, path) {
            Ok(_) => 200,
            Err(r) => r.status,
        }
    }

    #[test]
    fn routes_the_contract_paths() {
        assert_eq!(route("GET", "/ws").ok(), Some(Route::Ws(WsRoute::Echo)));
        assert_eq!(
            route("GET", "/ws/chat/a").ok(),
            Some(Route::Ws(WsRoute::Hub {
                client_id: "a".into()
            }))
        );
        assert_eq!(
            route("GET", "/ws/general/bob").ok(),
            Some(Route::Ws(WsRoute::TextRoom {
                room: "general".into(),
                user: "bob".into()
            }))
        );
        assert_eq!(route("POST", "/broadcast").ok(), Some(Route::RoomApi));
        assert_eq!(
            route("GET", "/rooms/general/count").ok(),
            Some(Route::RoomApi)
        );
    }

    #[test]
    fn errors_by_kind() {
        assert_eq!(status("GET", "/nope"), 404);
        assert_eq!(status("GET", "/ws/chat"), 404);
        assert_eq!(status("POST", "/healthz"), 405);
        assert_eq!(status("GET", "/broadcast"), 405);
        assert_eq!(status("GET", "/ws/chat/.hidden"), 400);
        assert_eq!(status("GET", "/ws/room/bad%20name"), 400);
        assert_eq!(status("GET", "/rooms/a b/count"), 400);
    }
}

//! The HTTP room API: `GET /rooms`, `GET /rooms/{room}/count`, `POST /broadcast`.

use crate::http::{Request, Response};
use crate::server::Shared;

/// Answers a room API request.
pub fn handle(_shared: &Shared, _request: &Request) -> Response {
    Response::error(501, "rooms are not built yet")
}

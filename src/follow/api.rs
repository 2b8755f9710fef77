//! `GET /files`: the files that `follow` may name.

use crate::http::Response;
use crate::server::Shared;

/// Answers `GET /files`.
pub fn files(_shared: &Shared) -> Response {
    Response::json(&serde_json::json!({ "files": [] }))
}

//! `GET /files`: the files that `follow` may name, as JSON
//! (the listing itself is [`crate::follow::Tails::files`]).

use crate::follow::Tails;
use crate::http::Response;

/// Answers `GET /files`.
pub fn files(tails: &Tails) -> Response {
    let files: Vec<_> = tails
        .files()
        .into_iter()
        .map(|(name, size)| serde_json::json!({"name": name, "size": size}))
        .collect();
    Response::json(&serde_json::json!({ "files": files }))
}

//! `GET /files`: the files that `follow` may name, sorted by name: every
//! regular file in the tail directory (symlinks included when they resolve
//! to one inside it) whose name is a valid name.

use crate::http::Response;
use crate::server::Shared;

/// Answers `GET /files`.
pub fn files(shared: &Shared) -> Response {
    let mut files = Vec::new();
    if let Some(dir) = &shared.config.tail_dir {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                if super::path::resolve(Some(dir), &name).is_err() {
                    continue;
                }
                if let Ok(meta) = std::fs::metadata(entry.path()) {
                    files.push((name, meta.len()));
                }
            }
        }
    }
    files.sort();
    let files: Vec<_> = files
        .into_iter()
        .map(|(name, size)| serde_json::json!({"name": name, "size": size}))
        .collect();
    Response::json(&serde_json::json!({ "files": files }))
}

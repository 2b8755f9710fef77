//! Which names `follow` accepts: every way out of the tail directory is
//! `bad_file`, a missing file `not_found`, and none of them harms the
//! connection.
mod follow_util;
mod support;

use follow_util::{error_code, hub, next_msg};
use serde_json::json;
use std::os::unix::fs::symlink;
use support::{send_json, Server};

#[test]
fn escapes_are_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let tail = dir.path().join("tail");
    std::fs::create_dir(&tail).unwrap();
    std::fs::write(dir.path().join("secret.txt"), "secret\n").unwrap();
    std::fs::write(tail.join("ok.log"), "ok\n").unwrap();
    symlink("../secret.txt", tail.join("up")).unwrap();
    symlink(dir.path().join("secret.txt"), tail.join("absolute")).unwrap();
    symlink("/nonexistent/file", tail.join("dangling")).unwrap();
    symlink("ok.log", tail.join("alias")).unwrap();
    std::fs::create_dir(tail.join("sub")).unwrap();
    std::fs::write(tail.join("sub/inner.log"), "x\n").unwrap();
    let server = Server::start_in(dir, &["--tail-dir", tail.to_str().unwrap()]);
    let mut ws = hub(&server, "x");
    for name in [
        "../secret.txt",
        "..",
        ".",
        "/etc/passwd",
        "sub/inner.log",
        "sub/../ok.log",
        "up",
        "absolute",
        "dangling",
        "sub",
    ] {
        let c = error_code(&mut ws, json!({"type": "follow", "file": name}));
        assert_eq!(c, "bad_file", "{name}");
    }
    assert_eq!(
        error_code(&mut ws, json!({"type": "follow", "file": "nope.log"})),
        "not_found"
    );
    assert_eq!(
        error_code(&mut ws, json!({"type": "follow", "file": ".hidden"})),
        "bad_name"
    );
    assert_eq!(
        error_code(&mut ws, json!({"type": "follow", "file": "a b"})),
        "bad_name"
    );
    assert_eq!(
        error_code(&mut ws, json!({"type": "follow"})),
        "missing_field"
    );
    for file in [json!(5), json!(["ok.log"]), json!({"f": 1})] {
        assert_eq!(
            error_code(&mut ws, json!({"type": "follow", "file": file})),
            "bad_name"
        );
        assert_eq!(
            error_code(&mut ws, json!({"type": "unfollow", "file": file})),
            "bad_name"
        );
    }
    assert_eq!(
        error_code(
            &mut ws,
            json!({"type": "follow", "file": "ok.log", "from": "middle"})
        ),
        "missing_field"
    );
    // A symlink to a file inside the directory is fine, and the connection
    // is still in order after all of that.
    send_json(
        &mut ws,
        json!({"type": "follow", "file": "alias", "from": "start"}),
    );
    assert_eq!(next_msg(&mut ws)["type"], "following");
    let d = next_msg(&mut ws);
    assert_eq!((&d["file"], &d["payload"]), (&json!("alias"), &json!("ok")));
}

#[test]
fn without_a_tail_dir_follow_is_refused() {
    let server = Server::start(&[]);
    let mut ws = hub(&server, "y");
    assert_eq!(
        error_code(&mut ws, json!({"type": "follow", "file": "app.log"})),
        "bad_file"
    );
    let (status, body) = server.get_json("/files");
    assert_eq!((status, body), (200, json!({"files": []})));
}

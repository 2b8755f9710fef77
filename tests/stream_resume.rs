//! Resume with `from` across a disconnect (no line lost, none twice) and
//! the spool's size limit (rotation keeps one previous generation).
mod follow_util;
mod support;

use follow_util::{hub, next_msg};
use serde_json::{json, Value};
use support::{next_of_type, send_json, Server};

fn data_n(v: &Value) -> u64 {
    v["payload"]
        .as_str()
        .unwrap()
        .rsplit_once("data_")
        .unwrap()
        .1
        .parse()
        .unwrap()
}

#[test]
fn resume_after_a_disconnect_loses_nothing_and_repeats_nothing() {
    let server = Server::start(&[]);
    let spool_path = server.dir.path().join("data/rita.spool");
    let mut ws = hub(&server, "rita");
    send_json(&mut ws, json!({"type": "start", "interval_ms": 2}));
    let started = next_msg(&mut ws);
    let epoch = started["epoch"].as_str().unwrap().to_string();
    let mut last = 0;
    for _ in 0..20 {
        let d = next_msg(&mut ws);
        assert_eq!(d["type"], "data");
        last = d["offset"].as_u64().unwrap();
    }
    // Leave without reading what is in flight; the stream goes on a moment
    // (the new `start` waits for the old stream to let go of the spool).
    // (Not reading for a moment stands for a network that drops what
    // was in flight.)
    std::thread::sleep(std::time::Duration::from_millis(100));
    drop(ws);
    let mut ws = hub(&server, "rita");
    send_json(
        &mut ws,
        json!({"type": "start", "interval_ms": 2, "from": last, "epoch": epoch}),
    );
    let started = next_msg(&mut ws);
    assert_eq!(started["type"], "started", "{started}");
    assert_eq!(started["resumed"], true);
    assert_eq!(started["from"], last);
    assert_eq!(started["epoch"], epoch.as_str());
    let mut replayed_or_new = Vec::new();
    for _ in 0..80 {
        let d = next_msg(&mut ws);
        assert_eq!(d["type"], "data", "{d}");
        replayed_or_new.push(d);
    }
    send_json(&mut ws, json!({"type": "stop"}));
    next_of_type(&mut ws, "stopped");
    let replayed = replayed_or_new.iter().take_while(|d| data_n(d) > 1).count();
    eprintln!("{replayed} line(s) replayed from the spool");
    assert!(
        replayed > 0,
        "nothing was in flight; the test proves little"
    );
    let spool = std::fs::read(&spool_path).unwrap();
    let mut at = last as usize;
    for d in &replayed_or_new {
        let payload = d["payload"].as_str().unwrap();
        let offset = d["offset"].as_u64().unwrap() as usize;
        assert_eq!(
            &spool[at..offset],
            format!("{payload}\n").as_bytes(),
            "a gap or a repeat before offset {offset}"
        );
        at = offset;
    }
}

#[test]
fn resume_with_an_unknown_epoch_replays_what_is_kept() {
    let server = Server::start(&[]);
    let mut ws = hub(&server, "sam");
    send_json(&mut ws, json!({"type": "start", "interval_ms": 60_000}));
    next_msg(&mut ws);
    let first = next_msg(&mut ws);
    send_json(&mut ws, json!({"type": "stop"}));
    next_of_type(&mut ws, "stopped");
    send_json(
        &mut ws,
        json!({"type": "start", "interval_ms": 60_000, "from": 999, "epoch": "1:1"}),
    );
    let started = next_msg(&mut ws);
    assert_eq!(
        (&started["resumed"], &started["from"]),
        (&json!(false), &json!(0))
    );
    let replay = next_msg(&mut ws);
    assert_eq!(replay["payload"], first["payload"]);
    assert_eq!(replay["offset"], first["offset"]);
}

#[test]
fn the_spool_rotates_at_its_limit_and_keeps_one_generation() {
    let server = Server::start(&["--spool-max-bytes", "1024"]);
    let data = server.dir.path().join("data");
    let mut ws = hub(&server, "lim");
    send_json(&mut ws, json!({"type": "start", "interval_ms": 1}));
    let started = next_msg(&mut ws);
    let mut epochs = vec![started["epoch"].as_str().unwrap().to_string()];
    let mut prev: Option<Value> = None;
    let mut per_epoch_last = Vec::new();
    let mut count = 0;
    while epochs.len() < 4 {
        let d = next_msg(&mut ws);
        let epoch = d["epoch"].as_str().unwrap();
        let offset = d["offset"].as_u64().unwrap();
        assert!(offset <= 1024, "the spool grew past its limit: {d}");
        let line = d["payload"].as_str().unwrap().len() as u64 + 1;
        if let Some(p) = &prev {
            assert_eq!(data_n(&d), data_n(p) + 1, "a line lost at {d}");
            if epoch == p["epoch"] {
                assert_eq!(offset, p["offset"].as_u64().unwrap() + line);
            } else {
                // A new generation starts at offset 0.
                assert_eq!(offset, line, "{d}");
                per_epoch_last.push(p.clone());
                epochs.push(epoch.to_string());
            }
        }
        prev = Some(d);
        count += 1;
    }
    assert!(count > 80, "{count} lines over three rotations of 1 KiB");
    send_json(&mut ws, json!({"type": "stop"}));
    next_of_type(&mut ws, "stopped");
    // On disk: the current file and one previous generation, both bounded.
    let mut names: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["lim.spool", "lim.spool.1"]);
    for n in &names {
        assert!(std::fs::metadata(data.join(n)).unwrap().len() <= 1024);
    }
    // A resume into the previous generation is honoured: its rest, then
    // the current generation from its start.
    let current = epochs[3].clone();
    let previous = epochs[2].clone();
    let spool1 = std::fs::read(data.join("lim.spool.1")).unwrap();
    let from = spool1.iter().position(|&b| b == b'\n').unwrap() as u64 + 1;
    send_json(
        &mut ws,
        json!({"type": "start", "interval_ms": 60_000, "from": from, "epoch": previous}),
    );
    let started = next_msg(&mut ws);
    assert_eq!(started["resumed"], true, "{started}");
    assert_eq!(started["from_epoch"], previous.as_str());
    let d = next_msg(&mut ws);
    assert_eq!(d["epoch"], previous.as_str());
    assert!(d["offset"].as_u64().unwrap() > from);
    let mut d = d;
    while d["epoch"] == previous.as_str() {
        d = next_msg(&mut ws);
    }
    assert_eq!(d["epoch"], started["epoch"]);
    assert_eq!(started["epoch"], current.as_str());
    send_json(&mut ws, json!({"type": "stop"}));
    next_of_type(&mut ws, "stopped");
    // Two rotations back is gone: replay starts at the oldest line kept.
    send_json(
        &mut ws,
        json!({"type": "start", "interval_ms": 60_000, "from": 10, "epoch": epochs[1]}),
    );
    let started = next_msg(&mut ws);
    assert_eq!(started["resumed"], false, "{started}");
    assert_eq!(started["from"], 0);
    assert_eq!(started["from_epoch"], previous.as_str());
    let d = next_msg(&mut ws);
    assert_eq!(d["offset"].as_u64().unwrap(), from);
}

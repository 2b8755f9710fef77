//! 1,000 start/stop cycles, with disconnects between them and producers
//! among them, leave the server with the threads, descriptors and children
//! it had before.
mod follow_util;
mod support;

use follow_util::{leave_one_of_three_ways, next_msg};
use serde_json::json;
use support::{children, next_of_type, send_json, Server};

#[test]
fn heavy_start_stop_cycles_leave_nothing_behind() {
    let server = Server::start(&["--producer", "yes=while true; do echo y; sleep 0.01; done"]);
    // Warm up once so lazily created state is in the baseline.
    let mut ws = server.ws("/ws/chat/warm");
    next_of_type(&mut ws, "welcome");
    drop(ws);
    // The baseline is taken once no connection thread is left: a count
    // taken while the warm-up connection's threads exit would be too high.
    let threads = server.settled_threads();
    let fds = server.fds();
    for i in 0..1000 {
        let mut ws = server.ws(&format!("/ws/chat/c{}", i % 50));
        next_of_type(&mut ws, "welcome");
        let start = if i % 10 == 0 {
            json!({"type": "start", "producer": "yes"})
        } else {
            json!({"type": "start", "interval_ms": 1})
        };
        send_json(&mut ws, start);
        assert_eq!(next_msg(&mut ws)["type"], "started");
        assert_eq!(next_msg(&mut ws)["type"], "data");
        // stop, then a clean close; a clean close while streaming; or the
        // client just vanishes.
        leave_one_of_three_ways(ws, i, json!({"type": "stop"}), "stopped");
    }
    server.wait_threads(threads);
    server.wait_until("descriptors back to the baseline", || server.fds() == fds);
    server.wait_until("no children", || children(server.pid()) == 0);
    eprintln!(
        "after 1000 cycles: {} threads, {} fds",
        server.threads(),
        server.fds()
    );
}

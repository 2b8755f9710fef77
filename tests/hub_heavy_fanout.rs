//! 200 hub clients in one room all receive every one of 100 messages, in
//! order, with their seqs.
mod hub_util;
mod support;

use hub_util::hub;
use serde_json::json;
use support::{next_json, send_json, Server};

#[test]
fn heavy_200_hub_clients_each_receive_100_messages_in_order() {
    let server = Server::start(&[]);
    let mut clients: Vec<_> = (0..200)
        .map(|i| {
            let id = format!("c{i:03}");
            let mut ws = hub(&server, &id);
            send_json(&mut ws, json!({"type": "join_room", "room_name": "big"}));
            (id, ws)
        })
        .collect();
    server.wait_until("200 members", || {
        server.get_json("/rooms/big/count").1["online"] == 200
    });
    let publisher = &mut clients[0].1;
    for n in 0..100 {
        send_json(
            publisher,
            json!({"type": "message", "room_name": "big", "content": format!("m{n}")}),
        );
    }
    for (id, ws) in &mut clients {
        let mut n = 0u64;
        while n < 100 {
            let v = next_json(ws);
            match v["type"].as_str() {
                Some("message") => {
                    assert_eq!(v["seq"], n + 1, "{id}: {v}");
                    assert_eq!(v["content"], format!("m{n}"), "{id}");
                    assert_eq!(v["client_id"], "c000");
                    n += 1;
                }
                Some("user_joined" | "room_join") => {}
                _ => panic!("{id}: unexpected {v}"),
            }
        }
    }
    assert_eq!(server.metric("strand_room_messages_total"), 100.0);
    assert_eq!(server.metric("strand_room_drops_total"), 0.0);
}

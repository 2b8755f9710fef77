//! `/ws` echo over real sockets: text, binary, sizes, fragmentation.
mod support;

use support::{RawClient, Server};
use tungstenite::Message;

#[test]
fn text_and_binary_come_back_unchanged() {
    let server = Server::start(&[]);
    let mut ws = server.ws("/ws");
    ws.send(Message::text("hello")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("hello"));
    ws.send(Message::binary(vec![0u8, 1, 2, 255])).unwrap();
    assert_eq!(ws.read().unwrap(), Message::binary(vec![0u8, 1, 2, 255]));
    ws.close(None).unwrap();
}

#[test]
fn every_payload_length_class_echoes() {
    let server = Server::start(&["--max-message-bytes", "17000000"]);
    let mut c = RawClient::connect(&server, "/ws");
    for n in [0usize, 1, 125, 126, 127, 65535, 65536, 16 << 20] {
        let payload: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
        c.send(true, 0x2, &payload);
        let f = c.read_data_frame().unwrap();
        assert_eq!((f.opcode, f.payload.len()), (0x2, n));
        assert!(f.payload == payload, "payload of {n} bytes differs");
    }
}

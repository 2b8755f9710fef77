//! Frame-level behaviour of `/ws` that the Autobahn|Testsuite server cases
//! 1.x-7.x, 9.x and 10.x check, over raw sockets: framing, fragmentation,
//! control frames, reserved bits and opcodes, UTF-8 and close handshakes.
mod support;

use support::{RawClient, Server};

const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CONT: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

fn echo_client() -> (Server, RawClient) {
    let server = Server::start(&[]);
    let client = RawClient::connect(&server, "/ws");
    (server, client)
}

/// The server must close with `code` and then end the TCP connection.
fn assert_fails_with(client: &mut RawClient, code: u16) {
    assert_eq!(client.expect_close(), code);
    client.expect_eof();
}

#[test]
fn text_of_each_length_class_echoes_as_text() {
    let (_s, mut c) = echo_client();
    for n in [0usize, 125, 126, 127, 65535, 65536] {
        let payload = "x".repeat(n);
        c.send(true, TEXT, payload.as_bytes());
        let f = c.read_data_frame().unwrap();
        assert_eq!((f.fin, f.opcode, f.payload.len()), (true, TEXT, n));
    }
}

#[test]
fn fragmented_messages_with_pings_between_fragments() {
    let (_s, mut c) = echo_client();
    c.send(false, TEXT, b"frag");
    c.send(true, PING, b"p1");
    c.send(false, CONT, b"men");
    c.send(true, PING, b"p2");
    c.send(true, CONT, b"ted");
    let pong1 = c.read_frame().unwrap();
    assert_eq!((pong1.opcode, pong1.payload.as_slice()), (PONG, &b"p1"[..]));
    let pong2 = c.read_frame().unwrap();
    assert_eq!((pong2.opcode, pong2.payload.as_slice()), (PONG, &b"p2"[..]));
    let f = c.read_frame().unwrap();
    assert_eq!((f.opcode, f.payload.as_slice()), (TEXT, &b"fragmented"[..]));
    // Binary fragmented too, one fragment per byte.
    c.send(false, BINARY, &[1]);
    c.send(false, CONT, &[2]);
    c.send(true, CONT, &[3]);
    let f = c.read_frame().unwrap();
    assert_eq!((f.opcode, f.payload), (BINARY, vec![1, 2, 3]));
}

#[test]
fn every_ping_gets_its_pong_with_the_same_payload() {
    let (_s, mut c) = echo_client();
    for payload in [&b""[..], b"hello", &[0xAB; 125]] {
        c.send(true, PING, payload);
        let f = c.read_frame().unwrap();
        assert_eq!((f.opcode, f.payload.as_slice()), (PONG, payload));
    }
    // An unsolicited pong is ignored.
    c.send(true, PONG, b"unsolicited");
    c.send(true, TEXT, b"still here");
    assert_eq!(c.read_data_frame().unwrap().payload, b"still here");
}

#[test]
fn a_frame_delivered_one_byte_per_write() {
    let (_s, mut c) = echo_client();
    let frame = RawClient::frame(true, 0, TEXT, "byte by byte ✓".as_bytes());
    for b in frame {
        c.send_bytes(&[b]);
    }
    let f = c.read_data_frame().unwrap();
    assert_eq!(f.payload, "byte by byte ✓".as_bytes());
}

#[test]
fn continuation_without_a_start_is_a_protocol_error() {
    let (_s, mut c) = echo_client();
    c.send(true, CONT, b"orphan");
    assert_fails_with(&mut c, 1002);
}

#[test]
fn a_new_message_inside_a_fragmented_one_is_a_protocol_error() {
    let (_s, mut c) = echo_client();
    c.send(false, TEXT, b"start");
    c.send(true, TEXT, b"not a continuation");
    assert_fails_with(&mut c, 1002);
}

#[test]
fn reserved_bits_are_protocol_errors() {
    for rsv in [1u8, 2, 4, 7] {
        let (_s, mut c) = echo_client();
        c.send_bytes(&RawClient::frame(true, rsv, TEXT, b"rsv"));
        assert_fails_with(&mut c, 1002);
    }
}

#[test]
fn reserved_opcodes_are_protocol_errors() {
    for opcode in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        let (_s, mut c) = echo_client();
        c.send(true, opcode, b"");
        assert_fails_with(&mut c, 1002);
    }
}

#[test]
fn control_frames_over_125_bytes_or_fragmented_are_protocol_errors() {
    let (_s, mut c) = echo_client();
    c.send(true, PING, &[0; 126]);
    assert_fails_with(&mut c, 1002);
    let (_s, mut c) = echo_client();
    c.send(false, PING, b"fragmented ping");
    assert_fails_with(&mut c, 1002);
}

#[test]
fn unmasked_client_frames_are_protocol_errors() {
    let (_s, mut c) = echo_client();
    c.send_bytes(&[0x81, 0x02, b'h', b'i']);
    assert_fails_with(&mut c, 1002);
}

#[test]
fn invalid_utf8_in_a_single_text_frame_closes_with_1007() {
    let (_s, mut c) = echo_client();
    c.send(
        true,
        TEXT,
        &[
            0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80,
        ],
    );
    assert_fails_with(&mut c, 1007);
}

#[test]
fn invalid_utf8_in_fragmented_text_closes_with_1007() {
    let (_s, mut c) = echo_client();
    c.send(false, TEXT, "valid ".as_bytes());
    c.send(true, CONT, &[0xff, 0xfe]);
    assert_fails_with(&mut c, 1007);
}

#[test]
fn valid_utf8_split_inside_a_code_point_is_accepted() {
    let (_s, mut c) = echo_client();
    let text = "κόσμε"; // each letter is two bytes
    let bytes = text.as_bytes();
    c.send(false, TEXT, &bytes[..1]);
    c.send(false, CONT, &bytes[1..4]);
    c.send(true, CONT, &bytes[4..]);
    assert_eq!(c.read_data_frame().unwrap().payload, bytes);
}

#[test]
fn invalid_utf8_split_inside_a_code_point_closes_with_1007() {
    let (_s, mut c) = echo_client();
    // 0xf4 0x90 starts a code point above U+10FFFF: invalid however it ends.
    c.send(false, TEXT, &[b'a', 0xf4]);
    c.send(false, CONT, &[0x90]);
    c.send(true, CONT, &[0x80, 0x80]);
    assert_fails_with(&mut c, 1007);
}

#[test]
fn messages_over_the_limit_close_with_1009() {
    let server = Server::start(&["--max-message-bytes", "1000"]);
    let mut c = RawClient::connect(&server, "/ws");
    c.send(true, BINARY, &[0; 1000]);
    assert_eq!(c.read_data_frame().unwrap().payload.len(), 1000);
    c.send(true, BINARY, &[0; 1001]);
    assert_fails_with(&mut c, 1009);
    // Fragmented past the limit too.
    let mut c = RawClient::connect(&server, "/ws");
    c.send(false, BINARY, &[0; 600]);
    c.send(true, CONT, &[0; 600]);
    assert_fails_with(&mut c, 1009);
}

#[test]
fn close_with_a_valid_code_is_echoed_then_tcp_closes() {
    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
    ] {
        let (_s, mut c) = echo_client();
        c.send_close(code, b"bye");
        let f = c.read_frame().unwrap();
        assert_eq!(f.close_code(), code, "echo of close code {code}");
        c.expect_eof();
    }
}

#[test]
fn close_with_an_empty_body_gets_an_empty_close() {
    let (_s, mut c) = echo_client();
    c.send(true, CLOSE, b"");
    let f = c.read_frame().unwrap();
    assert_eq!((f.opcode, f.payload.len()), (CLOSE, 0));
    c.expect_eof();
}

#[test]
fn close_with_invalid_or_reserved_codes_gets_1002() {
    for code in [
        0u16, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        let (_s, mut c) = echo_client();
        c.send_close(code, b"");
        assert_eq!(
            c.read_frame().unwrap().close_code(),
            1002,
            "close code {code}"
        );
        c.expect_eof();
    }
}

#[test]
fn close_with_a_one_byte_body_is_a_protocol_error() {
    let (_s, mut c) = echo_client();
    c.send(true, CLOSE, &[0x03]);
    assert_fails_with(&mut c, 1002);
}

#[test]
fn close_with_an_invalid_utf8_reason_closes_with_1007() {
    let (_s, mut c) = echo_client();
    c.send_close(1000, &[0xff, 0xfe]);
    assert_fails_with(&mut c, 1007);
}

#[test]
fn nothing_is_sent_after_the_close_reply() {
    let (_s, mut c) = echo_client();
    c.send(true, TEXT, b"before");
    c.send_close(1000, b"");
    c.send(true, TEXT, b"after close");
    assert_eq!(c.read_data_frame().unwrap().payload, b"before");
    assert_eq!(c.read_frame().unwrap().close_code(), 1000);
    c.expect_eof();
}

#[test]
fn many_pipelined_messages_come_back_in_order() {
    let (_s, mut c) = echo_client();
    let mut burst = Vec::new();
    for i in 0..2000 {
        burst.extend(RawClient::frame(true, 0, TEXT, i.to_string().as_bytes()));
    }
    c.send_bytes(&burst);
    for i in 0..2000 {
        assert_eq!(
            c.read_data_frame().unwrap().payload,
            i.to_string().as_bytes()
        );
    }
}

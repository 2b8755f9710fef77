//! Encoding of server-to-client frames. Server frames are never masked, so a
//! frame's bytes are the same for every recipient: a room message is encoded
//! once and the same bytes are written to every member's socket.

/// Opcode of a text frame.
pub const OP_TEXT: u8 = 0x1;
/// Opcode of a binary frame.
pub const OP_BINARY: u8 = 0x2;
/// Opcode of a close frame.
pub const OP_CLOSE: u8 = 0x8;
/// Opcode of a ping frame.
pub const OP_PING: u8 = 0x9;
/// Opcode of a pong frame.
pub const OP_PONG: u8 = 0xA;

/// Appends one final, unmasked frame with `opcode` and `payload` to `out`.
pub fn encode_into(opcode: u8, payload: &[u8], out: &mut Vec<u8>) {
    let n = payload.len();
    out.reserve(n + 10);
    out.push(0x80 | opcode);
    if n < 126 {
        out.push(n as u8);
    } else if n <= u16::MAX as usize {
        out.push(126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
}

/// One text frame, encoded.
pub fn text(payload: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    encode_into(OP_TEXT, payload.as_bytes(), &mut out);
    out
}

/// The payload of a close frame: the code, then the reason cut to fit the
/// 125-byte limit of control frames on a character boundary.
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = Vec::with_capacity(2 + end);
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&reason.as_bytes()[..end]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_len(n: usize) -> usize {
        let mut out = Vec::new();
        encode_into(OP_BINARY, &vec![0; n], &mut out);
        out.len() - n
    }

    #[test]
    fn every_length_class_gets_its_header() {
        assert_eq!(header_len(0), 2);
        assert_eq!(header_len(125), 2);
        assert_eq!(header_len(126), 4);
        assert_eq!(header_len(65535), 4);
        assert_eq!(header_len(65536), 10);
    }

    #[test]
    fn text_frames_are_final_and_unmasked() {
        assert_eq!(text("hi"), vec![0x81, 2, b'h', b'i']);
    }

    #[test]
    fn close_reasons_are_cut_on_char_boundaries() {
        let p = close_payload(1000, &"é".repeat(100));
        assert!(p.len() <= 125);
        assert_eq!(&p[..2], &1000u16.to_be_bytes());
        assert!(std::str::from_utf8(&p[2..]).is_ok());
    }
}

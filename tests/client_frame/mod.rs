//! Encoding one masked client frame: shared by the test support's raw
//! client and the fuzzed properties (which the fuzz crate builds too, so
//! this file needs nothing but std).

/// One masked client frame: FIN, the RSV bits, the opcode, the payload
/// with its length in the shortest form, masked with `mask`.
pub fn client_frame(fin: bool, rsv: u8, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut out = vec![(if fin { 0x80 } else { 0 }) | (rsv << 4) | opcode];
    let n = payload.len();
    if n < 126 {
        out.push(0x80 | n as u8);
    } else if n <= 0xFFFF {
        out.push(0x80 | 126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

//! TCP header view (RFC 9293 §3.1).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Source Port          |       Destination Port        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                        Sequence Number                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Acknowledgment Number                      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Data |       |C|E|U|A|P|R|S|F|                               |
//! | Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           Checksum            |         Urgent Pointer        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The data plane reads ports, flags, sequence numbers and rewrites ports
//! and the checksum in place; [`emit_rst`] writes a bare RST header.

use super::{be16, put16, Error, Result};

pub const MIN_HEADER_LEN: usize = 20;
/// Offsets of the fields the data plane touches.
pub const SRC_PORT: usize = 0;
pub const DST_PORT: usize = 2;
pub const SEQ: usize = 4;
pub const ACK: usize = 8;
pub const FLAGS: usize = 13;
pub const CHECKSUM: usize = 16;

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const FLAG_ACK: u8 = 0x10;

/// A TCP header (and what follows it) in a buffer.
#[derive(Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// At least 20 bytes and a data offset that fits the buffer.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let off = usize::from(b[12] >> 4) * 4;
        if off < MIN_HEADER_LEN {
            return Err(Error::Malformed);
        }
        if b.len() < off {
            return Err(Error::Truncated);
        }
        Ok(Packet { buffer })
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn src_port(&self) -> u16 {
        be16(self.b(), SRC_PORT)
    }
    pub fn dst_port(&self) -> u16 {
        be16(self.b(), DST_PORT)
    }
    pub fn seq(&self) -> u32 {
        be32(self.b(), SEQ)
    }
    pub fn ack_number(&self) -> u32 {
        be32(self.b(), ACK)
    }
    pub fn header_len(&self) -> usize {
        usize::from(self.b()[12] >> 4) * 4
    }
    /// The flag byte (FIN, SYN, RST, PSH, ACK, URG, ECE, CWR).
    pub fn flags(&self) -> u8 {
        self.b()[FLAGS]
    }
    pub fn syn(&self) -> bool {
        self.flags() & SYN != 0
    }
    pub fn ack(&self) -> bool {
        self.flags() & FLAG_ACK != 0
    }
    pub fn fin(&self) -> bool {
        self.flags() & FIN != 0
    }
    pub fn rst(&self) -> bool {
        self.flags() & RST != 0
    }
    pub fn checksum(&self) -> u16 {
        be16(self.b(), CHECKSUM)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_src_port(&mut self, p: u16) {
        put16(self.buffer.as_mut(), SRC_PORT, p);
    }
    pub fn set_dst_port(&mut self, p: u16) {
        put16(self.buffer.as_mut(), DST_PORT, p);
    }
    pub fn set_checksum(&mut self, c: u16) {
        put16(self.buffer.as_mut(), CHECKSUM, c);
    }
}

pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Writes a 20-byte TCP header with no options and a zero checksum (the
/// caller fills it with the pseudo-header): window 0, no urgent pointer.
pub fn emit_rst(buf: &mut [u8], src_port: u16, dst_port: u16, seq: u32, ack: u32, flags: u8) {
    let b = &mut buf[..MIN_HEADER_LEN];
    b.fill(0);
    put16(b, SRC_PORT, src_port);
    put16(b, DST_PORT, dst_port);
    b[SEQ..SEQ + 4].copy_from_slice(&seq.to_be_bytes());
    b[ACK..ACK + 4].copy_from_slice(&ack.to_be_bytes());
    b[12] = 5 << 4;
    b[FLAGS] = flags;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_set() {
        let mut b = [0u8; 24];
        emit_rst(&mut b, 1234, 80, 7, 9, RST | FLAG_ACK);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (1234, 80));
        assert_eq!((p.seq(), p.ack_number(), p.header_len()), (7, 9, 20));
        assert!(p.rst() && p.ack() && !p.syn() && !p.fin());
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_dst_port(8080);
        p.set_checksum(0xbeef);
        assert_eq!((p.dst_port(), p.checksum()), (8080, 0xbeef));
    }

    #[test]
    fn malformed_and_truncated() {
        let mut b = [0u8; 20];
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Malformed);
        b[12] = 6 << 4; // 24-byte header in 20 bytes
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Truncated);
        assert_eq!(Packet::new_checked(&b[..19]).unwrap_err(), Error::Truncated);
    }
}

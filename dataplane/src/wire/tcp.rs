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
//! and the checksum in place; [`Repr::emit`] is where every TCP header
//! pollux builds (an RST) is written.

use super::{be16, checksum, put16, Error, Result};

pub const MIN_HEADER_LEN: usize = 20;
/// Offsets of the fields the data plane touches.
pub const SRC_PORT: usize = 0;
pub const DST_PORT: usize = 2;
pub const SEQ: usize = 4;
pub const ACK: usize = 8;
pub const DATA_OFF: usize = 12;
pub const FLAGS: usize = 13;
pub const WINDOW: usize = 14;
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
        let off = usize::from(b[DATA_OFF] >> 4) * 4;
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
        usize::from(self.b()[DATA_OFF] >> 4) * 4
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

/// A TCP header as values. What pollux sends has no options and no
/// urgent pointer, so those are not fields; [`Repr::parse`] drops them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    /// The flag byte ([`SYN`], [`RST`], [`FLAG_ACK`]…).
    pub flags: u8,
    pub window: u16,
}

impl Repr {
    /// The header of a checked segment (the view's whole buffer) whose
    /// checksum verifies with `pseudo`, the IP pseudo-header sum of its
    /// length ([`ipv4::Repr::pseudo`](super::ipv4::Repr::pseudo)).
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>, pseudo: u32) -> Result<Repr> {
        if checksum::fold(checksum::add(pseudo, checksum::sum(p.b()))) != 0 {
            return Err(Error::Checksum);
        }
        Ok(Repr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            seq: p.seq(),
            ack: p.ack_number(),
            flags: p.flags(),
            window: be16(p.b(), WINDOW),
        })
    }

    /// The bytes [`emit`](Repr::emit) writes before the payload.
    pub const fn buffer_len(&self) -> usize {
        MIN_HEADER_LEN
    }

    /// Writes the 20-byte header into `buf`, the segment (the payload, if
    /// any, already after the header), and the checksum over all of `buf`
    /// with `pseudo`. Panics if `buf` is shorter than the header.
    pub fn emit(&self, buf: &mut [u8], pseudo: u32) {
        let h = &mut buf[..MIN_HEADER_LEN];
        put16(h, SRC_PORT, self.src_port);
        put16(h, DST_PORT, self.dst_port);
        h[SEQ..SEQ + 4].copy_from_slice(&self.seq.to_be_bytes());
        h[ACK..ACK + 4].copy_from_slice(&self.ack.to_be_bytes());
        h[DATA_OFF] = ((MIN_HEADER_LEN / 4) as u8) << 4;
        h[FLAGS] = self.flags;
        put16(h, WINDOW, self.window);
        put16(h, CHECKSUM, 0);
        put16(h, CHECKSUM + 2, 0); // urgent pointer
        let c = checksum::fold(checksum::add(pseudo, checksum::sum(buf)));
        put16(buf, CHECKSUM, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rst(src_port: u16, dst_port: u16, seq: u32, ack: u32, flags: u8) -> Repr {
        Repr {
            src_port,
            dst_port,
            seq,
            ack,
            flags,
            window: 0,
        }
    }

    #[test]
    fn parse_and_set() {
        let mut b = [0u8; 24];
        rst(1234, 80, 7, 9, RST | FLAG_ACK).emit(&mut b[..20], 0);
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

    #[test]
    fn emit_writes_a_bare_header_and_its_checksum() {
        let pseudo = checksum::pseudo_v4([10, 0, 0, 1].into(), [10, 0, 0, 2].into(), 6, 20);
        let r = rst(1234, 80, 7, 9, RST | FLAG_ACK);
        let mut b = [0xaa; 20];
        r.emit(&mut b, pseudo);
        assert_eq!(
            b[..16],
            [4, 0xd2, 0, 80, 0, 0, 0, 7, 0, 0, 0, 9, 0x50, 0x14, 0, 0]
        );
        assert_eq!(b[18..], [0, 0]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Repr::parse(&p, pseudo), Ok(r));
        assert_eq!(Repr::parse(&p, pseudo + 1), Err(Error::Checksum));
    }

    proptest::proptest! {
        #[test]
        fn parse_of_emit_is_identity(
            src_port: u16,
            dst_port: u16,
            seq: u32,
            ack: u32,
            flags: u8,
            window: u16,
            payload in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
            pseudo: u32,
        ) {
            let r = Repr { src_port, dst_port, seq, ack, flags, window };
            let mut b = vec![0u8; MIN_HEADER_LEN + payload.len()];
            b[MIN_HEADER_LEN..].copy_from_slice(&payload);
            r.emit(&mut b, pseudo);
            let p = Packet::new_checked(&b[..]).unwrap();
            proptest::prop_assert_eq!(Repr::parse(&p, pseudo), Ok(r));
        }
    }
}

//! IPv4 header (RFC 791).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version|  IHL  |Type of Service|          Total Length         |
//! |         Identification        |Flags|      Fragment Offset    |
//! |  Time to Live |    Protocol   |         Header Checksum       |
//! |                       Source Address                          |
//! |                    Destination Address                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! [`Packet`] reads and rewrites a header in place; [`Repr`] is a parsed
//! header, and [`Repr::emit`] is where every IPv4 header pollux builds is
//! written.

use std::net::Ipv4Addr;

use super::{be16, checksum, put16, Error, Result};

pub const MIN_HEADER_LEN: usize = 20;

/// Byte offsets of the header's fields.
pub mod field {
    pub type Field = core::ops::Range<usize>;

    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC: Field = 12..16;
    pub const DST: Field = 16..20;
}

/// Don't Fragment, in the flags/fragment-offset word.
const DONT_FRAG: u16 = 0x4000;

/// The protocol numbers (shared with IPv6's next header).
pub use super::protocol;

/// A view of an IPv4 packet whose header, options and total length have
/// been checked against the buffer. Bytes after `total_len` (Ethernet
/// padding) are outside `payload()`.
#[derive(Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks version, IHL and total length, not the checksum.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let ihl = usize::from(b[field::VER_IHL] & 0x0f) * 4;
        let total = usize::from(be16(b, field::LENGTH.start));
        if b[field::VER_IHL] >> 4 != 4 || ihl < MIN_HEADER_LEN || total < ihl {
            return Err(Error::Malformed);
        }
        if b.len() < total {
            return Err(Error::Truncated);
        }
        Ok(Packet { buffer })
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn header_len(&self) -> usize {
        usize::from(self.b()[field::VER_IHL] & 0x0f) * 4
    }

    pub fn total_len(&self) -> usize {
        usize::from(be16(self.b(), field::LENGTH.start))
    }

    /// More-fragments set or a non-zero offset.
    pub fn is_fragment(&self) -> bool {
        be16(self.b(), field::FLG_OFF.start) & 0x3fff != 0
    }

    pub fn ttl(&self) -> u8 {
        self.b()[field::TTL]
    }

    pub fn protocol(&self) -> u8 {
        self.b()[field::PROTOCOL]
    }

    pub fn src(&self) -> Ipv4Addr {
        addr(&self.b()[field::SRC])
    }

    pub fn dst(&self) -> Ipv4Addr {
        addr(&self.b()[field::DST])
    }

    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(&self.b()[..self.header_len()]) == 0
    }

    pub fn payload(&self) -> &[u8] {
        &self.b()[self.header_len()..self.total_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Swaps source and destination; the checksum is unchanged (the sum of
    /// the header words is the same).
    pub fn swap_addresses(&mut self) {
        let b = self.buffer.as_mut();
        for i in field::SRC {
            b.swap(i, i + 4);
        }
    }

    pub fn set_ttl(&mut self, ttl: u8) {
        let b = self.buffer.as_mut();
        let old = be16(b, field::TTL);
        b[field::TTL] = ttl;
        let new = be16(b, field::TTL);
        let c = checksum::update16(be16(b, field::CHECKSUM.start), old, new);
        put16(b, field::CHECKSUM.start, c);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (h, t) = (self.header_len(), self.total_len());
        &mut self.buffer.as_mut()[h..t]
    }
}

fn addr(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

/// An IPv4 header as values. What pollux sends has no options, DSCP/ECN
/// 0, identification 0 and Don't Fragment set (it never fragments; path
/// MTU discovery does that), so those are not fields; [`Repr::parse`]
/// drops them (and options) from what it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// The payload's protocol ([`protocol`]).
    pub protocol: u8,
    /// Bytes after the header: at most 65 515.
    pub payload_len: usize,
    pub ttl: u8,
}

impl Repr {
    /// The header of a checked packet, if its checksum verifies.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        if !p.verify_checksum() {
            return Err(Error::Checksum);
        }
        Ok(Repr {
            src: p.src(),
            dst: p.dst(),
            protocol: p.protocol(),
            payload_len: p.total_len() - p.header_len(),
            ttl: p.ttl(),
        })
    }

    /// The bytes [`emit`](Repr::emit) writes.
    pub const fn buffer_len(&self) -> usize {
        MIN_HEADER_LEN
    }

    /// The header and its payload's length.
    pub const fn total_len(&self) -> usize {
        MIN_HEADER_LEN + self.payload_len
    }

    /// The pseudo-header sum of its TCP/UDP payload (RFC 793 §3.1).
    pub fn pseudo(&self) -> u32 {
        checksum::pseudo_v4(self.src, self.dst, self.protocol, self.payload_len as u16)
    }

    /// Writes the 20-byte header, checksum included, into `buf[..20]`.
    /// Panics if `buf` is shorter (callers size their frames first).
    pub fn emit(&self, buf: &mut [u8]) {
        debug_assert!(self.total_len() <= usize::from(u16::MAX));
        let h = &mut buf[..MIN_HEADER_LEN];
        h[field::VER_IHL] = 0x45;
        h[field::DSCP_ECN] = 0;
        put16(h, field::LENGTH.start, self.total_len() as u16);
        put16(h, field::IDENT.start, 0);
        put16(h, field::FLG_OFF.start, DONT_FRAG);
        h[field::TTL] = self.ttl;
        h[field::PROTOCOL] = self.protocol;
        put16(h, field::CHECKSUM.start, 0);
        h[field::SRC].copy_from_slice(&self.src.octets());
        h[field::DST].copy_from_slice(&self.dst.octets());
        let c = checksum::checksum(h);
        put16(h, field::CHECKSUM.start, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 20-byte header of an ICMP echo request 10.0.0.1 -> 10.0.0.2.
    const HDR: [u8; 20] = [
        0x45, 0x00, 0x00, 0x1c, // v4, IHL 5, TOS, total 28
        0x12, 0x34, 0x40, 0x00, // id, DF
        0x40, 0x01, 0x00, 0x00, // TTL 64, ICMP, checksum (filled below)
        10, 0, 0, 1, 10, 0, 0, 2,
    ];

    fn packet() -> [u8; 28] {
        let mut b = [0u8; 28];
        b[..20].copy_from_slice(&HDR);
        let c = checksum::checksum(&b[..20]);
        b[10..12].copy_from_slice(&c.to_be_bytes());
        b
    }

    #[test]
    fn parse() {
        let b = packet();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.protocol(), protocol::ICMP);
        assert_eq!(p.dst(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(p.payload().len(), 8);
        assert!(!p.is_fragment());
    }

    #[test]
    fn swap_keeps_checksum_and_ttl_updates_it() {
        let mut b = packet();
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.swap_addresses();
        assert!(p.verify_checksum());
        assert_eq!(p.src(), Ipv4Addr::new(10, 0, 0, 2));
        p.set_ttl(63);
        assert!(p.verify_checksum());
    }

    #[test]
    fn malformed() {
        let mut b = packet();
        b[0] = 0x44; // IHL 4
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Malformed);
        let mut b = packet();
        b[0] = 0x65; // version 6
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Malformed);
        let mut b = packet();
        b[3] = 100; // longer than the buffer
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Truncated);
        let b = packet();
        assert_eq!(Packet::new_checked(&b[..19]).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn emit_writes_the_header_pollux_always_wrote() {
        // The header of `HDR` (id 0x1234 aside, which pollux sends as 0).
        let r = Repr {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(10, 0, 0, 2),
            protocol: protocol::ICMP,
            payload_len: 8,
            ttl: 64,
        };
        let mut b = packet();
        b[4..6].fill(0);
        b[10..12].fill(0);
        let c = checksum::checksum(&b[..20]);
        b[10..12].copy_from_slice(&c.to_be_bytes());
        let mut out = [0xaa; 28];
        r.emit(&mut out);
        assert_eq!(out[..20], b[..20]);
        assert_eq!(r.buffer_len(), 20);
        let p = Packet::new_checked(&out[..]).unwrap();
        assert_eq!(Repr::parse(&p), Ok(r));
    }

    #[test]
    fn parse_refuses_a_bad_checksum() {
        let mut b = packet();
        b[11] ^= 1;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Repr::parse(&p), Err(Error::Checksum));
    }

    proptest::proptest! {
        #[test]
        fn parse_of_emit_is_identity(
            src: [u8; 4],
            dst: [u8; 4],
            protocol: u8,
            payload_len in 0usize..=65_515,
            ttl: u8,
        ) {
            let r = Repr {
                src: src.into(),
                dst: dst.into(),
                protocol,
                payload_len,
                ttl,
            };
            let mut b = vec![0u8; r.total_len()];
            r.emit(&mut b);
            let p = Packet::new_checked(&b[..]).unwrap();
            proptest::prop_assert_eq!(Repr::parse(&p), Ok(r));
            proptest::prop_assert_eq!(p.payload().len(), payload_len);
        }
    }
}

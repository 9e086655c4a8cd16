//! IPv6 fixed header (RFC 8200 §3).
//!
//! ```text
//! +-------+---------------+---------------------------------------+
//! |Version| Traffic Class |              Flow Label               |
//! |        Payload Length         |  Next Header  |   Hop Limit   |
//! |                 Source Address (16 octets)                    |
//! |              Destination Address (16 octets)                  |
//! +---------------------------------------------------------------+
//! ```
//!
//! [`Packet`] reads and rewrites a header in place; [`Repr`] is a parsed
//! header, and [`Repr::emit`] is where every IPv6 header pollux builds is
//! written.

use std::net::Ipv6Addr;

use super::{be16, checksum, put16, Error, Result};

pub const HEADER_LEN: usize = 40;

/// Byte offsets of the header's fields.
pub mod field {
    pub type Field = core::ops::Range<usize>;

    /// Version, traffic class, flow label.
    pub const VER_TC_FLOW: Field = 0..4;
    pub const LENGTH: Field = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Field = 8..24;
    pub const DST: Field = 24..40;
}

/// A view of an IPv6 packet whose payload length has been checked.
#[derive(Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[field::VER_TC_FLOW.start] >> 4 != 6 {
            return Err(Error::Malformed);
        }
        if b.len() < HEADER_LEN + usize::from(be16(b, field::LENGTH.start)) {
            return Err(Error::Truncated);
        }
        Ok(Packet { buffer })
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn payload_len(&self) -> usize {
        usize::from(be16(self.b(), field::LENGTH.start))
    }

    pub fn next_header(&self) -> u8 {
        self.b()[field::NEXT_HEADER]
    }

    pub fn hop_limit(&self) -> u8 {
        self.b()[field::HOP_LIMIT]
    }

    pub fn src(&self) -> Ipv6Addr {
        addr(&self.b()[field::SRC])
    }

    pub fn dst(&self) -> Ipv6Addr {
        addr(&self.b()[field::DST])
    }

    pub fn payload(&self) -> &[u8] {
        &self.b()[HEADER_LEN..HEADER_LEN + self.payload_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_src(&mut self, a: &Ipv6Addr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a.octets());
    }

    pub fn set_dst(&mut self, a: &Ipv6Addr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a.octets());
    }

    pub fn set_hop_limit(&mut self, h: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = h;
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let n = self.payload_len();
        &mut self.buffer.as_mut()[HEADER_LEN..HEADER_LEN + n]
    }
}

fn addr(b: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(b);
    Ipv6Addr::from(a)
}

/// The solicited-node multicast address of `a` (RFC 4291 §2.7.1).
pub fn solicited_node(a: &Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15],
    ])
}

/// An IPv6 fixed header as values. What pollux sends has traffic class
/// and flow label 0, so those are not fields; [`Repr::parse`] drops them
/// from what it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    /// The payload's protocol (byte 6).
    pub next_header: u8,
    /// Bytes after the fixed header: at most 65 535.
    pub payload_len: usize,
    /// Byte 7.
    pub hop_limit: u8,
}

impl Repr {
    /// The header of a checked packet (IPv6 has no header checksum).
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        Ok(Repr {
            src: p.src(),
            dst: p.dst(),
            next_header: p.next_header(),
            payload_len: p.payload_len(),
            hop_limit: p.hop_limit(),
        })
    }

    /// The bytes [`emit`](Repr::emit) writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// The header and its payload's length.
    pub const fn total_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// The pseudo-header sum of its upper-layer payload (RFC 8200 §8.1).
    pub fn pseudo(&self) -> u32 {
        checksum::pseudo_v6(
            &self.src,
            &self.dst,
            self.next_header,
            self.payload_len as u32,
        )
    }

    /// Writes the 40-byte header into `buf[..40]`. Panics if `buf` is
    /// shorter (callers size their frames first).
    pub fn emit(&self, buf: &mut [u8]) {
        debug_assert!(self.payload_len <= usize::from(u16::MAX));
        let h = &mut buf[..HEADER_LEN];
        h[field::VER_TC_FLOW].copy_from_slice(&[0x60, 0, 0, 0]);
        put16(h, field::LENGTH.start, self.payload_len as u16);
        h[field::NEXT_HEADER] = self.next_header;
        h[field::HOP_LIMIT] = self.hop_limit;
        h[field::SRC].copy_from_slice(&self.src.octets());
        h[field::DST].copy_from_slice(&self.dst.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_emit() {
        let src: Ipv6Addr = "fd00::1".parse().unwrap();
        let dst: Ipv6Addr = "fd00::2".parse().unwrap();
        let r = Repr {
            src,
            dst,
            next_header: 58,
            payload_len: 8,
            hop_limit: 64,
        };
        let mut b = [0u8; 48];
        r.emit(&mut b);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.src(), p.dst()), (src, dst));
        assert_eq!(
            (p.next_header(), p.hop_limit(), p.payload().len()),
            (58, 64, 8)
        );
        assert_eq!(Repr::parse(&p), Ok(r));
        assert_eq!(Packet::new_checked(&b[..47]).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn next_header_is_byte_6_and_hop_limit_byte_7() {
        // Two values that differ, so a swap cannot pass (one writer once
        // took them in the other order).
        let r = Repr {
            src: Ipv6Addr::LOCALHOST,
            dst: Ipv6Addr::UNSPECIFIED,
            next_header: 6,
            payload_len: 20,
            hop_limit: 255,
        };
        let mut b = [0u8; 40];
        r.emit(&mut b);
        assert_eq!((b[6], b[7]), (6, 255));
        assert_eq!(b[..6], [0x60, 0, 0, 0, 0, 20]);
        assert_eq!(b[8..24], Ipv6Addr::LOCALHOST.octets());
        assert_eq!(b[24..40], [0; 16]);
    }

    proptest::proptest! {
        #[test]
        fn parse_of_emit_is_identity(
            src: [u8; 16],
            dst: [u8; 16],
            next_header: u8,
            payload_len in 0usize..=65_535,
            hop_limit: u8,
        ) {
            let r = Repr {
                src: src.into(),
                dst: dst.into(),
                next_header,
                payload_len,
                hop_limit,
            };
            let mut b = vec![0u8; r.total_len()];
            r.emit(&mut b);
            let p = Packet::new_checked(&b[..]).unwrap();
            proptest::prop_assert_eq!(Repr::parse(&p), Ok(r));
            proptest::prop_assert_eq!(p.payload().len(), payload_len);
        }
    }

    #[test]
    fn solicited_node_address() {
        let a: Ipv6Addr = "fd00::12:3456".parse().unwrap();
        assert_eq!(
            solicited_node(&a),
            "ff02::1:ff12:3456".parse::<Ipv6Addr>().unwrap()
        );
    }
}

//! UDP header view (RFC 768).
//!
//! ```text
//!  0      7 8     15 16    23 24    31
//! +--------+--------+--------+--------+
//! |     Source      |   Destination   |
//! |      Port       |      Port       |
//! +--------+--------+--------+--------+
//! |     Length      |    Checksum     |
//! +--------+--------+--------+--------+
//! ```
//!
//! Checksum 0 means "none" over IPv4 (and must stay 0 through NAT); a
//! computed checksum of 0 is sent as 0xffff (RFC 768). Over IPv6 the
//! checksum is mandatory (RFC 8200 §8.1).
//!
//! [`Repr::emit`] is where every UDP header pollux builds is written.

use super::{be16, checksum, put16, Error, Result};

pub const HEADER_LEN: usize = 8;
pub const SRC_PORT: usize = 0;
pub const DST_PORT: usize = 2;
pub const LENGTH: usize = 4;
pub const CHECKSUM: usize = 6;

/// A UDP header (and payload) in a buffer.
#[derive(Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// At least 8 bytes, and a length field between 8 and the buffer.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let len = usize::from(be16(b, LENGTH));
        if len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if b.len() < len {
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
    pub fn len(&self) -> usize {
        usize::from(be16(self.b(), LENGTH))
    }
    pub fn is_empty(&self) -> bool {
        self.len() == HEADER_LEN
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

/// A UDP header as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src_port: u16,
    pub dst_port: u16,
    /// Bytes after the header: at most 65 527.
    pub payload_len: usize,
}

impl Repr {
    /// The header of a checked datagram whose checksum verifies with
    /// `pseudo`, the IP pseudo-header sum of its length
    /// ([`ipv4::Repr::pseudo`](super::ipv4::Repr::pseudo)); checksum 0
    /// ("none", IPv4 only: an IPv6 caller refuses it itself) passes.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>, pseudo: u32) -> Result<Repr> {
        let datagram = &p.b()[..p.len()];
        if p.checksum() != 0 && checksum::fold(checksum::add(pseudo, checksum::sum(datagram))) != 0
        {
            return Err(Error::Checksum);
        }
        Ok(Repr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            payload_len: p.len() - HEADER_LEN,
        })
    }

    /// The bytes [`emit`](Repr::emit) writes before the payload.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into `buf[..8]`, the payload being already in
    /// `buf[8..8 + payload_len]`, and the checksum over both with `pseudo`
    /// (a computed 0 is sent as 0xffff, RFC 768). Panics if `buf` is
    /// shorter.
    pub fn emit(&self, buf: &mut [u8], pseudo: u32) {
        let len = HEADER_LEN + self.payload_len;
        debug_assert!(len <= usize::from(u16::MAX));
        let d = &mut buf[..len];
        put16(d, SRC_PORT, self.src_port);
        put16(d, DST_PORT, self.dst_port);
        put16(d, LENGTH, len as u16);
        put16(d, CHECKSUM, 0);
        let c = match checksum::fold(checksum::add(pseudo, checksum::sum(d))) {
            0 => 0xffff,
            c => c,
        };
        put16(d, CHECKSUM, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_set() {
        let mut b = [0x13, 0x88, 0x00, 0x35, 0x00, 0x0a, 0x00, 0x00, 1, 2];
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port(), p.len()), (5000, 53, 10));
        assert!(!p.is_empty());
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_src_port(9);
        p.set_checksum(0xffff);
        assert_eq!((p.src_port(), p.checksum()), (9, 0xffff));
    }

    #[test]
    fn length_field_is_checked() {
        let b = [0, 1, 0, 2, 0, 7, 0, 0];
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Malformed);
        let b = [0, 1, 0, 2, 0, 9, 0, 0];
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Truncated);
        assert_eq!(Packet::new_checked(&b[..7]).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn emit_fills_a_checksum_parse_verifies() {
        let pseudo = checksum::pseudo_v4([10, 0, 0, 1].into(), [10, 0, 0, 2].into(), 17, 10);
        let r = Repr {
            src_port: 49152,
            dst_port: 3784,
            payload_len: 2,
        };
        let mut b = [0, 0, 0, 0, 0, 0, 0, 0, 0xab, 0xcd];
        r.emit(&mut b, pseudo);
        assert_eq!(b[..6], [0xc0, 0x00, 0x0e, 0xc8, 0x00, 0x0a]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_ne!(p.checksum(), 0);
        assert_eq!(Repr::parse(&p, pseudo), Ok(r));
        assert_eq!(Repr::parse(&p, pseudo + 1), Err(Error::Checksum));
        b[6..8].fill(0); // "none"
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Repr::parse(&p, pseudo + 1), Ok(r));
    }

    proptest::proptest! {
        #[test]
        fn parse_of_emit_is_identity(
            src_port: u16,
            dst_port: u16,
            payload in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
            pseudo: u32,
        ) {
            let r = Repr { src_port, dst_port, payload_len: payload.len() };
            let mut b = vec![0u8; HEADER_LEN + payload.len()];
            b[HEADER_LEN..].copy_from_slice(&payload);
            r.emit(&mut b, pseudo);
            let p = Packet::new_checked(&b[..]).unwrap();
            proptest::prop_assert_eq!(Repr::parse(&p, pseudo), Ok(r));
        }
    }
}

//! ICMPv6 (RFC 4443) echo and Neighbor Discovery (RFC 4861 §4.3, §4.4).
//!
//! ```text
//! Neighbor Solicitation / Advertisement:
//! +--------+--------+-----------------+
//! | type 1 | code 1 | checksum 2      |
//! | R|S|O| reserved (NA) or reserved  |
//! | target address (16)               |
//! | options: type 1 | len 1 (x8) | .. |  source (1) / target (2) link-layer address
//! +-----------------------------------+
//! ```

use std::net::Ipv6Addr;

use super::{be16, checksum, put16, Error, Mac, Result};

pub const HEADER_LEN: usize = 8;
pub const ECHO_REQUEST: u8 = 128;
pub const ECHO_REPLY: u8 = 129;
pub const ROUTER_SOLICIT: u8 = 133;
pub const ROUTER_ADVERT: u8 = 134;
pub const NEIGHBOR_SOLICIT: u8 = 135;
pub const NEIGHBOR_ADVERT: u8 = 136;
pub const REDIRECT: u8 = 137;

/// NS/NA body: 4 bytes of flags, the 16-byte target.
pub const ND_LEN: usize = HEADER_LEN + 16;
const OPT_SOURCE_LLADDR: u8 = 1;
const OPT_TARGET_LLADDR: u8 = 2;
/// NA flags (RFC 4861 §4.4).
pub const NA_SOLICITED: u32 = 0x4000_0000;
pub const NA_OVERRIDE: u32 = 0x2000_0000;

#[derive(Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Packet { buffer })
    }

    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[1]
    }

    pub fn verify_checksum(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        let b = self.buffer.as_ref();
        let acc = checksum::add(
            checksum::pseudo_v6(src, dst, 58, b.len() as u32),
            checksum::sum(b),
        );
        checksum::fold(acc) == 0
    }

    /// The target of an NS or NA (`Truncated` if the body is short).
    pub fn nd_target(&self) -> Result<Ipv6Addr> {
        let b = self.buffer.as_ref();
        if b.len() < ND_LEN {
            return Err(Error::Truncated);
        }
        let mut a = [0u8; 16];
        a.copy_from_slice(&b[8..24]);
        Ok(Ipv6Addr::from(a))
    }

    /// The source (NS) or target (NA) link-layer address option, if any.
    /// A zero-length option is malformed (RFC 4861 §4.6).
    pub fn nd_lladdr(&self) -> Result<Option<Mac>> {
        let b = self.buffer.as_ref();
        let want = if self.msg_type() == NEIGHBOR_SOLICIT {
            OPT_SOURCE_LLADDR
        } else {
            OPT_TARGET_LLADDR
        };
        let mut at = ND_LEN;
        while at + 2 <= b.len() {
            let len = usize::from(b[at + 1]) * 8;
            if len == 0 || at + len > b.len() {
                return Err(Error::Malformed);
            }
            if b[at] == want && len >= 8 {
                return Ok(Some(Mac::from_slice(&b[at + 2..at + 8])));
            }
            at += len;
        }
        Ok(None)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Recomputes the checksum over the whole message.
    pub fn fill_checksum(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        let b = self.buffer.as_mut();
        put16(b, 2, 0);
        let acc = checksum::add(
            checksum::pseudo_v6(src, dst, 58, b.len() as u32),
            checksum::sum(b),
        );
        put16(b, 2, checksum::fold(acc));
    }

    /// Echo request → reply in place; addresses swap in the IPv6 header,
    /// which leaves the pseudo-header sum unchanged, so the update is
    /// incremental on the type field alone.
    pub fn make_echo_reply(&mut self) {
        let b = self.buffer.as_mut();
        let old = be16(b, 0);
        b[0] = ECHO_REPLY;
        let c = checksum::update16(be16(b, 2), old, be16(b, 0));
        put16(b, 2, c);
    }
}

/// Writes an NS or NA with one link-layer address option into `buf` (at
/// least `ND_LEN + 8` bytes) and returns its length; the checksum is left
/// for `fill_checksum`.
pub fn emit_nd(buf: &mut [u8], msg_type: u8, flags: u32, target: &Ipv6Addr, lladdr: Mac) -> usize {
    buf[0] = msg_type;
    buf[1] = 0;
    put16(buf, 2, 0);
    buf[4..8].copy_from_slice(&flags.to_be_bytes());
    buf[8..24].copy_from_slice(&target.octets());
    buf[24] = if msg_type == NEIGHBOR_SOLICIT {
        OPT_SOURCE_LLADDR
    } else {
        OPT_TARGET_LLADDR
    };
    buf[25] = 1;
    buf[26..32].copy_from_slice(&lladdr.0);
    ND_LEN + 8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nd_round_trip() {
        let src: Ipv6Addr = "fd00::1".parse().unwrap();
        let dst: Ipv6Addr = "ff02::1:ff00:2".parse().unwrap();
        let target: Ipv6Addr = "fd00::2".parse().unwrap();
        let mac = Mac([2, 0, 0, 0, 0, 1]);
        let mut b = [0u8; 32];
        let n = emit_nd(&mut b, NEIGHBOR_SOLICIT, 0, &target, mac);
        let mut p = Packet::new_checked(&mut b[..n]).unwrap();
        p.fill_checksum(&src, &dst);
        assert!(p.verify_checksum(&src, &dst));
        assert_eq!(p.nd_target().unwrap(), target);
        assert_eq!(p.nd_lladdr().unwrap(), Some(mac));
    }

    #[test]
    fn zero_length_option_is_malformed() {
        let mut b = [0u8; 32];
        let n = emit_nd(&mut b, NEIGHBOR_SOLICIT, 0, &Ipv6Addr::LOCALHOST, Mac::ZERO);
        b[25] = 0;
        assert_eq!(
            Packet::new_checked(&b[..n]).unwrap().nd_lladdr(),
            Err(Error::Malformed)
        );
    }
}

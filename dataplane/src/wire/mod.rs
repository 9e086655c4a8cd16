//! Zero-copy views over wire formats.
//!
//! Each protocol has a `Packet<T: AsRef<[u8]>>` view over a buffer: one
//! `new_checked` length check up front, infallible getters afterwards, field
//! offsets as `const` ranges, network byte order at the accessor (the smoltcp
//! shape). Setters exist where the data plane rewrites in place (`T:
//! AsMut<[u8]>`). Nothing here allocates, and nothing panics on any input:
//! every decoder is fuzzed (`fuzz/fuzz_targets/wire_frame.rs`).
//!
//! Each header pollux builds has a `Repr` too: a plain struct of the
//! header's values, `Repr::parse` from a checked view (checksum included
//! where the header has one) and `Repr::emit` into a buffer. Every header
//! pollux writes is written by one of them (ARP, Ethernet and ND keep their
//! `emit` functions).
//!
//! Errors are one small `Copy` enum that the worker turns into drop counters.

use std::net::IpAddr;

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;

/// IANA protocol numbers: IPv4's protocol field and IPv6's next header.
pub mod protocol {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMPV6: u8 = 58;
}

/// Why a header could not be read. The worker maps each to a drop reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The buffer is shorter than the header (or than its length field says).
    Truncated,
    /// A field holds a value the protocol forbids (version, IHL, lengths).
    Malformed,
    /// The checksum does not verify.
    Checksum,
}

pub type Result<T> = core::result::Result<T, Error>;

/// An IPv4 or an IPv6 header as values, for code that sends either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpRepr {
    V4(ipv4::Repr),
    V6(ipv6::Repr),
}

impl IpRepr {
    /// The header from `src` to `dst` (both of one family, else `None`)
    /// before `payload_len` bytes of `protocol`, with this TTL/hop limit.
    pub fn new(
        src: IpAddr,
        dst: IpAddr,
        protocol: u8,
        payload_len: usize,
        ttl: u8,
    ) -> Option<IpRepr> {
        match (src, dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => Some(IpRepr::V4(ipv4::Repr {
                src,
                dst,
                protocol,
                payload_len,
                ttl,
            })),
            (IpAddr::V6(src), IpAddr::V6(dst)) => Some(IpRepr::V6(ipv6::Repr {
                src,
                dst,
                next_header: protocol,
                payload_len,
                hop_limit: ttl,
            })),
            _ => None,
        }
    }

    /// The Ethernet type that carries it.
    pub fn ethertype(&self) -> u16 {
        match self {
            IpRepr::V4(_) => ethernet::ethertype::IPV4,
            IpRepr::V6(_) => ethernet::ethertype::IPV6,
        }
    }

    pub fn buffer_len(&self) -> usize {
        match self {
            IpRepr::V4(r) => r.buffer_len(),
            IpRepr::V6(r) => r.buffer_len(),
        }
    }

    /// The pseudo-header sum of its TCP/UDP/ICMPv6 payload.
    pub fn pseudo(&self) -> u32 {
        match self {
            IpRepr::V4(r) => r.pseudo(),
            IpRepr::V6(r) => r.pseudo(),
        }
    }

    pub fn emit(&self, buf: &mut [u8]) {
        match self {
            IpRepr::V4(r) => r.emit(buf),
            IpRepr::V6(r) => r.emit(buf),
        }
    }
}

pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// The little-endian word of bytes `at..at + 8` of `b` (a fixed-size
/// array: with `at` a constant, no bounds check is left).
#[inline(always)]
pub(crate) fn le64<const N: usize>(b: &[u8; N], at: usize) -> u64 {
    let mut w = [0; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

pub(crate) fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// A MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    pub const BROADCAST: Mac = Mac([0xff; 6]);
    pub const ZERO: Mac = Mac([0; 6]);

    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Group bit set: broadcast or multicast.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }

    /// 33:33:xx:xx:xx:xx for an IPv6 multicast group (RFC 2464 §7).
    pub fn ipv6_multicast(group: &[u8; 16]) -> Mac {
        Mac([0x33, 0x33, group[12], group[13], group[14], group[15]])
    }

    pub fn from_slice(b: &[u8]) -> Mac {
        let mut m = [0; 6];
        m.copy_from_slice(&b[..6]);
        Mac(m)
    }
}

impl core::fmt::Debug for Mac {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(self, f)
    }
}

impl core::fmt::Display for Mac {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl core::str::FromStr for Mac {
    type Err = ();
    fn from_str(s: &str) -> core::result::Result<Mac, ()> {
        let mut m = [0u8; 6];
        let mut parts = s.split(':');
        for b in &mut m {
            *b = u8::from_str_radix(parts.next().ok_or(())?, 16).map_err(|_| ())?;
        }
        if parts.next().is_some() {
            return Err(());
        }
        Ok(Mac(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_repr_picks_the_family_and_refuses_a_mix() {
        let (a4, b4): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let (a6, b6): (IpAddr, IpAddr) = ("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap());
        assert_eq!(IpRepr::new(a4, b6, 17, 8, 64), None);
        assert_eq!(IpRepr::new(a6, b4, 17, 8, 64), None);

        let r4 = IpRepr::new(a4, b4, ipv4::protocol::UDP, 8, 7).unwrap();
        assert_eq!((r4.ethertype(), r4.buffer_len()), (0x0800, 20));
        let (IpAddr::V4(s), IpAddr::V4(d)) = (a4, b4) else {
            unreachable!()
        };
        assert_eq!(r4.pseudo(), checksum::pseudo_v4(s, d, 17, 8));
        let mut b = [0u8; 28];
        r4.emit(&mut b);
        let p = ipv4::Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.ttl(), p.protocol(), p.payload().len()), (7, 17, 8));

        let r6 = IpRepr::new(a6, b6, ipv4::protocol::TCP, 20, 9).unwrap();
        assert_eq!((r6.ethertype(), r6.buffer_len()), (0x86dd, 40));
        let (IpAddr::V6(s), IpAddr::V6(d)) = (a6, b6) else {
            unreachable!()
        };
        assert_eq!(r6.pseudo(), checksum::pseudo_v6(&s, &d, 6, 20));
        let mut b = [0u8; 60];
        r6.emit(&mut b);
        let p = ipv6::Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            (p.hop_limit(), p.next_header(), p.payload().len()),
            (9, 6, 20)
        );
    }
}

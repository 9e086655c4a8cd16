//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).

use std::net::{Ipv4Addr, Ipv6Addr};

/// One's-complement sum of `data` as big-endian 16-bit words, not folded.
pub fn sum(data: &[u8]) -> u32 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        acc += u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    }
    let rest = chunks.remainder();
    let mut i = 0;
    while i + 1 < rest.len() {
        acc += u64::from(u16::from_be_bytes([rest[i], rest[i + 1]]));
        i += 2;
    }
    if i < rest.len() {
        acc += u64::from(rest[i]) << 8;
    }
    fold64(acc)
}

/// 64 → 32 bits: the two halves added with end-around carry (zero only
/// if `acc` is).
#[inline(always)]
pub fn fold64(acc: u64) -> u32 {
    add(acc as u32, (acc >> 32) as u32)
}

/// Adds two partial sums with end-around carry (never overflows).
#[inline(always)]
pub fn add(a: u32, b: u32) -> u32 {
    let (s, carry) = a.overflowing_add(b);
    s + u32::from(carry)
}

/// Fold a 32-bit sum to 16 bits and complement it: the value to store.
#[inline(always)]
pub fn fold(acc: u32) -> u16 {
    // The halves added with end-around carry: zero only if `acc` is.
    let (s, carry) = (acc as u16).overflowing_add((acc >> 16) as u16);
    !(s + u16::from(carry))
}

/// The one's-complement sum of `acc`'s 16-bit pieces, folded and not
/// complemented: in 1..=0xffff, 0 only if `acc` is. An incremental
/// update's delta folded this way once (a per-member constant, say) adds
/// to a checksum's complement with [`add16`], no fold per packet.
#[inline(always)]
pub fn fold16(acc: u64) -> u16 {
    !fold(fold64(acc))
}

/// Adds two [`fold16`]ed sums with end-around carry: `add16(fold16(a),
/// fold16(b)) == fold16(a + b)` (the same residue modulo 0xffff, and 0
/// only if both are 0), so folded deltas add up to the fold of the whole.
#[inline(always)]
pub fn add16(a: u16, b: u16) -> u16 {
    let (s, carry) = a.overflowing_add(b);
    s + u16::from(carry)
}

/// Checksum of `data` alone (IPv4 header, ICMPv4).
pub fn checksum(data: &[u8]) -> u16 {
    fold(sum(data))
}

/// Sum of the IPv4 pseudo-header (RFC 793 §3.1).
pub fn pseudo_v4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: u16) -> u32 {
    let s = src.octets();
    let d = dst.octets();
    u32::from(u16::from_be_bytes([s[0], s[1]]))
        + u32::from(u16::from_be_bytes([s[2], s[3]]))
        + u32::from(u16::from_be_bytes([d[0], d[1]]))
        + u32::from(u16::from_be_bytes([d[2], d[3]]))
        + u32::from(proto)
        + u32::from(len)
}

/// Sum of the IPv6 pseudo-header (RFC 8200 §8.1).
pub fn pseudo_v6(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, len: u32) -> u32 {
    let mut acc = sum(&src.octets()) as u64 + sum(&dst.octets()) as u64;
    acc += u64::from(len >> 16) + u64::from(len & 0xffff) + u64::from(next_header);
    fold64(acc)
}

/// RFC 1624 eqn. 3: the new checksum after a 16-bit field changed from
/// `old` to `new`, without touching the rest of the data.
pub fn update16(check: u16, old: u16, new: u16) -> u16 {
    let acc = u32::from(!check) + u32::from(!old) + u32::from(new);
    fold(acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A one's-complement sum's 16-bit value: congruent modulo 0xffff,
    /// 0 only for 0 (else 1..=0xffff).
    fn reference(acc: u64) -> u16 {
        match (acc, acc % 0xffff) {
            (0, _) => 0,
            (_, 0) => 0xffff,
            (_, r) => r as u16,
        }
    }

    proptest! {
        #[test]
        fn folds_are_the_sum_modulo_0xffff(acc in any::<u64>(), small in any::<u32>()) {
            prop_assert_eq!(fold(fold64(acc)), !reference(acc));
            prop_assert_eq!(fold(small), !reference(u64::from(small)));
            prop_assert_eq!(fold16(acc), reference(acc));
        }

        /// Folded pieces add to the fold of the whole, zero included
        /// (`acc` < 2^62: the sum does not overflow).
        #[test]
        fn folded_sums_add_with_end_around_carry(a in 0..1u64 << 62, b in 0..1u64 << 62, zero in any::<bool>()) {
            let (a, b) = if zero { (0, b & 0xffff_0000) } else { (a, b) };
            prop_assert_eq!(add16(fold16(a), fold16(b)), fold16(a + b));
            prop_assert_eq!(add16(fold16(a), 0), fold16(a));
        }
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&d)), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(sum(&[0xab]), 0xab00);
        assert_eq!(sum(&[1, 2, 3]), 0x0102 + 0x0300);
    }

    #[test]
    fn incremental_update_matches_full_recompute() {
        let mut d = [
            0x45u8, 0, 0, 84, 0, 0, 0x40, 0, 64, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let c = checksum(&d);
        d[10..12].copy_from_slice(&c.to_be_bytes());
        // TTL 64 -> 63 changes the word at offset 8.
        let old = u16::from_be_bytes([d[8], d[9]]);
        d[8] = 63;
        let new = u16::from_be_bytes([d[8], d[9]]);
        let inc = update16(c, old, new);
        d[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(inc, checksum(&d));
    }
}

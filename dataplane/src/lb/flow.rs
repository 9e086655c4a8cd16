//! The flow key (a 5-tuple plus address family) and the flow hashes.
//!
//! One key type serves IPv4 and IPv6: addresses are stored in 16-byte
//! arrays, an IPv4 address in the first four bytes and zeros after it, and
//! the family is part of the key, so an IPv4 flow can never equal an IPv6
//! flow (not even one using v4-mapped addresses). Ports are in host order.
//!
//! Two hashes, both pollux-hash v1 (see [`super::hash`]):
//! - [`FlowHasher::MAGLEV`]: fixed seed, the same in every process on every
//!   machine, so every instance maps a flow to the same Maglev slot (what
//!   lets flows survive an ECMP rehash between instances);
//! - [`CtHasher`] with a per-worker random seed for the connection table,
//!   so that nobody outside can aim many flows at one bucket. Its IPv4
//!   variant is one folded multiply (the key's 13 bytes fit two words);
//!   its IPv6 one is [`FlowHasher::new`]'s. Nothing outside a worker
//!   sees it, so it may change between versions.
//!
//! [`FlowHasher::hash_symmetric`] gives both directions of a flow the same
//! hash (RSS-like ownership decisions: whichever direction a worker sees, it
//! computes the same owner).

use std::net::IpAddr;

use super::hash::{fold_mul, P0, P1, P2, P3, P4};
use crate::wire::le64;

/// Address family of a [`FlowKey`]; its value is the IP version number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Family {
    #[default]
    V4 = 4,
    V6 = 6,
}

/// TCP, UDP protocol numbers, for convenience.
pub const PROTO_TCP: u8 = crate::wire::protocol::TCP;
pub const PROTO_UDP: u8 = crate::wire::protocol::UDP;

/// A flow as seen on the wire: source and destination address and port,
/// IP protocol, address family. Fields are private so that the padding of
/// IPv4 addresses is always zero (keys compare and hash by value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    src: [u8; 16],
    dst: [u8; 16],
    src_port: u16,
    dst_port: u16,
    proto: u8,
    family: Family,
}

impl FlowKey {
    /// An IPv4 flow; addresses as on the wire (network order bytes).
    #[inline]
    pub fn v4(src: [u8; 4], dst: [u8; 4], src_port: u16, dst_port: u16, proto: u8) -> Self {
        let mut s = [0u8; 16];
        let mut d = [0u8; 16];
        s[..4].copy_from_slice(&src);
        d[..4].copy_from_slice(&dst);
        FlowKey {
            src: s,
            dst: d,
            src_port,
            dst_port,
            proto,
            family: Family::V4,
        }
    }

    /// An IPv6 flow; addresses as on the wire.
    #[inline]
    pub fn v6(src: [u8; 16], dst: [u8; 16], src_port: u16, dst_port: u16, proto: u8) -> Self {
        FlowKey {
            src,
            dst,
            src_port,
            dst_port,
            proto,
            family: Family::V6,
        }
    }

    /// A flow from `std::net` addresses; `None` if the families differ.
    pub fn new(src: IpAddr, dst: IpAddr, src_port: u16, dst_port: u16, proto: u8) -> Option<Self> {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                Some(Self::v4(s.octets(), d.octets(), src_port, dst_port, proto))
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                Some(Self::v6(s.octets(), d.octets(), src_port, dst_port, proto))
            }
            _ => None,
        }
    }

    /// The same flow seen from the other end (source and destination swapped).
    #[inline]
    pub fn reversed(&self) -> Self {
        FlowKey {
            src: self.dst,
            dst: self.src,
            src_port: self.dst_port,
            dst_port: self.src_port,
            proto: self.proto,
            family: self.family,
        }
    }

    pub fn family(&self) -> Family {
        self.family
    }
    pub fn proto(&self) -> u8 {
        self.proto
    }
    pub fn src_port(&self) -> u16 {
        self.src_port
    }
    pub fn dst_port(&self) -> u16 {
        self.dst_port
    }
    /// Source address bytes: 16, of which the first 4 for IPv4.
    pub fn src_bytes(&self) -> &[u8; 16] {
        &self.src
    }
    pub fn dst_bytes(&self) -> &[u8; 16] {
        &self.dst
    }
    pub fn src_ip(&self) -> IpAddr {
        ip(self.family, &self.src)
    }
    pub fn dst_ip(&self) -> IpAddr {
        ip(self.family, &self.dst)
    }

    /// Raw parts, for the connection table's packed entry.
    #[inline(always)]
    pub(crate) fn parts(&self) -> (&[u8; 16], &[u8; 16], u16, u16, u8, Family) {
        (
            &self.src,
            &self.dst,
            self.src_port,
            self.dst_port,
            self.proto,
            self.family,
        )
    }

    #[inline(always)]
    pub(crate) fn from_parts(
        src: [u8; 16],
        dst: [u8; 16],
        src_port: u16,
        dst_port: u16,
        proto: u8,
        family: Family,
    ) -> Self {
        FlowKey {
            src,
            dst,
            src_port,
            dst_port,
            proto,
            family,
        }
    }
}

fn ip(family: Family, b: &[u8; 16]) -> IpAddr {
    match family {
        Family::V4 => IpAddr::from([b[0], b[1], b[2], b[3]]),
        Family::V6 => IpAddr::from(*b),
    }
}

/// A seeded flow hash (pollux-hash v1, flow variant):
///
/// ```text
/// s  = fold_mul(seed ^ P0, P1);  t = fold_mul(s ^ P2, P3)   -- once per seed
/// w0..w3 = src[0..8], src[8..16], dst[0..8], dst[8..16] as little-endian u64
/// w4 = src_port | dst_port << 16 | proto << 32 | family << 40
/// a = fold_mul(w0 ^ s, w1 ^ P1)
/// b = fold_mul(w2 ^ P2, w3 ^ t)
/// h = fold_mul(a ^ w4 ^ P3, b ^ P4)
/// ```
///
/// Three multiplies, no branches, no allocation. Source and destination are
/// mixed with different salts, so `hash(k) != hash(k.reversed())` in general.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowHasher {
    s: u64,
    t: u64,
}

impl FlowHasher {
    /// The seed every instance uses for Maglev: part of the wire contract.
    pub const MAGLEV_SEED: u64 = 0x706f_6c6c_7578_0001; // "pollux", v1

    /// The hasher that indexes Maglev tables (same everywhere).
    pub const MAGLEV: FlowHasher = FlowHasher::new(Self::MAGLEV_SEED);

    /// A hasher with its own seed (e.g. random per worker, for conntrack).
    pub const fn new(seed: u64) -> Self {
        let s = const_fold_mul(seed ^ P0, P1);
        let t = const_fold_mul(s ^ P2, P3);
        FlowHasher { s, t }
    }

    #[inline(always)]
    fn mix(&self, src: &[u8; 16], dst: &[u8; 16], w4: u64) -> u64 {
        let w0 = le64(src, 0);
        let w1 = le64(src, 8);
        let w2 = le64(dst, 0);
        let w3 = le64(dst, 8);
        let a = fold_mul(w0 ^ self.s, w1 ^ P1);
        let b = fold_mul(w2 ^ P2, w3 ^ self.t);
        fold_mul(a ^ w4 ^ P3, b ^ P4)
    }

    /// The flow hash of `key` (direction-sensitive).
    #[inline(always)]
    pub fn hash(&self, key: &FlowKey) -> u64 {
        self.mix(
            &key.src,
            &key.dst,
            w4(key.src_port, key.dst_port, key.proto, key.family),
        )
    }

    /// [`hash`](Self::hash) of an IPv4 key from its parts: the same value
    /// (the key's known-zero words folded away: `w1 = w3 = 0`).
    #[inline(always)]
    pub fn hash_v4(&self, src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, proto: u8) -> u64 {
        let w0 = u64::from(u32::from_le_bytes(src));
        let w2 = u64::from(u32::from_le_bytes(dst));
        let a = fold_mul(w0 ^ self.s, P1);
        let b = fold_mul(w2 ^ P2, self.t);
        fold_mul(a ^ w4(sport, dport, proto, Family::V4) ^ P3, b ^ P4)
    }

    /// A hash equal for `key` and `key.reversed()`: the endpoints are put in
    /// a canonical order (smaller address, then smaller port, first) before
    /// hashing.
    #[inline(always)]
    pub fn hash_symmetric(&self, key: &FlowKey) -> u64 {
        let swap = (key.src, key.src_port) > (key.dst, key.dst_port);
        if swap {
            self.mix(
                &key.dst,
                &key.src,
                w4(key.dst_port, key.src_port, key.proto, key.family),
            )
        } else {
            self.hash(key)
        }
    }
}

/// The connection table's keyed hash (one random seed per worker).
///
/// ```text
/// s, t = two words from the seed (FlowHasher::new's)
/// IPv4: a = src | dst << 32  (little-endian u32s)
///       b = src_port | dst_port << 16 | proto << 32
///       h = fold_mul(a ^ s, b ^ t)
/// IPv6: FlowHasher::new(seed).hash(key)
/// ```
///
/// One multiply for an IPv4 key (where [`FlowHasher`]'s flow variant
/// takes three): the 128-bit product of the two keyed words mixes every
/// key bit into both halves, and without `s` and `t` nobody can tell which
/// keys share a bucket (foldhash's step for each 16 bytes; not a MAC:
/// enough to stop aiming flows at one bucket). Direction-sensitive, like
/// the table's keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtHasher(FlowHasher);

impl CtHasher {
    pub const fn new(seed: u64) -> Self {
        CtHasher(FlowHasher::new(seed))
    }

    /// The hash of `key` in the connection table.
    #[inline(always)]
    pub fn hash(&self, key: &FlowKey) -> u64 {
        match key.family {
            Family::V4 => {
                let (s, d) = (key.src, key.dst);
                self.hash_v4(
                    [s[0], s[1], s[2], s[3]],
                    [d[0], d[1], d[2], d[3]],
                    key.src_port,
                    key.dst_port,
                    key.proto,
                )
            }
            Family::V6 => self.0.hash(key),
        }
    }

    /// `hash(&FlowKey::v4(src, dst, sport, dport, proto))` from the parts
    /// (the fast path's classify stage).
    #[inline(always)]
    pub fn hash_v4(&self, src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, proto: u8) -> u64 {
        let a = u64::from(u32::from_le_bytes(src)) | u64::from(u32::from_le_bytes(dst)) << 32;
        let b = u64::from(sport) | u64::from(dport) << 16 | u64::from(proto) << 32;
        fold_mul(a ^ self.0.s, b ^ self.0.t)
    }
}

#[inline(always)]
fn w4(src_port: u16, dst_port: u16, proto: u8, family: Family) -> u64 {
    u64::from(src_port) | u64::from(dst_port) << 16 | u64::from(proto) << 32 | (family as u64) << 40
}

const fn const_fold_mul(a: u64, b: u64) -> u64 {
    let p = (a as u128) * (b as u128);
    (p as u64) ^ ((p >> 64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn k4(a: u8, sport: u16) -> FlowKey {
        FlowKey::v4([10, 0, 0, a], [192, 168, 77, 128], sport, 80, PROTO_TCP)
    }

    /// Golden values pinning the flow variant of pollux-hash v1 with the
    /// Maglev seed: every instance of every version must compute these.
    #[test]
    fn maglev_flow_hash_golden_values() {
        let h = FlowHasher::MAGLEV;
        let v6 = FlowKey::v6(
            [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            40000,
            443,
            PROTO_UDP,
        );
        let got = [
            h.hash(&k4(1, 40000)),
            h.hash(&v6),
            h.hash_symmetric(&k4(1, 40000)),
        ];
        assert_eq!(got, GOLDEN, "flow hash changed: {got:#018x?}");
    }

    const GOLDEN: [u64; 3] = [
        0x77ac_5778_55ed_49a9,
        0x4071_d175_93af_3449,
        0x77ac_5778_55ed_49a9,
    ];

    #[test]
    fn family_is_part_of_the_key() {
        let v4 = FlowKey::v4([1, 2, 3, 4], [5, 6, 7, 8], 1, 2, PROTO_TCP);
        let mut s = [0u8; 16];
        s[..4].copy_from_slice(&[1, 2, 3, 4]);
        let mut d = [0u8; 16];
        d[..4].copy_from_slice(&[5, 6, 7, 8]);
        let v6 = FlowKey::v6(s, d, 1, 2, PROTO_TCP);
        assert_ne!(v4, v6);
        assert_ne!(FlowHasher::MAGLEV.hash(&v4), FlowHasher::MAGLEV.hash(&v6));
        assert_eq!(v4.src_ip(), "1.2.3.4".parse::<IpAddr>().unwrap());
        assert_eq!(FlowKey::new(v4.src_ip(), v6.dst_ip(), 1, 2, 6), None);
        assert_eq!(FlowKey::new(v4.src_ip(), v4.dst_ip(), 1, 2, 6), Some(v4));
    }

    #[test]
    fn seeds_give_different_hashes_and_direction_matters() {
        let k = k4(9, 1234);
        assert_ne!(FlowHasher::new(1).hash(&k), FlowHasher::new(2).hash(&k));
        assert_ne!(
            FlowHasher::MAGLEV.hash(&k),
            FlowHasher::MAGLEV.hash(&k.reversed())
        );
    }

    /// Avalanche: flipping one input bit flips about half of the 64 output
    /// bits. Averaged over many keys and every bit of the addresses and
    /// ports, the mean must be close to 32; a weak mixer (say, XOR of the
    /// words) would score 1.
    #[test]
    fn flipping_one_input_bit_flips_about_half_the_output() {
        let h = FlowHasher::MAGLEV;
        let (mut total, mut n) = (0u64, 0u64);
        for i in 0..200u16 {
            let k = FlowKey::v6(
                [i as u8; 16],
                [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9],
                i,
                443,
                6,
            );
            let base = h.hash(&k);
            let (src, dst, sp, dp, proto, _) = k.parts();
            for bit in 0..(128 + 128 + 32) {
                let (mut s, mut d, mut p, mut q) = (*src, *dst, sp, dp);
                match bit {
                    0..=127 => s[bit / 8] ^= 1 << (bit % 8),
                    128..=255 => d[(bit - 128) / 8] ^= 1 << (bit % 8),
                    256..=271 => p ^= 1 << (bit - 256),
                    _ => q ^= 1 << (bit - 272),
                }
                let k2 = FlowKey::v6(s, d, p, q, proto);
                total += u64::from((h.hash(&k2) ^ base).count_ones());
                n += 1;
            }
        }
        let mean = total as f64 / n as f64;
        assert!((30.0..34.0).contains(&mean), "mean flipped bits {mean}");
    }

    /// The same avalanche for the table's IPv4 hash, over the key's 104
    /// bits and a few seeds: its one multiply must still move about half
    /// the bits (the bucket index is the low bits, the signature the top
    /// 16).
    #[test]
    fn the_table_hashs_v4_bits_each_flip_about_half_the_output() {
        let (mut total, mut n) = (0u64, 0u64);
        for seed in 0..8u64 {
            let h = CtHasher::new(seed);
            for i in 0..64u32 {
                let src = (0x0a00_0000 | (i * 7919)).to_be_bytes();
                let dst = [192, 168, 77, 128];
                let (sp, dp, proto) = (1024 + i as u16, 80, PROTO_TCP);
                let base = h.hash_v4(src, dst, sp, dp, proto);
                for bit in 0..104 {
                    let (mut s, mut d, mut p, mut q, mut r) = (src, dst, sp, dp, proto);
                    match bit {
                        0..=31 => s[bit / 8] ^= 1 << (bit % 8),
                        32..=63 => d[(bit - 32) / 8] ^= 1 << (bit % 8),
                        64..=79 => p ^= 1 << (bit - 64),
                        80..=95 => q ^= 1 << (bit - 80),
                        _ => r ^= 1 << (bit - 96),
                    }
                    total += u64::from((h.hash_v4(s, d, p, q, r) ^ base).count_ones());
                    n += 1;
                }
            }
        }
        let mean = total as f64 / n as f64;
        assert!((30.0..34.0).contains(&mean), "mean flipped bits {mean}");
    }

    proptest! {
        #[test]
        fn symmetric_hash_ignores_direction(
            src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(),
            sp in any::<u16>(), dp in any::<u16>(), proto in any::<u8>(), seed in any::<u64>()
        ) {
            let h = FlowHasher::new(seed);
            let k = FlowKey::v6(src, dst, sp, dp, proto);
            prop_assert_eq!(h.hash_symmetric(&k), h.hash_symmetric(&k.reversed()));
            let k4 = FlowKey::v4([src[0], src[1], src[2], src[3]], [dst[0], dst[1], dst[2], dst[3]], sp, dp, proto);
            prop_assert_eq!(h.hash_symmetric(&k4), h.hash_symmetric(&k4.reversed()));
        }

        #[test]
        fn hash_is_a_pure_function_of_the_key(
            src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(), sp in any::<u16>(), dp in any::<u16>()
        ) {
            let a = FlowKey::v4(src, dst, sp, dp, PROTO_UDP);
            let b = FlowKey::new(a.src_ip(), a.dst_ip(), sp, dp, PROTO_UDP).unwrap();
            prop_assert_eq!(FlowHasher::MAGLEV.hash(&a), FlowHasher::MAGLEV.hash(&b));
        }

        #[test]
        fn hash_v4_equals_the_hash_of_the_v4_key(
            seed in any::<u64>(), src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(),
            sp in any::<u16>(), dp in any::<u16>(), proto in any::<u8>()
        ) {
            let h = CtHasher::new(seed);
            let k = FlowKey::v4(src, dst, sp, dp, proto);
            prop_assert_eq!(h.hash_v4(src, dst, sp, dp, proto), h.hash(&k));
        }

        #[test]
        fn the_v4_flow_hash_is_the_general_ones(
            seed in any::<u64>(), src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(),
            sp in any::<u16>(), dp in any::<u16>(), proto in any::<u8>()
        ) {
            let h = FlowHasher::new(seed);
            let k = FlowKey::v4(src, dst, sp, dp, proto);
            prop_assert_eq!(h.hash_v4(src, dst, sp, dp, proto), h.hash(&k));
        }

        #[test]
        fn the_table_hash_of_a_v6_key_is_the_flow_hash(
            seed in any::<u64>(), src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(),
            sp in any::<u16>(), dp in any::<u16>()
        ) {
            let k = FlowKey::v6(src, dst, sp, dp, PROTO_TCP);
            prop_assert_eq!(CtHasher::new(seed).hash(&k), FlowHasher::new(seed).hash(&k));
        }
    }
}

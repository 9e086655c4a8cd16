//! The hash primitive shared by Maglev and the flow hash: "pollux-hash v1".
//!
//! Everything here is part of the wire contract between instances: two
//! pollux instances agree on which member serves a flow only if they hash
//! member keys and flows identically. So the functions are fixed, portable
//! (explicit little-endian loads, no `usize`, no `RandomState`) and pinned by
//! golden values in the tests below. Changing any constant or step is a
//! breaking change: every Maglev table and flow→member mapping moves.
//!
//! The mixing step is the folded multiply used by wyhash and foldhash: the
//! 128-bit product of two 64-bit words, high half XOR low half. It is fast
//! (one `mul` on x86_64) and mixes every input bit into every output bit.
//! It is not a cryptographic hash: a party that knows the seed can build
//! collisions. The Maglev seeds are public by design (every instance must
//! agree); per-worker tables (conntrack) should use a random seed, see
//! [`super::flow::FlowHasher`].

/// Odd 64-bit constants (the wyhash "secret" primes), used as fixed salts.
pub(crate) const P0: u64 = 0xa076_1d64_78bd_642f;
pub(crate) const P1: u64 = 0xe703_7ed1_a0b4_28db;
pub(crate) const P2: u64 = 0x8ebc_6af0_9c88_c6e3;
pub(crate) const P3: u64 = 0x5899_65cc_7537_4cc3;
pub(crate) const P4: u64 = 0x1d8e_4e27_c47d_124f;

/// High half XOR low half of the full 128-bit product.
#[inline(always)]
pub(crate) fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// MurmurHash3's 64-bit finaliser: a bijection in which every input bit
/// moves every output bit, so inputs that differ in a few bits (structured
/// addresses, a probe number added to a hash) come out unrelated.
#[inline(always)]
pub(crate) fn fmix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// Hash a byte string with a seed (pollux-hash v1, bytes variant).
///
/// ```text
/// h = fold_mul(seed ^ P0, len ^ P1)
/// for each 8-byte chunk w (little endian, the last one zero-padded):
///     h = fold_mul(h ^ w ^ P2, P3 ^ len)
/// return fold_mul(h ^ P4, len ^ P0)
/// ```
///
/// Used in ctrl (Maglev permutations, table digests), never per packet.
pub fn hash_bytes(bytes: &[u8], seed: u64) -> u64 {
    let len = bytes.len() as u64;
    let mut h = fold_mul(seed ^ P0, len ^ P1);
    for chunk in bytes.chunks(8) {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        h = fold_mul(h ^ u64::from_le_bytes(w) ^ P2, P3 ^ len);
    }
    fold_mul(h ^ P4, len ^ P0)
}

/// Map a 64-bit hash onto `0..n` with one multiply (Lemire's "fastrange"
/// on the hash's high 32 bits). Deterministic, and uniform to within one
/// preimage per value for `n < 2^32`.
#[inline(always)]
pub fn reduce(hash: u64, n: u32) -> u32 {
    (((hash >> 32) * u64::from(n)) >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Golden values: these pin pollux-hash v1. If this test fails, the hash
    /// changed and instances of different versions will disagree on every
    /// flow's member. Do not "fix" the expected values; revert the change.
    #[test]
    fn hash_bytes_golden_values() {
        let got = [
            hash_bytes(b"", 0),
            hash_bytes(b"pollux", 0),
            hash_bytes(b"pollux", 1),
            hash_bytes(&[0u8; 18], 42),
        ];
        assert_eq!(got, GOLDEN, "pollux-hash v1 changed: {got:#018x?}");
    }

    const GOLDEN: [u64; 4] = [
        0x1c79_ce01_7a64_0015,
        0xb9a4_4c1c_ba86_b3ef,
        0x4fda_6aaa_3f39_05fa,
        0x9198_9a02_bb0d_c06d,
    ];

    #[test]
    fn hash_bytes_depends_on_every_byte_length_and_seed() {
        let base = [7u8; 19];
        let h0 = hash_bytes(&base, 9);
        for i in 0..base.len() {
            let mut b = base;
            b[i] ^= 1;
            assert_ne!(hash_bytes(&b, 9), h0, "byte {i} ignored");
        }
        assert_ne!(hash_bytes(&base[..18], 9), h0, "length ignored");
        assert_ne!(hash_bytes(&base, 10), h0, "seed ignored");
        // Trailing zeros must not collide with a shorter string.
        assert_ne!(hash_bytes(&[1, 0], 0), hash_bytes(&[1], 0));
    }

    #[test]
    fn reduce_stays_in_range_and_covers_it() {
        let n = 65537;
        assert_eq!(reduce(0, n), 0);
        assert_eq!(reduce(u64::MAX, n), n - 1);
        let mut seen = vec![false; n as usize];
        for i in 0..(n as u64 * 4) {
            let r = reduce(hash_bytes(&i.to_le_bytes(), 0), n);
            assert!(r < n);
            seen[r as usize] = true;
        }
        let covered = seen.iter().filter(|s| **s).count();
        // 4n random draws cover 1 - e^-4 = 98.2 % of the values.
        assert!(covered > n as usize * 97 / 100, "covered {covered}");
    }
}

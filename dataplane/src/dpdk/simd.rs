//! The vector instructions the connection table compares signatures with
//! (as DPDK's hash library does in `rte_cuckoo_hash`'s signature compare):
//! in this layer because their intrinsics are `unsafe` to call. Each has a
//! portable SWAR twin, used off x86_64 and held equal to it by the tests.

/// Eight 16-bit lanes (lane `i` is `.0[i]`), aligned for one vector
/// load: what [`eq_lanes16`] compares. A lane is read and written as an
/// array element (one 16-bit access).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C, align(16))]
pub(crate) struct Lanes16(pub(crate) [u16; 8]);

impl std::ops::Index<usize> for Lanes16 {
    type Output = u16;
    #[inline(always)]
    fn index(&self, i: usize) -> &u16 {
        &self.0[i]
    }
}

impl std::ops::IndexMut<usize> for Lanes16 {
    #[inline(always)]
    fn index_mut(&mut self, i: usize) -> &mut u16 {
        &mut self.0[i]
    }
}

/// The lanes of `lanes` equal to `v`, as a mask: bit `i` for lane `i`.
#[inline(always)]
pub(crate) fn eq_lanes16(lanes: &Lanes16, v: u16) -> u32 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE2 is part of the x86_64 baseline (every x86_64 CPU has
    // it, and Rust's x86_64 targets assume it); the one load reads the 16
    // bytes `lanes` refers to, valid and 16-byte aligned (`Lanes16`'s
    // repr); the other intrinsics touch no memory.
    unsafe {
        use core::arch::x86_64::{
            __m128i, _mm_cmpeq_epi16, _mm_load_si128, _mm_movemask_epi8, _mm_packs_epi16,
            _mm_set1_epi16, _mm_setzero_si128,
        };
        let l = _mm_load_si128((lanes as *const Lanes16).cast::<__m128i>());
        let eq = _mm_cmpeq_epi16(l, _mm_set1_epi16(v as i16));
        // Equal lanes are all ones; packed to bytes (saturating: -1 stays
        // -1), their sign bits are the mask.
        _mm_movemask_epi8(_mm_packs_epi16(eq, _mm_setzero_si128())) as u32
    }
    #[cfg(not(target_arch = "x86_64"))]
    eq_lanes16_swar(lanes, v)
}

/// [`eq_lanes16`] without vector instructions.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline(always)]
fn eq_lanes16_swar(lanes: &Lanes16, v: u16) -> u32 {
    let w = |i: usize| (0..4).fold(0u64, |w, l| w | u64::from(lanes[i + l]) << (16 * l));
    let words = [w(0), w(4)];
    let want = u64::from(v) * 0x0001_0001_0001_0001;
    zero_lanes(words[0] ^ want) | zero_lanes(words[1] ^ want) << 4
}

/// The 16-bit lanes of `x` that are zero, as a 4-bit mask (bit `i` for the
/// lane at bits `16 i ..`). SWAR: the exact zero-lane test (no false
/// positives) leaves each zero lane's top bit set; one multiply gathers
/// the four top bits (the partial products that are not wanted land on
/// other bits, without carries).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline(always)]
fn zero_lanes(x: u64) -> u32 {
    const LO: u64 = 0x7fff_7fff_7fff_7fff;
    const GATHER: u64 = 1 << 48 | 1 << 33 | 1 << 18 | 1 << 3;
    let zero = !(((x & LO) + LO) | x | LO);
    ((zero >> 15).wrapping_mul(GATHER) >> 48) as u32 & 0xf
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lanes_are_found_where_they_lie() {
        let w = &Lanes16([7, 0x8007, 7, 0xffff, 0, 7, 0x0107, 0x7fff]);
        assert_eq!(eq_lanes16(w, 7), 0b0010_0101);
        assert_eq!(eq_lanes16(w, 0xffff), 0b0000_1000);
        assert_eq!(eq_lanes16(w, 0), 0b0001_0000);
        assert_eq!(eq_lanes16(w, 0x7fff), 0b1000_0000);
        assert_eq!(eq_lanes16(w, 0x8007), 0b0000_0010);
        assert_eq!(eq_lanes16(w, 1), 0);
    }

    proptest! {
        #[test]
        fn vector_swar_and_scalar_agree(lanes in any::<[u16; 8]>(), pick in 0usize..9, other in any::<u16>()) {
            let v = if pick < 8 { lanes[pick] } else { other };
            let scalar = (0..8).filter(|&i| lanes[i] == v).fold(0u32, |m, i| m | 1 << i);
            prop_assert_eq!(eq_lanes16(&Lanes16(lanes), v), scalar);
            prop_assert_eq!(eq_lanes16_swar(&Lanes16(lanes), v), scalar);
        }
    }
}

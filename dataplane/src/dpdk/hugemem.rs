//! Memory for worker-private tables (the connection table), and a prefetch
//! hint: `unsafe`, so it lives in the DPDK layer beside the other raw memory.
//!
//! DESIGN.md §2: worker tables are allocated by the worker after it is
//! pinned, in hugepages (`hugepage_rs::alloc`, so first touch puts them on
//! the worker's NUMA node), falling back to ordinary pages with a warning
//! and a counter. [`HugeArray::new`] does exactly that and reports which it
//! got ([`Backing`]), for the caller to log and count:
//!
//! 1. `Backing::HugeTlb` when `/proc/meminfo` shows free hugepages:
//!    `hugepage_rs::alloc` (an anonymous `MAP_HUGETLB` mmap). We check
//!    `/proc/meminfo` first because hugepage-rs 0.1 panics (in a `LazyLock`)
//!    on a kernel that reports no `Hugepagesize:`.
//! 2. Otherwise (or if that mmap fails) `Backing::Transparent`: `std::alloc`
//!    with 2 MiB alignment plus `madvise(MADV_HUGEPAGE)`, so transparent
//!    hugepages back it where THP is enabled.
//!
//! Every element is written once at allocation (no reliance on zeroed
//! memory, and all pages are faulted in now, on this thread's node, rather
//! than on the packet path). A hugetlb cgroup limit below the reservation
//! would show up here as SIGBUS, at start-up, never later.
//!
//! `T: Copy` keeps this simple: elements have no destructors.
// (unsafe_code is allowed by the parent module, dpdk.)

use std::alloc::Layout;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

const HUGE_2M: usize = 2 << 20;

/// What backs a worker table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backing {
    /// Reserved hugetlb pages (`/proc/sys/vm/nr_hugepages`).
    HugeTlb,
    /// Ordinary pages, 2 MiB aligned, with `MADV_HUGEPAGE` (THP) advice.
    Transparent,
}

/// A fixed-length array of `T` in hugepage-backed memory; owns it like a
/// `Box<[T]>`.
pub(crate) struct HugeArray<T: Copy> {
    ptr: NonNull<T>,
    len: usize,
    layout: Layout,
    backing: Backing,
}

// SAFETY: HugeArray owns its allocation exclusively, like Box<[T]>; sending
// or sharing it is exactly as safe as sending or sharing the `T`s.
unsafe impl<T: Copy + Send> Send for HugeArray<T> {}
// SAFETY: as above; `&HugeArray` only hands out `&[T]`.
unsafe impl<T: Copy + Sync> Sync for HugeArray<T> {}

impl<T: Copy> HugeArray<T> {
    /// `len` copies of `fill`. `None` if `len` or `T` is zero-sized, the
    /// size overflows, or even the fallback allocation fails.
    pub(crate) fn new(len: usize, fill: T, prefer: Backing) -> Option<Self> {
        let layout = Layout::array::<T>(len).ok()?;
        if layout.size() == 0 {
            return None;
        }
        let mut got = None;
        if prefer == Backing::HugeTlb && hugetlb_pages_free() && layout.align() <= HUGE_2M {
            // SAFETY: layout has non-zero size (checked above) and an
            // alignment no larger than the hugepage size, which is all
            // hugepage_rs::alloc requires; it returns null on failure.
            let p = unsafe { hugepage_rs::alloc(layout) };
            got = NonNull::new(p.cast::<T>()).map(|p| (p, layout, Backing::HugeTlb));
        }
        if got.is_none() {
            let layout = layout.align_to(HUGE_2M).ok()?;
            // SAFETY: non-zero size (checked above).
            let p = unsafe { std::alloc::alloc(layout) };
            let p = NonNull::new(p.cast::<T>())?;
            // SAFETY: madvise only gives advice about [p, p + size), which
            // we own; p is 2 MiB (so page) aligned. Failure (THP disabled)
            // is harmless and ignored.
            unsafe {
                libc::madvise(p.as_ptr().cast(), layout.size(), libc::MADV_HUGEPAGE);
            }
            got = Some((p, layout, Backing::Transparent));
        }
        let (ptr, layout, backing) = got?;
        for i in 0..len {
            // SAFETY: i < len and the allocation holds `len` Ts at `ptr`
            // (layout = array of len Ts, possibly over-aligned); writing
            // initialises without reading or dropping the old bytes.
            unsafe { ptr.as_ptr().add(i).write(fill) };
        }
        Some(HugeArray {
            ptr,
            len,
            layout,
            backing,
        })
    }

    pub(crate) fn backing(&self) -> Backing {
        self.backing
    }

    /// Bytes allocated (before the allocator's rounding to whole pages).
    pub(crate) fn bytes(&self) -> usize {
        self.layout.size()
    }
}

impl<T: Copy> Deref for HugeArray<T> {
    type Target = [T];
    #[inline(always)]
    fn deref(&self) -> &[T] {
        // SAFETY: ptr points to `len` initialised Ts (written in new) that
        // live until drop; the shared borrow of self forbids mutation.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> DerefMut for HugeArray<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in deref; the unique borrow of self makes this the only
        // reference to the elements.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> Drop for HugeArray<T> {
    fn drop(&mut self) {
        let p = self.ptr.as_ptr().cast::<u8>();
        match self.backing {
            // SAFETY: p came from hugepage_rs::alloc with this very layout.
            Backing::HugeTlb => unsafe { hugepage_rs::dealloc(p, self.layout) },
            // SAFETY: p came from std::alloc::alloc with this very layout.
            Backing::Transparent => unsafe { std::alloc::dealloc(p, self.layout) },
        }
    }
}

impl<T: Copy> std::fmt::Debug for HugeArray<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HugeArray")
            .field("len", &self.len)
            .field("backing", &self.backing)
            .finish()
    }
}

/// Does the kernel report a hugepage size and free hugetlb pages?
fn hugetlb_pages_free() -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/meminfo") else {
        return false;
    };
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
    };
    field("Hugepagesize:").is_some() && field("HugePages_Free:").unwrap_or(0) > 0
}

/// Hint the CPU to pull the cache line holding `r` into L1 (as VPP does for
/// the next packet's bucket). No-op off x86_64.
#[inline(always)]
pub(crate) fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch is only a hint: it never faults, reads nothing into
    // the program and writes nothing; `r` is a valid reference anyway.
    unsafe {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((r as *const T).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

/// [`prefetch`] of both lines `r` may lie across (an object smaller
/// than a line but not aligned to one: a 24-byte connection-table entry
/// straddles two lines one time in four).
#[inline(always)]
pub(crate) fn prefetch_span<T>(r: &T) {
    prefetch(r);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as `prefetch`'s; the address is `r`'s last byte, inside the
    // object `r` refers to (`wrapping_add`: no arithmetic past it).
    unsafe {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let last = (r as *const T)
            .cast::<i8>()
            .wrapping_add(size_of::<T>() - 1);
        _mm_prefetch::<_MM_HINT_T0>(last);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C, align(64))]
    #[derive(Clone, Copy, PartialEq, Debug)]
    struct Line([u64; 8]);

    #[test]
    fn fallback_is_2m_aligned_filled_and_writable() {
        let mut a = HugeArray::new(40_000, Line([7; 8]), Backing::Transparent).unwrap();
        assert_eq!(a.backing(), Backing::Transparent);
        assert_eq!(a.as_ptr() as usize % HUGE_2M, 0);
        assert_eq!(a.len(), 40_000);
        assert!(a.iter().all(|l| *l == Line([7; 8])));
        a[39_999].0[7] = 9;
        assert_eq!(a[39_999].0[7], 9);
        assert_eq!(a.bytes(), 40_000 * 64);
    }

    /// With free hugetlb pages (as root: `echo N > /proc/sys/vm/nr_hugepages`)
    /// the table lands in them; without, it falls back. Either way it works.
    #[test]
    fn prefers_hugetlb_when_pages_are_free() {
        let a = HugeArray::new(1000, Line([1; 8]), Backing::HugeTlb).unwrap();
        if hugetlb_pages_free() {
            // Someone else may take the last free page between the check
            // and the mmap; then the fallback is the right answer too.
            assert!(matches!(
                a.backing(),
                Backing::HugeTlb | Backing::Transparent
            ));
        } else {
            assert_eq!(a.backing(), Backing::Transparent);
        }
        assert!(a.iter().all(|l| *l == Line([1; 8])));
        assert_eq!(a.as_ptr() as usize % 64, 0);
    }

    #[test]
    fn zero_sized_requests_are_refused() {
        assert!(HugeArray::new(0, Line([0; 8]), Backing::Transparent).is_none());
        assert!(HugeArray::new(10, (), Backing::Transparent).is_none());
        assert!(HugeArray::new(usize::MAX / 8, Line([0; 8]), Backing::Transparent).is_none());
    }
}

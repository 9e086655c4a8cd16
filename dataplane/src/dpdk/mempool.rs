//! Packet buffer pools.

use std::ffi::CString;
use std::ptr::NonNull;

use dpdk_sys::rte_mempool;

use super::{last_error, Error, Mbuf, Result};

/// A pool of mbufs; `rte_mempool_free` on drop (after every mbuf is back).
#[derive(Debug)]
pub struct Mempool {
    raw: NonNull<rte_mempool>,
}

// SAFETY: DPDK mempools are multi-producer/multi-consumer safe; each lcore
// uses its own cache.
unsafe impl Send for Mempool {}
// SAFETY: as above: every operation on a mempool is thread-safe.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// `n` mbufs of the default data room (2 KiB + headroom) on `socket`.
    pub fn new(name: &str, n: u32, cache: u32, socket: i32) -> Result<Mempool> {
        let cname = CString::new(name).map_err(|_| Error::Nul("mempool name"))?;
        let room = dpdk_sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;
        // SAFETY: plain constructor call with a valid NUL-terminated name.
        let raw =
            unsafe { dpdk_sys::rte_pktmbuf_pool_create(cname.as_ptr(), n, cache, 0, room, socket) };
        NonNull::new(raw)
            .map(|raw| Mempool { raw })
            .ok_or_else(|| last_error("rte_pktmbuf_pool_create"))
    }

    /// As [`new`](Self::new), with the mbufs packed back to back in one
    /// memory chunk (`RTE_MEMPOOL_F_NO_IOVA_CONTIG`: an mbuf may cross a
    /// page boundary, so the buffers are not IOVA-contiguous; for
    /// `net_af_xdp` only). DPDK 22.11's af_xdp PMD registers as its UMEM
    /// `populated × object size` bytes from the pool's start; the default
    /// layout, which keeps objects off page boundaries, leaves a gap per
    /// page, so the last mbufs lie past the UMEM's end
    /// ([`outside_umem`](Self::outside_umem)) and the kernel refuses them.
    pub fn packed(name: &str, n: u32, cache: u32, socket: i32) -> Result<Mempool> {
        let cname = CString::new(name).map_err(|_| Error::Nul("mempool name"))?;
        let room = dpdk_sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;
        // SAFETY: plain constructor call with a valid NUL-terminated name.
        let raw = unsafe {
            dpdk_sys::pollux_pktmbuf_pool_create_packed(cname.as_ptr(), n, cache, room, socket)
        };
        NonNull::new(raw)
            .map(|raw| Mempool { raw })
            .ok_or_else(|| last_error("rte_mempool_populate_default"))
    }

    /// Mbufs that lie (wholly or partly) outside the UMEM DPDK 22.11's
    /// af_xdp PMD would register over this pool: 0 for a pool it can use.
    /// The kernel skips such a buffer on the fill ring and drops a frame
    /// sent in one as an invalid TX descriptor; neither comes back.
    pub fn outside_umem(&self) -> u32 {
        // SAFETY: the pool is valid; the call only reads its memory list
        // and iterates its objects' addresses.
        unsafe { dpdk_sys::pollux_mempool_outside_umem(self.raw.as_ptr()) }
    }

    pub fn as_ptr(&self) -> *mut rte_mempool {
        self.raw.as_ptr()
    }

    /// A fresh mbuf, or `None` when the pool is empty.
    #[inline]
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is valid for self's lifetime; a non-null result
        // is a freshly reset mbuf we now own.
        let m = unsafe { dpdk_sys::pollux_pktmbuf_alloc(self.raw.as_ptr()) };
        // SAFETY: as above, ownership passes to the Mbuf.
        NonNull::new(m).map(|m| unsafe { Mbuf::from_raw(m) })
    }

    /// Appends `n` fresh mbufs to `out`, all or none (`rte_pktmbuf_alloc_bulk`:
    /// one trip to the pool's cache for a whole burst). Returns false, and
    /// appends nothing, when the pool cannot supply `n`.
    pub fn alloc_bulk(&self, n: usize, out: &mut Vec<Mbuf>) -> bool {
        let mut raw = [std::ptr::null_mut(); super::BURST];
        let Some(raw) = raw.get_mut(..n) else {
            // More than one burst: in burst-sized steps, all or none.
            let before = out.len();
            let mut left = n;
            while left > 0 {
                let k = left.min(super::BURST);
                if !self.alloc_bulk(k, out) {
                    out.truncate(before); // drops (frees) what this call got
                    return false;
                }
                left -= k;
            }
            return true;
        };
        // SAFETY: the pool is valid; `raw` has room for n pointers, which
        // the call fills with fresh mbufs (rc 0) or leaves untouched (rc < 0).
        let rc = unsafe {
            dpdk_sys::pollux_pktmbuf_alloc_bulk(self.raw.as_ptr(), raw.as_mut_ptr(), n as u32)
        };
        if rc != 0 {
            return false;
        }
        out.extend(raw.iter().map(|&m| {
            // SAFETY: rc 0: each pointer is a valid, freshly reset mbuf that
            // nobody else owns; each is wrapped exactly once.
            unsafe { Mbuf::from_raw(NonNull::new_unchecked(m)) }
        }));
        true
    }

    /// Mbufs currently free in the pool (for counters and leak tests).
    pub fn available(&self) -> u32 {
        // SAFETY: read-only query on a valid pool.
        unsafe { dpdk_sys::pollux_mempool_avail(self.raw.as_ptr()) }
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // SAFETY: the pool was created by us; ports using it are closed
        // first (see `Dataplane`'s drop order).
        unsafe { dpdk_sys::rte_mempool_free(self.raw.as_ptr()) };
    }
}

//! Owned packet buffers, RX bursts and TX buffers.

use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::Arc;

use dpdk_sys::rte_mbuf;

use super::port::{RxQueue, TxQueue};
use crate::capture::{Dir, Slot};

/// Packets per RX burst (a multiple of 8, as `rte_eth_rx_burst` asks).
/// 64, not DPDK's customary 32: the stages of a burst (classify, probe,
/// fast) are each a loop over it, so a longer one gives each prefetch twice
/// the work to hide behind and pays the loop's per-burst costs half as
/// often. Against 32, in alternated pairs with testpmd io on one memif link
/// (docs/perf.md, session 15): +2–3 % at 1k flows, +6–10 % at 1M; testpmd
/// io itself gains nothing from `--burst=64`.
pub const BURST: usize = 64;

/// `ol_flags`' IPv4 header checksum verdict (`rte_mbuf_core.h`:
/// `RTE_MBUF_F_RX_IP_CKSUM_MASK`, `_GOOD`; a macro bindgen leaves out):
/// unknown (0), bad (bit 4), good (bit 7), none (both: not checked).
const RX_IP_CKSUM_MASK: u64 = (1 << 4) | (1 << 7);
const RX_IP_CKSUM_GOOD: u64 = 1 << 7;

/// One packet buffer we own. Single-segment frames only: the data view is
/// the first segment (`nb_segs` tells whether there are more).
#[derive(Debug)]
pub struct Mbuf {
    raw: NonNull<rte_mbuf>,
}

// SAFETY: an Mbuf is uniquely owned; moving it to another thread moves the
// ownership (mempools are thread-safe for the final free).
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// # Safety
    /// `raw` must be a valid mbuf that nobody else owns or will free.
    pub unsafe fn from_raw(raw: NonNull<rte_mbuf>) -> Mbuf {
        Mbuf { raw }
    }

    /// Gives up ownership (to a TX ring); the caller must make sure it is
    /// transmitted or freed.
    pub fn into_raw(self) -> *mut rte_mbuf {
        ManuallyDrop::new(self).raw.as_ptr()
    }

    fn m(&self) -> &rte_mbuf {
        // SAFETY: we own a valid mbuf for self's lifetime.
        unsafe { self.raw.as_ref() }
    }

    fn m_mut(&mut self) -> &mut rte_mbuf {
        // SAFETY: we own it uniquely.
        unsafe { self.raw.as_mut() }
    }

    #[inline]
    pub fn len(&self) -> usize {
        usize::from(self.m().data_len)
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    pub fn segments(&self) -> u16 {
        self.m().nb_segs
    }

    /// The frame.
    #[inline]
    pub fn data(&self) -> &[u8] {
        frame(self.m())
    }

    /// The frame followed by the tailroom (for replies that grow).
    #[inline]
    pub fn data_and_tailroom(&mut self) -> &mut [u8] {
        let m = self.m();
        let room = usize::from(m.buf_len).saturating_sub(usize::from(m.data_off));
        // SAFETY: data_off .. buf_len is inside the buffer we own uniquely.
        unsafe {
            std::slice::from_raw_parts_mut(
                m.buf_addr.cast::<u8>().add(usize::from(m.data_off)),
                room,
            )
        }
    }

    /// The frame, to write in place.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let m = self.m();
        // SAFETY: as `frame`'s (buf_addr + data_off .. + data_len lies
        // inside the buffer: the mbuf's invariant, which `set_len`,
        // `prepend` and `adj`, the only writers here, keep); `&mut self`
        // makes the borrow unique.
        unsafe {
            std::slice::from_raw_parts_mut(
                m.buf_addr.cast::<u8>().add(usize::from(m.data_off)),
                usize::from(m.data_len),
            )
        }
    }

    /// Sets the frame length within the first segment's room. Returns false
    /// (and changes nothing) if it does not fit or the mbuf is chained.
    pub fn set_len(&mut self, len: usize) -> bool {
        let room = self.data_and_tailroom().len();
        let m = self.m_mut();
        if len > room || m.nb_segs != 1 {
            return false;
        }
        m.data_len = len as u16;
        m.pkt_len = len as u32;
        true
    }

    /// Grows the frame at the front by `n` bytes of headroom.
    fn prepend(&mut self, n: u16) -> bool {
        let m = self.m_mut();
        if m.data_off < n {
            return false;
        }
        m.data_off -= n;
        m.data_len += n;
        m.pkt_len += u32::from(n);
        true
    }

    /// Removes `n` bytes from the front.
    fn adj(&mut self, n: u16) -> bool {
        let m = self.m_mut();
        if m.data_len < n {
            return false;
        }
        m.data_off += n;
        m.data_len -= n;
        m.pkt_len -= u32::from(n);
        true
    }

    /// Removes the 802.1Q tag after the MAC addresses.
    pub fn strip_vlan(&mut self) -> bool {
        if self.len() < 18 {
            return false;
        }
        self.data_mut().copy_within(0..12, 4);
        self.adj(4)
    }

    /// Inserts an 802.1Q tag with `vid` after the MAC addresses.
    pub fn insert_vlan(&mut self, vid: u16) -> bool {
        if self.len() < 12 || !self.prepend(4) {
            return false;
        }
        let d = self.data_mut();
        d.copy_within(4..16, 0);
        d[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
        d[14..16].copy_from_slice(&(vid & 0x0fff).to_be_bytes());
        true
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf and this is its one release.
        unsafe { dpdk_sys::pollux_pktmbuf_free(self.raw.as_ptr()) };
    }
}

/// The first segment's data of `m`.
#[inline(always)]
fn frame(m: &rte_mbuf) -> &[u8] {
    // SAFETY: buf_addr + data_off .. + data_len lies inside the buffer of
    // an mbuf its owner lends us for the lifetime of `m`; nothing else
    // writes it meanwhile.
    unsafe {
        std::slice::from_raw_parts(
            m.buf_addr.cast::<u8>().add(usize::from(m.data_off)),
            usize::from(m.data_len),
        )
    }
}

/// The packets of one RX burst; a fixed array reused every loop.
#[derive(Debug)]
pub struct Burst {
    ptrs: [*mut rte_mbuf; BURST],
    len: usize,
}

impl Default for Burst {
    fn default() -> Self {
        Burst {
            ptrs: [std::ptr::null_mut(); BURST],
            len: 0,
        }
    }
}

// SAFETY: holds owned mbufs only (see Mbuf's Send).
unsafe impl Send for Burst {}

impl Burst {
    /// Receives up to `BURST` packets from `q` (drops what the burst still
    /// held first).
    #[inline]
    pub fn rx(&mut self, q: &RxQueue) -> usize {
        self.clear();
        // SAFETY: ptrs has room for BURST pointers; the PMD fills the first
        // `n` with mbufs that become ours. `q` is the only handle of its
        // queue and keeps the port open; being !Sync, it is polled from
        // one thread only.
        let n = unsafe {
            dpdk_sys::pollux_rx_burst(q.port().0, q.index(), self.ptrs.as_mut_ptr(), BURST as u16)
        };
        self.len = usize::from(n);
        self.len
    }

    /// The received frames, read-only and still in the burst (to prefetch
    /// what handling them will touch before handling any).
    #[inline]
    pub fn frames(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.ptrs[..self.len].iter().map(|&p| {
            // SAFETY: the first len pointers are valid mbufs this burst
            // owns; the shared borrow of self keeps them from being handed
            // out or freed while the views live.
            frame(unsafe { &*p })
        })
    }

    /// [`frames`](Self::frames), each with whether the device verified
    /// its IPv4 header checksum (`RTE_MBUF_F_RX_IP_CKSUM_GOOD`; false when
    /// it found it bad, did not check, or is not asked to:
    /// [`Port::configure`](super::port::Port::configure)).
    #[inline]
    pub fn frames_checked(&self) -> impl Iterator<Item = (&[u8], bool)> + '_ {
        self.ptrs[..self.len].iter().map(|&p| {
            // SAFETY: as in `frames`.
            let m = unsafe { &*p };
            (frame(m), m.ol_flags & RX_IP_CKSUM_MASK == RX_IP_CKSUM_GOOD)
        })
    }

    /// Hands out the received packets one by one, leaving the burst empty.
    #[inline]
    pub fn drain(&mut self) -> Drain<'_> {
        let n = std::mem::take(&mut self.len);
        Drain {
            ptrs: &self.ptrs[..n],
            next: 0,
        }
    }

    /// Adds `m` to the burst (frames handed over by another worker are
    /// processed as bursts too); gives it back when the burst is full.
    #[inline]
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        if self.len == BURST {
            return Err(m);
        }
        self.ptrs[self.len] = m.into_raw();
        self.len += 1;
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn clear(&mut self) {
        for m in self.drain() {
            drop(m);
        }
    }
}

impl Drop for Burst {
    fn drop(&mut self) {
        self.clear();
    }
}

/// A burst's packets, handed out one by one ([`Burst::drain`]); those
/// not taken are freed with the iterator.
#[derive(Debug)]
pub struct Drain<'a> {
    ptrs: &'a [*mut rte_mbuf],
    /// The index of the next packet to hand out.
    next: usize,
}

impl Drain<'_> {
    /// The next packet and its index in the burst: one index of state, so
    /// that a stage that takes a run of packets keeps it in a register
    /// (the `enumerate().zip()` of the records it replaced kept eight
    /// words in memory: 17 instructions a packet in the fast stage).
    #[inline(always)]
    pub fn next_indexed(&mut self) -> Option<(usize, Mbuf)> {
        let i = self.next;
        let p = *self.ptrs.get(i)?;
        self.next = i + 1;
        // SAFETY: the pointers are the first `len` of a burst, which came
        // from rx_burst (or `push`) and whose `len` `drain` reset: each is
        // handed out exactly once, here (`next` only grows).
        Some((i, unsafe { Mbuf::from_raw(NonNull::new_unchecked(p)) }))
    }
}

impl Iterator for Drain<'_> {
    type Item = Mbuf;

    #[inline]
    fn next(&mut self) -> Option<Mbuf> {
        self.next_indexed().map(|(_, m)| m)
    }
}

impl Drop for Drain<'_> {
    fn drop(&mut self) {
        for m in self.by_ref() {
            drop(m);
        }
    }
}

/// Packets waiting for one TX burst on one queue. Full → flushed.
#[derive(Debug)]
pub struct TxBuffer {
    q: TxQueue,
    ptrs: [*mut rte_mbuf; 2 * BURST],
    len: usize,
    /// The worker's capture slot and the port's index, when the frames
    /// sent here are to be shown to a capture (a port's queues; not the
    /// TAPs').
    capture: Option<(Arc<Slot>, usize)>,
}

// SAFETY: holds owned mbufs only.
unsafe impl Send for TxBuffer {}

impl TxBuffer {
    pub fn new(q: TxQueue) -> TxBuffer {
        TxBuffer {
            q,
            ptrs: [std::ptr::null_mut(); 2 * BURST],
            len: 0,
            capture: None,
        }
    }

    /// Shows what this buffer sends (as port `port`) to `slot` while a
    /// capture is armed there.
    pub fn capture_into(&mut self, slot: Arc<Slot>, port: usize) {
        self.capture = Some((slot, port));
    }

    /// The queued frames, read-only.
    fn frames(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.ptrs[..self.len].iter().map(|&p| {
            // SAFETY: the first len pointers are owned mbufs queued here;
            // the shared borrow of self keeps them from being sent or
            // freed while the views live.
            frame(unsafe { &*p })
        })
    }

    /// Queues `m`; flushes when full. Returns (sent, dropped) if it flushed.
    #[inline]
    pub fn push(&mut self, m: Mbuf) -> Option<(usize, usize)> {
        // `len` read once: the compiler cannot tell that the pointer
        // stored does not overwrite it, and would load it again.
        let n = self.len;
        self.ptrs[n] = m.into_raw();
        self.len = n + 1;
        (n + 1 == self.ptrs.len()).then(|| self.flush())
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Offers the queued mbufs to the ring; returns how many it took (the
    /// first `sent`: ours no more). The rest are still queued and ours.
    #[inline(always)]
    fn transmit(&mut self) -> usize {
        // SAFETY: the first len pointers are owned mbufs; the PMD takes the
        // first `sent` of them and leaves the rest to us. The buffer owns
        // the queue's only handle (one thread, port open).
        usize::from(unsafe {
            dpdk_sys::pollux_tx_burst(
                self.q.port().0,
                self.q.index(),
                self.ptrs.as_mut_ptr(),
                self.len as u16,
            )
        })
    }

    /// Transmits `m` at once, ahead of what is queued (an ARP answer
    /// while generated frames wait); false if the ring refused it (freed).
    pub fn send_now(&mut self, m: Mbuf) -> bool {
        let mut one = [m.into_raw()];
        // SAFETY: one owned mbuf; as in `transmit`.
        let sent = unsafe {
            dpdk_sys::pollux_tx_burst(self.q.port().0, self.q.index(), one.as_mut_ptr(), 1)
        };
        if sent == 0 {
            // SAFETY: refused, still ours: freed once.
            unsafe { dpdk_sys::pollux_pktmbuf_free_bulk(one.as_mut_ptr(), 1) };
        }
        sent == 1
    }

    /// Transmits what is queued; frees what the ring refused. Returns
    /// (sent, dropped).
    #[inline]
    pub fn flush(&mut self) -> (usize, usize) {
        if self.len == 0 {
            return (0, 0);
        }
        // A capture's whole cost while none runs: a load and a branch.
        if let Some((slot, port)) = &self.capture {
            if slot.armed() {
                slot.record(*port, Dir::Out, self.frames());
            }
        }
        let n = self.len;
        let sent = self.transmit();
        self.len = 0;
        if sent < n {
            // SAFETY: the refused mbufs are still ours: free each once.
            unsafe {
                dpdk_sys::pollux_pktmbuf_free_bulk(
                    self.ptrs[sent..n].as_mut_ptr(),
                    (n - sent) as u32,
                )
            };
        }
        (sent, n - sent)
    }

    /// Packets queued (not yet accepted by the ring).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Transmits what is queued and keeps what the ring refused, in order,
    /// for the next call (a generator retries instead of dropping).
    /// Returns how many the ring accepted. Not shown to a capture (the
    /// generators' call; the workers' is [`flush`](Self::flush)).
    #[inline]
    pub fn flush_keep(&mut self) -> usize {
        if self.len == 0 {
            return 0;
        }
        let n = self.len;
        let sent = self.transmit();
        // The refused ones (still ours) move to the front.
        self.ptrs.copy_within(sent..n, 0);
        self.len = n - sent;
        sent
    }
}

impl Drop for TxBuffer {
    fn drop(&mut self) {
        let n = self.len;
        if n > 0 {
            // SAFETY: never transmitted, still ours.
            unsafe { dpdk_sys::pollux_pktmbuf_free_bulk(self.ptrs.as_mut_ptr(), n as u32) };
        }
    }
}

//! Many sessions on one worker: a fixed-capacity table, demultiplexing, and
//! one timer structure checked once per loop iteration.
//!
//! Everything is allocated by [`SessionTable::with_capacity`] at start-up;
//! nothing on the receive or timer path allocates.
//!
//! * Demultiplexing (RFC 5880 §6.8.6): by Your Discriminator through an
//!   open-addressing map from local discriminator to slot; for packets with
//!   Your Discriminator zero (only legal in Down/AdminDown), by
//!   [`PeerKey`] (peer address, caller-defined interface id) through a
//!   second map. Both are linear-probing tables at most half full, with
//!   backward-shift deletion (no tombstones).
//! * Timers: an indexed binary min-heap of each session's next deadline
//!   (earliest of: transmit, Final owed, detection). Checking it when nothing
//!   is due is one comparison with the root. Received packets usually move a
//!   deadline later (detection); the heap key is then left early on purpose
//!   (lazy: the session is visited once, finds nothing to do, and is
//!   re-keyed), so the receive path costs no heap work unless a deadline
//!   moves earlier. VPP uses a timer wheel (`bfd_main.c`) for the same job;
//!   at the few thousand sessions a worker carries, a heap costs ~log2(n)
//!   swaps per transmission and keeps deadlines exact, which the
//!   detection-time tests rely on.
//!
//! Per loop iteration the worker calls [`SessionTable::handle_rx`] for each
//! BFD payload of the burst and then [`SessionTable::poll_timers`] once:
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use dataplane::bfd::{
//!     Output, PeerKey, RxError, RxMeta, SessionConfig, SessionTable, State, Timers,
//! };
//! let mut table = SessionTable::with_capacity(1024);
//! let peer = PeerKey { addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), iface: 0 };
//! let id = table
//!     .add(0, peer, SessionConfig::single_hop(1, Timers::symmetric_us(50_000, 3)))
//!     .unwrap();
//! let mut now = 0u64; // ns, from the TSC once per burst
//! // for each BFD payload of the burst:
//! let rx = RxMeta { peer, ttl: 255, multihop: false };
//! let _ = table.handle_rx(now, &rx, &[0x20, 0x40, 3]); // counted as `truncated`
//! // then once per iteration:
//! let mut sent = 0;
//! table.poll_timers(now, &mut |out| match out {
//!     Output::Transmit(tx) => {
//!         // build Ethernet/IP(TTL 255)/UDP(tx.src_port -> tx.hop.dest_port())
//!         // to tx.peer around tx.payload and queue it
//!         sent += tx.payload.len();
//!     }
//!     Output::StateChange(ev) => { /* push ev on the ring to ctrl */ }
//! });
//! assert_eq!(sent, 24);
//! assert_eq!(table.drops().get(RxError::Truncated), 1);
//! assert_eq!(table.get(id).unwrap().state(), State::Down);
//! ```

use core::hash::{Hash, Hasher};
use std::net::IpAddr;

use super::events::{SessionId, StateChange};
use super::packet::{Diag, Repr, RxCounters, RxError, HEADER_LEN};
use super::session::{source_port_for, ConfigError, Hop, Session, SessionConfig, Timers, NEVER};

/// Identifies the peer of a session for packets that carry no Your
/// Discriminator: its address and a caller-defined interface id (port
/// index, VLAN, VRF… whatever the worker demultiplexes by).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerKey {
    pub addr: IpAddr,
    pub iface: u32,
}

/// What the worker knows about a received BFD payload besides its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxMeta {
    /// Source address and receiving interface.
    pub peer: PeerKey,
    /// IPv4 TTL or IPv6 Hop Limit as received.
    pub ttl: u8,
    /// Arrived on the multihop port (4784) rather than 3784.
    pub multihop: bool,
}

/// A control packet to send: the worker wraps `payload` in UDP/IP/Ethernet.
#[derive(Debug, Clone, Copy)]
pub struct Transmit<'a> {
    pub session: SessionId,
    /// Destination.
    pub peer: PeerKey,
    /// Destination port: `hop.dest_port()`; TTL: [`super::session::TX_TTL`].
    pub hop: Hop,
    /// The session's fixed UDP source port (RFC 5881 §4).
    pub src_port: u16,
    /// The BFD Control packet.
    pub payload: &'a [u8],
}

/// What [`SessionTable::poll_timers`] hands the worker.
#[derive(Debug, Clone, Copy)]
pub enum Output<'a> {
    Transmit(Transmit<'a>),
    StateChange(StateChange),
}

/// Why a session could not be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableError {
    Full,
    NoSuchSession,
    DuplicateDiscr,
    DuplicatePeer,
    Config(ConfigError),
}

impl core::fmt::Display for TableError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TableError::Full => f.write_str("BFD session table full"),
            TableError::NoSuchSession => f.write_str("no such BFD session"),
            TableError::DuplicateDiscr => f.write_str("local discriminator already in use"),
            TableError::DuplicatePeer => f.write_str("a session for this peer already exists"),
            TableError::Config(e) => write!(f, "{e}"),
        }
    }
}

impl From<ConfigError> for TableError {
    fn from(e: ConfigError) -> Self {
        TableError::Config(e)
    }
}

#[derive(Debug, Clone)]
struct Slot {
    session: Session,
    peer: PeerKey,
    src_port: u16,
}

/// The sessions of one worker. See the module documentation.
#[derive(Debug)]
pub struct SessionTable {
    slots: Box<[Option<Slot>]>,
    free: Box<[u32]>,
    free_len: usize,
    by_discr: FixedMap<u32>,
    by_peer: FixedMap<PeerKey>,
    timers: TimerHeap,
    drops: RxCounters,
    rx_accepted: u64,
}

impl SessionTable {
    /// Allocate room for `capacity` sessions (the only allocation).
    pub fn with_capacity(capacity: usize) -> SessionTable {
        assert!(capacity > 0 && capacity < u32::MAX as usize / 2);
        SessionTable {
            slots: (0..capacity).map(|_| None).collect(),
            // Pop order 0, 1, 2…
            free: (0..capacity as u32).rev().collect(),
            free_len: capacity,
            by_discr: FixedMap::with_capacity(capacity),
            by_peer: FixedMap::with_capacity(capacity),
            timers: TimerHeap::with_capacity(capacity),
            drops: RxCounters::default(),
            rx_accepted: 0,
        }
    }

    /// Maximum number of sessions.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Sessions in the table.
    pub fn len(&self) -> usize {
        self.slots.len() - self.free_len
    }

    /// No sessions.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Add a session for `peer`. Its first packet is due at `now`.
    pub fn add(
        &mut self,
        now: u64,
        peer: PeerKey,
        cfg: SessionConfig,
    ) -> Result<SessionId, TableError> {
        cfg.validate()?;
        if self.free_len == 0 {
            return Err(TableError::Full);
        }
        if self.by_discr.get(&cfg.local_discr).is_some() {
            return Err(TableError::DuplicateDiscr);
        }
        if self.by_peer.get(&peer).is_some() {
            return Err(TableError::DuplicatePeer);
        }
        self.free_len -= 1;
        let idx = self.free[self.free_len];
        let id = SessionId(idx);
        let session = Session::new(id, cfg, now)?;
        let deadline = session.next_deadline();
        self.slots[idx as usize] = Some(Slot {
            session,
            peer,
            src_port: source_port_for(cfg.local_discr),
        });
        // Both maps are sized for `capacity` keys: cannot be full.
        self.by_discr.insert(cfg.local_discr, idx);
        self.by_peer.insert(peer, idx);
        self.timers.set(idx, deadline);
        Ok(id)
    }

    /// Remove a session. Returns it, for a last snapshot.
    pub fn remove(&mut self, id: SessionId) -> Option<Session> {
        let slot = self.slots.get_mut(id.0 as usize)?.take()?;
        self.by_discr.remove(&slot.session.local_discr());
        self.by_peer.remove(&slot.peer);
        self.timers.remove(id.0);
        self.free[self.free_len] = id.0;
        self.free_len += 1;
        Some(slot.session)
    }

    /// A session, for snapshots.
    pub fn get(&self, id: SessionId) -> Option<&Session> {
        Some(&self.slots.get(id.0 as usize)?.as_ref()?.session)
    }

    /// The session added for `peer`.
    pub fn find(&self, peer: &PeerKey) -> Option<SessionId> {
        self.by_peer.get(peer).map(SessionId)
    }

    /// The peer a session was added for.
    pub fn peer(&self, id: SessionId) -> Option<PeerKey> {
        Some(self.slots.get(id.0 as usize)?.as_ref()?.peer)
    }

    /// Every session with its peer.
    pub fn iter(&self) -> impl Iterator<Item = (PeerKey, &Session)> + '_ {
        self.slots.iter().flatten().map(|s| (s.peer, &s.session))
    }

    /// Drops by reason, for every payload given to [`Self::handle_rx`].
    pub fn drops(&self) -> &RxCounters {
        &self.drops
    }

    /// Payloads accepted by a session.
    pub fn rx_accepted(&self) -> u64 {
        self.rx_accepted
    }

    /// The earliest deadline of any session (a lower bound: it may be early,
    /// never late). For `pollMode: adaptive` sleeping. [`NEVER`] if none.
    pub fn next_deadline(&self) -> u64 {
        self.timers.peek().map_or(NEVER, |(_, key)| key)
    }

    /// One received BFD payload (the UDP payload on port 3784 or 4784):
    /// parse, demultiplex, run the session. Drops are counted by reason and
    /// returned. A Final owed to the peer is sent by the next
    /// [`Self::poll_timers`].
    pub fn handle_rx(
        &mut self,
        now: u64,
        meta: &RxMeta,
        payload: &[u8],
    ) -> Result<Option<StateChange>, RxError> {
        let result = self.rx_inner(now, meta, payload);
        match result {
            Ok(_) => self.rx_accepted += 1,
            Err(e) => self.drops.bump(e),
        }
        result
    }

    fn rx_inner(
        &mut self,
        now: u64,
        meta: &RxMeta,
        payload: &[u8],
    ) -> Result<Option<StateChange>, RxError> {
        let pkt = Repr::parse_bytes(payload)?;
        // "If the Your Discriminator field is nonzero, it MUST be used to
        // select the session with which this BFD packet is associated. If no
        // session is found, the packet MUST be discarded."
        let idx = if pkt.your_discr != 0 {
            self.by_discr
                .get(&pkt.your_discr)
                .ok_or(RxError::UnknownDiscr)?
        } else {
            // "If the Your Discriminator field is zero, the session MUST be
            // selected based on some combination of other fields, possibly
            // including source addressing information, the My Discriminator
            // field, and the interface over which the packet was received."
            self.by_peer.get(&meta.peer).ok_or(RxError::NoSession)?
        };
        let Some(slot) = self.slots[idx as usize].as_mut() else {
            debug_assert!(false, "index points at an empty slot");
            return Err(RxError::NoSession);
        };
        if slot.session.config().hop.is_multi() != meta.multihop {
            return Err(RxError::WrongHop);
        }
        // Selected by discriminator: it must still come from the session's
        // peer (single hop: over the session's port as well).
        if slot.peer.addr != meta.peer.addr
            || (!meta.multihop && slot.peer.iface != meta.peer.iface)
        {
            return Err(RxError::WrongSource);
        }
        let result = slot.session.on_packet(now, &pkt, meta.ttl);
        let deadline = slot.session.next_deadline();
        self.timers.lower(idx, deadline);
        result
    }

    /// Run every session whose deadline has come: detection expiry first,
    /// then the packets it owes. Call once per loop iteration, after the rx
    /// burst. Outputs go to `out` in deadline order; the payload slice is
    /// only valid during the call.
    pub fn poll_timers(&mut self, now: u64, out: &mut impl FnMut(Output<'_>)) {
        let mut buf = [0u8; HEADER_LEN];
        // Each visit leaves the session's deadline after `now`, so this runs
        // at most once per due session; the bound is a guard, not a limit.
        let mut budget = 2 * self.timers.len + 1;
        while let Some((idx, key)) = self.timers.peek() {
            if key > now || budget == 0 {
                break;
            }
            budget -= 1;
            let Some(slot) = self.slots[idx as usize].as_mut() else {
                self.timers.remove(idx);
                continue;
            };
            if let Some(ev) = slot.session.check_timeout(now) {
                out(Output::StateChange(ev));
            }
            while let Some(n) = slot.session.poll_transmit(now, &mut buf) {
                out(Output::Transmit(Transmit {
                    session: SessionId(idx),
                    peer: slot.peer,
                    hop: slot.session.config().hop,
                    src_port: slot.src_port,
                    payload: &buf[..n],
                }));
            }
            self.timers.set(idx, slot.session.next_deadline());
        }
    }

    fn with_session<R>(&mut self, id: SessionId, f: impl FnOnce(&mut Session) -> R) -> Option<R> {
        let slot = self.slots.get_mut(id.0 as usize)?.as_mut()?;
        let r = f(&mut slot.session);
        self.timers.set(id.0, slot.session.next_deadline());
        Some(r)
    }

    /// Administratively disable or enable one session (drain: `true`).
    pub fn set_admin_down(&mut self, now: u64, id: SessionId, down: bool) -> Option<StateChange> {
        self.with_session(id, |s| s.set_admin_down(now, down))
            .flatten()
    }

    /// AdminDown every session (SIGTERM drain); events go to `out`.
    pub fn admin_down_all(&mut self, now: u64, out: &mut impl FnMut(StateChange)) {
        for idx in 0..self.slots.len() as u32 {
            if let Some(ev) = self.set_admin_down(now, SessionId(idx), true) {
                out(ev);
            }
        }
    }

    /// Take a session Down for a local reason (e.g. [`Diag::PathDown`]).
    pub fn force_down(&mut self, now: u64, id: SessionId, diag: Diag) -> Option<StateChange> {
        self.with_session(id, |s| s.force_down(now, diag)).flatten()
    }

    /// Change a session's intervals (a Poll Sequence while Up).
    pub fn set_timers(&mut self, id: SessionId, timers: Timers) -> Result<(), TableError> {
        match self.with_session(id, |s| s.set_timers(timers)) {
            None => Err(TableError::NoSuchSession),
            Some(r) => r.map_err(TableError::from),
        }
    }

    /// Set or clear the C bit of one session.
    pub fn set_control_plane_independent(&mut self, id: SessionId, on: bool) {
        self.with_session(id, |s| s.set_control_plane_independent(on));
    }
}

// ---- fixed-capacity open-addressing map -----------------------------------

/// FxHash-style hasher: fast, deterministic, no allocation.
#[derive(Debug, Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Key → slot index; linear probing, at most half full, backward-shift
/// deletion.
#[derive(Debug)]
struct FixedMap<K> {
    entries: Box<[Option<(K, u32)>]>,
    mask: usize,
}

impl<K: Copy + Eq + Hash> FixedMap<K> {
    fn with_capacity(capacity: usize) -> Self {
        let size = (capacity * 2).next_power_of_two().max(8);
        FixedMap {
            entries: (0..size).map(|_| None).collect(),
            mask: size - 1,
        }
    }

    fn home(&self, key: &K) -> usize {
        let mut h = FxHasher::default();
        key.hash(&mut h);
        let h = h.finish();
        (h ^ (h >> 32)) as usize & self.mask
    }

    #[inline]
    fn get(&self, key: &K) -> Option<u32> {
        let mut i = self.home(key);
        loop {
            match &self.entries[i] {
                None => return None,
                Some((k, v)) if k == key => return Some(*v),
                Some(_) => i = (i + 1) & self.mask,
            }
        }
    }

    /// Insert a key known to be absent. The table never exceeds half full
    /// (the caller bounds the number of keys), so a free entry exists.
    fn insert(&mut self, key: K, value: u32) {
        let mut i = self.home(&key);
        while self.entries[i].is_some() {
            i = (i + 1) & self.mask;
        }
        self.entries[i] = Some((key, value));
    }

    fn remove(&mut self, key: &K) -> Option<u32> {
        let mut i = self.home(key);
        let value = loop {
            match &self.entries[i] {
                None => return None,
                Some((k, v)) if k == key => break *v,
                Some(_) => i = (i + 1) & self.mask,
            }
        };
        self.entries[i] = None;
        // Backward shift: pull later members of the cluster into the hole
        // when that does not move them before their home.
        let mut hole = i;
        let mut j = i;
        loop {
            j = (j + 1) & self.mask;
            let Some((k, _)) = &self.entries[j] else {
                break;
            };
            let home = self.home(k);
            if (j.wrapping_sub(home) & self.mask) >= (j.wrapping_sub(hole) & self.mask) {
                self.entries[hole] = self.entries[j].take();
                hole = j;
            }
        }
        Some(value)
    }
}

// ---- indexed binary min-heap of deadlines ---------------------------------

const NOT_QUEUED: u32 = u32::MAX;

/// Min-heap of (deadline, slot) with a position index per slot, so that a
/// slot's deadline can be changed in O(log n).
#[derive(Debug)]
struct TimerHeap {
    heap: Box<[u32]>,
    len: usize,
    key: Box<[u64]>,
    pos: Box<[u32]>,
}

impl TimerHeap {
    fn with_capacity(capacity: usize) -> Self {
        TimerHeap {
            heap: vec![0; capacity].into_boxed_slice(),
            len: 0,
            key: vec![NEVER; capacity].into_boxed_slice(),
            pos: vec![NOT_QUEUED; capacity].into_boxed_slice(),
        }
    }

    #[inline]
    fn peek(&self) -> Option<(u32, u64)> {
        if self.len == 0 {
            None
        } else {
            let s = self.heap[0];
            Some((s, self.key[s as usize]))
        }
    }

    /// Set a slot's deadline (inserting it if absent).
    fn set(&mut self, slot: u32, deadline: u64) {
        let p = self.pos[slot as usize];
        if p == NOT_QUEUED {
            let at = self.len;
            self.len += 1;
            self.heap[at] = slot;
            self.pos[slot as usize] = at as u32;
            self.key[slot as usize] = deadline;
            self.sift_up(at);
            return;
        }
        let old = self.key[slot as usize];
        self.key[slot as usize] = deadline;
        if deadline < old {
            self.sift_up(p as usize);
        } else if deadline > old {
            self.sift_down(p as usize);
        }
    }

    /// Move a slot's deadline earlier only (the lazy receive-path update).
    #[inline]
    fn lower(&mut self, slot: u32, deadline: u64) {
        let p = self.pos[slot as usize];
        if p != NOT_QUEUED && deadline < self.key[slot as usize] {
            self.key[slot as usize] = deadline;
            self.sift_up(p as usize);
        }
    }

    fn remove(&mut self, slot: u32) {
        let p = self.pos[slot as usize];
        if p == NOT_QUEUED {
            return;
        }
        let p = p as usize;
        self.len -= 1;
        let last = self.heap[self.len];
        self.pos[slot as usize] = NOT_QUEUED;
        self.key[slot as usize] = NEVER;
        if p != self.len {
            self.heap[p] = last;
            self.pos[last as usize] = p as u32;
            self.sift_up(p);
            self.sift_down(self.pos[last as usize] as usize);
        }
    }

    fn less(&self, a: usize, b: usize) -> bool {
        self.key[self.heap[a] as usize] < self.key[self.heap[b] as usize]
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.pos[self.heap[a] as usize] = a as u32;
        self.pos[self.heap[b] as usize] = b as u32;
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if !self.less(i, parent) {
                break;
            }
            self.swap(i, parent);
            i = parent;
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        loop {
            let l = 2 * i + 1;
            if l >= self.len {
                break;
            }
            let r = l + 1;
            let c = if r < self.len && self.less(r, l) {
                r
            } else {
                l
            };
            if !self.less(c, i) {
                break;
            }
            self.swap(i, c);
            i = c;
        }
    }
}

#[cfg(test)]
mod map_tests {
    use super::*;

    #[test]
    fn fixed_map_insert_get_remove_with_collisions() {
        let mut m: FixedMap<u32> = FixedMap::with_capacity(64);
        for k in 1..=64u32 {
            m.insert(k * 7919, k);
        }
        for k in 1..=64u32 {
            assert_eq!(m.get(&(k * 7919)), Some(k));
        }
        // Remove every other key; the rest stay reachable (backward shift).
        for k in (1..=64u32).step_by(2) {
            assert_eq!(m.remove(&(k * 7919)), Some(k));
        }
        for k in 1..=64u32 {
            let want = if k % 2 == 0 { Some(k) } else { None };
            assert_eq!(m.get(&(k * 7919)), want, "key {k}");
        }
        assert_eq!(m.remove(&12345), None);
    }

    #[test]
    fn timer_heap_orders_and_updates() {
        let mut h = TimerHeap::with_capacity(8);
        for (slot, d) in [(0u32, 50u64), (1, 10), (2, 30), (3, 40), (4, 20)] {
            h.set(slot, d);
        }
        assert_eq!(h.peek(), Some((1, 10)));
        h.set(1, 100); // later
        assert_eq!(h.peek(), Some((4, 20)));
        h.lower(0, 5); // earlier
        assert_eq!(h.peek(), Some((0, 5)));
        h.lower(0, 60); // not earlier: ignored
        assert_eq!(h.peek(), Some((0, 5)));
        h.remove(0);
        h.remove(3);
        let mut order = Vec::new();
        while let Some((s, k)) = h.peek() {
            order.push((s, k));
            h.remove(s);
        }
        assert_eq!(order, [(4, 20), (2, 30), (1, 100)]);
    }
}

//! The neighbor cache (ARP and ND alike) and the queue of packets waiting
//! for a next hop to resolve.
//!
//! Both are fixed-size, allocated when the worker starts, and touched only by
//! the worker that owns the port. Lookups are O(1) (open addressing, linear
//! probing over a power-of-two array, at most [`PROBE`] slots from an
//! address's home); the pending queue is scanned only when an answer
//! arrives or a timer fires, which is rare next to forwarding.
//!
//! What a stranger on the link can do to the cache is bounded:
//!
//! - entries are created only for addresses the data plane asked about
//!   ([`Cache::should_solicit`]: next hops and BFD peers in use) or that
//!   the configuration names ([`Cache::add_static`]); a frame can only
//!   *update* an entry that exists ([`Cache::update`], RFC 826's "merge"
//!   and RFC 4861 §7.2.5: an unsolicited NA for an address with no entry is
//!   ignored), so spoofed ARP and NA senders never take a slot;
//! - a new entry that finds its probe window full replaces the least
//!   valuable entry there: a failed solicitation, then the stalest entry
//!   older than [`REACHABLE`]. It never replaces a static entry, a
//!   confirmed entry still fresh, or a solicitation still in flight: the
//!   insert fails instead (counted by the caller) and is retried later;
//! - static entries (config `neighbors`) never expire and are never
//!   overridden by ARP or ND.

use std::net::IpAddr;

use crate::wire::Mac;

/// Nanoseconds of the worker's clock.
pub type Nanos = u64;

const SECOND: Nanos = 1_000_000_000;
/// An entry is trusted this long after it was last confirmed; after that it
/// is stale: lookups miss, so the next packet re-probes it (its slot stays
/// until the answer, or until a new entry needs the slot).
pub const REACHABLE: Nanos = 300 * SECOND;
/// Solicit the same address at most this often; an unanswered
/// solicitation older than this may give its slot to a new one.
pub const RESOLVE_INTERVAL: Nanos = SECOND;
/// Give up on a packet that waited this long.
pub const PENDING_TIMEOUT: Nanos = 3 * SECOND;
/// Slots searched from an address's home slot: the bound on a lookup.
pub const PROBE: usize = 16;

/// An address as one integer (IPv4 mapped into IPv6): one compare per probe.
fn key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
        IpAddr::V6(a) => u128::from(a),
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    key: u128,
    /// `None` while a solicitation is outstanding.
    mac: Option<Mac>,
    confirmed: Nanos,
    solicited: Nanos,
    /// From the configuration: never expires, never overridden.
    fixed: bool,
}

impl Entry {
    /// How readily this entry gives its slot to a new one at `now`: `None`
    /// never (static, fresh, or a solicitation in flight), else a rank
    /// where higher goes first.
    fn victim_rank(&self, now: Nanos) -> Option<(u8, Nanos)> {
        if self.fixed {
            return None;
        }
        match self.mac {
            None if now.saturating_sub(self.solicited) >= RESOLVE_INTERVAL => {
                Some((2, now.saturating_sub(self.solicited)))
            }
            None => None,
            Some(_) if now.saturating_sub(self.confirmed) >= REACHABLE => {
                Some((1, now.saturating_sub(self.confirmed)))
            }
            Some(_) => None,
        }
    }
}

/// What [`Cache::update`] did with an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// The entry now holds this MAC, confirmed now: release what waits.
    Updated,
    /// No entry for the address: nothing learned (not an error).
    Unknown,
    /// A static entry, or an override the sender may not make: kept as it was.
    Kept,
}

/// Address → MAC for one port.
#[derive(Debug)]
pub struct Cache {
    slots: Box<[Option<Entry>]>,
    mask: usize,
    /// Entries that could not be created: every slot of their window was
    /// static, fresh, or being resolved.
    pub full: u64,
}

impl Cache {
    /// `capacity` is rounded up to a power of two.
    pub fn new(capacity: usize) -> Self {
        let n = capacity.max(PROBE).next_power_of_two();
        Cache {
            slots: vec![None; n].into_boxed_slice(),
            mask: n - 1,
            full: 0,
        }
    }

    fn home(&self, k: u128) -> usize {
        // Multiplicative hashing of the two halves, high bits taken: one
        // multiply per packet (this runs for every forwarded packet), good
        // enough for a few hundred next hops.
        let h =
            ((k as u64) ^ ((k >> 64) as u64).rotate_left(23)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (h >> 32) as usize & self.mask
    }

    /// The slot holding `k`. Slots are replaced in place and never emptied,
    /// so a probe stops at the first empty slot.
    fn find(&self, k: u128) -> Option<usize> {
        let mut i = self.home(k);
        for _ in 0..PROBE.min(self.mask + 1) {
            match &self.slots[i] {
                Some(e) if e.key == k => return Some(i),
                Some(_) => i = (i + 1) & self.mask,
                None => return None,
            }
        }
        None
    }

    /// The slot for a new entry `k` at `now`: the first empty one of its
    /// window, else the best victim there; `None` if every slot is worth
    /// more than a new entry.
    fn free_slot(&self, k: u128, now: Nanos) -> Option<usize> {
        let mut i = self.home(k);
        let mut best: Option<(usize, (u8, Nanos))> = None;
        for _ in 0..PROBE.min(self.mask + 1) {
            match &self.slots[i] {
                None => return Some(i),
                Some(e) => {
                    if let Some(r) = e.victim_rank(now) {
                        if best.is_none_or(|(_, b)| r > b) {
                            best = Some((i, r));
                        }
                    }
                }
            }
            i = (i + 1) & self.mask;
        }
        best.map(|(i, _)| i)
    }

    /// The MAC of `ip`, if known and not older than `REACHABLE` (static
    /// entries: always).
    pub fn lookup(&self, ip: IpAddr, now: Nanos) -> Option<Mac> {
        let e = self.slots[self.find(key(ip))?]?;
        let mac = e.mac?;
        (e.fixed || now.saturating_sub(e.confirmed) < REACHABLE).then_some(mac)
    }

    /// An answer says `ip` is at `mac`. Only an existing entry learns
    /// (RFC 826 merge; RFC 4861 §7.2.5); `override_mac: false` (an NA with
    /// O clear) fills an incomplete entry or confirms the same MAC but
    /// never replaces a different one.
    pub fn update(&mut self, ip: IpAddr, mac: Mac, now: Nanos, override_mac: bool) -> Learned {
        let Some(i) = self.find(key(ip)) else {
            return Learned::Unknown;
        };
        let Some(e) = self.slots[i].as_mut() else {
            return Learned::Unknown;
        };
        if e.fixed {
            return Learned::Kept;
        }
        if !override_mac && e.mac.is_some_and(|m| m != mac) {
            return Learned::Kept;
        }
        e.mac = Some(mac);
        e.confirmed = now;
        Learned::Updated
    }

    /// A configured neighbor: never expires, never overridden, never
    /// evicted. Returns false if its window holds nothing it may replace.
    pub fn add_static(&mut self, ip: IpAddr, mac: Mac) -> bool {
        let k = key(ip);
        let slot = self.find(k).or_else(|| self.free_slot(k, Nanos::MAX));
        match slot {
            Some(i) => {
                self.slots[i] = Some(Entry {
                    key: k,
                    mac: Some(mac),
                    confirmed: 0,
                    solicited: 0,
                    fixed: true,
                });
                true
            }
            None => false,
        }
    }

    /// Whether a solicitation for `ip` should go out now (rate limited to
    /// one per `RESOLVE_INTERVAL`); records it if so, creating the entry
    /// that the answer will fill (this is the only way an address enters
    /// the cache from traffic).
    pub fn should_solicit(&mut self, ip: IpAddr, now: Nanos) -> bool {
        let k = key(ip);
        if let Some(i) = self.find(k) {
            let Some(e) = self.slots[i].as_mut() else {
                return false;
            };
            if e.fixed || (e.solicited != 0 && now.saturating_sub(e.solicited) < RESOLVE_INTERVAL) {
                return false;
            }
            e.solicited = now.max(1);
            return true;
        }
        let Some(i) = self.free_slot(k, now) else {
            self.full += 1;
            return false;
        };
        self.slots[i] = Some(Entry {
            key: k,
            mac: None,
            confirmed: 0,
            solicited: now.max(1),
            fixed: false,
        });
        true
    }

    /// A copy of another worker's entry: `ip` is at `mac`, confirmed now
    /// (the port's home worker resolves and tells the workers that
    /// transmit on the port). A static entry is kept; no room: nothing.
    pub fn mirror(&mut self, ip: IpAddr, mac: Mac, now: Nanos) {
        let k = key(ip);
        let Some(i) = self.find(k).or_else(|| self.free_slot(k, now)) else {
            self.full += 1;
            return;
        };
        if self.slots[i].is_some_and(|e| e.fixed && e.key == k) {
            return;
        }
        self.slots[i] = Some(Entry {
            key: k,
            mac: Some(mac),
            confirmed: now,
            solicited: 0,
            fixed: false,
        });
    }

    /// Whether `ip` has an entry (resolved or being resolved).
    pub fn knows(&self, ip: IpAddr) -> bool {
        self.find(key(ip)).is_some()
    }

    /// Every resolved entry, for `pollux show`.
    pub fn entries(&self) -> impl Iterator<Item = (IpAddr, Mac)> + '_ {
        self.slots.iter().flatten().filter_map(|e| {
            let a = std::net::Ipv6Addr::from(e.key);
            let ip = a.to_ipv4_mapped().map_or(IpAddr::V6(a), IpAddr::V4);
            e.mac.map(|m| (ip, m))
        })
    }
}

/// Packets waiting for their next hop, bounded; `P` is the packet handle
/// (an mbuf in the worker, a `Vec<u8>` in tests).
#[derive(Debug)]
pub struct Pending<P> {
    slots: Box<[Option<(IpAddr, Nanos, P)>]>,
    len: usize,
}

impl<P> Pending<P> {
    pub fn new(capacity: usize) -> Self {
        Pending {
            slots: (0..capacity).map(|_| None).collect(),
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues `p` for `next_hop`; gives it back when the queue is full.
    pub fn push(&mut self, next_hop: IpAddr, now: Nanos, p: P) -> Result<(), P> {
        match self.slots.iter_mut().find(|s| s.is_none()) {
            Some(slot) => {
                *slot = Some((next_hop, now, p));
                self.len += 1;
                Ok(())
            }
            None => Err(p),
        }
    }

    /// Hands every packet waiting for `next_hop` to `f`, oldest first.
    pub fn take_for(&mut self, next_hop: IpAddr, mut f: impl FnMut(P)) {
        if self.len == 0 {
            return;
        }
        for slot in self.slots.iter_mut() {
            if matches!(slot, Some((ip, _, _)) if *ip == next_hop) {
                if let Some((_, _, p)) = slot.take() {
                    self.len -= 1;
                    f(p);
                }
            }
        }
    }

    /// Hands every packet older than `PENDING_TIMEOUT` to `f`.
    pub fn expire(&mut self, now: Nanos, mut f: impl FnMut(P)) {
        if self.len == 0 {
            return;
        }
        for slot in self.slots.iter_mut() {
            if matches!(slot, Some((_, t, _)) if now.saturating_sub(*t) >= PENDING_TIMEOUT) {
                if let Some((_, _, p)) = slot.take() {
                    self.len -= 1;
                    f(p);
                }
            }
        }
    }

    /// The next hops that still have packets waiting (to re-solicit).
    pub fn waiting(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.slots.iter().flatten().map(|(ip, _, _)| *ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: Mac = Mac([2, 0, 0, 0, 0, 9]);

    const OTHER: Mac = Mac([2, 0, 0, 0, 0, 0x66]);

    fn v4(i: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 | i))
    }

    #[test]
    fn learn_lookup_and_age() {
        let mut c = Cache::new(4);
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        assert_eq!(c.lookup(ip, 0), None);
        assert_eq!(
            c.update(ip, MAC, 10, true),
            Learned::Unknown,
            "not asked about"
        );
        assert_eq!(c.lookup(ip, 10), None);
        assert!(c.should_solicit(ip, 5));
        assert_eq!(c.update(ip, MAC, 10, true), Learned::Updated);
        assert_eq!(c.lookup(ip, 10 + REACHABLE - 1), Some(MAC));
        assert_eq!(c.lookup(ip, 10 + REACHABLE), None, "stale: re-probed");
        assert!(c.should_solicit(ip, 10 + REACHABLE));
        assert_eq!(c.update(ip, MAC, 10 + REACHABLE, true), Learned::Updated);
        assert_eq!(c.lookup(ip, 11 + REACHABLE), Some(MAC));
    }

    #[test]
    fn solicit_is_rate_limited() {
        let mut c = Cache::new(4);
        let ip: IpAddr = "fd00::9".parse().unwrap();
        assert!(c.should_solicit(ip, 5));
        assert!(!c.should_solicit(ip, 5 + RESOLVE_INTERVAL - 1));
        assert!(c.should_solicit(ip, 5 + RESOLVE_INTERVAL));
        assert!(c.knows(ip));
        assert_eq!(c.lookup(ip, 6), None, "incomplete entries do not resolve");
    }

    #[test]
    fn override_clear_never_replaces_a_different_mac() {
        let mut c = Cache::new(16);
        let ip: IpAddr = "fd00::7".parse().unwrap();
        assert!(c.should_solicit(ip, 1));
        // An incomplete entry takes the first answer, O or not.
        assert_eq!(c.update(ip, MAC, 2, false), Learned::Updated);
        assert_eq!(c.update(ip, OTHER, 3, false), Learned::Kept);
        assert_eq!(c.lookup(ip, 4), Some(MAC));
        assert_eq!(
            c.update(ip, MAC, 5, false),
            Learned::Updated,
            "same MAC confirms"
        );
        assert_eq!(c.update(ip, OTHER, 6, true), Learned::Updated);
        assert_eq!(c.lookup(ip, 7), Some(OTHER));
    }

    #[test]
    fn static_entries_never_expire_nor_change() {
        let mut c = Cache::new(16);
        let ip = v4(5);
        assert!(c.add_static(ip, MAC));
        assert_eq!(c.lookup(ip, 100 * REACHABLE), Some(MAC));
        assert_eq!(c.update(ip, OTHER, 1, true), Learned::Kept);
        assert!(!c.should_solicit(ip, 1));
        assert_eq!(c.lookup(ip, 2), Some(MAC));
    }

    #[test]
    fn a_full_cache_evicts_failed_and_stale_entries_never_fresh_ones() {
        // 16 slots: every one is in every address's window.
        let mut c = Cache::new(16);
        for i in 0..16 {
            assert!(c.should_solicit(v4(i), 1));
            assert_eq!(c.update(v4(i), MAC, 1, true), Learned::Updated);
        }
        let late = v4(100);
        assert!(!c.should_solicit(late, 2), "every entry is fresh");
        assert_eq!(c.full, 1);
        // One entry goes stale (not refreshed): its slot may be reused.
        for i in 1..16 {
            c.update(v4(i), MAC, REACHABLE, true);
        }
        assert!(c.should_solicit(late, REACHABLE + 1));
        assert!(!c.knows(v4(0)), "the stale entry gave its slot");
        for i in 1..16 {
            assert_eq!(c.lookup(v4(i), REACHABLE + 1), Some(MAC), "fresh ones stay");
        }
        // A solicitation in flight is kept; a failed one gives its slot.
        assert!(!c.should_solicit(v4(200), REACHABLE + 2));
        assert!(c.should_solicit(v4(200), REACHABLE + 1 + RESOLVE_INTERVAL));
        assert!(!c.knows(late));
        assert_eq!(
            c.update(v4(200), OTHER, REACHABLE + 1 + RESOLVE_INTERVAL, true),
            Learned::Updated
        );
    }

    #[test]
    fn ten_thousand_answers_nobody_asked_for_take_no_slot() {
        let mut c = Cache::new(1024);
        for i in 0..10_000 {
            assert_eq!(c.update(v4(1000 + i), MAC, 1, true), Learned::Unknown);
        }
        assert_eq!(c.entries().count(), 0);
        let gw = v4(1);
        assert!(c.should_solicit(gw, 2));
        assert_eq!(c.update(gw, MAC, 3, true), Learned::Updated);
        assert_eq!(c.lookup(gw, 4), Some(MAC));
    }

    #[test]
    fn pending_is_bounded_and_drains_by_next_hop() {
        let mut q = Pending::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        q.push(a, 0, 1).unwrap();
        q.push(b, 0, 2).unwrap();
        assert_eq!(q.push(a, 0, 3), Err(3));
        let mut got = vec![];
        q.take_for(a, |p| got.push(p));
        assert_eq!(got, vec![1]);
        assert_eq!(q.len(), 1);
        let mut expired = vec![];
        q.expire(PENDING_TIMEOUT - 1, |p| expired.push(p));
        assert!(expired.is_empty());
        q.expire(PENDING_TIMEOUT, |p| expired.push(p));
        assert_eq!(expired, vec![2]);
        assert!(q.is_empty());
    }
}

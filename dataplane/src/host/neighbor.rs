//! The neighbor cache (ARP and ND alike) and the queue of packets waiting
//! for a next hop to resolve.
//!
//! Both are fixed-size, allocated when the worker starts, and touched only by
//! the worker that owns the port. Lookups are O(1) (open addressing, linear
//! probing over a power-of-two array); the pending queue is scanned only when
//! an answer arrives or a timer fires, which is rare next to forwarding.

use std::net::IpAddr;

use crate::wire::Mac;

/// Nanoseconds of the worker's clock.
pub type Nanos = u64;

const SECOND: Nanos = 1_000_000_000;
/// An entry is trusted this long after it was last confirmed.
pub const REACHABLE: Nanos = 300 * SECOND;
/// Solicit the same address at most this often.
pub const RESOLVE_INTERVAL: Nanos = SECOND;
/// Give up on a packet that waited this long.
pub const PENDING_TIMEOUT: Nanos = 3 * SECOND;

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
}

/// Address → MAC for one port.
#[derive(Debug)]
pub struct Cache {
    slots: Box<[Option<Entry>]>,
    mask: usize,
}

impl Cache {
    /// `capacity` is rounded up to a power of two.
    pub fn new(capacity: usize) -> Self {
        let n = capacity.max(8).next_power_of_two();
        Cache {
            slots: vec![None; n].into_boxed_slice(),
            mask: n - 1,
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

    fn find(&self, k: u128) -> Option<usize> {
        let mut i = self.home(k);
        for _ in 0..=self.mask {
            match &self.slots[i] {
                Some(e) if e.key == k => return Some(i),
                Some(_) => i = (i + 1) & self.mask,
                None => return None,
            }
        }
        None
    }

    /// The MAC of `ip`, if known and not older than `REACHABLE`.
    pub fn lookup(&self, ip: IpAddr, now: Nanos) -> Option<Mac> {
        let e = self.slots[self.find(key(ip))?]?;
        let mac = e.mac?;
        (now.saturating_sub(e.confirmed) < REACHABLE).then_some(mac)
    }

    /// Records that `ip` is at `mac`. Returns false when the table is full
    /// (the caller counts it; forwarding still works by soliciting again).
    pub fn update(&mut self, ip: IpAddr, mac: Mac, now: Nanos) -> bool {
        let k = key(ip);
        match self.slot_for(k) {
            Some(i) => {
                let solicited = self.slots[i].map_or(0, |e| e.solicited);
                self.slots[i] = Some(Entry {
                    key: k,
                    mac: Some(mac),
                    confirmed: now,
                    solicited,
                });
                true
            }
            None => false,
        }
    }

    /// Whether a solicitation for `ip` should go out now (rate limited to
    /// one per `RESOLVE_INTERVAL`); records it if so.
    pub fn should_solicit(&mut self, ip: IpAddr, now: Nanos) -> bool {
        let k = key(ip);
        let Some(i) = self.slot_for(k) else {
            return false;
        };
        match &mut self.slots[i] {
            Some(e) if e.solicited != 0 && now.saturating_sub(e.solicited) < RESOLVE_INTERVAL => {
                false
            }
            Some(e) => {
                e.solicited = now.max(1);
                true
            }
            slot @ None => {
                *slot = Some(Entry {
                    key: k,
                    mac: None,
                    confirmed: 0,
                    solicited: now.max(1),
                });
                true
            }
        }
    }

    /// Whether `ip` has an entry (resolved or being resolved).
    pub fn knows(&self, ip: IpAddr) -> bool {
        self.find(key(ip)).is_some()
    }

    fn slot_for(&self, k: u128) -> Option<usize> {
        let mut i = self.home(k);
        for _ in 0..=self.mask {
            match &self.slots[i] {
                Some(e) if e.key == k => return Some(i),
                Some(_) => i = (i + 1) & self.mask,
                None => return Some(i),
            }
        }
        None
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

    #[test]
    fn learn_lookup_and_age() {
        let mut c = Cache::new(4);
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        assert_eq!(c.lookup(ip, 0), None);
        assert!(c.update(ip, MAC, 10));
        assert_eq!(c.lookup(ip, 10 + REACHABLE - 1), Some(MAC));
        assert_eq!(c.lookup(ip, 10 + REACHABLE), None);
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
    fn full_cache_refuses_new_addresses_but_keeps_old() {
        let mut c = Cache::new(8);
        for i in 0..8u8 {
            assert!(c.update(IpAddr::from([10, 0, 0, i]), MAC, 1));
        }
        assert!(!c.update("10.0.1.1".parse().unwrap(), MAC, 1));
        assert_eq!(c.lookup(IpAddr::from([10, 0, 0, 7]), 2), Some(MAC));
        assert_eq!(c.entries().count(), 8);
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

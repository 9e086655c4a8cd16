//! Per-port and per-worker counters.
//!
//! A worker counts into plain `u64`s it owns (no atomics per packet) and
//! publishes a copy into [`Shared`] slots every few milliseconds with relaxed
//! stores; ctrl sums the slots on demand. Every drop has a reason.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

macro_rules! drop_reasons {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// Why the data plane dropped a frame: each is a counter.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(u8)]
        pub enum Drop { $($(#[$doc])* $variant,)* }

        impl Drop {
            pub const ALL: &'static [Drop] = &[$(Drop::$variant,)*];
            pub const COUNT: usize = Self::ALL.len();

            /// The label used in metrics and `pollux show stats`.
            pub fn name(self) -> &'static str {
                match self { $(Drop::$variant => $name,)* }
            }
        }
    };
}

drop_reasons! {
    /// Shorter than an Ethernet header.
    EthTruncated => "eth_truncated",
    /// Chained mbufs (a frame larger than one buffer).
    MultiSegment => "multi_segment",
    /// Longer than the port's MTU allows.
    Oversize => "oversize",
    /// Tagged when the port is untagged, or another VLAN id.
    VlanMismatch => "vlan_mismatch",
    /// Unicast to another MAC.
    NotOurMac => "not_our_mac",
    /// An EtherType the data plane does not handle.
    UnknownEthertype => "unknown_ethertype",
    /// ARP shorter than 28 bytes, or not Ethernet/IPv4.
    ArpMalformed => "arp_malformed",
    /// ARP about other hosts (after learning from it).
    ArpNotForUs => "arp_not_for_us",
    Ipv4Truncated => "ipv4_truncated",
    /// Bad version, IHL or total length.
    Ipv4Malformed => "ipv4_malformed",
    Ipv4Checksum => "ipv4_checksum",
    Ipv6Truncated => "ipv6_truncated",
    Ipv6Malformed => "ipv6_malformed",
    IcmpTruncated => "icmp_truncated",
    IcmpChecksum => "icmp_checksum",
    /// Neighbor Discovery with hop limit ≠ 255, a bad option or target.
    NdMalformed => "nd_malformed",
    /// Router solicitations/advertisements and redirects: not for a data plane.
    NdIgnored => "nd_ignored",
    /// IP to an address that is neither a self IP nor a virtual server.
    NotForUs => "not_for_us",
    /// From the TAP, no route to the destination.
    NoRoute => "no_route",
    /// The ring to the worker that owns the frame (its flow, or the port's
    /// host state or queue) was full.
    HandoffFull => "handoff_full",
    /// Waiting for ARP/ND and the queue is full.
    NeighborQueueFull => "neighbor_queue_full",
    /// Waited for ARP/ND and nobody answered.
    NeighborUnresolved => "neighbor_unresolved",
    /// The port's TX ring was full.
    TxFull => "tx_full",
    /// The TAP's queue was full (the kernel is not reading).
    TapFull => "tap_full",
    /// The mempool was empty when a copy or a new frame was needed.
    NoMbuf => "no_mbuf",
    /// Over the port's punt policer's rate: not handed to the TAP.
    PuntPoliced => "punt_policed",
    /// An ARP request or NS for a self IP not answered: over the port's
    /// answer rate (`puntRate` per second).
    AnswerPoliced => "answer_policed",
}

/// What one port counted (owned by its worker).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortCounters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// Frames the TX ring accepted (bytes: see the PMD's `obytes`).
    pub tx_packets: u64,
    /// Frames handed to the kernel through the TAP.
    pub to_tap: u64,
    /// Frames the kernel sent out of the TAP.
    pub from_tap: u64,
    pub arp_replies: u64,
    pub nd_replies: u64,
    pub echo_replies: u64,
    /// ARP requests and neighbor solicitations the data plane sent.
    pub solicits: u64,
    pub drops: [u64; Drop::COUNT],
}

impl PortCounters {
    #[inline]
    pub fn drop(&mut self, why: Drop) {
        self.drops[why as usize] += 1;
    }

    pub fn dropped(&self, why: Drop) -> u64 {
        self.drops[why as usize]
    }

    /// Adds `other` (another worker's counts for the same port).
    pub fn add(&mut self, other: &PortCounters) {
        let f = self.fields();
        let g = other.fields();
        let drops = std::array::from_fn(|i| self.drops[i] + other.drops[i]);
        *self = Self::from_fields(&std::array::from_fn(|i| f[i] + g[i]), drops);
    }

    fn fields(&self) -> [u64; 9] {
        [
            self.rx_packets,
            self.rx_bytes,
            self.tx_packets,
            self.to_tap,
            self.from_tap,
            self.arp_replies,
            self.nd_replies,
            self.echo_replies,
            self.solicits,
        ]
    }

    fn from_fields(f: &[u64; 9], drops: [u64; Drop::COUNT]) -> Self {
        PortCounters {
            rx_packets: f[0],
            rx_bytes: f[1],
            tx_packets: f[2],
            to_tap: f[3],
            from_tap: f[4],
            arp_replies: f[5],
            nd_replies: f[6],
            echo_replies: f[7],
            solicits: f[8],
            drops,
        }
    }
}

/// What one worker counted about its loop.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerCounters {
    /// Loop iterations that moved at least one packet.
    pub busy_polls: u64,
    /// Loop iterations that found nothing to do.
    pub idle_polls: u64,
    /// Times the adaptive poll mode went to sleep.
    pub sleeps: u64,
    /// The longest time between two loop iterations (ns): how late the
    /// worker's timers can have run.
    pub max_gap_ns: u64,
    /// Frames handed to other workers (flows they own, ports they send
    /// on), frames taken from them, and hand-offs lost to a full ring.
    pub handoff_out: u64,
    pub handoff_in: u64,
    pub handoff_full: u64,
}

/// The slot a worker publishes a port's counters into.
#[derive(Debug, Default)]
pub struct SharedPort {
    fields: [AtomicU64; 9],
    drops: [AtomicU64; Drop::COUNT],
}

impl SharedPort {
    pub fn publish(&self, c: &PortCounters) {
        for (slot, v) in self.fields.iter().zip(c.fields()) {
            slot.store(v, Relaxed);
        }
        for (slot, v) in self.drops.iter().zip(c.drops) {
            slot.store(v, Relaxed);
        }
    }

    pub fn read(&self) -> PortCounters {
        let f = std::array::from_fn(|i| self.fields[i].load(Relaxed));
        let d = std::array::from_fn(|i| self.drops[i].load(Relaxed));
        PortCounters::from_fields(&f, d)
    }
}

/// The slot a worker publishes its loop counters into.
#[derive(Debug, Default)]
pub struct SharedWorker {
    busy: AtomicU64,
    idle: AtomicU64,
    sleeps: AtomicU64,
    max_gap: AtomicU64,
    handoff: [AtomicU64; 3],
    /// Set by the worker when it enters its loop, cleared when it leaves.
    pub running: std::sync::atomic::AtomicBool,
}

impl SharedWorker {
    pub fn publish(&self, c: &WorkerCounters) {
        self.busy.store(c.busy_polls, Relaxed);
        self.idle.store(c.idle_polls, Relaxed);
        self.sleeps.store(c.sleeps, Relaxed);
        self.max_gap.store(c.max_gap_ns, Relaxed);
        for (slot, v) in self
            .handoff
            .iter()
            .zip([c.handoff_out, c.handoff_in, c.handoff_full])
        {
            slot.store(v, Relaxed);
        }
    }

    pub fn read(&self) -> WorkerCounters {
        WorkerCounters {
            busy_polls: self.busy.load(Relaxed),
            idle_polls: self.idle.load(Relaxed),
            sleeps: self.sleeps.load(Relaxed),
            max_gap_ns: self.max_gap.load(Relaxed),
            handoff_out: self.handoff[0].load(Relaxed),
            handoff_in: self.handoff[1].load(Relaxed),
            handoff_full: self.handoff[2].load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_snake_case() {
        let mut names: Vec<_> = Drop::ALL.iter().map(|d| d.name()).collect();
        assert!(names.iter().all(|n| n
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())));
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Drop::COUNT);
    }

    #[test]
    fn publish_read_round_trip() {
        let mut c = PortCounters {
            rx_packets: 3,
            solicits: 9,
            ..Default::default()
        };
        c.drop(Drop::Oversize);
        let s = SharedPort::default();
        s.publish(&c);
        assert_eq!(s.read(), c);
    }
}

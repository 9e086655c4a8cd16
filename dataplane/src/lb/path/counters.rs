//! Why packets are dropped and what the path counts: the [`L4Drop`]
//! reasons, the worker's [`L4Counters`], the per virtual server and per
//! member counters, and their carry-over across a reload
//! ([`L4::adopt`]). The per-packet increments stay with the dispatcher
//! (`count_pass` in `path.rs`, shared with the fast path); this module
//! owns the types and the cold bookkeeping around them.

use std::collections::HashMap;
use std::net::IpAddr;

use super::L4;
use crate::lb::vs::VsTable;

macro_rules! l4_drops {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// Why the L4 path dropped a packet: each is a counter.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(u8)]
        pub enum L4Drop { $($(#[$doc])* $variant,)* }

        impl L4Drop {
            pub const ALL: &'static [L4Drop] = &[$(L4Drop::$variant,)*];
            pub const COUNT: usize = Self::ALL.len();

            /// The label used in metrics.
            pub fn name(self) -> &'static str {
                match self { $(L4Drop::$variant => $name,)* }
            }
        }
    };
}

l4_drops! {
    /// An IPv4 fragment or an IPv6 Fragment header, to a VIP or SNAT address.
    Fragment => "fragment",
    /// TTL / hop limit would reach 0.
    TtlExpired => "ttl_expired",
    /// New flow for a VS with no healthy member of weight > 0.
    NoHealthyMember => "no_healthy_member",
    /// IP header not parseable or inconsistent.
    IpMalformed => "ip_malformed",
    /// TCP/UDP header truncated or malformed.
    L4Malformed => "l4_malformed",
    /// ICMP error (or its quoted datagram) truncated, or a bad checksum.
    IcmpMalformed => "icmp_malformed",
    /// ICMP error to a VIP/SNAT address that matches no flow.
    IcmpNoFlow => "icmp_no_flow",
    /// To a VIP with a protocol other than TCP, UDP, ICMP.
    UnsupportedProtocol => "unsupported_protocol",
    /// No free SNAT port in this worker's range.
    SnatExhausted => "snat_exhausted",
    /// A SNAT flow the connection table refused (full or flood): its
    /// return traffic could not be mapped back, so it is not forwarded.
    SnatUntracked => "snat_untracked",
    /// A new DNAT flow the connection table refused whose replies could
    /// not be translated back without state (its member serves several
    /// virtual servers at that port): not forwarded half-way.
    UntrackedUnreturnable => "untracked_unreturnable",
    /// A TCP segment without SYN for no tracked flow of a SNAT virtual
    /// server: a SNAT flow starts with a SYN (a stray ACK must not take a
    /// SNAT port for the idle timeout).
    SnatNeedsSyn => "snat_needs_syn",
    /// RST / port unreachable over the rate limit.
    ReplyRateLimited => "reply_rate_limited",
    /// To a closed port of a VIP, and nothing to answer (an RST, ICMP).
    ClosedPort => "closed_port",
    /// A TCP segment of a flow whose member was removed: the flow is reset
    /// at both ends (reset probes, as on idle timeout) instead.
    MemberRemoved => "member_removed",
}

/// The worker's L4 counters (plain fields; published like port counters).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct L4Counters {
    /// Client → member packets forwarded (tracked or not).
    pub forwarded: u64,
    /// Member → client packets forwarded.
    pub returned: u64,
    /// Flows inserted into the connection table.
    pub new_flows: u64,
    /// New flows forwarded by their Maglev choice without an entry
    /// (table full or flood limit): DESIGN.md §3's "untracked" counter.
    pub untracked: u64,
    /// Return packets translated without an entry (reverse index).
    pub return_untracked: u64,
    /// SNAT return packets found through the port slot (reverse entry gone).
    pub return_via_slot: u64,
    /// Mid-flow TCP packets without an entry sent to a draining peer
    /// (second chance).
    pub redirected: u64,
    /// A new flow's reverse key was already another flow's (DNAT: two
    /// VIPs, one member, same client port).
    pub reverse_conflicts: u64,
    /// Entries whose VS or member no longer fit the packet (after a
    /// reload): re-chosen.
    pub stale_entries: u64,
    pub rst_sent: u64,
    pub unreachable_sent: u64,
    /// ICMP errors translated for a flow.
    pub icmp_translated: u64,
    /// Reset probes built and RSTs sent from their answers.
    pub reset_probes: u64,
    pub resets_sent: u64,
    /// Timed-out flows to reset that found no room (pending queue full).
    pub resets_lost: u64,
    /// Flows of removed members queued for reset at both ends.
    pub reset_removed: u64,
    pub drops: [u64; L4Drop::COUNT],
}

impl L4Counters {
    #[inline]
    pub fn drop(&mut self, why: L4Drop) {
        self.drops[why as usize] += 1;
    }
    pub fn dropped(&self, why: L4Drop) -> u64 {
        self.drops[why as usize]
    }
}

/// Per virtual server, this worker's share (ctrl sums the workers). The
/// packets and bytes are not counted per packet: a virtual server's are
/// its members' sum (each forwarded packet is counted for one member),
/// plus what members no longer in it had counted (kept here by
/// [`L4::adopt`], so the sum never goes back).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VsCounters {
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    pub new_flows: u64,
    /// Tracked flows now (inserted minus expired).
    pub active_flows: u64,
    pub no_member: u64,
    pub untracked: u64,
}

impl std::ops::AddAssign for VsCounters {
    /// Sums workers' shares.
    fn add_assign(&mut self, o: Self) {
        self.packets_in += o.packets_in;
        self.bytes_in += o.bytes_in;
        self.packets_out += o.packets_out;
        self.bytes_out += o.bytes_out;
        self.new_flows += o.new_flows;
        self.active_flows += o.active_flows;
        self.no_member += o.no_member;
        self.untracked += o.untracked;
    }
}

impl VsCounters {
    /// Adds a member's packets and bytes (or takes them away: `add`
    /// false). Wrapping, as counters do.
    fn traffic(&mut self, m: &MemberCounters, add: bool) {
        let op = if add {
            u64::wrapping_add
        } else {
            u64::wrapping_sub
        };
        self.packets_in = op(self.packets_in, m.packets_in);
        self.bytes_in = op(self.bytes_in, m.bytes_in);
        self.packets_out = op(self.packets_out, m.packets_out);
        self.bytes_out = op(self.bytes_out, m.bytes_out);
    }
}

/// Per member of a virtual server, this worker's share.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemberCounters {
    // Packets and bytes of a direction not side by side: a packet's two
    // adds compiled to a vector add then (4 instructions more a packet).
    pub packets_in: u64,
    pub packets_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub new_flows: u64,
    pub active_flows: u64,
}

impl std::ops::AddAssign for MemberCounters {
    /// Sums workers' shares.
    fn add_assign(&mut self, o: Self) {
        self.packets_in += o.packets_in;
        self.bytes_in += o.bytes_in;
        self.packets_out += o.packets_out;
        self.bytes_out += o.bytes_out;
        self.new_flows += o.new_flows;
        self.active_flows += o.active_flows;
    }
}

impl L4 {
    pub fn counters(&self) -> &L4Counters {
        &self.counters
    }

    /// Counters of VS `vs`, indexed like the table last given to
    /// [`process`](Self::process) or [`adopt`](Self::adopt): its own, and
    /// its members' packets and bytes summed.
    pub fn vs_counters(&self, vs: u32) -> Option<VsCounters> {
        let mut c = *self.vs_counters.get(vs as usize)?;
        for m in &self.member_counters[self.members_of(vs)] {
            c.traffic(m, true);
        }
        Some(c)
    }

    /// Where the members of VS `vs` sit in the member counters (in VS
    /// order, as `adopt` lays them out).
    fn members_of(&self, vs: u32) -> std::ops::Range<usize> {
        let k = &self.member_keys;
        k.partition_point(|m| m.0 < vs)..k.partition_point(|m| m.0 <= vs)
    }

    /// Counters of member `member` of VS `vs` (of `tables`, which must be
    /// the table last adopted).
    pub fn member_counters(
        &self,
        tables: &VsTable,
        vs: u32,
        member: u16,
    ) -> Option<&MemberCounters> {
        if tables.generation() != self.generation {
            return None;
        }
        let n = tables.get(vs)?.members.len();
        if usize::from(member) >= n {
            return None;
        }
        self.member_counters
            .get(tables.member_base(vs) + usize::from(member))
    }

    /// Takes a new snapshot: counters are carried over by VS (VIP, port,
    /// protocol) and member (address, port); a VS keeps the packets and
    /// bytes of the members it lost (its sum does not go back). Cold: once
    /// per reload, the one place the L4 path allocates after start-up.
    /// `process` calls it when the generation changes; the worker may call
    /// it first.
    #[cold]
    #[inline(never)]
    pub fn adopt(&mut self, tables: &VsTable) {
        if tables.generation() == self.generation {
            return;
        }
        let old_vs: HashMap<(IpAddr, u16, u8), usize> = self
            .vs_keys
            .iter()
            .enumerate()
            .map(|(i, k)| (*k, i))
            .collect();
        let old_m: HashMap<(u32, IpAddr, u16), usize> = self
            .member_keys
            .iter()
            .enumerate()
            .map(|(i, k)| (*k, i))
            .collect();
        let mut vs_counters = vec![VsCounters::default(); tables.len()];
        let mut member_counters = vec![MemberCounters::default(); tables.members_total()];
        let mut vs_keys = Vec::with_capacity(tables.len());
        let mut member_keys = Vec::with_capacity(tables.members_total());
        for (v, vs) in tables.iter().enumerate() {
            let k = (vs.vip, vs.port, vs.proto_number);
            vs_keys.push(k);
            let ov = old_vs.get(&k).copied();
            let mut total = ov.and_then(|ov| self.vs_counters(ov as u32));
            let base = tables.member_base(v as u32);
            for (m, mem) in vs.members.iter().enumerate() {
                member_keys.push((v as u32, mem.addr, mem.port));
                if let Some(om) = ov.and_then(|ov| old_m.get(&(ov as u32, mem.addr, mem.port))) {
                    let carried = self.member_counters[*om];
                    member_counters[base + m] = carried;
                    if let Some(t) = &mut total {
                        t.traffic(&carried, false);
                    }
                }
            }
            vs_counters[v] = total.unwrap_or_default();
        }
        self.vs_counters = vs_counters;
        self.member_counters = member_counters;
        self.vs_keys = vs_keys;
        self.member_keys = member_keys;
        self.generation = tables.generation();
    }
}

//! The L4 data path of one worker: virtual-server traffic in, NATed
//! traffic out.
//!
//! # Model
//!
//! Each worker owns one [`L4`]: its connection table, its share of the SNAT
//! ports, a reply rate limiter and its counters. The worker hands it every
//! IP frame the host logic did not consume, with the current [`VsTable`]
//! snapshot, and gets an [`L4Verdict`]:
//!
//! | verdict | the worker … |
//! |---|---|
//! | `Forward { dst }` | routes the frame (rewritten in place, same length) to `dst` through its FIB, resolves the next hop's MAC and sends it |
//! | `Redirect { next_hop }` | sends the frame, unchanged, to the draining peer instance `next_hop` (its MAC through FIB and neighbour cache, as for `Forward`): second chance, docs/scale-out.md |
//! | `Reply(len)` | sends the first `len` bytes back out of the port it came from (MACs already swapped, VLAN tag kept) |
//! | `NotL4` | treats the frame as before (not for a VIP, a flow or a SNAT port: `not_for_us`, or punt for a self IP) |
//! | `Drop(why)` | drops it and counts `why` (also counted here) |
//!
//! # Flows and entries
//!
//! A tracked flow has two connection-table entries (56 bytes each, keys
//! included; so **112 bytes per flow**, tested in `bytes_per_flow`):
//!
//! ```text
//! forward  client:cport -> VIP:vport     vs, member, nat_port = SNAT port,
//!                                        flags = RESET_ON_TIMEOUT | pool index
//! reverse  member:mport -> client:cport  vs, member, nat_port = vport,
//!          (SNAT: -> snat:port)          flags = REVERSE
//! ```
//!
//! so that a packet of an established flow, in either direction, costs one
//! flow hash and one table lookup: the packet's own 5-tuple finds its
//! entry, and the entry's flag says which way to translate. The SNAT
//! return direction needs the client's address, which does not fit in an
//! entry: a SNAT flow also has a *record* (52 bytes: its forward key, and
//! the member port, SNAT port and pool address of its reverse key) in a
//! per-worker array of `connections / 2` records (one per flow the table
//! can hold), at the index given by the reverse key's hash. The reverse
//! key's hash is the return packet's own hash, so the return direction
//! still costs one hash, one lookup, and one record read.
//!
//! # SNAT ports
//!
//! A SNAT port is taken per (SNAT address, member address and port,
//! protocol), as Linux's nf_nat does: two flows may share a SNAT port as
//! long as their reverse keys differ. The allocator tries up to
//! [`SNAT_PROBES`] ports of this worker's slice ([`snat_range`], which
//! stays the worker that owns a SNAT port), each at an offset from the flow
//! hash and the probe number (deterministic for a fixed hash seed; no runs
//! of taken ports as with consecutive probing); a candidate is taken
//! when the record its reverse key hashes to is free: empty, or its flow's
//! forward entry is no longer live (so expiry needs no bookkeeping). A
//! record held by a live flow means either that very reverse key is in use
//! or another one hashes there; both are refused. So each SNAT address
//! offers the slice's ports to each member address and port, and the
//! records bound the SNAT flows of a worker to `connections / 2`, what
//! its table holds anyway. A reverse entry translates only through the
//! record of its own reverse key (checked field by field), never through
//! another flow's.
//!
//! # Per packet
//!
//! ```text
//! parse IPv4/IPv6 (+ extension headers), TCP/UDP ports    ICMP errors: cold path
//! key = 5-tuple; h = worker_hasher(key)                   (one hash)
//! conntrack.lookup(key, h, now)                           (one lookup)
//!   forward entry -> dst := member[:port], src := SNAT (if any), TTL-1
//!   reverse entry -> src := VIP:vport, dst := client (SNAT), TTL-1
//!   miss -> VS lookup (VIP, port, proto; fallback port 0)  (fixed open-addressing map)
//!             Maglev(FlowHasher::MAGLEV(key)) -> member; insert both entries;
//!             insert failed -> forward statelessly by the Maglev choice, counted
//!           VIP, no VS -> RST / ICMP port unreachable (rate-limited)
//!           SNAT address -> the record of its reverse key -> forward entry
//!                           (reverse entry gone)
//!           from a member -> stateless reverse NAT if only one VS has it
//!           otherwise NotL4
//! ```
//!
//! Second chance: while a peer instance drains (ctrl says so in the
//! table, [`super::SecondChance`]), a non-SYN TCP packet to a virtual
//! server with no entry here is redirected, unchanged, to that peer.
//!
//! Loose initialisation: a non-SYN TCP packet with no entry goes to its
//! Maglev choice and is tracked from then on (an RST is forwarded but not
//! tracked). Weight-0 and unhealthy members own no Maglev slot, so they get
//! no new flows, but their tracked flows keep going.
//!
//! # Reset on timeout
//!
//! An RST is only accepted at the receiver's exact `RCV.NXT` (RFC 5961
//! §3.2), which pollux does not track. So [`L4::sweep`] reports idle TCP
//! flows with `resetOnTimeout`, re-arms them for a few seconds in a
//! *resetting* state, and [`L4::build_reset`] builds, for each end, an ACK
//! with an unacceptable sequence number. Each end answers it with an ACK
//! carrying its own `SND.NXT`/`RCV.NXT` (RFC 9293 §3.10.7.4); that answer
//! comes back through [`L4::process`], which turns it in place into an RST
//! with `seq = SEG.ACK` to its sender — exactly the sequence number it
//! accepts.

use std::collections::HashMap;
use std::net::IpAddr;

mod fast;
mod steer;
pub use fast::{classify_v4, FastHit, V4Flow};
pub use steer::{Owner, Steering};

use super::conntrack::{
    self, ConnTable, ConnTableError, Entry, Expired, FlowValue, Secs, TcpState,
    FLAG_RESET_ON_TIMEOUT,
};
use super::flow::{Family, FlowHasher, FlowKey, PROTO_TCP, PROTO_UDP};
use super::nat::{self, RstSpec};
use super::vs::{Vs, VsTable};
use crate::wire::ipv4::protocol;
use crate::wire::{checksum, ipv4, tcp, udp};

/// Entry flag: the reverse (member → client) entry of a flow.
pub const FLAG_REVERSE: u8 = 0x02;
/// Entry flag: the flow timed out and is being reset (see the module doc).
pub const FLAG_RESETTING: u8 = 0x04;
/// Entry flags bits 3..7: the flow's index in its VS's SNAT pool.
const POOL_SHIFT: u8 = 3;
/// How long a timed-out flow waits for its ends to answer the reset probes.
pub const RESET_WAIT_SECS: u16 = 5;
/// Resets that `insert` evictions can queue between two sweeps.
const PENDING_RESETS: usize = 32;
/// SNAT ports tried when allocating one for a new flow.
const SNAT_PROBES: u32 = 64;

/// A SNAT flow's record: what its reverse (member → SNAT address) entry
/// cannot hold. Stored at the index its reverse key hashes to
/// ([`L4::snat_index`]); `port` 0 = never used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SnatFlow {
    /// The flow's forward key: client:cport -> VIP:vport.
    fwd: FlowKey,
    vs: u32,
    member: u16,
    /// The reverse key's source port (the member's) and destination port
    /// (the SNAT port), and its destination address (the VS's pool index).
    mport: u16,
    port: u16,
    pool: u8,
}

impl SnatFlow {
    fn unused() -> Self {
        SnatFlow {
            fwd: FlowKey::v4([0; 4], [0; 4], 0, 0, 0),
            vs: 0,
            member: 0,
            mport: 0,
            port: 0,
            pool: 0,
        }
    }
}

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

/// What to do with a frame (see the module doc's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4Verdict {
    /// Rewritten in place (same length): route it to `dst`.
    Forward {
        dst: IpAddr,
    },
    /// Unchanged (not even the TTL): send it at L2 to the peer instance
    /// `next_hop` on the same segment, which tracks its flow (second
    /// chance, [`super::SecondChance`]). The worker routes it like a
    /// `Forward` to `next_hop`.
    Redirect {
        next_hop: IpAddr,
    },
    /// Rewritten in place into `len` bytes back to the sender, MACs swapped.
    Reply(usize),
    /// Not VIP, flow or SNAT traffic.
    NotL4,
    Drop(L4Drop),
}

/// Which end of a flow a reset goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Member,
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

/// Per virtual server, this worker's share (ctrl sums the workers).
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

/// Per member of a virtual server, this worker's share.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemberCounters {
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
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

/// Construction parameters of one worker's [`L4`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L4Config {
    /// Size it for twice the flows (two entries per flow); its
    /// `new_flows_per_sec` also counts entries (two per new flow).
    pub conntrack: conntrack::Config,
    /// Seed of the connection-table hash (random per worker).
    pub seed: u64,
    /// This worker's index and the number of workers: SNAT ports are
    /// split into `workers` disjoint ranges ([`snat_range`]).
    pub worker: u16,
    pub workers: u16,
    /// SNAT ports, inclusive. Keep them clear of the kernel's ephemeral
    /// ports on self IPs used for automap (`ip_local_port_range`).
    pub snat_ports: (u16, u16),
    /// RSTs and ICMP port unreachables per second, and the burst.
    pub replies_per_sec: u32,
    pub reply_burst: u32,
}

impl L4Config {
    pub fn new(capacity: usize, worker: u16, workers: u16) -> Self {
        L4Config {
            conntrack: conntrack::Config::new(capacity),
            seed: 0x5eed_0000 ^ u64::from(worker),
            worker,
            workers: workers.max(1),
            snat_ports: (1024, 65535),
            replies_per_sec: 1000,
            reply_burst: 100,
        }
    }
}

/// Worker `worker` of `workers`'s SNAT ports within `ports` (inclusive):
/// `(first, count)`. The ranges are disjoint and cover `ports` but for
/// fewer than `workers` ports at the end.
pub fn snat_range(ports: (u16, u16), worker: u16, workers: u16) -> (u16, u32) {
    let total = u32::from(ports.1.saturating_sub(ports.0)) + 1;
    let n = u32::from(workers.max(1));
    let per = total / n;
    let first = u32::from(ports.0) + per * u32::from(worker.min(workers.max(1) - 1));
    (first as u16, per)
}

/// The worker that owns SNAT port `port`, for steering return traffic.
pub fn snat_port_owner(ports: (u16, u16), workers: u16, port: u16) -> Option<u16> {
    if port < ports.0 || port > ports.1 {
        return None;
    }
    let (_, per) = snat_range(ports, 0, workers);
    let w = (u32::from(port - ports.0) / per.max(1)) as u16;
    (w < workers.max(1)).then_some(w)
}

/// Which way a flow's packet travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// Client → member.
    In,
    /// Member → client.
    Out,
}

/// A token bucket refilled per second of the burst clock.
#[derive(Debug, Clone, Copy)]
struct TokenBucket {
    tokens: u32,
    last: Secs,
    rate: u32,
    burst: u32,
}

impl TokenBucket {
    fn take(&mut self, now: Secs) -> bool {
        if now != self.last {
            let add = u64::from(now.wrapping_sub(self.last)) * u64::from(self.rate);
            self.tokens = (u64::from(self.tokens) + add).min(u64::from(self.burst)) as u32;
            self.last = now;
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

/// One worker's L4 state. See the module doc.
pub struct L4 {
    ct: ConnTable,
    /// pollux's own addresses: a member's packet to one of them is a reply
    /// to the control plane (a health check), never a flow's return.
    self_ips: Vec<IpAddr>,
    hasher: FlowHasher,
    /// First SNAT port of this worker and how many.
    snat_first: u16,
    snat_count: u32,
    /// SNAT flow records by reverse-key hash (see the module doc); the
    /// length is a power of two.
    snat_flows: Box<[SnatFlow]>,
    replies: TokenBucket,
    pending: [Option<Expired>; PENDING_RESETS],
    n_pending: usize,
    generation: u64,
    counters: L4Counters,
    vs_counters: Vec<VsCounters>,
    member_counters: Vec<MemberCounters>,
    /// Identity of each counter, to carry them over a reload.
    vs_keys: Vec<(IpAddr, u16, u8)>,
    member_keys: Vec<(u32, IpAddr, u16)>,
}

impl std::fmt::Debug for L4 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("L4")
            .field("ct", &self.ct)
            .field("snat", &(self.snat_first, self.snat_count))
            .field("counters", &self.counters)
            .finish()
    }
}

/// A parsed IP packet: offsets into the frame and the 5-tuple.
#[derive(Clone, Copy)]
struct Pkt {
    family: Family,
    ip: usize,
    l4: usize,
    end: usize,
    proto: u8,
    src: [u8; 16],
    dst: [u8; 16],
    ttl: u8,
    frag: bool,
}

fn ip_of(family: Family, b: &[u8; 16]) -> IpAddr {
    match family {
        Family::V4 => IpAddr::from([b[0], b[1], b[2], b[3]]),
        Family::V6 => IpAddr::from(*b),
    }
}

/// Parses the IP header at `frame[ip..len]`.
fn parse_ip(frame: &[u8], ip: usize, len: usize) -> Result<Pkt, L4Drop> {
    let b = frame.get(ip..len).ok_or(L4Drop::IpMalformed)?;
    let version = b.first().ok_or(L4Drop::IpMalformed)? >> 4;
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    match version {
        4 => {
            // The header checksum was verified by the host stage (every
            // IPv4 frame from the wire is, before it reaches this path).
            let p = ipv4::Packet::new_checked(b).map_err(|_| L4Drop::IpMalformed)?;
            src[..4].copy_from_slice(&b[12..16]);
            dst[..4].copy_from_slice(&b[16..20]);
            Ok(Pkt {
                family: Family::V4,
                ip,
                l4: ip + p.header_len(),
                end: ip + p.total_len(),
                proto: p.protocol(),
                src,
                dst,
                ttl: p.ttl(),
                frag: p.is_fragment(),
            })
        }
        6 => {
            let p = crate::wire::ipv6::Packet::new_checked(b).map_err(|_| L4Drop::IpMalformed)?;
            src.copy_from_slice(&b[8..24]);
            dst.copy_from_slice(&b[24..40]);
            let end = 40 + p.payload_len();
            // Extension headers (RFC 8200 §4): skip hop-by-hop, routing,
            // destination options; note a Fragment header; at most 8.
            let (mut nh, mut off, mut frag) = (p.next_header(), 40usize, false);
            for _ in 0..8 {
                match nh {
                    0 | 43 | 60 => {
                        let h = b.get(off..off + 2).ok_or(L4Drop::IpMalformed)?;
                        nh = h[0];
                        off += (usize::from(h[1]) + 1) * 8;
                    }
                    44 => {
                        let h = b.get(off..off + 8).ok_or(L4Drop::IpMalformed)?;
                        nh = h[0];
                        off += 8;
                        frag = true;
                        break;
                    }
                    _ => break,
                }
            }
            if off > end {
                return Err(L4Drop::IpMalformed);
            }
            Ok(Pkt {
                family: Family::V6,
                ip,
                l4: ip + off,
                end: ip + end,
                proto: nh,
                src,
                dst,
                ttl: p.hop_limit(),
                frag,
            })
        }
        _ => Err(L4Drop::IpMalformed),
    }
}

/// Ports, TCP flags and payload length of the transport header.
#[derive(Clone, Copy)]
struct Ports {
    sport: u16,
    dport: u16,
    /// TCP flag byte (0 for UDP).
    flags: u8,
    /// TCP: header length; UDP: 8.
    hlen: usize,
}

fn parse_l4(frame: &[u8], p: &Pkt) -> Result<Ports, L4Drop> {
    let b = &frame[p.l4..p.end];
    match p.proto {
        PROTO_TCP => {
            let t = tcp::Packet::new_checked(b).map_err(|_| L4Drop::L4Malformed)?;
            Ok(Ports {
                sport: t.src_port(),
                dport: t.dst_port(),
                flags: t.flags(),
                hlen: t.header_len(),
            })
        }
        _ => {
            let u = udp::Packet::new_checked(b).map_err(|_| L4Drop::L4Malformed)?;
            Ok(Ports {
                sport: u.src_port(),
                dport: u.dst_port(),
                flags: 0,
                hlen: udp::HEADER_LEN,
            })
        }
    }
}

#[inline(always)]
fn on_flags(state: TcpState, flags: u8) -> TcpState {
    state.on_flags(
        flags & tcp::SYN != 0,
        flags & tcp::FLAG_ACK != 0,
        flags & tcp::FIN != 0,
        flags & tcp::RST != 0,
    )
}

/// Swaps the two MAC addresses of the frame (a reply goes back to its sender).
fn swap_macs(frame: &mut [u8]) {
    for i in 0..6 {
        frame.swap(i, i + 6);
    }
}

/// Whether `vs` is the virtual server of a client's packet `p` to `dport`.
#[inline(always)]
fn serves(vs: &Vs, p: &Pkt, dport: u16) -> bool {
    vs.vip_bytes == p.dst
        && vs.family == p.family
        && vs.proto_number == p.proto
        && (vs.port == 0 || vs.port == dport)
}

#[inline(always)]
fn fits_forward(vs: &Vs, p: &Pkt, dport: u16, member: u16) -> bool {
    serves(vs, p, dport)
        && vs
            .members
            .get(usize::from(member))
            .is_some_and(|m| !m.retired)
}

#[inline(always)]
fn fits_reverse(vs: &Vs, p: &Pkt, member: u16, sport: u16) -> bool {
    vs.family == p.family
        && vs.proto_number == p.proto
        && vs
            .members
            .get(usize::from(member))
            .is_some_and(|m| !m.retired && m.bytes == p.src && (m.port == 0 || m.port == sport))
}

/// A return packet's reverse key, as [`L4::snat_flow`] checks it: its
/// hash, source port (the member's), destination port (the SNAT port),
/// protocol and destination address (4 or 16 bytes).
struct RevKey<'a> {
    h: u64,
    mport: u16,
    port: u16,
    proto: u8,
    dst: &'a [u8],
}

#[inline(always)]
fn pool_index(flags: u8) -> usize {
    usize::from(flags >> POOL_SHIFT)
}

/// The translation of one packet.
#[derive(Clone, Copy)]
struct Rewrite {
    src: Option<([u8; 16], u16)>,
    dst: Option<([u8; 16], u16)>,
}

impl L4 {
    /// Allocates the connection table and the SNAT records (start-up, on the
    /// worker's own thread so the memory is on its NUMA node).
    pub fn new(config: L4Config) -> Result<L4, ConnTableError> {
        let ct = ConnTable::new(config.conntrack)?;
        let (snat_first, snat_count) = snat_range(config.snat_ports, config.worker, config.workers);
        let records = (ct.capacity() / 2).max(1).next_power_of_two();
        Ok(L4 {
            ct,
            self_ips: Vec::new(),
            hasher: FlowHasher::new(config.seed),
            snat_first,
            snat_count,
            // One record per flow the table holds (two entries a flow).
            snat_flows: vec![SnatFlow::unused(); records].into_boxed_slice(),
            replies: TokenBucket {
                tokens: config.reply_burst,
                last: 0,
                rate: config.replies_per_sec,
                burst: config.reply_burst,
            },
            pending: [None; PENDING_RESETS],
            n_pending: 0,
            generation: 0,
            counters: L4Counters::default(),
            vs_counters: Vec::new(),
            member_counters: Vec::new(),
            vs_keys: Vec::new(),
            member_keys: Vec::new(),
        })
    }

    /// pollux's own addresses (the self IPs of every port), set once at
    /// start: traffic to them is the kernel's unless a flow claims it.
    pub fn set_self_ips(&mut self, ips: &[IpAddr]) {
        self.self_ips = ips.to_vec();
    }

    pub fn counters(&self) -> &L4Counters {
        &self.counters
    }

    pub fn conntrack(&self) -> &ConnTable {
        &self.ct
    }

    /// This worker's SNAT ports: `(first, count)`.
    pub fn snat_ports(&self) -> (u16, u32) {
        (self.snat_first, self.snat_count)
    }

    /// Bytes of connection-table memory per tracked IPv4 flow (two
    /// slots of 32 bytes); an IPv6 flow takes 112 (two of 56).
    pub fn bytes_per_flow(&self) -> usize {
        let t = self.ct.v4();
        2 * t.bytes() / t.capacity()
    }

    /// Counters of VS `vs`, indexed like the table last given to
    /// [`process`](Self::process) or [`adopt`](Self::adopt).
    pub fn vs_counters(&self, vs: u32) -> Option<&VsCounters> {
        self.vs_counters.get(vs as usize)
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
    /// protocol) and member (address, port). Cold: once per reload, the
    /// one place the L4 path allocates after start-up. `process` calls it
    /// when the generation changes; the worker may call it first.
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
            if let Some(ov) = ov {
                vs_counters[v] = self.vs_counters[ov];
            }
            let base = tables.member_base(v as u32);
            for (m, mem) in vs.members.iter().enumerate() {
                member_keys.push((v as u32, mem.addr, mem.port));
                if let Some(om) = ov.and_then(|ov| old_m.get(&(ov as u32, mem.addr, mem.port))) {
                    member_counters[base + m] = self.member_counters[*om];
                }
            }
        }
        self.vs_counters = vs_counters;
        self.member_counters = member_counters;
        self.vs_keys = vs_keys;
        self.member_keys = member_keys;
        self.generation = tables.generation();
    }

    #[inline]
    fn drop_with(&mut self, why: L4Drop) -> L4Verdict {
        self.counters.drop(why);
        L4Verdict::Drop(why)
    }

    /// Prefetches the connection-table buckets the TCP/UDP frame `frame`
    /// (IP header after `vlan_hdr_len` bytes of tag) will be looked up in.
    /// Called for a whole burst before [`process`](Self::process) handles
    /// any of it, so that the bucket misses of the burst overlap (VPP's lb
    /// node does the same); anything it cannot parse it leaves alone.
    #[inline]
    pub fn prefetch(&self, frame: &[u8], vlan_hdr_len: usize) {
        let ip = crate::wire::ethernet::HEADER_LEN + vlan_hdr_len;
        let Ok(p) = parse_ip(frame, ip, frame.len()) else {
            return;
        };
        if p.frag || !matches!(p.proto, PROTO_TCP | PROTO_UDP) {
            return;
        }
        if let Ok(ports) = parse_l4(frame, &p) {
            let key =
                FlowKey::from_parts(p.src, p.dst, ports.sport, ports.dport, p.proto, p.family);
            self.ct.prefetch(key.family(), self.hasher.hash(&key));
        }
    }

    /// Handles one IP frame: `frame[..len]` is the frame, whose IP header
    /// starts after the Ethernet header and `vlan_hdr_len` bytes of VLAN
    /// tag (0 or 4); `frame` may be longer (tailroom for an ICMP reply).
    /// An IPv4 header's checksum must have been verified (the host stage
    /// does, for every frame). `now` is the burst's second. See the module
    /// doc for the verdicts.
    pub fn process(
        &mut self,
        now: Secs,
        frame: &mut [u8],
        len: usize,
        vlan_hdr_len: usize,
        tables: &VsTable,
    ) -> L4Verdict {
        if tables.generation() != self.generation {
            self.adopt(tables);
        }
        let len = len.min(frame.len());
        let ip = crate::wire::ethernet::HEADER_LEN + vlan_hdr_len;
        let p = match parse_ip(frame, ip, len) {
            Ok(p) => p,
            Err(why) => return self.drop_with(why),
        };
        let ours =
            |p: &Pkt| tables.is_vip(&p.dst, p.family) || tables.is_snat_addr(&p.dst, p.family);
        if p.frag {
            return if ours(&p) {
                self.drop_with(L4Drop::Fragment)
            } else {
                L4Verdict::NotL4
            };
        }
        match (p.proto, p.family) {
            (PROTO_TCP | PROTO_UDP, _) => {}
            (protocol::ICMP, Family::V4) | (protocol::ICMPV6, Family::V6) => {
                return self.icmp(now, frame, &p, tables)
            }
            _ => {
                return if tables.is_vip(&p.dst, p.family) {
                    self.drop_with(L4Drop::UnsupportedProtocol)
                } else {
                    L4Verdict::NotL4
                }
            }
        }
        let ports = match parse_l4(frame, &p) {
            Ok(x) => x,
            Err(why) if ours(&p) => return self.drop_with(why),
            Err(_) => return L4Verdict::NotL4,
        };
        let key = FlowKey::from_parts(p.src, p.dst, ports.sport, ports.dport, p.proto, p.family);
        let h = self.hasher.hash(&key);
        // Established flows, both directions: one lookup.
        let hit = match self.ct.lookup(&key, h, now) {
            Some(mut f) => {
                let e: Entry = *f;
                let vs = tables.get(e.vs).filter(|vs| {
                    if e.flags & FLAG_REVERSE == 0 {
                        fits_forward(vs, &p, ports.dport, e.member)
                    } else {
                        fits_reverse(vs, &p, e.member, ports.sport)
                    }
                });
                if let Some(vs) = vs {
                    if p.proto == PROTO_TCP && e.flags & FLAG_RESETTING == 0 {
                        let st = on_flags(f.state, ports.flags);
                        if st != f.state {
                            f.set_state(st);
                            f.set_timeout(vs.timeouts.for_state(PROTO_TCP, st));
                        }
                    }
                }
                Some((e, vs.is_some()))
            }
            None => None,
        };
        match hit {
            Some((e, true)) => return self.established(frame, len, &p, ports, &e, h, tables),
            Some((e, false)) if e.flags & FLAG_RESETTING != 0 => {
                // A removed member's flow being reset: an end's answer.
                return self.answer_reset(frame, &p);
            }
            Some((e, false)) if self.reset_removed(&e, &p, ports.dport, tables) => {
                return self.drop_with(L4Drop::MemberRemoved);
            }
            Some((_, false)) => {
                // Indices from an older table that no longer fit: forget
                // the entry and treat the packet as new.
                self.counters.stale_entries += 1;
                self.ct.remove(&key, h, now);
            }
            None => {}
        }
        if let Some(v) = tables.lookup(&p.dst, p.family, ports.dport, p.proto) {
            // Second chance: a mid-flow TCP packet of a flow this
            // instance never saw, while a peer drains, is that peer's.
            if p.proto == PROTO_TCP && ports.flags & tcp::SYN == 0 {
                if let Some(next_hop) = tables.second_chance().peer_for(h) {
                    self.counters.redirected += 1;
                    return L4Verdict::Redirect { next_hop };
                }
            }
            return self.new_flow(now, frame, len, &p, ports, &key, h, v, tables);
        }
        if tables.is_vip(&p.dst, p.family) {
            return self.closed_port(now, frame, &p, ports);
        }
        if tables.is_snat_addr(&p.dst, p.family) {
            return self.snat_return_via_slot(now, frame, len, &p, ports, h, tables);
        }
        self.stateless_return(frame, len, &p, ports, tables)
    }

    /// A packet of a tracked flow (`h`: its key's hash).
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn established(
        &mut self,
        frame: &mut [u8],
        len: usize,
        p: &Pkt,
        ports: Ports,
        e: &Entry,
        h: u64,
        tables: &VsTable,
    ) -> L4Verdict {
        if e.flags & FLAG_RESETTING != 0 {
            return self.answer_reset(frame, p);
        }
        let Some(vs) = tables.get(e.vs) else {
            return L4Verdict::NotL4; // checked by the caller
        };
        if e.flags & FLAG_REVERSE == 0 {
            let rw = forward_rewrite(vs, e.member, ports.dport, e.nat_port, pool_index(e.flags));
            self.forward(frame, len, p, rw, e.vs, e.member, tables)
        } else {
            let client = if vs.snats() {
                let rev = RevKey {
                    h,
                    mport: ports.sport,
                    port: ports.dport,
                    proto: p.proto,
                    dst: &p.dst,
                };
                match self.snat_flow(vs, (e.vs, e.member), &rev) {
                    Some(r) => Some((*r.fwd.src_bytes(), r.fwd.src_port())),
                    None => return L4Verdict::NotL4,
                }
            } else {
                None
            };
            let rw = Rewrite {
                src: Some((vs.vip_bytes, e.nat_port)),
                dst: client,
            };
            self.back(frame, len, p, rw, e.vs, e.member, tables)
        }
    }

    /// Client → member: rewrite, count, route to the member.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &mut self,
        frame: &mut [u8],
        len: usize,
        p: &Pkt,
        rw: Rewrite,
        vs: u32,
        member: u16,
        tables: &VsTable,
    ) -> L4Verdict {
        self.pass(frame, len, p, rw, (vs, member), tables, Direction::In)
    }

    /// Member → client: rewrite, count, route to the client.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn back(
        &mut self,
        frame: &mut [u8],
        len: usize,
        p: &Pkt,
        rw: Rewrite,
        vs: u32,
        member: u16,
        tables: &VsTable,
    ) -> L4Verdict {
        self.pass(frame, len, p, rw, (vs, member), tables, Direction::Out)
    }

    /// Rewrites a packet of a flow, counts it for its virtual server and
    /// member in `dir`, and routes it to its new destination.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn pass(
        &mut self,
        frame: &mut [u8],
        len: usize,
        p: &Pkt,
        rw: Rewrite,
        (vs, member): (u32, u16),
        tables: &VsTable,
        dir: Direction,
    ) -> L4Verdict {
        if p.ttl <= 1 {
            return self.drop_with(L4Drop::TtlExpired);
        }
        let dst = apply(frame, p, rw);
        self.count_pass(
            dir,
            vs,
            tables.member_base(vs) + usize::from(member),
            len as u64,
        );
        L4Verdict::Forward {
            dst: ip_of(p.family, &dst),
        }
    }

    /// Counts a forwarded packet of `bytes` for its virtual server `vs`
    /// and its member (counter slot `member_slot`), in `dir`.
    #[inline(always)]
    fn count_pass(&mut self, dir: Direction, vs: u32, member_slot: usize, bytes: u64) {
        let (vs, member) = (
            self.vs_counters.get_mut(vs as usize),
            self.member_counters.get_mut(member_slot),
        );
        match dir {
            Direction::In => {
                self.counters.forwarded += 1;
                if let Some(c) = vs {
                    c.packets_in += 1;
                    c.bytes_in += bytes;
                }
                if let Some(c) = member {
                    c.packets_in += 1;
                    c.bytes_in += bytes;
                }
            }
            Direction::Out => {
                self.counters.returned += 1;
                if let Some(c) = vs {
                    c.packets_out += 1;
                    c.bytes_out += bytes;
                }
                if let Some(c) = member {
                    c.packets_out += 1;
                    c.bytes_out += bytes;
                }
            }
        }
    }

    /// The record index of a reverse key whose hash is `h`.
    #[inline(always)]
    fn snat_index(&self, h: u64) -> usize {
        // Mixed again: the reverse keys of one member differ only in the
        // SNAT port, and the flow hash's bits are close to affine in one
        // port (a single folded multiply), so members' records fell on
        // shifted copies of one lattice and shared one port space (a SNAT
        // range refused flows at 15 % of it taken).
        super::hash::fmix64(h) as usize & (self.snat_flows.len() - 1)
    }

    /// The record of the SNAT flow whose reverse entry (of VS `vs`, its
    /// index and member `owner`) the return packet `rev` matched: only its
    /// own, field by field.
    #[inline(always)]
    fn snat_flow(&self, vs: &Vs, owner: (u32, u16), rev: &RevKey<'_>) -> Option<&SnatFlow> {
        let r = &self.snat_flows[self.snat_index(rev.h)];
        let dst = rev.dst;
        (r.port == rev.port
            && r.mport == rev.mport
            && (r.vs, r.member) == owner
            && r.fwd.proto() == rev.proto
            && vs
                .snat_bytes
                .get(usize::from(r.pool))
                .is_some_and(|a| a.get(..dst.len()) == Some(dst)))
        .then_some(r)
    }

    /// Whether record `i` is free: never used, or its flow's forward entry
    /// is gone (expired or removed) or no longer this record's flow.
    fn snat_record_free(&self, i: usize, now: Secs) -> bool {
        let r = &self.snat_flows[i];
        r.port == 0
            || !self
                .ct
                .peek(&r.fwd, self.hasher.hash(&r.fwd), now)
                .is_some_and(|e| {
                    e.flags & FLAG_REVERSE == 0
                        && e.nat_port == r.port
                        && e.vs == r.vs
                        && e.member == r.member
                        && pool_index(e.flags) == usize::from(r.pool)
                })
    }

    /// A SNAT port for a new flow (conntrack hash `h`) from `snat` (the
    /// pool address) to `member`:`mport`: the first of up to
    /// [`SNAT_PROBES`] hash-chosen ports of this worker's slice whose
    /// reverse key's record is free. Returns the port, the
    /// reverse key and its hash.
    #[allow(clippy::too_many_arguments)]
    fn alloc_snat_port(
        &self,
        now: Secs,
        p: &Pkt,
        h: u64,
        snat: &[u8; 16],
        member: &[u8; 16],
        mport: u16,
    ) -> Option<(u16, FlowKey, u64)> {
        let n = self.snat_count;
        if n == 0 {
            return None;
        }
        for i in 0..SNAT_PROBES.min(n) {
            // Independent offsets for every (flow, probe): consecutive
            // probing let taken ports form runs longer than the probe
            // budget at ~60 % of a member's ports (13 of 21 000 flows
            // refused), and a golden-ratio stride from the flow hash still
            // correlates the probes of flows whose hashes are close (one
            // seed in 64 refused a flow of 21 000).
            let x =
                super::hash::fmix64(h.wrapping_add(u64::from(i + 1).wrapping_mul(super::hash::P0)));
            let off = super::hash::reduce(x, n);
            let port = self.snat_first + off as u16;
            let rkey = FlowKey::from_parts(*member, *snat, mport, port, p.proto, p.family);
            let rh = self.hasher.hash(&rkey);
            if self.snat_record_free(self.snat_index(rh), now) {
                return Some((port, rkey, rh));
            }
        }
        None
    }

    /// First packet of a flow to VS `v` (or a packet of a flow whose
    /// entry is gone: loose initialisation).
    #[allow(clippy::too_many_arguments)]
    fn new_flow(
        &mut self,
        now: Secs,
        frame: &mut [u8],
        len: usize,
        p: &Pkt,
        ports: Ports,
        key: &FlowKey,
        h: u64,
        v: u32,
        tables: &VsTable,
    ) -> L4Verdict {
        let Some(vs) = tables.get(v) else {
            return L4Verdict::NotL4;
        };
        let Some(maglev) = vs.maglev.as_ref() else {
            if let Some(c) = self.vs_counters.get_mut(v as usize) {
                c.no_member += 1;
            }
            return self.drop_with(L4Drop::NoHealthyMember);
        };
        if p.ttl <= 1 {
            return self.drop_with(L4Drop::TtlExpired);
        }
        let mh = FlowHasher::MAGLEV.hash(key);
        let m = maglev.lookup(mh);
        let member = &vs.members[usize::from(m)];
        let mport = if member.port == 0 {
            ports.dport
        } else {
            member.port
        };
        let tcp = p.proto == PROTO_TCP;
        let rst = tcp && ports.flags & tcp::RST != 0;
        if vs.snats() && tcp && ports.flags & tcp::SYN == 0 {
            return self.drop_with(L4Drop::SnatNeedsSyn);
        }
        let mut rev = None;
        let snat = if vs.snats() {
            let pool = super::hash::reduce(mh, vs.snat_bytes.len() as u32) as usize;
            let addr = &vs.snat_bytes[pool];
            match self.alloc_snat_port(now, p, h, addr, &member.bytes, mport) {
                Some((port, rkey, rh)) => {
                    rev = Some((rkey, rh));
                    Some((pool, port))
                }
                None => return self.drop_with(L4Drop::SnatExhausted),
            }
        } else {
            None
        };
        let rw = Rewrite {
            src: snat.map(|(pool, port)| (vs.snat_bytes[pool], port)),
            dst: Some((member.bytes, mport)),
        };
        let untracked = |l4: &mut L4, frame: &mut [u8]| {
            if snat.is_some() {
                return l4.drop_with(L4Drop::SnatUntracked);
            }
            // Only what can come back: the member's replies must map to
            // this VS without state.
            let back = stateless_reverse(tables, &member.bytes, p.family, mport, p.proto);
            if back.is_none_or(|(bv, bm, _)| (bv, bm) != (v, m)) {
                return l4.drop_with(L4Drop::UntrackedUnreturnable);
            }
            l4.counters.untracked += 1;
            if let Some(c) = l4.vs_counters.get_mut(v as usize) {
                c.untracked += 1;
            }
            l4.forward(frame, len, p, rw, v, m, tables)
        };
        if rst {
            // An RST for no flow: pass it on, do not start tracking.
            return untracked(self, frame);
        }
        let state = if tcp {
            on_flags(TcpState::None, ports.flags)
        } else {
            TcpState::None
        };
        let timeout = vs.timeouts.for_state(p.proto, state);
        let mut flags = snat.map_or(0, |(pool, _)| (pool as u8) << POOL_SHIFT);
        if tcp && vs.reset_on_timeout {
            flags |= FLAG_RESET_ON_TIMEOUT;
        }
        let value = FlowValue {
            vs: v,
            member: m,
            nat_port: snat.map_or(0, |(_, port)| port),
            state,
            flags,
            timeout,
        };
        let evicted = match self.ct.insert(key, h, value, now) {
            Ok(f) => f.evicted().copied(),
            Err(_) => return untracked(self, frame),
        };
        self.on_evicted(evicted, tables);
        // The reverse entry: the member's replies, by their own 5-tuple.
        let (rkey, rh) = match rev {
            Some(r) => r,
            None => {
                let rkey =
                    FlowKey::from_parts(member.bytes, p.src, mport, ports.sport, p.proto, p.family);
                (rkey, self.hasher.hash(&rkey))
            }
        };
        let rvalue = FlowValue {
            vs: v,
            member: m,
            nat_port: ports.dport,
            state,
            flags: FLAG_REVERSE,
            timeout,
        };
        let evicted = match self.ct.insert(&rkey, rh, rvalue, now) {
            Ok(mut f) if !f.is_new() => {
                self.counters.reverse_conflicts += 1;
                if snat.is_some() {
                    // The reverse entry of a SNAT flow whose forward entry
                    // is gone (its record was free): the key is this
                    // flow's now.
                    f.assign(&rvalue);
                }
                None
            }
            Ok(f) => f.evicted().copied(),
            // Replies fall back to the SNAT record or the reverse index.
            Err(_) => None,
        };
        self.on_evicted(evicted, tables);
        if let Some((pool, port)) = snat {
            let i = self.snat_index(rh);
            self.snat_flows[i] = SnatFlow {
                fwd: *key,
                vs: v,
                member: m,
                mport,
                port,
                pool: pool as u8,
            };
        }
        self.counters.new_flows += 1;
        if let Some(c) = self.vs_counters.get_mut(v as usize) {
            c.new_flows += 1;
            c.active_flows += 1;
        }
        if let Some(c) = self
            .member_counters
            .get_mut(tables.member_base(v) + usize::from(m))
        {
            c.new_flows += 1;
            c.active_flows += 1;
        }
        self.forward(frame, len, p, rw, v, m, tables)
    }

    /// A client's TCP segment of a flow whose member was removed (its slot
    /// retired): queues the flow for reset probes to both ends (the next
    /// [`L4::sweep`] hands them to the worker, the ends' answers become
    /// RSTs), so that neither end keeps a half-open connection. False if
    /// this is not such a segment, or the queue is full (then the segment
    /// is taken for a new flow, and the member Maglev picks resets it).
    fn reset_removed(&mut self, e: &Entry, p: &Pkt, dport: u16, tables: &VsTable) -> bool {
        if p.proto != PROTO_TCP || e.flags & FLAG_REVERSE != 0 {
            return false;
        }
        let retired = tables.get(e.vs).is_some_and(|vs| {
            serves(vs, p, dport)
                && vs
                    .members
                    .get(usize::from(e.member))
                    .is_some_and(|m| m.retired)
        });
        if !retired {
            return false;
        }
        let Some(slot) = self.pending.iter_mut().find(|s| s.is_none()) else {
            return false;
        };
        *slot = Some(*e);
        self.n_pending += 1;
        self.expired_forward(e, tables); // accounts it as gone
        self.counters.reset_removed += 1;
        true
    }

    /// A flow's entry was found expired and reused by an insert.
    fn on_evicted(&mut self, e: Option<Entry>, tables: &VsTable) {
        let Some(e) = e else { return };
        if self.expired_forward(&e, tables) {
            match self.pending.iter_mut().find(|s| s.is_none()) {
                Some(slot) => {
                    *slot = Some(e);
                    self.n_pending += 1;
                }
                None => self.counters.resets_lost += 1,
            }
        }
    }

    /// Accounts an expired entry; true if its flow is to be reset.
    fn expired_forward(&mut self, e: &Entry, tables: &VsTable) -> bool {
        if e.flags & (FLAG_REVERSE | FLAG_RESETTING) != 0 {
            return false;
        }
        if let Some(c) = self.vs_counters.get_mut(e.vs as usize) {
            c.active_flows = c.active_flows.saturating_sub(1);
        }
        if let Some(vs) = tables.get(e.vs) {
            if usize::from(e.member) < vs.members.len() {
                let i = tables.member_base(e.vs) + usize::from(e.member);
                if let Some(c) = self.member_counters.get_mut(i) {
                    c.active_flows = c.active_flows.saturating_sub(1);
                }
            }
        }
        e.key().proto() == PROTO_TCP
            && e.flags & FLAG_RESET_ON_TIMEOUT != 0
            && e.state == TcpState::Established
    }

    /// TCP to a VIP port without a VS: RST; UDP: ICMP port unreachable.
    #[cold]
    fn closed_port(&mut self, now: Secs, frame: &mut [u8], p: &Pkt, ports: Ports) -> L4Verdict {
        let spec = if p.proto == PROTO_TCP {
            let Ok(seg) = tcp::Packet::new_checked(&frame[p.l4..p.end]) else {
                return self.drop_with(L4Drop::L4Malformed);
            };
            let payload = p.end - p.l4 - ports.hlen;
            match nat::rst_for(p.family, &p.src, &p.dst, &seg, payload) {
                Some(s) => Some(s),
                None => return self.drop_with(L4Drop::ClosedPort),
            }
        } else {
            None
        };
        if !self.replies.take(now) {
            return self.drop_with(L4Drop::ReplyRateLimited);
        }
        let n = match spec {
            Some(s) => {
                self.counters.rst_sent += 1;
                nat::emit_rst(frame, p.ip, &s)
            }
            None => {
                self.counters.unreachable_sent += 1;
                nat::port_unreachable_in_place(frame, p.ip, p.end - p.ip, p.family)
            }
        };
        match n {
            Some(n) => {
                swap_macs(frame);
                L4Verdict::Reply(p.ip + n)
            }
            None => self.drop_with(L4Drop::ClosedPort),
        }
    }

    /// Return traffic to a SNAT address whose reverse entry is gone (or
    /// was never inserted): the record of its reverse key (hash `h`)
    /// names the flow, if its forward entry is still live.
    #[allow(clippy::too_many_arguments)]
    fn snat_return_via_slot(
        &mut self,
        now: Secs,
        frame: &mut [u8],
        len: usize,
        p: &Pkt,
        ports: Ports,
        h: u64,
        tables: &VsTable,
    ) -> L4Verdict {
        let r = self.snat_flows[self.snat_index(h)];
        if r.port != ports.dport || r.mport != ports.sport || r.fwd.proto() != p.proto {
            return L4Verdict::NotL4;
        }
        let fk = r.fwd;
        let fh = self.hasher.hash(&fk);
        let e = match self.ct.lookup(&fk, fh, now) {
            Some(f)
                if f.nat_port == ports.dport
                    && f.flags & FLAG_REVERSE == 0
                    && (f.vs, f.member) == (r.vs, r.member)
                    && pool_index(f.flags) == usize::from(r.pool) =>
            {
                *f
            }
            _ => return L4Verdict::NotL4,
        };
        let Some(vs) = tables.get(e.vs) else {
            return L4Verdict::NotL4;
        };
        let from_member = fits_reverse(vs, p, e.member, ports.sport);
        let to_snat = vs.snat_bytes.get(pool_index(e.flags)) == Some(&p.dst);
        if !from_member || !to_snat {
            return L4Verdict::NotL4;
        }
        if e.flags & FLAG_RESETTING != 0 {
            return self.answer_reset(frame, p);
        }
        self.counters.return_via_slot += 1;
        let rw = Rewrite {
            src: Some((vs.vip_bytes, fk.dst_port())),
            dst: Some((*fk.src_bytes(), fk.src_port())),
        };
        self.back(frame, len, p, rw, e.vs, e.member, tables)
    }

    /// A member's reply with no entry (table was full, or the entry
    /// expired): translated if the member's address and port name one
    /// DNAT virtual server and its port (see [`stateless_reverse`]), else
    /// not ours.
    fn stateless_return(
        &mut self,
        frame: &mut [u8],
        len: usize,
        p: &Pkt,
        ports: Ports,
        tables: &VsTable,
    ) -> L4Verdict {
        // To pollux itself: a member answering the control plane (a health
        // check through the exception path), not a flow whose entry is gone.
        if self.self_ips.contains(&ip_of(p.family, &p.dst)) {
            return L4Verdict::NotL4;
        }
        let Some((vs, member, rw)) =
            stateless_reverse(tables, &p.src, p.family, ports.sport, p.proto)
        else {
            return L4Verdict::NotL4;
        };
        self.counters.return_untracked += 1;
        self.back(frame, len, p, rw, vs, member, tables)
    }

    /// A packet of a flow being reset: it is an end's answer to the probe
    /// (or late data); send that end an RST with `seq = SEG.ACK`.
    #[cold]
    fn answer_reset(&mut self, frame: &mut [u8], p: &Pkt) -> L4Verdict {
        let Ok(seg) = tcp::Packet::new_checked(&frame[p.l4..p.end]) else {
            return self.drop_with(L4Drop::L4Malformed);
        };
        let payload = p.end - p.l4 - seg.header_len();
        let Some(spec) = nat::rst_for(p.family, &p.src, &p.dst, &seg, payload) else {
            return self.drop_with(L4Drop::ClosedPort); // an RST: that end is done
        };
        match nat::emit_rst(frame, p.ip, &spec) {
            Some(n) => {
                self.counters.resets_sent += 1;
                swap_macs(frame);
                L4Verdict::Reply(p.ip + n)
            }
            None => self.drop_with(L4Drop::L4Malformed),
        }
    }
}

/// How a reply from `src`:`sport` maps back to its virtual server without
/// state, if it can: (VS, member, translation). It can when the member's
/// address and port belong to exactly one DNAT virtual server — a
/// one-port VS (the reply's source becomes VIP:port), or an all-ports VS
/// whose member keeps the port (the source becomes the VIP, the port
/// stays) — and not when a member serves several virtual servers at that
/// port or the VS rewrites the source (SNAT: the client is unknown).
fn stateless_reverse(
    tables: &VsTable,
    src: &[u8; 16],
    family: Family,
    sport: u16,
    proto: u8,
) -> Option<(u32, u16, Rewrite)> {
    let (exact, any_port) = tables.members_at(src, family, sport, proto);
    let (r, vport) = match (exact, any_port) {
        ([r], _) => (r, tables.get(r.vs)?.port),
        ([], [r]) => (r, sport),
        _ => return None,
    };
    let vs = tables.get(r.vs)?;
    if vs.snats() || vport == 0 || (vs.port != 0 && vs.port != vport) {
        return None;
    }
    let rw = Rewrite {
        src: Some((vs.vip_bytes, vport)),
        dst: None,
    };
    Some((r.vs, r.member, rw))
}

/// The forward translation of a flow to `member` of `vs`.
#[inline(always)]
fn forward_rewrite(vs: &Vs, member: u16, dport: u16, nat_port: u16, pool: usize) -> Rewrite {
    let m = &vs.members[usize::from(member)];
    let mport = if m.port == 0 { dport } else { m.port };
    let src = if vs.snats() {
        vs.snat_bytes.get(pool).map(|a| (*a, nat_port))
    } else {
        None
    };
    Rewrite {
        src,
        dst: Some((m.bytes, mport)),
    }
}

/// Applies `rw` to the packet (TTL - 1); returns the new destination.
#[inline(always)]
fn apply(frame: &mut [u8], p: &Pkt, rw: Rewrite) -> [u8; 16] {
    let d = nat::rewrite_ip(
        frame,
        p.ip,
        p.family,
        rw.src.as_ref().map(|s| &s.0),
        rw.dst.as_ref().map(|d| &d.0),
        true,
    );
    nat::rewrite_l4(
        frame,
        p.l4,
        p.end - p.l4,
        p.proto,
        p.family,
        d,
        rw.src.map(|s| s.1),
        rw.dst.map(|d| d.1),
    );
    rw.dst.map_or(p.dst, |d| d.0)
}

/// The datagram quoted in an ICMP error: offsets and 5-tuple.
struct Inner {
    ip: usize,
    l4: usize,
    /// Bytes of the quoted transport header present (at least 4).
    avail: usize,
    proto: u8,
    src: [u8; 16],
    dst: [u8; 16],
    sport: u16,
    dport: u16,
}

fn parse_inner(frame: &[u8], ip: usize, end: usize, family: Family) -> Option<Inner> {
    let b = frame.get(ip..end)?;
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    let (hl, proto) = match family {
        Family::V4 => {
            if b.len() < 20 || b[0] >> 4 != 4 {
                return None;
            }
            src[..4].copy_from_slice(&b[12..16]);
            dst[..4].copy_from_slice(&b[16..20]);
            (usize::from(b[0] & 0x0f) * 4, b[9])
        }
        Family::V6 => {
            if b.len() < 40 || b[0] >> 4 != 6 {
                return None;
            }
            src.copy_from_slice(&b[8..24]);
            dst.copy_from_slice(&b[24..40]);
            (40, b[6])
        }
    };
    if hl < 20 || !matches!(proto, PROTO_TCP | PROTO_UDP) {
        return None;
    }
    let t = b.get(hl..)?;
    if t.len() < 4 {
        return None;
    }
    Some(Inner {
        ip,
        l4: ip + hl,
        avail: t.len(),
        proto,
        src,
        dst,
        sport: u16::from_be_bytes([t[0], t[1]]),
        dport: u16::from_be_bytes([t[2], t[3]]),
    })
}

fn icmp_checksum_ok(frame: &[u8], p: &Pkt) -> bool {
    let body = &frame[p.l4..p.end];
    match p.family {
        Family::V4 => checksum::checksum(body) == 0,
        Family::V6 => {
            let src = std::net::Ipv6Addr::from(p.src);
            let dst = std::net::Ipv6Addr::from(p.dst);
            let acc = checksum::add(
                checksum::pseudo_v6(&src, &dst, protocol::ICMPV6, body.len() as u32),
                checksum::sum(body),
            );
            checksum::fold(acc) == 0
        }
    }
}

impl L4 {
    /// ICMP errors about a tracked flow, from either side: the quoted
    /// datagram is the one pollux sent, so its reverse is the flow's entry
    /// key (forward entry: the client complains about our reply; reverse
    /// entry: the member side complains about what we forwarded). Both the
    /// outer and the quoted headers are translated, the ICMP checksum
    /// recomputed. Cold path; does not refresh the flow.
    #[cold]
    #[inline(never)]
    fn icmp(&mut self, now: Secs, frame: &mut [u8], p: &Pkt, tables: &VsTable) -> L4Verdict {
        let ours = tables.is_vip(&p.dst, p.family) || tables.is_snat_addr(&p.dst, p.family);
        let not_ours = |l4: &mut L4, why| {
            if ours {
                l4.drop_with(why)
            } else {
                L4Verdict::NotL4
            }
        };
        if p.end - p.l4 < 8 {
            return not_ours(self, L4Drop::IcmpMalformed);
        }
        if !nat::is_icmp_error(p.family, frame[p.l4]) {
            return L4Verdict::NotL4; // echo to a VIP and the like
        }
        let Some(inner) = parse_inner(frame, p.l4 + 8, p.end, p.family) else {
            return not_ours(self, L4Drop::IcmpMalformed);
        };
        let quoted = FlowKey::from_parts(
            inner.src,
            inner.dst,
            inner.sport,
            inner.dport,
            inner.proto,
            p.family,
        );
        let key = quoted.reversed();
        let kh = self.hasher.hash(&key);
        let Some(e) = self.ct.peek(&key, kh, now) else {
            return not_ours(self, L4Drop::IcmpNoFlow);
        };
        if !icmp_checksum_ok(frame, p) {
            return self.drop_with(L4Drop::IcmpMalformed);
        }
        let Some(vs) = tables
            .get(e.vs)
            .filter(|vs| usize::from(e.member) < vs.members.len())
        else {
            return self.drop_with(L4Drop::IcmpNoFlow);
        };
        if p.ttl <= 1 {
            return self.drop_with(L4Drop::TtlExpired);
        }
        let member = &vs.members[usize::from(e.member)];
        // (quoted src, quoted dst, outer src, outer dst), each optional.
        let (qsrc, qdst, osrc, odst) = if e.flags & FLAG_REVERSE != 0 {
            // From the member side; quoted: X:xport -> member:mport, X the
            // client (DNAT) or our SNAT address.
            let client = if vs.snats() {
                let rev = RevKey {
                    h: kh,
                    mport: key.src_port(),
                    port: key.dst_port(),
                    proto: inner.proto,
                    dst: key.dst_bytes(),
                };
                match self.snat_flow(vs, (e.vs, e.member), &rev) {
                    Some(r) => Some((*r.fwd.src_bytes(), r.fwd.src_port())),
                    None => return self.drop_with(L4Drop::IcmpNoFlow),
                }
            } else {
                None
            };
            let osrc = (p.src == member.bytes).then_some(vs.vip_bytes);
            (
                client,
                Some((vs.vip_bytes, e.nat_port)),
                osrc,
                client.map(|c| c.0),
            )
        } else {
            // From the client side; quoted: VIP:vport -> client:cport.
            let rw = forward_rewrite(
                vs,
                e.member,
                key.dst_port(),
                e.nat_port,
                pool_index(e.flags),
            );
            (rw.dst, rw.src, rw.src.map(|s| s.0), rw.dst.map(|d| d.0))
        };
        let d = nat::rewrite_ip(
            frame,
            inner.ip,
            p.family,
            qsrc.as_ref().map(|a| &a.0),
            qdst.as_ref().map(|a| &a.0),
            false,
        );
        nat::rewrite_l4(
            frame,
            inner.l4,
            inner.avail,
            inner.proto,
            p.family,
            d,
            qsrc.map(|a| a.1),
            qdst.map(|a| a.1),
        );
        nat::rewrite_ip(frame, p.ip, p.family, osrc.as_ref(), odst.as_ref(), true);
        nat::fill_l4_checksum(frame, p.ip, p.l4, p.end - p.l4, p.family, p.proto);
        self.counters.icmp_translated += 1;
        L4Verdict::Forward {
            dst: ip_of(p.family, &odst.unwrap_or(p.dst)),
        }
    }

    /// Expiry. Reaps up to `max_buckets` buckets of the connection table
    /// (see [`ConnTable::sweep`]), updates the active-flow gauges, and
    /// writes into `out` the timed-out TCP flows of `resetOnTimeout`
    /// virtual servers (including ones whose slot an insert reused since
    /// the last call). Each is re-armed for [`RESET_WAIT_SECS`] in the
    /// resetting state: send [`build_reset`](Self::build_reset) to both
    /// [`Side`]s. Returns how many entries of `out` are filled.
    pub fn sweep(
        &mut self,
        now: Secs,
        max_buckets: usize,
        out: &mut [Expired],
        tables: &VsTable,
    ) -> usize {
        if tables.generation() != self.generation {
            self.adopt(tables);
        }
        let mut k = 0;
        for slot in self.pending.iter_mut() {
            if k == out.len() {
                break;
            }
            if let Some(e) = slot.take() {
                out[k] = e;
                k += 1;
                self.n_pending -= 1;
            }
        }
        let start = k;
        let n = self.ct.sweep(now, max_buckets, &mut out[start..]);
        for i in start..start + n {
            let e = out[i];
            if self.expired_forward(&e, tables) {
                out[k] = e;
                k += 1;
            }
        }
        for e in &out[..k] {
            self.rearm(now, e, tables);
        }
        k
    }

    /// Puts a timed-out flow back, both entries, in the resetting state.
    fn rearm(&mut self, now: Secs, e: &Expired, tables: &VsTable) {
        let key = e.key();
        let value = FlowValue {
            vs: e.vs,
            member: e.member,
            nat_port: e.nat_port,
            state: TcpState::Closing,
            flags: (e.flags & !FLAG_RESET_ON_TIMEOUT) | FLAG_RESETTING,
            timeout: RESET_WAIT_SECS,
        };
        let mut ok = self.upsert(&key, value, now);
        if let Some((rkey, _, _)) = reverse_of(e, tables) {
            let rvalue = FlowValue {
                nat_port: key.dst_port(),
                flags: FLAG_REVERSE | FLAG_RESETTING,
                ..value
            };
            ok &= self.upsert(&rkey, rvalue, now);
        }
        if !ok {
            self.counters.resets_lost += 1;
        }
    }

    /// Inserts `key` with `value`, or overwrites the live entry's value.
    fn upsert(&mut self, key: &FlowKey, value: FlowValue, now: Secs) -> bool {
        let h = self.hasher.hash(key);
        match self.ct.insert(key, h, value, now) {
            Ok(mut f) => {
                f.assign(&value);
                true
            }
            Err(_) => false,
        }
    }

    /// The reset probe for one end of a timed-out flow (from
    /// [`sweep`](Self::sweep)): an Ethernet frame (MACs zero, untagged:
    /// the worker sets them and the tag as for any routed frame) carrying
    /// a bare ACK with sequence and acknowledgment 0, from the address the
    /// end knows its peer by. Returns the frame length and the destination
    /// to route to; `None` if the flow's VS or member is gone or `buf` is
    /// too short (at least 74 bytes).
    pub fn build_reset(
        &mut self,
        e: &Expired,
        side: Side,
        tables: &VsTable,
        buf: &mut [u8],
    ) -> Option<(usize, IpAddr)> {
        let key = e.key();
        let (_, member_end, our_end) = reverse_of(e, tables)?;
        let family = key.family();
        let (src, sport, dst, dport) = match side {
            Side::Client => (
                *key.dst_bytes(),
                key.dst_port(),
                *key.src_bytes(),
                key.src_port(),
            ),
            Side::Member => (our_end.0, our_end.1, member_end.0, member_end.1),
        };
        let spec = RstSpec {
            family,
            src,
            dst,
            src_port: sport,
            dst_port: dport,
            seq: 0,
            ack: 0,
            flags: tcp::FLAG_ACK,
        };
        let eth = crate::wire::ethernet::HEADER_LEN;
        let head = buf.get_mut(..eth)?;
        head[..12].fill(0);
        let ethertype = match family {
            Family::V4 => crate::wire::ethernet::ethertype::IPV4,
            Family::V6 => crate::wire::ethernet::ethertype::IPV6,
        };
        head[12..14].copy_from_slice(&ethertype.to_be_bytes());
        let n = nat::emit_rst(buf, eth, &spec)?;
        self.counters.reset_probes += 1;
        Some((eth + n, ip_of(family, &dst)))
    }
}

/// An address (key bytes) and port.
type Endpoint = ([u8; 16], u16);

/// For a forward entry: its reverse key, the member's end and pollux's
/// end towards the member (the client's, or the SNAT address and port).
fn reverse_of(e: &Entry, tables: &VsTable) -> Option<(FlowKey, Endpoint, Endpoint)> {
    let key = e.key();
    let vs = tables.get(e.vs)?;
    let m = vs.members.get(usize::from(e.member))?;
    let mport = if m.port == 0 { key.dst_port() } else { m.port };
    let ours = if vs.snats() {
        (*vs.snat_bytes.get(pool_index(e.flags))?, e.nat_port)
    } else {
        (*key.src_bytes(), key.src_port())
    };
    let rkey = FlowKey::from_parts(m.bytes, ours.0, mport, ours.1, key.proto(), key.family());
    Some((rkey, (m.bytes, mport), ours))
}

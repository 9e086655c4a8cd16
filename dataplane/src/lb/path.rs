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

use std::net::IpAddr;

mod counters;
mod fast;
mod fast6;
mod icmp;
mod new_flow;
mod parse;
mod reply;
mod reset;
mod rewrite;
mod snat;
mod steer;
pub use counters::{L4Counters, L4Drop, MemberCounters, VsCounters};
pub use fast::{classify_v4, Classified, Classifier, FastHit, Miss, Pick, V4Flow};
pub use fast6::{FastHit6, V6Flow};
pub use snat::{snat_port_owner, snat_range};
pub use steer::{Owner, Steering};

use super::conntrack::{self, ConnTable, ConnTableError, Entry, Expired, Secs, TcpState};
use super::flow::{CtHasher, Family, FlowKey, PROTO_TCP, PROTO_UDP};
use super::hash;
use super::vs::{Vs, VsTable};
use crate::wire::ipv4::protocol;
use crate::wire::tcp;
use parse::{ip_of, parse_ip, parse_l4, Pkt, Ports};
use reply::TokenBucket;
use rewrite::{apply, forward_rewrite, Rewrite};
use snat::SnatFlow;

/// The fast path's match stage found no live entry for the key just now
/// (what [`L4::decide`]'s lookup would find again); and what the probe
/// stage found the new flow's decision will pick, if it looked.
#[derive(Clone, Copy, Debug)]
struct KnownUntracked(Option<Pick>);

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

/// Which way a flow's packet travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// Client → member.
    In,
    /// Member → client.
    Out,
}

/// One worker's L4 state. See the module doc.
pub struct L4 {
    ct: ConnTable,
    /// pollux's own addresses: a member's packet to one of them is a reply
    /// to the control plane (a health check), never a flow's return.
    self_ips: Vec<IpAddr>,
    hasher: CtHasher,
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

#[inline(always)]
fn on_flags(state: TcpState, flags: u8) -> TcpState {
    state.on_flags(
        flags & tcp::SYN != 0,
        flags & tcp::FLAG_ACK != 0,
        flags & tcp::FIN != 0,
        flags & tcp::RST != 0,
    )
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

/// A client's fresh SYN (`flags`; `next` is `SynSeen`) on the closing
/// flow `e` reuses its ports for a new connection; if `e`'s member no
/// longer takes new flows, that connection must not restart on it. The
/// fast path leaves every frame `fast::reopens` picks to the slow path:
/// built on it, this is a subset of those by construction.
#[inline(always)]
fn reopens_elsewhere_from(vs: &Vs, e: &Entry, flags: u8, next: TcpState) -> bool {
    fast::reopens(flags, e.state, e.flags)
        && next == TcpState::SynSeen
        && vs
            .members
            .get(usize::from(e.member))
            .is_some_and(|m| !m.active())
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
            hasher: CtHasher::new(config.seed),
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
        self.decide(now, frame, len, (&p, ports), (&key, h, None), tables)
    }

    /// [`process`](Self::process) for a frame the fast path's classify
    /// admitted (`flow`) and its match stage left (`miss`): the same
    /// decision, on the `Pkt`, `Ports`, key and hash that classify's fixed
    /// offsets give, without parsing or hashing again, nor looking up an
    /// [`Untracked`](Miss::Untracked) key again; nor, for a new flow,
    /// finding what the probe stage found it will pick (`pick`:
    /// [`prefetch_entry`](Self::prefetch_entry)'s for `flow`, this burst).
    /// `flow`'s checks imply everything `parse_ip` and `parse_l4` would
    /// check (the differential test holds the two to the same verdicts,
    /// frames and counters).
    pub fn process_classified(
        &mut self,
        now: Secs,
        frame: &mut [u8],
        len: usize,
        (flow, miss, pick): (Classified<'_>, Miss, Option<Pick>),
        tables: &VsTable,
    ) -> L4Verdict {
        // The match stage ran on this generation (`fast_ready`); should the
        // table have moved since, the adoption comes first and the entry
        // is looked up after it.
        let mut miss = miss;
        if tables.generation() != self.generation {
            self.adopt(tables);
            miss = Miss::Slow;
        }
        let len = len.min(frame.len());
        let known = (miss == Miss::Untracked).then_some(KnownUntracked(pick));
        match flow {
            Classified::V4(flow) => {
                let Some((p, ports, key)) = flow.parsed(frame) else {
                    return self.process(now, frame, len, 0, tables);
                };
                debug_assert_eq!(flow.hash, self.hasher.hash(&key));
                self.decide(
                    now,
                    frame,
                    len,
                    (&p, ports),
                    (&key, flow.hash, known),
                    tables,
                )
            }
            Classified::V6(f) => {
                let (p, ports, key) = (&f.p, f.ports, &f.key);
                self.decide(now, frame, len, (p, ports), (key, f.hash, known), tables)
            }
        }
    }

    /// The decision for a parsed TCP or UDP packet, not a fragment, of key
    /// `key` (hash `h`; `known`: a lookup just now found no entry): a
    /// tracked flow's, a new flow's, or the answers for a closed port,
    /// SNAT return traffic and stateless replies.
    fn decide(
        &mut self,
        now: Secs,
        frame: &mut [u8],
        len: usize,
        (p, ports): (&Pkt, Ports),
        (key, h, known): (&FlowKey, u64, Option<KnownUntracked>),
        tables: &VsTable,
    ) -> L4Verdict {
        // Established flows, both directions: one lookup.
        let (found, pick) = match known {
            Some(KnownUntracked(pick)) => {
                self.ct.count_miss(key.family());
                (None, pick)
            }
            None => (self.ct.lookup(key, h, now), None),
        };
        let hit = match found {
            Some(mut f) => {
                let e: Entry = *f;
                let vs = tables.get(e.vs).filter(|vs| {
                    if e.flags & FLAG_REVERSE == 0 {
                        fits_forward(vs, p, ports.dport, e.member)
                    } else {
                        fits_reverse(vs, p, e.member, ports.sport)
                    }
                });
                let mut reopens_elsewhere = false;
                if let Some(vs) = vs {
                    if p.proto == PROTO_TCP && e.flags & FLAG_RESETTING == 0 {
                        let st = on_flags(f.state, ports.flags);
                        reopens_elsewhere = reopens_elsewhere_from(vs, &e, ports.flags, st);
                        if st != f.state && !reopens_elsewhere {
                            f.set_state(st);
                            f.set_timeout(vs.timeouts.for_state(PROTO_TCP, st));
                        }
                    }
                }
                if reopens_elsewhere {
                    // A new connection on a closing flow's ports whose
                    // member takes no new flows (down, drained): the old
                    // flow is over, the new one is scheduled afresh.
                    self.expired_forward(&e, tables);
                    self.ct.remove(key, h, now);
                    None
                } else {
                    Some((e, vs.is_some()))
                }
            }
            None => None,
        };
        match hit {
            Some((e, true)) => return self.established(frame, len, p, ports, &e, h, tables),
            Some((e, false)) if e.flags & FLAG_RESETTING != 0 => {
                // A removed member's flow being reset: an end's answer.
                return self.answer_reset(frame, p);
            }
            Some((e, false)) if self.reset_removed(&e, p, ports.dport, tables) => {
                return self.drop_with(L4Drop::MemberRemoved);
            }
            Some((_, false)) => {
                // Indices from an older table that no longer fit: forget
                // the entry and treat the packet as new.
                self.counters.stale_entries += 1;
                self.ct.remove(key, h, now);
            }
            None => {}
        }
        let vs = match pick {
            Some(pick) => Some(pick.vs),
            None => tables.lookup(&p.dst, p.family, ports.dport, p.proto),
        };
        if let Some(v) = vs {
            // Second chance: a mid-flow TCP packet of a flow this
            // instance never saw, while a peer drains, is that peer's.
            if p.proto == PROTO_TCP && ports.flags & tcp::SYN == 0 {
                if let Some(next_hop) = tables.second_chance().peer_for(h) {
                    self.counters.redirected += 1;
                    return L4Verdict::Redirect { next_hop };
                }
            }
            return self.new_flow(
                now,
                frame,
                len,
                p,
                ports,
                (key, h),
                (v, pick.as_ref()),
                tables,
            );
        }
        if tables.is_vip(&p.dst, p.family) {
            return self.closed_port(now, frame, p, ports);
        }
        if tables.is_snat_addr(&p.dst, p.family) {
            return self.snat_return_via_slot(now, frame, len, p, ports, h, tables);
        }
        self.stateless_return(frame, len, p, ports, tables)
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
        match self.translation(vs, p, ports, e, h) {
            Some((rw, dir)) => self.pass(frame, len, p, rw, (e.vs, e.member), tables, dir),
            None => L4Verdict::NotL4,
        }
    }

    /// The translation of a packet of the tracked flow `e` of `vs` (one
    /// that fits it and is not being reset), and its direction; `None`
    /// for a return packet of a SNAT flow whose record is not that
    /// flow's (then it is no flow's). Shared by the slow path and the
    /// IPv6 fast path's SNAT flows.
    #[inline(always)]
    fn translation(
        &self,
        vs: &Vs,
        p: &Pkt,
        ports: Ports,
        e: &Entry,
        h: u64,
    ) -> Option<(Rewrite, Direction)> {
        if e.flags & FLAG_REVERSE == 0 {
            let rw = forward_rewrite(vs, e.member, ports.dport, e.nat_port, pool_index(e.flags));
            return Some((rw, Direction::In));
        }
        let client = if vs.snats() {
            let rev = RevKey {
                h,
                mport: ports.sport,
                port: ports.dport,
                proto: p.proto,
                dst: &p.dst,
            };
            let r = self.snat_flow(vs, (e.vs, e.member), &rev)?;
            Some((*r.fwd.src_bytes(), r.fwd.src_port()))
        } else {
            None
        };
        let rw = Rewrite {
            src: Some((vs.vip_bytes, e.nat_port)),
            dst: client,
        };
        Some((rw, Direction::Out))
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
        let member_slot = tables.member_base(vs) + usize::from(member);
        self.count_pass(dir, member_slot, len as u64);
        L4Verdict::Forward {
            dst: ip_of(p.family, &dst),
        }
    }

    /// Counts a forwarded packet of `bytes` for its member (counter slot
    /// `member_slot`), in `dir` (its virtual server's are the members'
    /// sum, see [`VsCounters`]).
    #[inline(always)]
    fn count_pass(&mut self, dir: Direction, member_slot: usize, bytes: u64) {
        let member = self.member_counters.get_mut(member_slot);
        match dir {
            Direction::In => {
                self.counters.forwarded += 1;
                if let Some(c) = member {
                    c.packets_in += 1;
                    c.bytes_in += bytes;
                }
            }
            Direction::Out => {
                self.counters.returned += 1;
                if let Some(c) = member {
                    c.packets_out += 1;
                    c.bytes_out += bytes;
                }
            }
        }
    }
}

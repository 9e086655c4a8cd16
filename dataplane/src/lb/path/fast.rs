//! The established-flow fast path: a cache of the slow path's decisions.
//!
//! Most packets a load balancer sees belong to flows it already tracks,
//! and for those the answer is always the same: rewrite one or two
//! addresses and ports, decrement the TTL, patch two checksums, send to a
//! known next hop. The slow path ([`L4::process`] behind the host stage)
//! finds that answer by validating the frame in three places, building the
//! flow key and hashing it twice, and routing a per-member constant. This
//! module finds it once, in stages over the whole burst (DPDK l3fwd's and
//! VPP's shape), and hands every frame it is not sure about to the slow
//! path, untouched:
//!
//! ```text
//!   classify  (per frame, pure)   Ethernet to our MAC, IPv4 without options,
//!                                 not a fragment, TTL > 1, header checksum,
//!                                 TCP or UDP (not BFD),
//!                                 lengths consistent -> V4Flow {key, hash}
//!                                 and prefetch its primary bucket line
//!   probe     (per frame, once the bucket is in)  the first signature
//!                                 match -> V4Flow.hint, its entry's
//!                                 lines prefetched; none (a new flow,
//!                                 or one of the few in their secondary):
//!                                 the secondary prefetched, and a pass
//!                                 later looked at the same way; in
//!                                 neither, to a VIP: the reverse
//!                                 entry's buckets
//!   match     (per frame; its one effect, a found flow marked seen,
//!                                 is the slow path's lookup's too)
//!                                 find_v4 in the connection
//!                                 table; the entry must be live, not
//!                                 being reset, not closing under a
//!                                 client's SYN, and fit its virtual
//!                                 server
//!                                 -> FastHit {translation, TCP state
//!                                 change if the flags make one}
//!   commit    set the new state and its timeout, count
//!                                 (exactly what the slow path does),
//!                                 rewrite in place (checksums by the
//!                                 member's folded deltas), write the
//!                                 next hop's MACs
//!   new       (a frame the match stage found untracked, whose pick the
//!                                 probe stage found: a DNAT flow's
//!                                 first packet) the slow path's
//!                                 decision (`admit`), the commit
//!                                 stage's rewrite
//! ```
//!
//! A classified frame the match stage leaves otherwise (a SYN on a
//! closing flow, an entry only the slow path may change, a SNAT flow's
//! first packet) skips the host stage and the parse:
//! [`L4::process_classified`] takes the slow path's decision on
//! classify's key and hash.
//!
//! The worker routes the hit (FIB, neighbour, both memoised per burst) and
//! commits only when the packet will certainly go out, so every frame is
//! either fully handled here or not touched at all. The differential test
//! (`lb/tests.rs`, `fast_path_equals_slow_path`) holds the fast path to
//! byte-identical frames and equal counters against the slow path for any
//! frame sequence: it is a cache, never a second policy.

use super::new_flow::Admitted;
use super::parse::{Pkt, Ports};
use super::{on_flags, pool_index, Direction, L4Verdict, RevKey, FLAG_RESETTING, FLAG_REVERSE, L4};
use crate::lb::conntrack::{Hint, Secs, Slot, TcpState, V4Key};
use crate::lb::flow::{CtHasher, Family, FlowHasher, FlowKey, PROTO_TCP, PROTO_UDP};
use crate::lb::vs::{port_term16, v4, Fast4, Vs, VsTable};
use crate::wire::checksum::{self, fold16};
use crate::wire::{be16, le64, tcp, Mac};
use std::net::IpAddr;

/// Ethernet + IPv4 (no options): where the transport header starts.
const L4_AT: usize = 14 + 20;
/// The shortest frame classify looks at: Ethernet, IPv4, a UDP header.
const MIN_FRAME: usize = L4_AT + 8;
/// BFD's UDP ports (RFC 5881, 5883): the host stage consumes those.
pub(super) const BFD_PORTS: [u16; 2] = [3784, 4784];

/// One frame of the fast class, as classify found it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct V4Flow {
    pub key: V4Key,
    /// The connection table's hash of `key`.
    pub hash: u64,
    /// End of the IP packet in the frame (Ethernet padding excluded).
    pub end: u16,
    /// The slot of its primary bucket the probe stage
    /// ([`L4::prefetch_entry`]) found its signature in (its entry
    /// prefetched); else the match stage looks in both buckets.
    pub hint: Hint,
    /// TCP's flag byte (0 for UDP).
    pub tcp_flags: u8,
}

/// What a new flow's decision will pick, as the probe stage found it a
/// stage before ([`L4::prefetch_new`], DNAT virtual servers): its virtual
/// server, its member (Maglev's choice) and its reverse entry's hash.
/// Found from the same tables and key as the decision's own lookups, so
/// the decision takes it instead of doing them again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pick {
    pub(crate) vs: u32,
    pub(crate) member: u16,
    pub(crate) rev_hash: u64,
}

impl V4Flow {
    /// The probe stage returned a [`Pick`] for this frame
    /// ([`L4::prefetch_entry`]).
    #[inline(always)]
    pub fn picked(&self) -> bool {
        self.hint == Hint::PICKED
    }

    /// The slow path's `Pkt`, `Ports` and `FlowKey` of the frame this
    /// record was classified from (`None` only if `frame` is not that
    /// frame).
    pub(super) fn parsed(&self, frame: &[u8]) -> Option<(Pkt, Ports, FlowKey)> {
        let (ttl, ports, key) = self.parts(frame)?;
        Some((self.pkt(ttl), ports, key))
    }

    /// What a new flow's decision needs of the frame this record was
    /// classified from: its TTL, `Ports` and `FlowKey` (`None` only if
    /// `frame` is not that frame).
    #[inline(always)]
    pub(super) fn parts(&self, frame: &[u8]) -> Option<(u8, Ports, FlowKey)> {
        let h = frame
            .get(..usize::from(self.end))?
            .first_chunk::<MIN_FRAME>()?;
        let k = &self.key;
        let hlen = match k.proto {
            PROTO_TCP => usize::from(frame.get(L4_AT + 12)? >> 4) * 4,
            _ => 8,
        };
        let ports = Ports {
            sport: k.sport,
            dport: k.dport,
            flags: self.tcp_flags,
            hlen,
        };
        let key = FlowKey::v4(k.src, k.dst, k.sport, k.dport, k.proto);
        Some((h[22], ports, key))
    }

    /// The slow path's `Pkt` of the frame this record was classified
    /// from, whose TTL is `ttl`.
    pub(super) fn pkt(&self, ttl: u8) -> Pkt {
        let k = &self.key;
        let mut src = [0; 16];
        let mut dst = [0; 16];
        src[..4].copy_from_slice(&k.src);
        dst[..4].copy_from_slice(&k.dst);
        Pkt {
            family: Family::V4,
            ip: 14,
            l4: L4_AT,
            end: usize::from(self.end),
            proto: k.proto,
            src,
            dst,
            ttl,
            frag: false,
        }
    }
}

/// The fast-path classification of `frame` on a port with MAC `mac`, MTU
/// `mtu` and no VLAN: `Some` only for a frame that the host stage would
/// pass to the L4 path unchanged and that the L4 path would parse without
/// an error (stricter is allowed: anything else takes the slow path).
pub fn classify_v4(frame: &[u8], mac: &Mac, mtu: u16, hasher: &CtHasher) -> Option<V4Flow> {
    let mut flow = V4Flow::default();
    Classifier::new(mac, mtu, hasher)
        .classify(frame, false, &mut flow)
        .then_some(flow)
}

/// What the classify stage checks the frames of one port against.
#[derive(Debug)]
pub struct Classifier<'a> {
    /// The port's MAC as the first six bytes of a little-endian word.
    pub(super) ours: u64,
    pub(super) mtu: usize,
    pub(super) hasher: &'a CtHasher,
}

impl<'a> Classifier<'a> {
    pub fn new(mac: &Mac, mtu: u16, hasher: &'a CtHasher) -> Self {
        let m = mac.0;
        Classifier {
            ours: u64::from_le_bytes([m[0], m[1], m[2], m[3], m[4], m[5], 0, 0]),
            mtu: usize::from(mtu),
            hasher,
        }
    }

    /// [`classify_v4`] into `flow` (whose fields are all written when it
    /// returns true, and whatever else when false). `ip_verified`: the
    /// device found the IPv4 header checksum right (a frame it found wrong
    /// or did not check comes with false: checked here, and a wrong one
    /// left to the slow path, which counts and drops it).
    #[inline(always)]
    pub fn classify(&self, frame: &[u8], ip_verified: bool, flow: &mut V4Flow) -> bool {
        let len = frame.len();
        let Some(h) = frame.first_chunk::<MIN_FRAME>() else {
            return false;
        };
        // The headers as four little-endian words: bytes 0..8 (our MAC),
        // 12..20 (EtherType, version and length, TOS, total length, ID),
        // 20..28 (fragment, TTL, protocol, checksum, two bytes of the
        // source), 26..34 (both addresses).
        let w0 = le64(h, 0);
        let w12 = le64(h, 12);
        let w20 = le64(h, 20);
        let addrs = le64(h, 26);
        // Our MAC, untagged IPv4, version 4 with a 20-byte header.
        if (w0 ^ self.ours) << 16 != 0 || w12 & 0xff_ffff != 0x45_0008 {
            return false;
        }
        let total = usize::from(u16::from_be((w12 >> 32) as u16));
        // Not a fragment (MF or offset), TTL left after the decrement.
        if 14 + total > len || len - 14 > self.mtu || w20 & 0xff3f != 0 || (w20 >> 16) as u8 <= 1 {
            return false;
        }
        // Multicast, class E and limited broadcast are the host's business.
        let dst = (addrs >> 32) as u32;
        if dst as u8 >= 224 || !(ip_verified || header_checksum_ok(w12, w20, addrs)) {
            return false;
        }
        let proto = (w20 >> 24) as u8;
        // Both ports from one load: the big-endian pair, swapped whole,
        // then turned back into place.
        let mut p = [0; 4];
        p.copy_from_slice(&h[L4_AT..L4_AT + 4]);
        let ports = u32::from_le_bytes(p).swap_bytes().rotate_left(16);
        let (sport, dport) = (ports as u16, (ports >> 16) as u16);
        match proto {
            PROTO_TCP => {
                let Some(t) = frame.get(L4_AT..).and_then(|t| t.first_chunk::<20>()) else {
                    return false;
                };
                // The header's length fits the packet's (so does a
                // 20-byte header: `total` >= 40).
                let data_at = usize::from(t[12] >> 4) * 4;
                if data_at < 20 || 20 + data_at > total {
                    return false;
                }
                flow.tcp_flags = t[13];
            }
            PROTO_UDP => {
                let ulen = usize::from(be16(h, L4_AT + 4));
                flow.tcp_flags = 0;
                // The datagram's length fits the packet's (so does an
                // 8-byte header: `total` >= 28).
                if ulen < 8 || 20 + ulen > total || dport == BFD_PORTS[0] || dport == BFD_PORTS[1] {
                    return false;
                }
            }
            _ => return false,
        }
        let src = (addrs as u32).to_le_bytes();
        let dst = dst.to_le_bytes();
        flow.key = V4Key {
            src,
            dst,
            sport,
            dport,
            proto,
        };
        flow.hash = self.hasher.hash_v4(src, dst, sport, dport, proto);
        flow.end = (14 + total) as u16;
        flow.hint = Hint::NONE;
        true
    }
}

/// The IPv4 header checksum of a 20-byte header is right: its
/// one's-complement sum folds to 0xffff (RFC 1071 §2(B)). The header is
/// bytes 14..34 of the frame: the top 48 bits of `w12` (bytes 12..20),
/// the low 48 of `w20` (20..28) and all of `addrs` (26..34), classify's
/// words. In the frame's byte order, as the sum does not depend on it
/// and 0xffff reads the same both ways; without the folds, as a fold keeps
/// the sum modulo 0xffff (2^16 ≡ 1, so any 16-bit aligned piece counts as
/// the sum of its words) and gives 0xffff exactly for the non-zero
/// multiples of it.
#[inline(always)]
fn header_checksum_ok(w12: u64, w20: u64, addrs: u64) -> bool {
    let sum = (w12 >> 16) + (w20 & 0xffff_ffff_ffff) + (addrs & 0xffff_ffff) + (addrs >> 32);
    sum % 0xffff == 0 && sum != 0
}

/// A new address and port for one end of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct V4Nat {
    addr: [u8; 4],
    port: u16,
}

/// A frame's record from the fast path's classify stage, either family.
#[derive(Clone, Copy, Debug)]
pub enum Classified<'a> {
    V4(&'a V4Flow),
    V6(&'a super::V6Flow),
}

impl Classified<'_> {
    /// The frame's destination address.
    pub fn dst(&self) -> std::net::IpAddr {
        match self {
            Classified::V4(f) => f.key.dst.into(),
            Classified::V6(f) => f.p.dst.into(),
        }
    }
}

/// Why the match stage leaves a frame to the slow path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Miss {
    /// No live entry has the frame's key (a new flow, or one forgotten):
    /// the slow path need not look it up again.
    Untracked,
    /// A client SYN on a closing flow, an entry being reset or no longer fitting
    /// its virtual server, a SNAT record gone: the slow path looks.
    Slow,
}

/// The slow path's decision for a packet of an established flow, as the
/// commit stage applies it: the address and port the direction
/// translates (a client's destination, a member's source), SNAT's other
/// side, and both checksums' one's-complement deltas, all found from the
/// key before the frame is written.
#[derive(Clone, Copy, Debug)]
pub struct FastHit {
    slot: Slot,
    /// The member's index in the table's flat per-member array.
    member_slot: usize,
    dir: Direction,
    /// The TCP state the packet moves its entry to, and its timeout.
    state: Option<(TcpState, u16)>,
    /// The destination of a client's packet, the source of a member's.
    to: V4Nat,
    /// SNAT: the source of a client's packet, the destination of a member's.
    other: Option<V4Nat>,
    /// The rewrite's deltas ([`checksum::fold16`]ed) of the IPv4 header
    /// checksum (addresses, the TTL) and of the L4 checksum (addresses,
    /// ports).
    ip_delta: u16,
    l4_delta: u16,
}

impl FastHit {
    /// Member -> client (else client -> member).
    #[inline(always)]
    pub fn is_reply(&self) -> bool {
        self.dir == Direction::Out
    }

    /// The hit, its direction the constant `REPLY` (what
    /// [`is_reply`](Self::is_reply) said), so that the code inlined after
    /// a caller's branch on it does not test it again.
    #[inline(always)]
    pub fn replying<const REPLY: bool>(self) -> Self {
        debug_assert_eq!(self.is_reply(), REPLY);
        let dir = if REPLY { Direction::Out } else { Direction::In };
        FastHit { dir, ..self }
    }

    /// The packet's destination after the rewrite (where to route it).
    #[inline(always)]
    pub fn dst(&self, flow: &V4Flow) -> [u8; 4] {
        match (self.dir, &self.other) {
            (Direction::In, _) => self.to.addr,
            (Direction::Out, Some(client)) => client.addr,
            (Direction::Out, None) => flow.key.dst,
        }
    }
}

/// A fast-class packet's translation (a [`FastHit`]'s, or a new flow's
/// first packet's).
#[derive(Clone, Copy, Debug)]
struct Nat4 {
    dir: Direction,
    to: V4Nat,
    other: Option<V4Nat>,
    ip_delta: u16,
    l4_delta: u16,
}

/// The destination a client's packet of key `k` to member `m` takes (its
/// address and port), if the packet fits the member's virtual server
/// (`fits_forward` and `forward_rewrite`'s destination); and its L4
/// checksum's delta (a DNAT's whole, SNAT's part).
#[inline(always)]
fn member_dst(m: &Fast4, k: &V4Key) -> Option<(V4Nat, u16)> {
    if Fast4::word(k.dst, k.dport, k.proto) & m.in_mask != m.in_word {
        return None;
    }
    let port = if m.port == 0 { k.dport } else { m.port };
    let l4 = match m.ports_vary {
        true => checksum::add16(m.in_addr, port_term16(k.dport, port)),
        false => m.in_l4,
    };
    Some((V4Nat { addr: m.addr, port }, l4))
}

impl Nat4 {
    /// A client's packet of key `k` to member `m` of a DNAT virtual
    /// server, if it fits the member's virtual server (as
    /// `forward_rewrite` has it: the destination becomes the member's).
    #[inline(always)]
    fn dnat(m: &Fast4, k: &V4Key) -> Option<Nat4> {
        if m.snat {
            return None;
        }
        let (to, l4_delta) = member_dst(m, k)?;
        Some(Nat4 {
            dir: Direction::In,
            to,
            other: None,
            ip_delta: m.in_ip,
            l4_delta,
        })
    }
}

/// The TCP state a packet of protocol `proto` with `flags` moves its
/// flow's entry (in `state`) to; `None` if it stays (what the slow path's
/// lookup step does).
#[inline(always)]
pub(super) fn next_state(proto: u8, state: TcpState, flags: u8) -> Option<TcpState> {
    // The common case first: not TCP, or data or an ACK on an established
    // flow.
    if proto != PROTO_TCP || (state == TcpState::Established && flags & (tcp::FIN | tcp::RST) == 0)
    {
        return None;
    }
    let next = on_flags(state, flags);
    (next != state).then_some(next)
}

/// A client's SYN (`flags`) on a closing flow's ports (its forward entry:
/// `state`, `entry_flags`) may start a new connection elsewhere
/// (`reopens_elsewhere_from`): the slow path decides. Any other SYN (a
/// retransmission, the member's SYN-ACK) is a state change like the rest.
#[inline(always)]
pub(super) fn reopens(flags: u8, state: TcpState, entry_flags: u8) -> bool {
    flags & tcp::SYN != 0 && state == TcpState::Closing && entry_flags & FLAG_REVERSE == 0
}

impl L4 {
    /// The classify stage begins (before its probes): a flow the probes
    /// find in neither bucket is new, unless one is inserted since
    /// ([`ConnTable::begin_probes`](crate::lb::conntrack::ConnTable::begin_probes)).
    #[inline(always)]
    pub fn begin_probes(&mut self) {
        self.ct.begin_probes();
    }

    /// Prefetches the bucket line `flow` will most likely be found in
    /// (its primary: the probe stage asks for the secondary if not there).
    #[inline(always)]
    pub fn prefetch_flow(&self, flow: &V4Flow) {
        self.ct.prefetch_primary(flow.hash);
    }

    /// The probe stage, both looks at once (for callers with one frame
    /// at hand: the worker runs [`probe_primary`](Self::probe_primary)
    /// over the burst, then [`probe_secondary`](Self::probe_secondary)
    /// over the frames it left, so that the secondary's line has time to
    /// arrive). Returns what a new flow's decision will pick, if it found
    /// one.
    #[inline(always)]
    pub fn prefetch_entry(
        &self,
        flow: &mut V4Flow,
        tables: &VsTable,
        decides_here: impl FnOnce(&V4Key) -> bool,
    ) -> Option<Pick> {
        if self.probe_primary(flow) {
            return self.probe_secondary(flow, tables, decides_here);
        }
        None
    }

    /// Prefetches the entry `flow` most likely matches (once its primary
    /// bucket is in: a stage after [`prefetch_flow`](Self::prefetch_flow))
    /// and keeps what it saw for the match stage. True if no entry of the
    /// primary can match (no signature did): then the secondary's line is
    /// on its way, for [`probe_secondary`](Self::probe_secondary).
    #[inline(always)]
    pub fn probe_primary(&self, flow: &mut V4Flow) -> bool {
        flow.hint = self.ct.probe(flow.hash);
        flow.hint == Hint::NONE
    }

    /// For a flow not in its primary bucket
    /// ([`probe_primary`](Self::probe_primary) said so): prefetches the
    /// entry of its secondary it most likely matches. If none can (a new
    /// flow, if to a VIP), prefetches what a new flow's decision will need
    /// ([`prefetch_new`](Self::prefetch_new)) and returns what that
    /// decision will pick, for the caller to hand it
    /// ([`process_classified`](Self::process_classified); `flow` says it
    /// was [`picked`](V4Flow::picked)) — if `decides_here` says this
    /// worker will decide a new flow of the key (else another worker does,
    /// and finds its own pick).
    #[inline(always)]
    pub fn probe_secondary(
        &self,
        flow: &mut V4Flow,
        tables: &VsTable,
        decides_here: impl FnOnce(&V4Key) -> bool,
    ) -> Option<Pick> {
        flow.hint = self.ct.probe_secondary(flow.hash);
        if flow.hint == Hint::ABSENT && tables.may_be_vip4(flow.key.dst) && decides_here(&flow.key)
        {
            let pick = self.prefetch_new(flow, tables)?;
            flow.hint = Hint::PICKED;
            return Some(pick);
        }
        None
    }

    /// For a new flow (a stage before its decision): prefetches the
    /// buckets its reverse entry will be inserted in, so that the
    /// decision's second insert does not wait for them (the first's
    /// buckets are the lookup's, prefetched already). The member is the
    /// one `new_flow` will pick: the same VS lookup and Maglev choice on
    /// the same tables. DNAT virtual servers only (SNAT picks a port
    /// first). Changes nothing; returns what it found.
    #[inline]
    pub(crate) fn prefetch_new(&self, flow: &V4Flow, tables: &VsTable) -> Option<Pick> {
        let k = &flow.key;
        let v = tables.lookup_v4(k.dst, k.dport, k.proto)?;
        let vs = tables.get(v)?;
        let maglev = vs.maglev.as_ref().filter(|_| !vs.snats())?;
        let mh = FlowHasher::MAGLEV.hash_v4(k.src, k.dst, k.sport, k.dport, k.proto);
        let member = maglev.lookup(mh);
        let m = vs.members.get(usize::from(member))?;
        let mport = if m.port == 0 { k.dport } else { m.port };
        let rev_hash = self
            .hasher
            .hash_v4(v4(&m.bytes), k.src, mport, k.sport, k.proto);
        self.ct.prefetch(Family::V4, rev_hash);
        Some(Pick {
            vs: v,
            member,
            rev_hash,
        })
    }

    /// This worker's connection-table hasher (classify hashes with it).
    #[inline(always)]
    pub fn hasher(&self) -> &CtHasher {
        &self.hasher
    }

    /// Whether the fast path may run on `tables` (the L4 state follows
    /// this table generation; else the slow path adopts it first).
    #[inline(always)]
    pub fn fast_ready(&self, tables: &VsTable) -> bool {
        !tables.is_empty() && tables.generation() == self.generation
    }

    /// The match stage: what the slow path would do with this packet of a
    /// tracked flow, if it is one the fast path handles. Changes nothing
    /// but the found flow's last-seen second, to `now`, which the slow
    /// path's lookup of a frame left to it sets too. The entry's member
    /// as the table's [`Fast4`] record: fitting the packet is a masked
    /// compare, the address rewrite's checksum terms are the record's;
    /// the VS itself is read only for a state change's timeout and SNAT.
    #[inline(always)]
    pub fn fast_match(
        &mut self,
        flow: &V4Flow,
        now: Secs,
        tables: &VsTable,
    ) -> Result<FastHit, Miss> {
        let (slot, e) = self
            .ct
            .find_hinted(&flow.key, flow.hash, flow.hint, now)
            .ok_or(Miss::Untracked)?;
        if e.flags & FLAG_RESETTING != 0 {
            return Err(Miss::Slow);
        }
        if reopens(flow.tcp_flags, e.state, e.flags) {
            return Err(Miss::Slow);
        }
        let (m, member_slot) = tables.fast4(e.vs, e.member).ok_or(Miss::Slow)?;
        let k = &flow.key;
        let vs = || tables.get(e.vs).ok_or(Miss::Slow);
        let state = match next_state(k.proto, e.state, flow.tcp_flags) {
            Some(next) => Some((next, vs()?.timeouts.for_state(PROTO_TCP, next))),
            None => None,
        };
        let hit = |dir, to, other, ip_delta, l4_delta| FastHit {
            slot,
            member_slot,
            dir,
            state,
            to,
            other,
            ip_delta,
            l4_delta,
        };
        if e.flags & FLAG_REVERSE == 0 {
            // forward_rewrite
            let (to, l4) = member_dst(m, k).ok_or(Miss::Slow)?;
            // SNAT: the client's address too (none if the pool index is
            // out of the pool, as `forward_rewrite` has it).
            let src = match m.snat {
                true => vs()?.snat_bytes.get(pool_index(e.flags)).map(|a| V4Nat {
                    addr: v4(a),
                    port: e.nat_port,
                }),
                false => None,
            };
            let Some(s) = src else {
                return Ok(hit(Direction::In, to, None, m.in_ip, l4));
            };
            let addr = fold16(Fast4::term(k.src, s.addr));
            let ip = checksum::add16(m.in_ip, addr);
            let l4 = checksum::add16(l4, checksum::add16(addr, port_term16(k.sport, s.port)));
            Ok(hit(Direction::In, to, src, ip, l4))
        } else {
            if Fast4::word(k.src, k.sport, k.proto) & m.out_mask != m.out_word {
                return Err(Miss::Slow);
            }
            let to = V4Nat {
                addr: m.vip,
                port: e.nat_port,
            };
            let ports = port_term16(k.sport, to.port);
            if !m.snat {
                let l4 = checksum::add16(m.out_addr, ports);
                return Ok(hit(Direction::Out, to, None, m.out_ip, l4));
            }
            let client = self.snat_client(vs()?, (e.vs, e.member), flow)?;
            let addr = fold16(Fast4::term(k.dst, client.addr));
            let ip = checksum::add16(m.out_ip, addr);
            let l4 = checksum::add16(m.out_addr, checksum::add16(addr, ports));
            let l4 = checksum::add16(l4, port_term16(k.dport, client.port));
            Ok(hit(Direction::Out, to, Some(client), ip, l4))
        }
    }

    /// The client of the SNAT flow whose reply `flow` is (its reverse
    /// entry: VS `vs`, its index and member `owner`), from the flow's
    /// record. Out of line: a DNAT flow's match stage has no use for its
    /// registers.
    #[inline(never)]
    fn snat_client(&self, vs: &Vs, owner: (u32, u16), flow: &V4Flow) -> Result<V4Nat, Miss> {
        let k = &flow.key;
        let rev = RevKey {
            h: flow.hash,
            mport: k.sport,
            port: k.dport,
            proto: k.proto,
            dst: &k.dst,
        };
        let r = self.snat_flow(vs, owner, &rev).ok_or(Miss::Slow)?;
        Ok(V4Nat {
            addr: v4(r.fwd.src_bytes()),
            port: r.fwd.src_port(),
        })
    }

    /// The commit stage: sets the flow's new state, rewrites the frame in
    /// place and counts it, exactly as the slow path does for this packet
    /// (whose lookup marked the flow seen, as the match stage's did); and
    /// addresses it to its next hop (`macs`: destination, source).
    /// `frame` is the whole frame (`len` bytes); the caller sends it.
    #[inline(always)]
    pub fn fast_commit(&mut self, hit: &FastHit, flow: &V4Flow, frame: &mut [u8], macs: &[u8; 12]) {
        self.ct.count_hit();
        if let Some((state, timeout)) = hit.state {
            self.ct.set_state_v4(hit.slot, state, timeout);
        }
        let bytes = frame.len() as u64;
        let nat = Nat4 {
            dir: hit.dir,
            to: hit.to,
            other: hit.other,
            ip_delta: hit.ip_delta,
            l4_delta: hit.l4_delta,
        };
        // (classify saw the frame hold the headers)
        if let Some((h, rest)) = frame.split_first_chunk_mut::<HEADERS>() {
            rewrite((h, rest), flow, &nat);
            h[..12].copy_from_slice(macs);
        }
        // What `pass` counts.
        self.count_pass(hit.dir, hit.member_slot, bytes);
    }
}

impl L4 {
    /// The new flows' stage, for a frame the match stage found untracked
    /// and the probe stage picked for (`pick`: the flow of a DNAT virtual
    /// server, decided on this worker): the slow path's decision on the
    /// same record ([`admit`](Self::admit), as
    /// [`process_classified`](Self::process_classified) takes it), and
    /// for the packet it forwards to the member the commit stage's
    /// rewrite from the member's [`Fast4`] record, not the slow path's
    /// general one: the same bytes, the same counts. `frame`: the mbuf's
    /// data and tailroom, of which the frame is the first `len` bytes.
    /// `None`, the frame untouched and nothing changed, for what it
    /// leaves to `process_classified`: a table generation to adopt first,
    /// a TCP segment without SYN (the second chance may send it to a
    /// draining peer).
    pub fn fast_new(
        &mut self,
        now: Secs,
        (frame, len): (&mut [u8], usize),
        flow: &V4Flow,
        pick: &Pick,
        tables: &VsTable,
    ) -> Option<L4Verdict> {
        let k = &flow.key;
        let syn = flow.tcp_flags & tcp::SYN != 0;
        if tables.generation() != self.generation || (k.proto == PROTO_TCP && !syn) {
            return None;
        }
        let (ttl, ports, key) = flow.parts(frame)?;
        self.ct.count_miss(Family::V4);
        let picked = (pick.vs, Some(pick));
        let Admitted { rw, vs, member } =
            match self.admit(now, ttl, ports, (&key, flow.hash), picked, tables) {
                Ok(a) => a,
                Err(verdict) => return Some(verdict),
            };
        let len = len.min(frame.len());
        let fast = tables.fast4(vs, member);
        let Some((nat, member_slot)) = fast.and_then(|(m, i)| Some((Nat4::dnat(m, k)?, i))) else {
            let p = flow.pkt(ttl);
            return Some(self.forward(frame, len, &p, rw, vs, member, tables));
        };
        debug_assert!(rw.src.is_none());
        debug_assert_eq!(
            rw.dst.map(|(a, port)| (v4(&a), port)),
            Some((nat.to.addr, nat.to.port))
        );
        // `pass`: its TTL check is classify's.
        if let Some(headers) = frame[..len].split_first_chunk_mut::<HEADERS>() {
            rewrite(headers, flow, &nat);
        }
        self.count_pass(Direction::In, member_slot, len as u64);
        Some(L4Verdict::Forward {
            dst: IpAddr::from(nat.to.addr),
        })
    }
}

/// Ethernet, IPv4 and the first 8 bytes of UDP or TCP: the UDP checksum
/// ends there; TCP's is 8 bytes further.
const HEADERS: usize = L4_AT + 8;
const UDP_SUM_AT: usize = L4_AT + 6;
const TCP_SUM_AT: usize = L4_AT + 16;

/// The 16-bit word at `at`, in the frame's byte order.
#[inline(always)]
fn ne16(h: &[u8; HEADERS], at: usize) -> u16 {
    u16::from_ne_bytes([h[at], h[at + 1]])
}

/// `nat::rewrite_ip` + `nat::rewrite_l4` for a fast-class frame, checksums
/// byte for byte the same (which of 0x0000/0xffff stands for zero
/// included). The one's-complement sum does not depend on byte order
/// (RFC 1071 §2(B)), so it runs on the words as they lie in the frame, no
/// swaps; an address is one 32-bit term, whose fold is the sum of its two
/// 16-bit ones (zero only if both are): the same result. The terms of
/// what is replaced are the hit's deltas (the frame holds the key the
/// match stage found them from), folded already: added to a checksum's
/// complement with end-around carry, the fold of the same sum
/// ([`checksum::add16`]), so the same checksum.
///
/// `h` and `rest`: the frame, split after the headers that hold what
/// changes (all of it within the packet, whose headers classify checked).
#[inline(always)]
fn rewrite((h, rest): (&mut [u8; HEADERS], &mut [u8]), flow: &V4Flow, hit: &Nat4) {
    let (to, port) = (hit.to.addr, hit.to.port.to_be_bytes());
    let other = hit.other.map(|o| (o.addr, o.port.to_be_bytes()));
    // Two arms with fixed offsets, not one with offsets chosen by
    // direction: the chosen offsets cost 9 instructions a packet (measured).
    match hit.dir {
        Direction::In => {
            h[30..34].copy_from_slice(&to);
            h[L4_AT + 2..L4_AT + 4].copy_from_slice(&port);
            if let Some((addr, port)) = other {
                h[26..30].copy_from_slice(&addr);
                h[L4_AT..L4_AT + 2].copy_from_slice(&port);
            }
        }
        Direction::Out => {
            h[26..30].copy_from_slice(&to);
            h[L4_AT..L4_AT + 2].copy_from_slice(&port);
            if let Some((addr, port)) = other {
                h[30..34].copy_from_slice(&addr);
                h[L4_AT + 2..L4_AT + 4].copy_from_slice(&port);
            }
        }
    }
    h[22] -= 1; // classify: TTL > 1
    let ip = !checksum::add16(!ne16(h, 24), hit.ip_delta);
    h[24..26].copy_from_slice(&ip.to_ne_bytes());
    // One arm a protocol: merged, the UDP-only tests ran again after the
    // sum (3 instructions a packet).
    if flow.key.proto == PROTO_UDP {
        let old = ne16(h, UDP_SUM_AT);
        if old == 0 {
            return; // no checksum, and it stays so
        }
        let c = !checksum::add16(!old, hit.l4_delta);
        let c = if c == 0 { 0xffff } else { c };
        h[UDP_SUM_AT..UDP_SUM_AT + 2].copy_from_slice(&c.to_ne_bytes());
    } else {
        let sum = rest.get_mut(TCP_SUM_AT - HEADERS..);
        let Some(sum) = sum.and_then(|r| r.first_chunk_mut::<2>()) else {
            return;
        };
        let old = u16::from_ne_bytes(*sum);
        *sum = (!checksum::add16(!old, hit.l4_delta)).to_ne_bytes();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 1071's way: ten 16-bit words summed, carries folded back in.
    fn folded(header: &[u8]) -> u16 {
        let mut sum: u32 = header
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    fn frame(header: [u8; 20]) -> [u8; MIN_FRAME] {
        let mut f = [0; MIN_FRAME];
        f[14..34].copy_from_slice(&header);
        f
    }

    /// [`header_checksum_ok`] of the header in `f`, from classify's words.
    fn checksum_ok(f: &[u8; MIN_FRAME]) -> bool {
        header_checksum_ok(le64(f, 12), le64(f, 20), le64(f, 26))
    }

    proptest! {
        #[test]
        fn header_checksum_check_is_rfc_1071s(header in any::<[u8; 20]>()) {
            prop_assert_eq!(checksum_ok(&frame(header)), folded(&header) == 0xffff);
        }

        #[test]
        fn a_header_with_its_checksum_set_passes(mut header in any::<[u8; 20]>()) {
            header[10..12].fill(0);
            let c = !folded(&header);
            header[10..12].copy_from_slice(&c.to_be_bytes());
            // The sum of a header with its checksum set is 0xffff, unless
            // everything else was zero (then 0x0000 stands in the field
            // and the sum stays zero: no valid header looks like that).
            let zero = header.iter().all(|&b| b == 0);
            prop_assert_eq!(checksum_ok(&frame(header)), !zero);
        }
    }

    /// A device that verifies IPv4 header checksums (`rx_ip_checksum`)
    /// vouches for a frame's: classify does not check it again. Without
    /// its word (not verified, found wrong, or not asked) classify checks.
    #[test]
    fn classify_takes_the_devices_word_for_the_header_checksum() {
        let mac = Mac([2, 0, 0, 0, 0, 1]);
        let hasher = CtHasher::new(1);
        let c = Classifier::new(&mac, 1500, &hasher);
        let mut header = [
            0x45, 0, 0, 28, 0, 1, 0, 0, 64, PROTO_UDP, 0, 0, 10, 1, 0, 1, 10, 0, 0, 100,
        ];
        let sum = !folded(&header);
        header[10..12].copy_from_slice(&sum.to_be_bytes());
        let mut f = frame(header);
        f[..6].copy_from_slice(&mac.0);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[L4_AT..L4_AT + 6].copy_from_slice(&[0x30, 0x39, 0, 80, 0, 8]);
        let mut flow = V4Flow::default();
        assert!(c.classify(&f, false, &mut flow));
        assert_eq!((flow.key.dst, flow.key.dport), ([10, 0, 0, 100], 80));
        f[24] ^= 1; // the checksum no longer matches
        assert!(!c.classify(&f, false, &mut flow));
        assert!(c.classify(&f, true, &mut flow), "the device verified it");
    }

    #[test]
    fn headers_summing_to_zero_or_to_multiples_of_0xffff() {
        assert!(!checksum_ok(&frame([0; 20])));
        let mut h = [0; 20];
        h[0..2].copy_from_slice(&[0xff, 0xff]);
        assert!(checksum_ok(&frame(h))); // 0xffff
        h[2..4].copy_from_slice(&[0xff, 0xff]);
        assert!(checksum_ok(&frame(h))); // 0x1fffe folds to 0xffff
        h[4] = 1;
        assert!(!checksum_ok(&frame(h)));
    }
}

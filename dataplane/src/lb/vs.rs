//! The virtual-server table: the snapshot ctrl builds and workers read.
//!
//! # Model
//!
//! ctrl turns the validated config (plus health state and the self IPs it
//! picked for `snat: automap`) into a list of [`VsSpec`]s and calls
//! [`VsTable::build`], which allocates freely (it runs in ctrl) and returns
//! an immutable table. ctrl publishes it whole (inside the `Arc` snapshot
//! the worker loads once per burst); a health change or a reload means a
//! new table. Indices are positions: VS `i` is `specs[i]`, member `j` of a
//! VS is `specs[i].members[j]`. Connection-table entries store these
//! indices, so **ctrl must keep the order stable across rebuilds** (append
//! new virtual servers and members; mark a removed member `healthy: false,
//! weight: 0` until its flows have drained rather than deleting it). A
//! worker that finds an entry whose indices no longer fit its packet
//! re-chooses the member ([`super::path`]).
//!
//! Per VS: VIP (IPv4 or IPv6), port (0 = every port), protocol, idle
//! timeout, reset-on-timeout, SNAT mode, members (address, port — 0 keeps
//! the client's destination port —, weight, health) and the Maglev
//! [`Table`] over the members that are healthy with a weight > 0 (built
//! with every member in the list, unhealthy ones at weight 0, so member
//! indices are the list's and a health flap moves only that member's
//! slots). `None` when no member can take new flows: new flows are dropped
//! and counted.
//!
//! Lookups used per packet are open-addressing tables keyed by a
//! [`FlowKey`] built from the fields (pollux-hash v1 with a fixed seed, no
//! SipHash, no allocation): by (VIP, port, protocol) with a fallback to
//! (VIP, 0, protocol); "is this address a VIP"; by (member address,
//! member port, protocol) for return traffic; "is this a SNAT address".

use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use super::conntrack::Timeouts;
use super::flow::{CtHasher, Family, FlowKey, PROTO_TCP, PROTO_UDP};
use super::maglev::{self, MaglevError, Member, MemberKey, Table};
use crate::wire::checksum::{add16, fold16};

/// Largest SNAT pool of one virtual server: a flow stores its pool index
/// in 5 bits of its connection-table entry's flags.
pub const MAX_SNAT_POOL: usize = 32;

/// TCP or UDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => PROTO_TCP,
            Proto::Udp => PROTO_UDP,
        }
    }
}

/// Source NAT of a virtual server, as ctrl resolved it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Snat {
    /// DNAT only: members see the client's address; pollux must be their
    /// gateway for the return path.
    None,
    /// `snat: automap`: the self IP ctrl chose (of the VS's family, on the
    /// port towards the members).
    Automap(IpAddr),
    /// `snat: [addresses]`: a flow gets one of them (by its hash) and a
    /// port from its worker's range.
    Pool(Vec<IpAddr>),
}

/// One member of a virtual server, as ctrl sees it now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberSpec {
    pub addr: IpAddr,
    /// 0: keep the client's destination port.
    pub port: u16,
    /// 0 = drain: no new flows, existing flows stay.
    pub weight: u32,
    /// From the health checks; an unhealthy member gets no new flows.
    pub healthy: bool,
}

/// One virtual server, as ctrl hands it to [`VsTable::build`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VsSpec {
    pub name: String,
    pub vip: IpAddr,
    /// 0 = all ports.
    pub port: u16,
    pub proto: Proto,
    /// Seconds (1..=65535); FastL4's default is 300.
    pub idle_timeout: u16,
    /// Send RSTs to both ends when an idle TCP flow times out.
    pub reset_on_timeout: bool,
    pub snat: Snat,
    pub members: Vec<MemberSpec>,
}

/// Why a snapshot could not be built; ctrl reports it against the config
/// (`index` is the position in the spec list, `member` in its members).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VsError {
    #[error("virtual server {index}: same address, port and protocol as virtual server {first}")]
    Duplicate { first: usize, index: usize },
    #[error("virtual server {index}: member {member} is not of the VIP's address family")]
    MemberFamily { index: usize, member: usize },
    #[error("virtual server {index}: SNAT address {addr} is not of the VIP's address family")]
    SnatFamily { index: usize, addr: IpAddr },
    #[error("virtual server {index}: the SNAT pool is empty")]
    SnatPoolEmpty { index: usize },
    #[error("virtual server {index}: a SNAT pool holds at most {MAX_SNAT_POOL} addresses")]
    SnatPoolTooLarge { index: usize },
    #[error("virtual server {index}: SNAT address {addr} is also a VIP")]
    SnatIsVip { index: usize, addr: IpAddr },
    #[error("virtual server {index}: idle timeout must be at least 1 second")]
    IdleTimeout { index: usize },
    #[error("virtual server {index}: {source}")]
    Maglev {
        index: usize,
        #[source]
        source: MaglevError,
    },
    #[error("more than {max} virtual servers", max = u32::MAX)]
    TooMany,
}

/// A member in the snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VsMember {
    pub addr: IpAddr,
    /// Address bytes as in a [`FlowKey`] (IPv4 in the first 4).
    pub(crate) bytes: [u8; 16],
    pub port: u16,
    pub weight: u32,
    pub healthy: bool,
    /// Removed from the configuration by a reload: it keeps its index (so
    /// that the flows of the members after it keep theirs), takes no new
    /// flows, and the flows it had no longer fit (see [`VsTable::retire`]).
    pub retired: bool,
}

impl VsMember {
    /// Takes new flows: healthy with a weight > 0.
    pub fn active(&self) -> bool {
        self.healthy && self.weight > 0
    }
}

/// One member of an IPv4 virtual server as the fast path checks and
/// rewrites its packets (`lb/path/fast.rs`), built with the table: what
/// `fits_forward` and `fits_reverse` compare, packed so that each is one
/// masked compare of a word built from the packet's key
/// ([`Fast4::word`]), and the checksum deltas of the rewrite, which are
/// constants once the packet fits: one's-complement sums folded once
/// here ([`fold16`]), so that a packet's checksum takes each with one
/// end-around add ([`add16`]), no fold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
pub(crate) struct Fast4 {
    /// A client's packet fits if `word(dst, dport, proto) & in_mask == in_word`
    /// (the port masked out when the VS takes every port).
    pub in_word: u64,
    pub in_mask: u64,
    /// A member's packet fits if `word(src, sport, proto) & out_mask == out_word`.
    pub out_word: u64,
    pub out_mask: u64,
    pub vip: [u8; 4],
    pub addr: [u8; 4],
    /// The member's port (0: the client's destination port stays).
    pub port: u16,
    /// A client's packet's IPv4 header checksum delta: the address (VIP
    /// to member) and the TTL's decrement.
    pub in_ip: u16,
    /// Its L4 checksum's: the address and the port (the member's for the
    /// VS's, or none); not used where `ports_vary`.
    pub in_l4: u16,
    /// The address's alone (what SNAT and a varying port add to).
    pub in_addr: u16,
    /// A member's packet's: IPv4 header (the address, member to VIP, and
    /// the TTL), the address alone.
    pub out_ip: u16,
    pub out_addr: u16,
    /// The VS takes every port and the member has one of its own: the
    /// port's term depends on the packet (`in_l4` does not hold it).
    pub ports_vary: bool,
    /// The VS translates the client's address too.
    pub snat: bool,
}

/// The IPv4 address held in the first four bytes of a key's address.
#[inline(always)]
pub(crate) fn v4(b: &[u8; 16]) -> [u8; 4] {
    [b[0], b[1], b[2], b[3]]
}

/// [`Fast4::term`] for replacing port `old` by `new` (host order): the L4
/// checksum's.
#[inline(always)]
pub(crate) fn port_term(old: u16, new: u16) -> u64 {
    u64::from(!old.to_be()) + u64::from(new.to_be())
}

/// [`port_term`] folded, as [`add16`] takes it.
#[inline(always)]
pub(crate) fn port_term16(old: u16, new: u16) -> u16 {
    add16(!old.to_be(), new.to_be())
}

/// The one's-complement term of the TTL's decrement: `!w + w'` for the
/// TTL/protocol word `w` before and `w'` after, which is `0xffff` less
/// the TTL's unit in that word (in the frame's byte order), whatever the
/// TTL (> 1: no borrow) and the protocol.
pub(crate) const TTL_TERM: u64 = 0xffff - u16::from_ne_bytes([1, 0]) as u64;

/// Never equal to a masked [`Fast4::word`] (whose top byte is zero): the
/// word of a member no IPv4 packet fits (an IPv6 VS's, a retired one).
const NO_FIT: u64 = u64::MAX;

impl Fast4 {
    /// The word [`Fast4`]'s fit compares: an address, a port, a protocol.
    #[inline(always)]
    pub fn word(addr: [u8; 4], port: u16, proto: u8) -> u64 {
        u64::from(u32::from_ne_bytes(addr)) | u64::from(port) << 32 | u64::from(proto) << 48
    }

    /// The one's-complement term of replacing address `old` by `new` (both
    /// as they lie in the frame): what a rewrite adds to both checksums.
    #[inline(always)]
    pub fn term(old: [u8; 4], new: [u8; 4]) -> u64 {
        u64::from(!u32::from_ne_bytes(old)) + u64::from(u32::from_ne_bytes(new))
    }

    fn new(vs: &Vs, m: &VsMember) -> Fast4 {
        let (vip, addr) = (v4(&vs.vip_bytes), v4(&m.bytes));
        let (to_member, to_vip) = (Fast4::term(vip, addr), Fast4::term(addr, vip));
        let mask = |port: u16| if port == 0 { !(0xffff << 32) } else { !0 };
        let fits = vs.family == Family::V4 && !m.retired;
        // The port's term: the member's port for the VS's (which a
        // fitting packet has), or the client's kept (`!p + p`).
        let ports = match m.port {
            0 => port_term(0, 0),
            port => port_term(vs.port, port),
        };
        Fast4 {
            in_word: if fits {
                Fast4::word(vip, vs.port, vs.proto_number)
            } else {
                NO_FIT
            },
            in_mask: mask(vs.port),
            out_word: if fits {
                Fast4::word(addr, m.port, vs.proto_number)
            } else {
                NO_FIT
            },
            out_mask: mask(m.port),
            vip,
            addr,
            port: m.port,
            in_ip: fold16(to_member + TTL_TERM),
            in_l4: fold16(to_member + ports),
            in_addr: fold16(to_member),
            out_ip: fold16(to_vip + TTL_TERM),
            out_addr: fold16(to_vip),
            ports_vary: vs.port == 0 && m.port != 0,
            snat: vs.snats(),
        }
    }
}

/// One member of an IPv6 virtual server as the IPv6 fast path checks and
/// rewrites its DNAT packets (`lb/path/fast6.rs`), built with the table:
/// what `fits_forward` and `fits_reverse` compare, and the
/// one's-complement terms of the address the rewrite replaces (four
/// 32-bit words each way), which are constants once the packet fits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
pub(crate) struct Fast6 {
    pub vip: [u8; 16],
    pub addr: [u8; 16],
    /// `!VIP + member` and `!member + VIP` summed over the addresses'
    /// 32-bit words in the frame's byte order and folded ([`fold16`]):
    /// what each direction's address rewrite adds to the L4 checksum.
    pub in_delta: u16,
    pub out_delta: u16,
    /// The virtual server's port and the member's (0: any, and the
    /// client's destination port stays).
    pub vs_port: u16,
    pub port: u16,
    pub proto: u8,
    /// An IPv6 DNAT virtual server's member not retired: the only kind
    /// whose packets may fit (SNAT's take the general translation).
    pub fits: bool,
}

impl Fast6 {
    /// The one's-complement term of replacing IPv6 address `old` by `new`
    /// (as they lie in the frame), word by word: what `apply_v6` adds per
    /// address, so a precomputed term folds to the same checksum.
    #[inline(always)]
    pub fn term(old: &[u8; 16], new: &[u8; 16]) -> u64 {
        let word = |a: &[u8; 16], i: usize| [a[i], a[i + 1], a[i + 2], a[i + 3]];
        (0..16)
            .step_by(4)
            .map(|i| Fast4::term(word(old, i), word(new, i)))
            .sum()
    }

    fn new(vs: &Vs, m: &VsMember) -> Fast6 {
        Fast6 {
            vip: vs.vip_bytes,
            addr: m.bytes,
            in_delta: fold16(Fast6::term(&vs.vip_bytes, &m.bytes)),
            out_delta: fold16(Fast6::term(&m.bytes, &vs.vip_bytes)),
            vs_port: vs.port,
            port: m.port,
            proto: vs.proto_number,
            fits: vs.family == Family::V6 && !m.retired && !vs.snats(),
        }
    }
}

/// A virtual server in the snapshot.
#[derive(Clone, PartialEq, Eq)]
pub struct Vs {
    pub name: String,
    pub vip: IpAddr,
    pub(crate) vip_bytes: [u8; 16],
    pub family: Family,
    pub port: u16,
    pub proto: Proto,
    pub(crate) proto_number: u8,
    pub timeouts: Timeouts,
    pub reset_on_timeout: bool,
    pub snat: Snat,
    /// SNAT addresses as key bytes (empty: DNAT only).
    pub(crate) snat_bytes: Box<[[u8; 16]]>,
    pub members: Vec<VsMember>,
    /// Over the active members; `None`: no member takes new flows.
    pub maglev: Option<Table>,
}

impl fmt::Debug for Vs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vs")
            .field("name", &self.name)
            .field("vip", &self.vip)
            .field("port", &self.port)
            .field("proto", &self.proto)
            .field("snat", &self.snat)
            .field("members", &self.members.len())
            .field("maglev", &self.maglev)
            .finish()
    }
}

impl Vs {
    /// True when this VS rewrites the source too.
    #[inline(always)]
    pub fn snats(&self) -> bool {
        !self.snat_bytes.is_empty()
    }
}

/// A member of a virtual server, as the reverse index returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberRef {
    pub vs: u32,
    pub member: u16,
}

/// The immutable virtual-server snapshot. See the module doc.
#[derive(Clone)]
pub struct VsTable {
    vss: Vec<Vs>,
    /// Index of each VS's first member counter in a flat per-member
    /// array, and its member count.
    member_base: Vec<(u32, u32)>,
    /// Each member's [`Fast4`] and [`Fast6`], in that flat order.
    fast4: Vec<Fast4>,
    fast6: Vec<Fast6>,
    members_total: usize,
    /// (VIP, port, protocol) -> the VS's index: IPv6 VIPs here, IPv4
    /// ones in `by_key4` (one word to hash and compare).
    by_key: FixedMap<u32>,
    by_key4: FixedMap<u32, Vs4Key>,
    vips: FixedMap<()>,
    /// The IPv4 VIPs as a 64-bit filter: bit [`vip4_bit`] of each is set
    /// ([`may_be_vip4`](Self::may_be_vip4)).
    vip4_filter: u64,
    /// (member addr, member port, proto) -> range of `refs`.
    by_member: FixedMap<(u32, u32)>,
    refs: Vec<MemberRef>,
    snat_addrs: FixedMap<()>,
    /// Second chance (docs/scale-out.md): where mid-flow TCP packets
    /// without an entry go while a peer instance drains.
    second_chance: SecondChance,
    generation: u64,
}

/// Second chance (GLB Director's name; docs/scale-out.md): while a peer
/// instance drains, the router already sends it no packet (RFC 8326), so
/// a mid-flow TCP packet (no SYN) to a virtual server that this instance
/// has no entry for belongs to a flow the draining peer still tracks; it
/// is sent to that peer at L2, unchanged. Redirects only go from an
/// instance that does not drain to one that does, and a draining instance
/// never redirects: a frame is redirected at most once, so no loop.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecondChance {
    /// This instance drains: it redirects nothing.
    pub draining: bool,
    /// The peers that drain now (at most [`SecondChance::MAX_PEERS`] are
    /// used; the flow hash picks one when several drain at once).
    pub peers: Vec<IpAddr>,
}

impl SecondChance {
    pub const MAX_PEERS: usize = 16;

    /// The peer a mid-flow packet of hash `h` goes to, if any.
    #[inline]
    pub fn peer_for(&self, h: u64) -> Option<IpAddr> {
        if self.draining {
            return None;
        }
        let n = self.peers.len().min(Self::MAX_PEERS);
        if n == 0 {
            return None;
        }
        self.peers
            .get(super::hash::reduce(h, n as u32) as usize)
            .copied()
    }
}

impl fmt::Debug for VsTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VsTable")
            .field("generation", &self.generation)
            .field("vss", &self.vss)
            .finish()
    }
}

impl Default for VsTable {
    fn default() -> Self {
        VsTable::build(&[]).expect("the empty table builds")
    }
}

static GENERATION: AtomicU64 = AtomicU64::new(1);

pub(crate) fn key_bytes(a: IpAddr) -> ([u8; 16], Family) {
    let mut b = [0u8; 16];
    match a {
        IpAddr::V4(v4) => {
            b[..4].copy_from_slice(&v4.octets());
            (b, Family::V4)
        }
        IpAddr::V6(v6) => (v6.octets(), Family::V6),
    }
}

/// Where an IPv4 address falls in [`VsTable`]'s 64-bit VIP filter: the
/// top six bits of a multiplicative hash.
#[inline(always)]
fn vip4_bit(addr: [u8; 4]) -> u32 {
    u32::from_le_bytes(addr).wrapping_mul(0x9e37_79b9) >> 26
}

#[inline(always)]
fn vs_key(vip: &[u8; 16], family: Family, port: u16, proto: u8) -> FlowKey {
    FlowKey::from_parts([0; 16], *vip, 0, port, proto, family)
}

#[inline(always)]
fn addr_key(addr: &[u8; 16], family: Family) -> FlowKey {
    FlowKey::from_parts([0; 16], *addr, 0, 0, 0, family)
}

#[inline(always)]
fn member_key(addr: &[u8; 16], family: Family, port: u16, proto: u8) -> FlowKey {
    FlowKey::from_parts(*addr, [0; 16], port, 0, proto, family)
}

/// Maps `k` to VS `index`, unless an earlier VS has it: a duplicate.
fn claim<K: MapKey>(map: &mut FixedMap<u32, K>, k: K, index: usize) -> Result<(), VsError> {
    if let Some(&first) = map.get(&k) {
        return Err(VsError::Duplicate {
            first: first as usize,
            index,
        });
    }
    map.insert(k, index as u32);
    Ok(())
}

impl VsTable {
    /// Validates `specs` and builds the snapshot (ctrl only: allocates,
    /// builds one Maglev table per VS).
    pub fn build(specs: &[VsSpec]) -> Result<VsTable, VsError> {
        if specs.len() > u32::MAX as usize {
            return Err(VsError::TooMany);
        }
        let mut vss = Vec::with_capacity(specs.len());
        let mut by_key = FixedMap::with_capacity(specs.len());
        let mut by_key4 = FixedMap::with_capacity(specs.len());
        let mut vips = FixedMap::with_capacity(specs.len());
        let mut vip4_filter = 0u64;
        let mut member_base = Vec::with_capacity(specs.len());
        let mut members_total = 0usize;
        for (index, s) in specs.iter().enumerate() {
            let (vip_bytes, family) = key_bytes(s.vip);
            if s.idle_timeout == 0 {
                return Err(VsError::IdleTimeout { index });
            }
            let (port, proto) = (s.port, s.proto.number());
            match family {
                Family::V4 => claim(
                    &mut by_key4,
                    Vs4Key::new(v4(&vip_bytes), port, proto),
                    index,
                )?,
                Family::V6 => claim(&mut by_key, vs_key(&vip_bytes, family, port, proto), index)?,
            }
            vips.insert(addr_key(&vip_bytes, family), ());
            if family == Family::V4 {
                vip4_filter |= 1 << vip4_bit(v4(&vip_bytes));
            }
            let mut members = Vec::with_capacity(s.members.len());
            for (member, m) in s.members.iter().enumerate() {
                let (bytes, f) = key_bytes(m.addr);
                if f != family {
                    return Err(VsError::MemberFamily { index, member });
                }
                members.push(VsMember {
                    addr: m.addr,
                    bytes,
                    port: m.port,
                    weight: m.weight,
                    healthy: m.healthy,
                    retired: false,
                });
            }
            let snat_addrs: &[IpAddr] = match &s.snat {
                Snat::None => &[],
                Snat::Automap(a) => std::slice::from_ref(a),
                Snat::Pool(p) if p.is_empty() => return Err(VsError::SnatPoolEmpty { index }),
                Snat::Pool(p) if p.len() > MAX_SNAT_POOL => {
                    return Err(VsError::SnatPoolTooLarge { index })
                }
                Snat::Pool(p) => p,
            };
            let mut snat_bytes = Vec::with_capacity(snat_addrs.len());
            for &addr in snat_addrs {
                let (b, f) = key_bytes(addr);
                if f != family {
                    return Err(VsError::SnatFamily { index, addr });
                }
                snat_bytes.push(b);
            }
            let maglev =
                build_maglev(&members).map_err(|source| VsError::Maglev { index, source })?;
            member_base.push((members_total as u32, members.len() as u32));
            members_total += members.len();
            vss.push(Vs {
                name: s.name.clone(),
                vip: s.vip,
                vip_bytes,
                family,
                port: s.port,
                proto: s.proto,
                proto_number: s.proto.number(),
                timeouts: Timeouts::new(s.idle_timeout),
                reset_on_timeout: s.reset_on_timeout,
                snat: s.snat.clone(),
                snat_bytes: snat_bytes.into_boxed_slice(),
                members,
                maglev,
            });
        }
        let fast4 = vss
            .iter()
            .flat_map(|vs| vs.members.iter().map(move |m| Fast4::new(vs, m)))
            .collect();
        let fast6 = vss
            .iter()
            .flat_map(|vs| vs.members.iter().map(move |m| Fast6::new(vs, m)))
            .collect();
        // SNAT addresses: never a VIP (their return traffic would be taken
        // for new flows).
        let mut snat_addrs = FixedMap::with_capacity(8);
        for (index, vs) in vss.iter().enumerate() {
            for b in vs.snat_bytes.iter() {
                let k = addr_key(b, vs.family);
                if vips.get(&k).is_some() {
                    return Err(VsError::SnatIsVip {
                        index,
                        addr: k.dst_ip(),
                    });
                }
                snat_addrs.insert(k, ());
            }
        }
        // Reverse index: members grouped by (addr, port, proto).
        let mut all: Vec<(FlowKey, MemberRef)> = Vec::with_capacity(members_total);
        for (v, vs) in vss.iter().enumerate() {
            for (m, mem) in vs.members.iter().enumerate() {
                all.push((
                    member_key(&mem.bytes, vs.family, mem.port, vs.proto_number),
                    MemberRef {
                        vs: v as u32,
                        member: m as u16,
                    },
                ));
            }
        }
        all.sort_by(|a, b| {
            let ka = a.0.parts();
            let kb = b.0.parts();
            (ka.0, ka.2, ka.4, ka.5, a.1.vs, a.1.member)
                .cmp(&(kb.0, kb.2, kb.4, kb.5, b.1.vs, b.1.member))
        });
        let mut by_member = FixedMap::with_capacity(all.len());
        let mut refs = Vec::with_capacity(all.len());
        let mut i = 0;
        while i < all.len() {
            let k = all[i].0;
            let start = refs.len() as u32;
            while i < all.len() && all[i].0 == k {
                refs.push(all[i].1);
                i += 1;
            }
            by_member.insert(k, (start, refs.len() as u32 - start));
        }
        Ok(VsTable {
            vss,
            member_base,
            fast4,
            fast6,
            members_total,
            by_key,
            by_key4,
            vips,
            vip4_filter,
            by_member,
            refs,
            snat_addrs,
            second_chance: SecondChance::default(),
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// Marks member `member` of VS `vs` retired (ctrl, before publishing,
    /// on a reload that removed it; its spec should carry weight 0 so that
    /// it owns no Maglev slot). Connection-table entries point at members
    /// by index, so a removed member leaves a retired slot behind rather
    /// than moving the members after it: their flows stay theirs, while
    /// the retired member's flows no longer fit their entry and are taken
    /// for new ones (a TCP flow is then reset by the member Maglev picks).
    pub fn retire(&mut self, vs: usize, member: usize) {
        let Some(v) = self.vss.get_mut(vs) else {
            return;
        };
        if let Some(m) = v.members.get_mut(member) {
            m.retired = true;
            m.healthy = false;
            m.weight = 0;
            let at = self.member_base[vs].0 as usize + member;
            self.fast4[at] = Fast4::new(v, &v.members[member]);
            self.fast6[at] = Fast6::new(v, &v.members[member]);
        }
    }

    /// A number unique to this build (in this process): workers notice a
    /// new snapshot by it.
    /// Whether `other` holds the same virtual servers, members, health and
    /// Maglev tables (everything but the generation): publishing it would
    /// change nothing but make every worker adopt a "new" table.
    pub fn same_content(&self, other: &VsTable) -> bool {
        self.vss == other.vss
            && self.member_base == other.member_base
            && self.fast4 == other.fast4
            && self.fast6 == other.fast6
            && self.members_total == other.members_total
            && self.by_key == other.by_key
            && self.by_key4 == other.by_key4
            && self.vips == other.vips
            && self.by_member == other.by_member
            && self.refs == other.refs
            && self.snat_addrs == other.snat_addrs
            && self.second_chance == other.second_chance
    }

    /// Sets where mid-flow packets without an entry go (ctrl, before
    /// publishing; see [`SecondChance`]).
    pub fn set_second_chance(&mut self, sc: SecondChance) {
        self.second_chance = sc;
    }

    #[inline]
    pub fn second_chance(&self) -> &SecondChance {
        &self.second_chance
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn len(&self) -> usize {
        self.vss.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vss.is_empty()
    }

    #[inline(always)]
    pub fn get(&self, vs: u32) -> Option<&Vs> {
        self.vss.get(vs as usize)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Vs> {
        self.vss.iter()
    }

    /// Index of VS `vs`'s first member in a flat per-member array of
    /// [`members_total`](Self::members_total) entries.
    pub fn member_base(&self, vs: u32) -> usize {
        self.member_base[vs as usize].0 as usize
    }

    /// Member `member` of VS `vs` as the IPv4 fast path sees it, and its
    /// index in the flat per-member array; `None` if there is no such
    /// member.
    #[inline(always)]
    pub(crate) fn fast4(&self, vs: u32, member: u16) -> Option<(&Fast4, usize)> {
        let i = self.member_at(vs, member)?;
        Some((self.fast4.get(i)?, i))
    }

    /// [`fast4`](Self::fast4) for the IPv6 fast path.
    #[inline(always)]
    pub(crate) fn fast6(&self, vs: u32, member: u16) -> Option<(&Fast6, usize)> {
        let i = self.member_at(vs, member)?;
        Some((self.fast6.get(i)?, i))
    }

    /// Member `member` of VS `vs`'s index in the flat per-member arrays.
    #[inline(always)]
    fn member_at(&self, vs: u32, member: u16) -> Option<usize> {
        let &(base, count) = self.member_base.get(vs as usize)?;
        (u32::from(member) < count).then(|| base as usize + usize::from(member))
    }

    pub fn members_total(&self) -> usize {
        self.members_total
    }

    /// The VS for traffic to `dst:port` (`proto`): the exact port, else
    /// the VIP's all-ports VS.
    #[inline(always)]
    pub fn lookup(&self, dst: &[u8; 16], family: Family, port: u16, proto: u8) -> Option<u32> {
        if family == Family::V4 {
            return self.lookup_v4(v4(dst), port, proto);
        }
        if let Some(&v) = self.by_key.get(&vs_key(dst, family, port, proto)) {
            return Some(v);
        }
        self.by_key.get(&vs_key(dst, family, 0, proto)).copied()
    }

    /// [`lookup`](Self::lookup) for an IPv4 destination: its key one
    /// word.
    #[inline]
    pub fn lookup_v4(&self, dst: [u8; 4], port: u16, proto: u8) -> Option<u32> {
        if let Some(&v) = self.by_key4.get(&Vs4Key::new(dst, port, proto)) {
            return Some(v);
        }
        self.by_key4.get(&Vs4Key::new(dst, 0, proto)).copied()
    }

    /// Convenience over [`lookup`](Self::lookup) for ctrl and tests.
    pub fn lookup_ip(&self, dst: IpAddr, port: u16, proto: Proto) -> Option<u32> {
        let (b, f) = key_bytes(dst);
        self.lookup(&b, f, port, proto.number())
    }

    /// False if `dst` is certainly no IPv4 VIP (true for every VIP, and
    /// for about one address in 64 per VIP besides): a few instructions,
    /// where [`is_vip`](Self::is_vip) is a map lookup.
    #[inline(always)]
    pub fn may_be_vip4(&self, dst: [u8; 4]) -> bool {
        self.vip4_filter >> vip4_bit(dst) & 1 != 0
    }

    /// Is `dst` the address of any virtual server (whatever port)?
    #[inline]
    pub fn is_vip(&self, dst: &[u8; 16], family: Family) -> bool {
        self.vips.get(&addr_key(dst, family)).is_some()
    }

    /// Is `dst` a SNAT address of any virtual server?
    #[inline]
    pub fn is_snat_addr(&self, dst: &[u8; 16], family: Family) -> bool {
        self.snat_addrs.get(&addr_key(dst, family)).is_some()
    }

    /// The virtual servers whose member is `addr:port` (`proto`): members
    /// with that exact port, then members with port 0 (they keep the
    /// client's port, so any port may be theirs).
    #[inline]
    pub fn members_at(
        &self,
        addr: &[u8; 16],
        family: Family,
        port: u16,
        proto: u8,
    ) -> (&[MemberRef], &[MemberRef]) {
        let get = |p| match self.by_member.get(&member_key(addr, family, p, proto)) {
            Some(&(s, n)) => &self.refs[s as usize..(s + n) as usize],
            None => &[][..],
        };
        (get(port), if port == 0 { &[][..] } else { get(0) })
    }
}

fn build_maglev(members: &[VsMember]) -> Result<Option<Table>, MaglevError> {
    if members.is_empty() {
        return Ok(None);
    }
    let ms: Vec<Member> = members
        .iter()
        .map(|m| Member {
            key: MemberKey::new(m.addr, m.port),
            weight: if m.healthy { m.weight } else { 0 },
        })
        .collect();
    let size = maglev::table_size_for(ms.len())?;
    match Table::build(&ms, size) {
        Ok(t) => Ok(Some(t)),
        Err(MaglevError::NoActiveMember) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A key of a [`FixedMap`]: its hash there (the low bits pick the slot).
trait MapKey: Copy + Eq {
    fn map_hash(&self) -> u64;
}

const MAP_HASH: CtHasher = CtHasher::new(0x706f_6c6c_7578_7673); // "polluxvs"

impl MapKey for FlowKey {
    #[inline(always)]
    fn map_hash(&self) -> u64 {
        MAP_HASH.hash(self)
    }
}

/// An IPv4 virtual server's key in one word ([`VsTable::lookup_v4`]):
/// address, port and protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Vs4Key(u64);

impl Vs4Key {
    #[inline(always)]
    fn new(vip: [u8; 4], port: u16, proto: u8) -> Self {
        Vs4Key(u64::from(u32::from_ne_bytes(vip)) | u64::from(port) << 32 | u64::from(proto) << 48)
    }
}

impl MapKey for Vs4Key {
    /// One multiply, its high half folded onto the low bits that pick
    /// the slot.
    #[inline(always)]
    fn map_hash(&self) -> u64 {
        let h = (self.0 ^ 0x706f_6c6c_7578_7673).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^ h >> 32
    }
}

/// A fixed open-addressing map from `K` ([`FlowKey`], [`Vs4Key`]) to `V`,
/// built in ctrl and read per packet: a power-of-two array at most half
/// full, linear probing, a hash with a fixed seed (the keys are the
/// configuration's, so a probe's length does not depend on what arrives).
/// No allocation on `get`.
#[derive(Clone, PartialEq, Eq)]
struct FixedMap<V: Copy, K: MapKey = FlowKey> {
    slots: Box<[Option<(K, V)>]>,
    len: usize,
}

impl<V: Copy, K: MapKey> FixedMap<V, K> {
    fn with_capacity(n: usize) -> Self {
        let cap = (n.max(4) * 2).next_power_of_two();
        FixedMap {
            slots: vec![None; cap].into_boxed_slice(),
            len: 0,
        }
    }

    fn grow(&mut self) {
        let mut bigger = FixedMap::with_capacity(self.slots.len());
        for (k, v) in self.slots.iter().flatten() {
            bigger.insert(*k, *v);
        }
        *self = bigger;
    }

    /// Inserts or replaces (ctrl only).
    fn insert(&mut self, k: K, v: V) {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = k.map_hash() as usize & mask;
        loop {
            match &mut self.slots[i] {
                Some((sk, sv)) if *sk == k => {
                    *sv = v;
                    return;
                }
                Some(_) => i = (i + 1) & mask,
                slot @ None => {
                    *slot = Some((k, v));
                    self.len += 1;
                    return;
                }
            }
        }
    }

    #[inline]
    fn get(&self, k: &K) -> Option<&V> {
        let mask = self.slots.len() - 1;
        let mut i = k.map_hash() as usize & mask;
        // At most half full: an empty slot ends every probe sequence.
        loop {
            match &self.slots[i] {
                Some((sk, v)) if sk == k => return Some(v),
                Some(_) => i = (i + 1) & mask,
                None => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn member(a: &str, port: u16) -> MemberSpec {
        MemberSpec {
            addr: ip(a),
            port,
            weight: 1,
            healthy: true,
        }
    }

    fn spec(vip: &str, port: u16, proto: Proto, members: Vec<MemberSpec>) -> VsSpec {
        VsSpec {
            name: format!("{vip}:{port}"),
            vip: ip(vip),
            port,
            proto,
            idle_timeout: 300,
            reset_on_timeout: true,
            snat: Snat::None,
            members,
        }
    }

    /// The VIP filter never says no to a VIP, and says no to most other
    /// addresses (the probe stage's prefetch for new flows rests on it).
    #[test]
    fn the_vip_filter_admits_every_vip_and_little_else() {
        let vips: Vec<String> = (0..8).map(|i| format!("192.0.2.{}", 10 + i * 7)).collect();
        let specs: Vec<VsSpec> = vips
            .iter()
            .map(|v| spec(v, 80, Proto::Udp, vec![member("10.0.0.1", 53)]))
            .collect();
        let t = VsTable::build(&specs).unwrap();
        for v in &vips {
            let IpAddr::V4(a) = ip(v) else { unreachable!() };
            assert!(t.may_be_vip4(a.octets()), "{v}");
        }
        let admitted = (0..4096u32)
            .map(|i| (0x0a00_0000 | i).to_be_bytes())
            .filter(|a| t.may_be_vip4(*a))
            .count();
        assert!(admitted < 4096 / 4, "{admitted} of 4096 non-VIPs admitted");
        assert!(!VsTable::default().may_be_vip4([192, 0, 2, 10]));
    }

    #[test]
    fn same_content_ignores_only_the_generation() {
        let specs = [spec(
            "192.0.2.1",
            80,
            Proto::Tcp,
            vec![member("10.0.0.1", 8080)],
        )];
        let (a, b) = (
            VsTable::build(&specs).unwrap(),
            VsTable::build(&specs).unwrap(),
        );
        assert_ne!(a.generation(), b.generation());
        assert!(a.same_content(&b));
        let mut down = specs.clone();
        down[0].members[0].healthy = false;
        assert!(!a.same_content(&VsTable::build(&down).unwrap()));
        let mut other_port = specs.clone();
        other_port[0].members[0].port = 8081;
        assert!(!a.same_content(&VsTable::build(&other_port).unwrap()));
    }

    #[test]
    fn lookup_exact_port_then_all_ports_and_vip() {
        let t = VsTable::build(&[
            spec(
                "192.168.77.1",
                80,
                Proto::Tcp,
                vec![member("10.1.0.1", 8080)],
            ),
            spec("192.168.77.1", 0, Proto::Tcp, vec![member("10.1.0.2", 0)]),
            spec("192.168.77.1", 53, Proto::Udp, vec![member("10.1.0.3", 53)]),
            spec("fd00::80", 443, Proto::Tcp, vec![member("fd01::1", 443)]),
        ])
        .unwrap();
        let v = ip("192.168.77.1");
        assert_eq!(t.lookup_ip(v, 80, Proto::Tcp), Some(0));
        assert_eq!(t.lookup_ip(v, 81, Proto::Tcp), Some(1));
        assert_eq!(t.lookup_ip(v, 53, Proto::Udp), Some(2));
        assert_eq!(t.lookup_ip(v, 54, Proto::Udp), None);
        assert_eq!(t.lookup_ip(ip("fd00::80"), 443, Proto::Tcp), Some(3));
        assert_eq!(t.lookup_ip(ip("fd00::80"), 80, Proto::Tcp), None);
        assert_eq!(t.lookup_ip(ip("192.168.77.2"), 80, Proto::Tcp), None);
        let (b, f) = key_bytes(v);
        assert!(t.is_vip(&b, f));
        let (b, f) = key_bytes(ip("10.1.0.1"));
        assert!(!t.is_vip(&b, f));
        assert_eq!(t.members_total(), 4);
        assert_eq!(t.member_base(3), 3);
    }

    #[test]
    fn reverse_index_finds_every_vs_of_a_member() {
        let shared = member("10.1.0.1", 8080);
        let t = VsTable::build(&[
            spec(
                "192.168.77.1",
                80,
                Proto::Tcp,
                vec![shared, member("10.1.0.2", 8080)],
            ),
            spec(
                "192.168.77.2",
                80,
                Proto::Tcp,
                vec![member("10.1.0.9", 1), shared],
            ),
            spec("192.168.77.3", 0, Proto::Tcp, vec![member("10.1.0.1", 0)]),
        ])
        .unwrap();
        let (b, f) = key_bytes(ip("10.1.0.1"));
        let (exact, any) = t.members_at(&b, f, 8080, PROTO_TCP);
        assert_eq!(
            exact,
            &[
                MemberRef { vs: 0, member: 0 },
                MemberRef { vs: 1, member: 1 }
            ]
        );
        assert_eq!(any, &[MemberRef { vs: 2, member: 0 }]);
        let (exact, _) = t.members_at(&b, f, 8080, PROTO_UDP);
        assert!(exact.is_empty());
    }

    #[test]
    fn maglev_over_healthy_weighted_members_or_none() {
        let mut down = member("10.1.0.1", 80);
        down.healthy = false;
        let mut drained = member("10.1.0.2", 80);
        drained.weight = 0;
        let t = VsTable::build(&[
            spec(
                "192.168.77.1",
                80,
                Proto::Tcp,
                vec![down, drained, member("10.1.0.3", 80)],
            ),
            spec("192.168.77.2", 80, Proto::Tcp, vec![down, drained]),
            spec("192.168.77.3", 80, Proto::Tcp, vec![]),
        ])
        .unwrap();
        let m = t.get(0).unwrap().maglev.as_ref().unwrap();
        assert_eq!(m.slot_counts(), vec![0, 0, m.size()]);
        assert!(t.get(1).unwrap().maglev.is_none());
        assert!(t.get(2).unwrap().maglev.is_none());
    }

    #[test]
    fn build_rejects_bad_specs() {
        let ok = spec("192.168.77.1", 80, Proto::Tcp, vec![member("10.1.0.1", 80)]);
        let err = |specs: &[VsSpec]| VsTable::build(specs).unwrap_err();
        assert_eq!(
            err(&[ok.clone(), ok.clone()]),
            VsError::Duplicate { first: 0, index: 1 }
        );
        let six = spec("fd00::80", 80, Proto::Tcp, vec![member("fd01::1", 80)]);
        assert_eq!(
            err(&[six.clone(), ok.clone(), six]),
            VsError::Duplicate { first: 0, index: 2 }
        );
        let mut s = ok.clone();
        s.members.push(member("fd00::1", 80));
        assert_eq!(
            err(&[s]),
            VsError::MemberFamily {
                index: 0,
                member: 1
            }
        );
        let mut s = ok.clone();
        s.snat = Snat::Automap(ip("fd00::2"));
        assert!(matches!(err(&[s]), VsError::SnatFamily { index: 0, .. }));
        let mut s = ok.clone();
        s.snat = Snat::Pool(vec![]);
        assert_eq!(err(&[s]), VsError::SnatPoolEmpty { index: 0 });
        let mut s = ok.clone();
        s.snat = Snat::Pool((0..33).map(|i| ip(&format!("10.9.0.{i}"))).collect());
        assert_eq!(err(&[s]), VsError::SnatPoolTooLarge { index: 0 });
        let mut s = ok.clone();
        s.snat = Snat::Automap(ip("192.168.77.1"));
        assert!(matches!(err(&[s]), VsError::SnatIsVip { index: 0, .. }));
        let mut s = ok.clone();
        s.idle_timeout = 0;
        assert_eq!(err(&[s]), VsError::IdleTimeout { index: 0 });
        let mut s = ok.clone();
        s.members.push(member("10.1.0.1", 80));
        assert!(matches!(
            err(&[s]),
            VsError::Maglev {
                index: 0,
                source: MaglevError::DuplicateMember { .. }
            }
        ));
        let e = VsError::Duplicate { first: 0, index: 1 };
        assert_eq!(
            e.to_string(),
            "virtual server 1: same address, port and protocol as virtual server 0"
        );
    }

    #[test]
    fn snat_addresses_are_known_and_generations_differ() {
        let mut s = spec("192.168.77.1", 80, Proto::Tcp, vec![member("10.1.0.1", 80)]);
        s.snat = Snat::Pool(vec![ip("10.0.0.50"), ip("10.0.0.51")]);
        let t = VsTable::build(&[s]).unwrap();
        let (b, f) = key_bytes(ip("10.0.0.51"));
        assert!(t.is_snat_addr(&b, f));
        let (b, f) = key_bytes(ip("10.0.0.52"));
        assert!(!t.is_snat_addr(&b, f));
        assert_ne!(t.generation(), VsTable::default().generation());
    }

    #[test]
    fn fixed_map_grows_and_finds_everything() {
        let mut m = FixedMap::with_capacity(1);
        for i in 0..1000u32 {
            let (b, f) = key_bytes(IpAddr::from(i.to_be_bytes()));
            m.insert(addr_key(&b, f), i);
        }
        for i in 0..1000u32 {
            let (b, f) = key_bytes(IpAddr::from(i.to_be_bytes()));
            assert_eq!(m.get(&addr_key(&b, f)), Some(&i));
        }
        let (b, f) = key_bytes(ip("1.2.3.4"));
        assert_eq!(m.get(&addr_key(&b, Family::V6)), None);
        let _ = f;
        assert_eq!(m.len, 1000);
    }

    #[test]
    fn the_one_word_map_keeps_address_port_and_protocol_apart() {
        let mut m = FixedMap::with_capacity(1);
        let key = |i: u32| {
            Vs4Key::new(
                (i / 8).to_be_bytes(),
                (i % 4) as u16,
                6 + 11 * (i / 4 % 2) as u8,
            )
        };
        for i in 0..4000 {
            m.insert(key(i), i);
        }
        for i in 0..4000 {
            assert_eq!(m.get(&key(i)), Some(&i));
        }
        assert_eq!(m.get(&Vs4Key::new([0, 0, 0, 0], 0, 1)), None);
        assert_eq!(m.len, 4000);
    }
}

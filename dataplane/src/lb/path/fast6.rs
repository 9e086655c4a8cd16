//! The IPv6 established-flow fast path: the cache of the slow path's
//! decisions that `fast.rs` is for IPv4, for IPv6 frames without
//! extension headers.
//!
//! It classifies by fixed offsets into the slow path's own `Pkt` and
//! `Ports` and looks the flow up without marking it. A DNAT flow's packet
//! is fitted and rewritten as IPv4's is: its member's [`Fast6`] record
//! (built with the table) holds what `fits_forward` and `fits_reverse`
//! compare and the address's checksum term, so the rewrite writes one
//! address and port and folds one sum (`apply_v6`'s bytes, which the
//! differential test holds it to). A SNAT flow's packet takes the slow
//! path's fit checks, translation ([`L4::translation`]) and rewrite
//! (`apply`). A frame it classifies but leaves (a new flow, a client's SYN
//! on a closing flow) goes on to [`L4::process_classified`] with that
//! record, as an IPv4 one does. What it skips is the host stage, the
//! generic parse with its extension-header walk, the entry decode of a
//! `FlowRef` and the verdict's routing through the FIB and the neighbour
//! cache (the worker memoises the next hop per burst). One frame at a
//! time: no prefetch stages yet (an IPv6 key is 40 bytes and its entry
//! 48; the IPv4 path's pipeline is the model when IPv6 traffic needs it
//! at millions of flows).
//!
//! [`Fast6`]: crate::lb::vs::Fast6

use super::parse::{Pkt, Ports};
use super::{fits_forward, fits_reverse, Direction, Rewrite, FLAG_RESETTING, FLAG_REVERSE, L4};
use crate::lb::conntrack::{Entry, Secs, Slot, TcpState};
use crate::lb::flow::{Family, FlowKey, PROTO_TCP, PROTO_UDP};
use crate::lb::path::fast::{reopens, Classifier, Miss, BFD_PORTS};
use crate::lb::vs::{port_term16, Fast6, Vs, VsTable};
use crate::wire::be16;
use crate::wire::checksum;

/// Ethernet + IPv6 (no extension header): where the transport starts.
const L4_AT: usize = 14 + 40;
/// The shortest frame looked at: Ethernet, IPv6, a UDP header.
const MIN_FRAME: usize = L4_AT + 8;

/// One IPv6 frame of the fast class, parsed as the slow path would.
#[derive(Clone, Copy, Debug)]
pub struct V6Flow {
    pub(super) p: Pkt,
    pub(super) ports: Ports,
    pub(super) key: FlowKey,
    pub(super) hash: u64,
}

impl Default for V6Flow {
    fn default() -> Self {
        V6Flow {
            p: Pkt {
                family: Family::V6,
                ip: 14,
                l4: L4_AT,
                end: 0,
                proto: 0,
                src: [0; 16],
                dst: [0; 16],
                ttl: 0,
                frag: false,
            },
            ports: Ports {
                sport: 0,
                dport: 0,
                flags: 0,
                hlen: 0,
            },
            key: FlowKey::v6([0; 16], [0; 16], 0, 0, 0),
            hash: 0,
        }
    }
}

impl Classifier<'_> {
    /// [`classify_v6_into`](Self::classify_v6_into), the record returned.
    pub fn classify_v6(&self, frame: &[u8]) -> Option<V6Flow> {
        let mut flow = V6Flow::default();
        self.classify_v6_into(frame, &mut flow).then_some(flow)
    }

    /// The IPv6 twin of [`Classifier::classify`]: true only for a frame
    /// that the host stage would pass to the L4 path unchanged (our MAC,
    /// untagged, not multicast, not BFD) and that the L4 path would parse
    /// without an error into a TCP or UDP packet with hop limit
    /// left; its record in `flow` (written whole when true, and
    /// whatever else when false). In place, as IPv4's classify writes
    /// its record: returned, the record (≈ 150 bytes) was built, then
    /// moved (19 instructions a new IPv6 flow, measured).
    #[inline(always)]
    pub fn classify_v6_into(&self, frame: &[u8], flow: &mut V6Flow) -> bool {
        self.classify_v6_in(frame, flow).is_some()
    }

    #[inline(always)]
    fn classify_v6_in(&self, frame: &[u8], flow: &mut V6Flow) -> Option<()> {
        let len = frame.len();
        let h = frame.first_chunk::<MIN_FRAME>()?;
        let w0 = u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
        if (w0 ^ self.ours) << 16 != 0 || h[12] != 0x86 || h[13] != 0xdd || h[14] >> 4 != 6 {
            return None;
        }
        let payload = usize::from(be16(h, 18));
        let (proto, hop_limit) = (h[20], h[21]);
        if L4_AT + payload > len || len - 14 > self.mtu || hop_limit <= 1 || h[38] == 0xff {
            return None;
        }
        let (sport, dport) = (be16(h, L4_AT), be16(h, L4_AT + 2));
        let (flags, hlen) = match proto {
            PROTO_TCP => {
                let t = frame.get(L4_AT..)?.first_chunk::<20>()?;
                let data_at = usize::from(t[12] >> 4) * 4;
                if payload < 20 || data_at < 20 || data_at > payload {
                    return None;
                }
                (t[13], data_at)
            }
            PROTO_UDP => {
                let ulen = usize::from(be16(h, L4_AT + 4));
                if payload < 8 || ulen < 8 || ulen > payload || BFD_PORTS.contains(&dport) {
                    return None;
                }
                (0, 8)
            }
            _ => return None,
        };
        let src: [u8; 16] = h[22..38].try_into().ok()?;
        let dst: [u8; 16] = h[38..54].try_into().ok()?;
        // Field by field: the record's constant fields (family, offsets)
        // are its default's, and a whole-record store rewrote them.
        flow.key = FlowKey::v6(src, dst, sport, dport, proto);
        flow.hash = self.hasher.hash(&flow.key);
        let p = &mut flow.p;
        (p.end, p.proto, p.src, p.dst, p.ttl) = (L4_AT + payload, proto, src, dst, hop_limit);
        flow.ports = Ports {
            sport,
            dport,
            flags,
            hlen,
        };
        Some(())
    }
}

/// How the commit stage rewrites an IPv6 packet.
#[derive(Clone, Copy, Debug)]
enum Rewrite6<'t> {
    /// A DNAT flow's: its member's record (which the packet fit) and the
    /// port the direction translates to (a client's destination port, a
    /// member's source port); the address and its checksum term are the
    /// record's.
    Dnat { m: &'t Fast6, port: u16 },
    /// A SNAT flow's: the slow path's translation, applied as it does.
    General(Rewrite),
}

/// The slow path's decision for a packet of an established IPv6 flow.
#[derive(Clone, Copy, Debug)]
pub struct FastHit6<'t> {
    slot: Slot,
    /// The member's index in the table's flat per-member array.
    member_slot: usize,
    dir: Direction,
    rw: Rewrite6<'t>,
    /// The TCP state the packet moves its entry to, and its timeout.
    state: Option<(TcpState, u16)>,
}

impl FastHit6<'_> {
    /// Member -> client (else client -> member).
    #[inline(always)]
    pub fn is_reply(&self) -> bool {
        self.dir == Direction::Out
    }

    /// The packet's destination after the rewrite (where to route it).
    #[inline(always)]
    pub fn dst(&self, flow: &V6Flow) -> [u8; 16] {
        match (&self.rw, self.dir) {
            (Rewrite6::Dnat { m, .. }, Direction::In) => m.addr,
            (Rewrite6::Dnat { .. }, Direction::Out) => flow.p.dst,
            (Rewrite6::General(rw), _) => rw.dst.map_or(flow.p.dst, |d| d.0),
        }
    }
}

impl L4 {
    /// The IPv6 match stage: what the slow path would do with this packet
    /// of a tracked flow, if the fast path can do it. Changes nothing. A
    /// DNAT flow's member as the table's `Fast6` record (the fit and the
    /// address's checksum term are its), a SNAT flow's through the slow
    /// path's own fit checks and translation.
    #[inline(always)]
    pub fn fast_match_v6<'t>(
        &self,
        flow: &V6Flow,
        now: Secs,
        tables: &'t VsTable,
    ) -> Result<FastHit6<'t>, Miss> {
        let slot = self
            .ct
            .find_v6(&flow.key, flow.hash, now)
            .ok_or(Miss::Untracked)?;
        let e = self.ct.entry_v6(slot);
        if e.flags & FLAG_RESETTING != 0 || reopens(flow.ports.flags, e.state, e.flags) {
            return Err(Miss::Slow);
        }
        let (m, member_slot) = tables.fast6(e.vs, e.member).ok_or(Miss::Slow)?;
        let vs = || tables.get(e.vs).ok_or(Miss::Slow);
        let (p, ports) = (&flow.p, flow.ports);
        let (dir, rw) = if !m.fits {
            self.general_v6(vs()?, flow, e)?
        } else if e.flags & FLAG_REVERSE == 0 {
            // fits_forward
            if p.dst != m.vip || p.proto != m.proto || (m.vs_port != 0 && m.vs_port != ports.dport)
            {
                return Err(Miss::Slow);
            }
            let port = if m.port == 0 { ports.dport } else { m.port };
            (Direction::In, Rewrite6::Dnat { m, port })
        } else {
            // fits_reverse
            if p.src != m.addr || p.proto != m.proto || (m.port != 0 && m.port != ports.sport) {
                return Err(Miss::Slow);
            }
            (
                Direction::Out,
                Rewrite6::Dnat {
                    m,
                    port: e.nat_port,
                },
            )
        };
        let state = match super::fast::next_state(p.proto, e.state, ports.flags) {
            Some(next) => Some((next, vs()?.timeouts.for_state(PROTO_TCP, next))),
            None => None,
        };
        Ok(FastHit6 {
            slot,
            member_slot,
            dir,
            rw,
            state,
        })
    }

    /// A packet of a flow whose member has no [`Fast6`] fit (a SNAT
    /// virtual server's, or one the fit refuses: then the slow path's
    /// checks refuse it too): the slow path's checks and translation.
    /// Out of line: DNAT's match stage has no use for its registers.
    #[inline(never)]
    fn general_v6(
        &self,
        vs: &Vs,
        flow: &V6Flow,
        e: &Entry,
    ) -> Result<(Direction, Rewrite6<'static>), Miss> {
        let fits = if e.flags & FLAG_REVERSE == 0 {
            fits_forward(vs, &flow.p, flow.ports.dport, e.member)
        } else {
            fits_reverse(vs, &flow.p, e.member, flow.ports.sport)
        };
        if !fits {
            return Err(Miss::Slow);
        }
        let (rw, dir) = self
            .translation(vs, &flow.p, flow.ports, e, flow.hash)
            .ok_or(Miss::Slow)?;
        Ok((dir, Rewrite6::General(rw)))
    }

    /// The IPv6 commit stage: marks the flow seen, rewrites the frame in
    /// place and counts it, as the slow path does (`pass`).
    #[inline(always)]
    pub fn fast_commit_v6(&mut self, hit: &FastHit6, flow: &V6Flow, frame: &mut [u8], now: Secs) {
        self.ct.touch_v6(hit.slot, now);
        if let Some((state, timeout)) = hit.state {
            self.ct.set_state_v6(hit.slot, state, timeout);
        }
        match hit.rw {
            Rewrite6::Dnat { m, port } => {
                let (to, delta) = match hit.dir {
                    Direction::In => (&m.addr, m.in_delta),
                    Direction::Out => (&m.vip, m.out_delta),
                };
                rewrite_dnat(frame, flow, hit.dir, (to, port, delta))
            }
            Rewrite6::General(rw) => {
                super::apply(frame, &flow.p, rw);
            }
        }
        self.count_pass(hit.dir, hit.member_slot, frame.len() as u64);
    }
}

/// `apply_v6` for a DNAT packet of the fast class whose address the
/// member's record fit (so the address replaced is the one its `delta`
/// was found from): the same bytes, checksum included (the same sum, its
/// pieces folded: [`checksum::add16`]), without summing the addresses'
/// words again.
#[inline(always)]
fn rewrite_dnat(
    frame: &mut [u8],
    flow: &V6Flow,
    dir: Direction,
    (to, port, delta): (&[u8; 16], u16, u16),
) {
    const SRC_AT: usize = 14 + 8;
    const DST_AT: usize = 14 + 24;
    let udp = flow.p.proto == PROTO_UDP;
    let sum_at = L4_AT + if udp { 6 } else { 16 };
    let Some(f) = frame.get_mut(..flow.p.end) else {
        return; // classify saw the frame hold the packet
    };
    let Some(h) = f.get_mut(..sum_at + 2) else {
        return; // and a whole UDP or TCP header
    };
    let (addr_at, port_at) = match dir {
        Direction::In => (DST_AT, L4_AT + 2),
        Direction::Out => (SRC_AT, L4_AT),
    };
    let old = u16::from_be_bytes([h[port_at], h[port_at + 1]]);
    let sum = checksum::add16(delta, port_term16(old, port));
    h[addr_at..addr_at + 16].copy_from_slice(to);
    h[port_at..port_at + 2].copy_from_slice(&port.to_be_bytes());
    h[14 + 7] -= 1; // classify: hop limit > 1
    let old = u16::from_ne_bytes([h[sum_at], h[sum_at + 1]]);
    let mut c = !checksum::add16(!old, sum);
    if udp && c == 0 {
        c = 0xffff;
    }
    h[sum_at..sum_at + 2].copy_from_slice(&c.to_ne_bytes());
}

//! The IPv6 established-flow fast path: the cache of the slow path's
//! decisions that `fast.rs` is for IPv4, for IPv6 frames without
//! extension headers.
//!
//! It classifies by fixed offsets into the slow path's own `Pkt` and
//! `Ports`, looks the flow up without marking it, and reuses the slow
//! path's fit checks, translation ([`L4::translation`]) and rewrite
//! (`apply`): the frames it sends are the slow path's by construction,
//! and the differential test holds it to that. A frame it classifies but
//! leaves (a new flow, a client's SYN on a closing flow) goes on to
//! [`L4::process_classified`] with that record, as an IPv4 one does. What
//! it skips is the host stage, the generic parse with its extension-header
//! walk, the entry decode of a `FlowRef` and the verdict's routing through
//! the FIB and the neighbour cache (the worker memoises the next hop per
//! burst). One
//! frame at a time: no prefetch stages yet (an IPv6 key is 40 bytes and
//! its entry 48; the IPv4 path's pipeline is the model when IPv6 traffic
//! needs it at millions of flows).

use super::parse::{Pkt, Ports};
use super::{fits_forward, fits_reverse, Direction, Rewrite, FLAG_RESETTING, FLAG_REVERSE, L4};
use crate::lb::conntrack::{Secs, Slot, TcpState};
use crate::lb::flow::{Family, FlowKey, PROTO_TCP, PROTO_UDP};
use crate::lb::path::fast::{reopens, state_change, Classifier, Miss, BFD_PORTS};
use crate::lb::vs::VsTable;
use crate::wire::be16;

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
        let key = FlowKey::v6(src, dst, sport, dport, proto);
        *flow = V6Flow {
            p: Pkt {
                family: Family::V6,
                ip: 14,
                l4: L4_AT,
                end: L4_AT + payload,
                proto,
                src,
                dst,
                ttl: hop_limit,
                frag: false,
            },
            ports: Ports {
                sport,
                dport,
                flags,
                hlen,
            },
            hash: self.hasher.hash(&key),
            key,
        };
        Some(())
    }
}

/// The slow path's decision for a packet of an established IPv6 flow.
#[derive(Clone, Copy, Debug)]
pub struct FastHit6 {
    slot: Slot,
    vs: u32,
    member: u16,
    dir: Direction,
    rw: Rewrite,
    /// The TCP state the packet moves its entry to, and its timeout.
    state: Option<(TcpState, u16)>,
}

impl FastHit6 {
    /// Member -> client (else client -> member).
    #[inline(always)]
    pub fn is_reply(&self) -> bool {
        self.dir == Direction::Out
    }

    /// The packet's destination after the rewrite (where to route it).
    #[inline(always)]
    pub fn dst(&self, flow: &V6Flow) -> [u8; 16] {
        self.rw.dst.map_or(flow.p.dst, |d| d.0)
    }
}

impl L4 {
    /// The IPv6 match stage: what the slow path would do with this packet
    /// of a tracked flow, if the fast path can do it. Changes nothing.
    #[inline(always)]
    pub fn fast_match_v6(
        &self,
        flow: &V6Flow,
        now: Secs,
        tables: &VsTable,
    ) -> Result<FastHit6, Miss> {
        let slot = self
            .ct
            .find_v6(&flow.key, flow.hash, now)
            .ok_or(Miss::Untracked)?;
        let e = self.ct.entry_v6(slot);
        if e.flags & FLAG_RESETTING != 0 || reopens(flow.ports.flags, e.state, e.flags) {
            return Err(Miss::Slow);
        }
        let vs = tables.get(e.vs).ok_or(Miss::Slow)?;
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
        Ok(FastHit6 {
            slot,
            vs: e.vs,
            member: e.member,
            dir,
            rw,
            state: state_change(flow.p.proto, e.state, flow.ports.flags, vs),
        })
    }

    /// The IPv6 commit stage: marks the flow seen, rewrites the frame in
    /// place and counts it, as the slow path does (`pass`).
    #[inline(always)]
    pub fn fast_commit_v6(
        &mut self,
        hit: &FastHit6,
        flow: &V6Flow,
        frame: &mut [u8],
        now: Secs,
        tables: &VsTable,
    ) {
        self.ct.touch_v6(hit.slot, now);
        if let Some((state, timeout)) = hit.state {
            self.ct.set_state_v6(hit.slot, state, timeout);
        }
        super::apply(frame, &flow.p, hit.rw);
        let member_slot = tables.member_base(hit.vs) + usize::from(hit.member);
        self.count_pass(hit.dir, member_slot, frame.len() as u64);
    }
}

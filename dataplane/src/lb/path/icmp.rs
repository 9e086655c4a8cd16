//! ICMP errors about tracked flows, a cold path of [`L4::process`]:
//! parsing the datagram an error quotes, checking the ICMP checksum, and
//! translating the outer and the quoted headers so that the error reaches
//! the flow's other end. Steering (`steer.rs`) reuses `parse_inner` to
//! pick the worker that owns the quoted flow.

use super::counters::L4Drop;
use super::parse::{ip_of, Pkt};
use super::rewrite::forward_rewrite;
use super::{pool_index, L4Verdict, RevKey, FLAG_REVERSE, L4};
use crate::lb::conntrack::Secs;
use crate::lb::flow::{Family, FlowKey, PROTO_TCP, PROTO_UDP};
use crate::lb::nat;
use crate::lb::vs::VsTable;
use crate::wire::checksum;
use crate::wire::ipv4::protocol;

/// The datagram quoted in an ICMP error: offsets and 5-tuple.
pub(super) struct Inner {
    pub(super) ip: usize,
    pub(super) l4: usize,
    /// Bytes of the quoted transport header present (at least 4).
    pub(super) avail: usize,
    pub(super) proto: u8,
    pub(super) src: [u8; 16],
    pub(super) dst: [u8; 16],
    pub(super) sport: u16,
    pub(super) dport: u16,
}

pub(super) fn parse_inner(frame: &[u8], ip: usize, end: usize, family: Family) -> Option<Inner> {
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
    pub(super) fn icmp(
        &mut self,
        now: Secs,
        frame: &mut [u8],
        p: &Pkt,
        tables: &VsTable,
    ) -> L4Verdict {
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
}

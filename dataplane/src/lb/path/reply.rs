//! What the path answers, or maps back, without a flow entry: an RST or
//! ICMP port unreachable for a VIP port no virtual server serves
//! (rate-limited by a token bucket), the RST that ends a flow being
//! reset, and return traffic whose entry is gone, through its SNAT record
//! or statelessly when the member's address and port name a single DNAT
//! virtual server. All off the established path: [`L4::process`] calls in
//! here on a miss.

use super::counters::L4Drop;
use super::parse::{ip_of, Pkt, Ports};
use super::rewrite::Rewrite;
use super::{fits_reverse, pool_index, L4Verdict, FLAG_RESETTING, FLAG_REVERSE, L4};
use crate::lb::conntrack::Secs;
use crate::lb::flow::{Family, PROTO_TCP};
use crate::lb::nat;
use crate::lb::vs::VsTable;
use crate::wire::tcp;

/// A token bucket refilled per second of the burst clock.
#[derive(Debug, Clone, Copy)]
pub(super) struct TokenBucket {
    pub(super) tokens: u32,
    pub(super) last: Secs,
    pub(super) rate: u32,
    pub(super) burst: u32,
}

impl TokenBucket {
    pub(super) fn take(&mut self, now: Secs) -> bool {
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

/// Swaps the two MAC addresses of the frame (a reply goes back to its sender).
fn swap_macs(frame: &mut [u8]) {
    for i in 0..6 {
        frame.swap(i, i + 6);
    }
}

impl L4 {
    /// TCP to a VIP port without a VS: RST; UDP: ICMP port unreachable.
    #[cold]
    pub(super) fn closed_port(
        &mut self,
        now: Secs,
        frame: &mut [u8],
        p: &Pkt,
        ports: Ports,
    ) -> L4Verdict {
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
    pub(super) fn snat_return_via_slot(
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
    pub(super) fn stateless_return(
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
    pub(super) fn answer_reset(&mut self, frame: &mut [u8], p: &Pkt) -> L4Verdict {
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
pub(super) fn stateless_reverse(
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

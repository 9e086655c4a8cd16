//! The first packet of a flow: what [`L4::process`] does on a conntrack
//! miss for a virtual server. Picks the member (Maglev) and, for a SNAT
//! virtual server, a SNAT port and record; inserts both entries; forwards
//! the packet, statelessly and counted when the table refuses the flow.
//! From the second packet on, the flow is the dispatcher's (or the fast
//! path's) established case.

use super::counters::L4Drop;
use super::parse::{Pkt, Ports};
use super::reply::stateless_reverse;
use super::rewrite::Rewrite;
use super::snat::SnatFlow;
use super::{on_flags, L4Verdict, Pick, FLAG_REVERSE, L4, POOL_SHIFT};
use crate::lb::conntrack::{FlowValue, Secs, TcpState, FLAG_RESET_ON_TIMEOUT};
use crate::lb::flow::{FlowHasher, FlowKey, PROTO_TCP};
use crate::lb::vs::VsTable;
use crate::wire::tcp;

/// How a new flow's first packet goes on ([`L4::admit`]'s answer when
/// it forwards it): its rewrite, and the virtual server and member it is
/// counted for.
#[derive(Clone, Copy, Debug)]
pub(super) struct Admitted {
    pub rw: Rewrite,
    pub vs: u32,
    pub member: u16,
}

impl L4 {
    /// First packet of a flow to VS `v` (or a packet of a flow whose
    /// entry is gone: loose initialisation), whose key `key` (hash `h`)
    /// is not live in the table; `pick`: what the probe stage found this
    /// decision will pick (the same, found a stage before).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new_flow(
        &mut self,
        now: Secs,
        frame: &mut [u8],
        len: usize,
        p: &Pkt,
        ports: Ports,
        flow: (&FlowKey, u64),
        pick: (u32, Option<&Pick>),
        tables: &VsTable,
    ) -> L4Verdict {
        match self.admit(now, p.ttl, ports, flow, pick, tables) {
            Ok(Admitted { rw, vs, member }) => self.forward(frame, len, p, rw, vs, member, tables),
            Err(verdict) => verdict,
        }
    }

    /// [`new_flow`](Self::new_flow)'s decision, all but the packet's
    /// rewrite: the flow tracked (both entries inserted, counted) and
    /// its packet to forward as [`Admitted`] says; or forwarded untracked
    /// (counted so: the table refused it, an RST); or the verdict that
    /// ends it (dropped, counted). `ttl`: the packet's; the rest of what
    /// it needs of the packet is in its key (the new flows' stage has no
    /// [`Pkt`] to build).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn admit(
        &mut self,
        now: Secs,
        ttl: u8,
        ports: Ports,
        (key, h): (&FlowKey, u64),
        (v, pick): (u32, Option<&Pick>),
        tables: &VsTable,
    ) -> Result<Admitted, L4Verdict> {
        let Some(vs) = tables.get(v) else {
            return Err(L4Verdict::NotL4);
        };
        let Some(maglev) = vs.maglev.as_ref() else {
            if let Some(c) = self.vs_counters.get_mut(v as usize) {
                c.no_member += 1;
            }
            return Err(self.drop_with(L4Drop::NoHealthyMember));
        };
        if ttl <= 1 {
            return Err(self.drop_with(L4Drop::TtlExpired));
        }
        let (family, proto) = (key.family(), key.proto());
        let (m, mh) = match pick {
            // A DNAT virtual server's: no SNAT pool to pick either.
            Some(pick) => (pick.member, None),
            None => {
                let mh = FlowHasher::MAGLEV.hash(key);
                (maglev.lookup(mh), Some(mh))
            }
        };
        debug_assert_eq!(m, maglev.lookup(FlowHasher::MAGLEV.hash(key)));
        let member = &vs.members[usize::from(m)];
        let mport = if member.port == 0 {
            ports.dport
        } else {
            member.port
        };
        let tcp = proto == PROTO_TCP;
        let rst = tcp && ports.flags & tcp::RST != 0;
        if vs.snats() && tcp && ports.flags & tcp::SYN == 0 {
            return Err(self.drop_with(L4Drop::SnatNeedsSyn));
        }
        let mut rev = None;
        let snat = if vs.snats() {
            let mh = mh.unwrap_or_else(|| FlowHasher::MAGLEV.hash(key));
            let pool = super::hash::reduce(mh, vs.snat_bytes.len() as u32) as usize;
            let addr = &vs.snat_bytes[pool];
            match self.alloc_snat_port(now, key, h, addr, &member.bytes, mport) {
                Some((port, rkey, rh)) => {
                    rev = Some((rkey, rh));
                    Some((pool, port))
                }
                None => return Err(self.drop_with(L4Drop::SnatExhausted)),
            }
        } else {
            None
        };
        let rw = Rewrite {
            src: snat.map(|(pool, port)| (vs.snat_bytes[pool], port)),
            dst: Some((member.bytes, mport)),
        };
        let admitted = Admitted {
            rw,
            vs: v,
            member: m,
        };
        let untracked = |l4: &mut L4| {
            if snat.is_some() {
                return Err(l4.drop_with(L4Drop::SnatUntracked));
            }
            // Only what can come back: the member's replies must map to
            // this VS without state.
            let back = stateless_reverse(tables, &member.bytes, family, mport, proto);
            if back.is_none_or(|(bv, bm, _)| (bv, bm) != (v, m)) {
                return Err(l4.drop_with(L4Drop::UntrackedUnreturnable));
            }
            l4.counters.untracked += 1;
            if let Some(c) = l4.vs_counters.get_mut(v as usize) {
                c.untracked += 1;
            }
            Ok(admitted)
        };
        if rst {
            // An RST for no flow: pass it on, do not start tracking.
            return untracked(self);
        }
        let state = if tcp {
            on_flags(TcpState::None, ports.flags)
        } else {
            TcpState::None
        };
        let timeout = vs.timeouts.for_state(proto, state);
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
        if self.ct.place_absent(key, h, value, now).is_err() {
            return untracked(self);
        }
        let evicted = self.ct.take_evicted();
        self.on_evicted(evicted, tables);
        // The reverse entry: the member's replies, by their own 5-tuple
        // (by reference: a copy of the key from either arm into one place
        // cost up to 24 instructions a flow, as LLVM moved it byte-wise).
        let built;
        let (rkey, rh) = match &rev {
            Some((rkey, rh)) => (rkey, *rh),
            None => {
                built = FlowKey::from_parts(
                    member.bytes,
                    *key.src_bytes(),
                    mport,
                    ports.sport,
                    proto,
                    family,
                );
                let rh = match pick {
                    Some(pick) => pick.rev_hash,
                    None => self.hasher.hash(&built),
                };
                debug_assert_eq!(rh, self.hasher.hash(&built));
                (&built, rh)
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
        let evicted = match self.ct.place(rkey, rh, rvalue, now) {
            Ok(placed) if !placed.new => {
                self.counters.reverse_conflicts += 1;
                if snat.is_some() {
                    // The reverse entry of a SNAT flow whose forward entry
                    // is gone (its record was free): the key is this
                    // flow's now.
                    self.ct.assign(family, placed.slot, &rvalue);
                }
                None
            }
            Ok(_) => self.ct.take_evicted(),
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
        Ok(admitted)
    }
}

//! Resetting flows whose ends would not otherwise learn they are gone:
//! idle TCP flows of `resetOnTimeout` virtual servers ([`L4::sweep`]),
//! flows whose member was removed, and flows an insert evicted (queued as
//! pending resets until the next sweep). Each is re-armed in the resetting
//! state and both ends are probed with [`L4::build_reset`] (see "Reset on
//! timeout" in the module doc of `path.rs`); their answers come back
//! through [`L4::process`], which turns them into RSTs.

use std::net::IpAddr;

use super::parse::{ip_of, Pkt};
use super::{pool_index, serves, Side, FLAG_RESETTING, FLAG_REVERSE, L4, RESET_WAIT_SECS};
use crate::lb::conntrack::{Entry, Expired, FlowValue, Secs, TcpState, FLAG_RESET_ON_TIMEOUT};
use crate::lb::flow::{Family, FlowKey, PROTO_TCP};
use crate::lb::nat::{self, RstSpec};
use crate::lb::vs::VsTable;
use crate::wire::tcp;

impl L4 {
    /// A client's TCP segment of a flow whose member was removed (its slot
    /// retired): queues the flow for reset probes to both ends (the next
    /// [`L4::sweep`] hands them to the worker, the ends' answers become
    /// RSTs), so that neither end keeps a half-open connection. False if
    /// this is not such a segment, or the queue is full (then the segment
    /// is taken for a new flow, and the member Maglev picks resets it).
    pub(super) fn reset_removed(
        &mut self,
        e: &Entry,
        p: &Pkt,
        dport: u16,
        tables: &VsTable,
    ) -> bool {
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

    /// A flow's entry was found expired and reused by an insert (`e`: an
    /// insert's evicted entry, if it took an expired one's slot). Inline:
    /// most inserts take a free slot, and their call cost a new flow ~8
    /// instructions each.
    #[inline(always)]
    pub(super) fn on_evicted(&mut self, e: Option<Entry>, tables: &VsTable) {
        if let Some(e) = e {
            self.evicted(e, tables);
        }
    }

    #[cold]
    #[inline(never)]
    fn evicted(&mut self, e: Entry, tables: &VsTable) {
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
    pub(super) fn expired_forward(&mut self, e: &Entry, tables: &VsTable) -> bool {
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

    /// Expiry. Reaps up to `max_buckets` buckets of the connection table
    /// (see [`ConnTable::sweep`]), updates the active-flow gauges, and
    /// writes into `out` the timed-out TCP flows of `resetOnTimeout`
    /// virtual servers (including ones whose slot an insert reused since
    /// the last call). Each is re-armed for [`RESET_WAIT_SECS`] in the
    /// resetting state: send [`build_reset`](Self::build_reset) to both
    /// [`Side`]s. Returns how many entries of `out` are filled.
    ///
    /// [`ConnTable::sweep`]: crate::lb::ConnTable::sweep
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

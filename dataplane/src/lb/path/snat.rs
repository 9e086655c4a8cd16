//! SNAT ports and records: each worker's slice of the SNAT port range
//! ([`snat_range`], and [`snat_port_owner`] for steering return traffic),
//! the per-worker array of SNAT flow records indexed by the reverse key's
//! hash, and the port allocator that probes it (see "SNAT ports" in the
//! module doc of `path.rs`). The record lookup (`snat_flow`) is on the
//! return path of every SNAT flow, the fast path's included, and stays
//! `#[inline(always)]`.

use super::{pool_index, RevKey, FLAG_REVERSE, L4, SNAT_PROBES};
use crate::lb::conntrack::Secs;
use crate::lb::flow::FlowKey;
use crate::lb::vs::Vs;

/// A SNAT flow's record: what its reverse (member → SNAT address) entry
/// cannot hold. Stored at the index its reverse key hashes to
/// ([`L4::snat_index`]); `port` 0 = never used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SnatFlow {
    /// The flow's forward key: client:cport -> VIP:vport.
    pub(super) fwd: FlowKey,
    pub(super) vs: u32,
    pub(super) member: u16,
    /// The reverse key's source port (the member's) and destination port
    /// (the SNAT port), and its destination address (the VS's pool index).
    pub(super) mport: u16,
    pub(super) port: u16,
    pub(super) pool: u8,
}

impl SnatFlow {
    pub(super) fn unused() -> Self {
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

impl L4 {
    /// The record index of a reverse key whose hash is `h`.
    #[inline(always)]
    pub(super) fn snat_index(&self, h: u64) -> usize {
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
    pub(super) fn snat_flow(
        &self,
        vs: &Vs,
        owner: (u32, u16),
        rev: &RevKey<'_>,
    ) -> Option<&SnatFlow> {
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

    /// A SNAT port for a new flow `fwd` (conntrack hash `h`) from `snat` (the
    /// pool address) to `member`:`mport`: the first of up to
    /// [`SNAT_PROBES`] hash-chosen ports of this worker's slice whose
    /// reverse key's record is free. Returns the port, the
    /// reverse key and its hash.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn alloc_snat_port(
        &self,
        now: Secs,
        fwd: &FlowKey,
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
            let rkey = FlowKey::from_parts(*member, *snat, mport, port, fwd.proto(), fwd.family());
            let rh = self.hasher.hash(&rkey);
            if self.snat_record_free(self.snat_index(rh), now) {
                return Some((port, rkey, rh));
            }
        }
        None
    }
}

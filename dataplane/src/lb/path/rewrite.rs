//! The NAT rewrite of one packet: a flow's translation (`Rewrite`), built
//! for the forward direction by `forward_rewrite`, and `apply`, which
//! rewrites the frame in place (addresses, ports, TTL, incremental
//! checksums through `nat`). Every packet the slow path forwards goes
//! through here; both helpers are `#[inline(always)]`.

use super::parse::Pkt;
use crate::lb::nat;
use crate::lb::vs::Vs;

/// The translation of one packet.
#[derive(Clone, Copy, Debug)]
pub(super) struct Rewrite {
    pub(super) src: Option<([u8; 16], u16)>,
    pub(super) dst: Option<([u8; 16], u16)>,
}

/// The forward translation of a flow to `member` of `vs`.
#[inline(always)]
pub(super) fn forward_rewrite(
    vs: &Vs,
    member: u16,
    dport: u16,
    nat_port: u16,
    pool: usize,
) -> Rewrite {
    let m = &vs.members[usize::from(member)];
    let mport = if m.port == 0 { dport } else { m.port };
    let src = if vs.snats() {
        vs.snat_bytes.get(pool).map(|a| (*a, nat_port))
    } else {
        None
    };
    Rewrite {
        src,
        dst: Some((m.bytes, mport)),
    }
}

/// Applies `rw` to the packet (TTL - 1); returns the new destination.
#[inline(always)]
pub(super) fn apply(frame: &mut [u8], p: &Pkt, rw: Rewrite) -> [u8; 16] {
    let d = nat::rewrite_ip(
        frame,
        p.ip,
        p.family,
        rw.src.as_ref().map(|s| &s.0),
        rw.dst.as_ref().map(|d| &d.0),
        true,
    );
    nat::rewrite_l4(
        frame,
        p.l4,
        p.end - p.l4,
        p.proto,
        p.family,
        d,
        rw.src.map(|s| s.1),
        rw.dst.map(|d| d.1),
    );
    rw.dst.map_or(p.dst, |d| d.0)
}

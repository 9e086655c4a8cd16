//! The NAT rewrite of one packet: a flow's translation (`Rewrite`), built
//! for the forward direction by `forward_rewrite`, and `apply`, which
//! rewrites the frame in place (addresses, ports, TTL, incremental
//! checksums). Every packet the slow path forwards goes through here, and
//! every IPv6 SNAT packet the fast path does (its IPv6 DNAT packets take
//! `fast6`'s `rewrite_dnat`, the same bytes from the member's precomputed
//! terms): TCP and UDP in one pass per family (`apply_v4`, `apply_v6`: the
//! fast path's arithmetic), the rest through `nat`'s helpers, general
//! over both families. All of them are `#[inline(always)]`.

use super::parse::Pkt;
use crate::lb::flow::{Family, PROTO_TCP, PROTO_UDP};
use crate::lb::nat;
use crate::lb::vs::{port_term, v4, Fast4, Fast6, Vs, TTL_TERM};
use crate::wire::checksum;

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
    let done = match p.family {
        Family::V4 => apply_v4(frame, p, &rw),
        Family::V6 => apply_v6(frame, p, &rw),
    };
    if !done {
        general(frame, p, &rw);
    }
    rw.dst.map_or(p.dst, |d| d.0)
}

/// [`apply`] through `nat`'s helpers, general over both families.
#[inline(always)]
fn general(frame: &mut [u8], p: &Pkt, rw: &Rewrite) {
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
}

/// The checksum to store for the one's-complement sum `acc`.
#[inline(always)]
fn fold(acc: u64) -> u16 {
    checksum::fold(checksum::fold64(acc))
}

/// [`apply`] for a TCP or UDP packet over IPv4 in one pass, with the fast
/// path's arithmetic (the one's-complement terms summed in the frame's
/// byte order, folded once per checksum; the TTL's term a constant):
/// the same bytes as `nat::rewrite_ip` + `nat::rewrite_l4` (a property
/// test holds the two equal), without their per-family branches. False,
/// and nothing written, for what it does not handle (another protocol, a
/// header shorter than its checksum: the general path's business).
#[inline(always)]
fn apply_v4(frame: &mut [u8], p: &Pkt, rw: &Rewrite) -> bool {
    let sum_at = match p.proto {
        PROTO_TCP => 16,
        PROTO_UDP => 6,
        _ => return false,
    };
    let Some(f) = frame.get_mut(..p.end) else {
        return false;
    };
    let Some((head, l4)) = f.split_at_mut_checked(p.l4) else {
        return false;
    };
    let Some(ip) = head.get_mut(p.ip..).and_then(|h| h.first_chunk_mut::<20>()) else {
        return false;
    };
    if l4.len() < sum_at + 2 || ip[8] <= 1 {
        return false;
    }
    let (mut addrs, mut ports) = (0u64, 0u64);
    let mut put = |ip: &mut [u8; 20],
                   l4: &mut [u8],
                   (at, port_at): (usize, usize),
                   (a, port): &([u8; 16], u16)| {
        let new = v4(a);
        let old = [ip[at], ip[at + 1], ip[at + 2], ip[at + 3]];
        addrs += Fast4::term(old, new);
        ip[at..at + 4].copy_from_slice(&new);
        let old = u16::from_be_bytes([l4[port_at], l4[port_at + 1]]);
        ports += port_term(old, *port);
        l4[port_at..port_at + 2].copy_from_slice(&port.to_be_bytes());
    };
    if let Some(s) = &rw.src {
        put(ip, l4, (12, 0), s);
    }
    if let Some(d) = &rw.dst {
        put(ip, l4, (16, 2), d);
    }
    ip[8] -= 1; // TTL > 1 (above)
    let old = u64::from(!u16::from_ne_bytes([ip[10], ip[11]]));
    ip[10..12].copy_from_slice(&fold(old + addrs + TTL_TERM).to_ne_bytes());
    let old = u16::from_ne_bytes([l4[sum_at], l4[sum_at + 1]]);
    let udp = p.proto == PROTO_UDP;
    if udp && old == 0 {
        return true; // no checksum, and it stays so
    }
    let mut c = fold(u64::from(!old) + addrs + ports);
    if udp && c == 0 {
        c = 0xffff;
    }
    l4[sum_at..sum_at + 2].copy_from_slice(&c.to_ne_bytes());
    true
}

/// [`apply_v4`] for IPv6: the same one pass and arithmetic (an address
/// is four 32-bit terms), no header checksum, the hop limit decremented;
/// a UDP checksum of zero is not "none" over IPv6 (RFC 8200 §8.1) and is
/// updated as any other, as the general path does. Its checks repeat
/// `apply_v4`'s on purpose: one helper for both made IPv6 +41
/// instructions a packet (what LLVM inlined where; measured).
#[inline(always)]
fn apply_v6(frame: &mut [u8], p: &Pkt, rw: &Rewrite) -> bool {
    let sum_at = match p.proto {
        PROTO_TCP => 16,
        PROTO_UDP => 6,
        _ => return false,
    };
    let Some(f) = frame.get_mut(..p.end) else {
        return false;
    };
    let Some((head, l4)) = f.split_at_mut_checked(p.l4) else {
        return false;
    };
    let Some(ip) = head.get_mut(p.ip..).and_then(|h| h.first_chunk_mut::<40>()) else {
        return false;
    };
    if l4.len() < sum_at + 2 || ip[7] <= 1 {
        return false;
    }
    let mut sum = 0u64;
    let mut put = |ip: &mut [u8; 40],
                   l4: &mut [u8],
                   (at, port_at): (usize, usize),
                   (a, port): &([u8; 16], u16)| {
        let mut old = [0; 16];
        old.copy_from_slice(&ip[at..at + 16]);
        sum += Fast6::term(&old, a);
        ip[at..at + 16].copy_from_slice(a);
        let old = u16::from_be_bytes([l4[port_at], l4[port_at + 1]]);
        sum += port_term(old, *port);
        l4[port_at..port_at + 2].copy_from_slice(&port.to_be_bytes());
    };
    if let Some(s) = &rw.src {
        put(ip, l4, (8, 0), s);
    }
    if let Some(d) = &rw.dst {
        put(ip, l4, (24, 2), d);
    }
    ip[7] -= 1; // hop limit > 1 (above)
    let old = u16::from_ne_bytes([l4[sum_at], l4[sum_at + 1]]);
    let mut c = fold(u64::from(!old) + sum);
    if p.proto == PROTO_UDP && c == 0 {
        c = 0xffff;
    }
    l4[sum_at..sum_at + 2].copy_from_slice(&c.to_ne_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn addr(a: [u8; 4]) -> [u8; 16] {
        let mut b = [0; 16];
        b[..4].copy_from_slice(&a);
        b
    }

    proptest! {
        /// `apply_v4` writes what the general path writes, byte for byte:
        /// any header bytes (checksums included: the sums need not be
        /// right), options or not, TCP or UDP (with a zero UDP checksum
        /// one time in four), either end or both rewritten.
        #[test]
        fn apply_v4_is_the_general_rewrite(
            mut frame in proptest::collection::vec(any::<u8>(), 14 + 24 + 20),
            options in any::<bool>(),
            tcp in any::<bool>(),
            ttl in 2u8..,
            zero_udp_sum in 0u8..4,
            src in proptest::option::of((any::<[u8; 4]>(), any::<u16>())),
            dst in proptest::option::of((any::<[u8; 4]>(), any::<u16>())),
        ) {
            let ip = 14;
            let l4 = ip + if options { 24 } else { 20 };
            frame[ip] = if options { 0x46 } else { 0x45 };
            frame[ip + 8] = ttl;
            let proto = if tcp { PROTO_TCP } else { PROTO_UDP };
            frame[ip + 9] = proto;
            if !tcp && zero_udp_sum == 0 {
                frame[l4 + 6..l4 + 8].fill(0);
            }
            let p = Pkt {
                family: Family::V4,
                ip,
                l4,
                end: frame.len(),
                proto,
                src: addr([frame[ip + 12], frame[ip + 13], frame[ip + 14], frame[ip + 15]]),
                dst: addr([frame[ip + 16], frame[ip + 17], frame[ip + 18], frame[ip + 19]]),
                ttl,
                frag: false,
            };
            let rw = Rewrite {
                src: src.map(|(a, port)| (addr(a), port)),
                dst: dst.map(|(a, port)| (addr(a), port)),
            };
            let mut want = frame.clone();
            general(&mut want, &p, &rw);
            prop_assert!(apply_v4(&mut frame, &p, &rw));
            prop_assert_eq!(frame, want);
        }

        /// `apply_v6` writes what the general path writes, byte for byte:
        /// any header bytes, TCP or UDP (a zero UDP checksum one time in
        /// four: updated, not kept), either end or both rewritten.
        #[test]
        fn apply_v6_is_the_general_rewrite(
            mut frame in proptest::collection::vec(any::<u8>(), 14 + 40 + 20),
            tcp in any::<bool>(),
            hop_limit in 2u8..,
            zero_udp_sum in 0u8..4,
            src in proptest::option::of((any::<[u8; 16]>(), any::<u16>())),
            dst in proptest::option::of((any::<[u8; 16]>(), any::<u16>())),
        ) {
            let (ip, l4) = (14, 14 + 40);
            frame[ip] = 0x60;
            frame[ip + 7] = hop_limit;
            let proto = if tcp { PROTO_TCP } else { PROTO_UDP };
            frame[ip + 6] = proto;
            if !tcp && zero_udp_sum == 0 {
                frame[l4 + 6..l4 + 8].fill(0);
            }
            let field = |at: usize| -> [u8; 16] { frame[at..at + 16].try_into().unwrap() };
            let p = Pkt {
                family: Family::V6,
                ip,
                l4,
                end: frame.len(),
                proto,
                src: field(ip + 8),
                dst: field(ip + 24),
                ttl: hop_limit,
                frag: false,
            };
            let rw = Rewrite { src, dst };
            let mut want = frame.clone();
            general(&mut want, &p, &rw);
            prop_assert!(apply_v6(&mut frame, &p, &rw));
            prop_assert_eq!(frame, want);
        }
    }
}

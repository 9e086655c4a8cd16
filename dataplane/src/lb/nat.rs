//! NAT rewrites in place, with incremental checksums, and the replies the
//! L4 path builds (RST, ICMP port unreachable).
//!
//! Everything works on a byte buffer and offsets into it (the IP header at
//! `ip`, the transport header at `l4`), so the same code rewrites a packet
//! and the packet quoted inside an ICMP error.
//!
//! Checksums (RFC 1624 eqn. 3, `HC' = ~(~HC + ~m + m')`, summed over every
//! 16-bit word that changed): an address change is one delta that applies
//! to the IPv4 header checksum and, through the pseudo-header, to the
//! TCP/UDP checksum; a port change applies to the TCP/UDP checksum only;
//! the TTL decrement to the IPv4 header checksum only. IPv6 has no header
//! checksum; its TCP/UDP (and ICMPv6) checksums cover the pseudo-header.
//! A UDP-over-IPv4 checksum of 0 ("none") stays 0, and a computed 0 is sent
//! as 0xffff (RFC 768). ICMP checksums are recomputed over the message (ICMP
//! errors are rare and at most 1280 bytes).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::flow::{Family, PROTO_TCP, PROTO_UDP};
use crate::wire::checksum;
use crate::wire::ipv4::{self, protocol};
use crate::wire::{icmpv4, ipv6, tcp, udp, IpRepr};

/// IPv4 header offsets.
pub(crate) const V4_TTL: usize = ipv4::field::TTL;
pub(crate) const V4_CHECKSUM: usize = ipv4::field::CHECKSUM.start;
pub(crate) const V4_SRC: usize = ipv4::field::SRC.start;
pub(crate) const V4_DST: usize = ipv4::field::DST.start;
/// IPv6 header offsets.
pub(crate) const V6_HOP_LIMIT: usize = ipv6::field::HOP_LIMIT;
pub(crate) const V6_SRC: usize = ipv6::field::SRC.start;
pub(crate) const V6_DST: usize = ipv6::field::DST.start;

/// ICMPv6 types the path translates (RFC 4443).
pub const ICMPV6_DEST_UNREACHABLE: u8 = 1;
pub const ICMPV6_PACKET_TOO_BIG: u8 = 2;
pub const ICMPV6_TIME_EXCEEDED: u8 = 3;
/// ICMPv4 destination unreachable codes (RFC 792, RFC 1191).
pub const ICMPV4_PORT_UNREACHABLE: u8 = 3;
pub const ICMPV4_FRAG_NEEDED: u8 = 4;
/// ICMPv6 destination unreachable code "port unreachable".
pub const ICMPV6_PORT_UNREACHABLE: u8 = 4;

/// Where the addresses sit in this family's header, and how long they are.
#[inline(always)]
pub(crate) fn addr_offsets(family: Family) -> (usize, usize, usize) {
    match family {
        Family::V4 => (V4_SRC, V4_DST, 4),
        Family::V6 => (V6_SRC, V6_DST, 16),
    }
}

/// Σ ~old + Σ new over the words of two equally long fields (`N`: 4 or
/// 16). Writes the first `N` bytes of `new` at `h[at..]` and returns the
/// checksum delta: old words complemented plus new words, summed as
/// 32-bit words (a 32-bit word is congruent to the sum of its 16-bit
/// halves modulo 0xffff) and folded to 16 bits; zero only if every 16-bit
/// term is, so the checksum comes out as the 16-bit sum's.
#[inline(always)]
fn replace<const N: usize>(h: &mut [u8], at: usize, new: &[u8; 16]) -> u32 {
    let field = &mut h[at..at + N];
    // In the frame's byte order: the one's-complement sum does not depend
    // on it (RFC 1071 §2(B)), and the words the sum reads are then the
    // very words the copy writes (summed in network order, LLVM stored
    // an IPv6 address as 16 single bytes: 24 instructions a packet).
    let word = |b: &[u8], i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let mut acc = 0u64;
    let mut i = 0;
    while i < N {
        acc += u64::from(!word(field, i)) + u64::from(word(new, i));
        i += 4;
    }
    field.copy_from_slice(&new[..N]);
    // Folded to 16 bits, then read in network order.
    let sum = !checksum::fold(checksum::fold64(acc));
    u32::from(u16::from_be_bytes(sum.to_ne_bytes()))
}

/// RFC 1624 eqn. 3 with a summed delta.
#[inline(always)]
fn apply(check: u16, delta: u32) -> u16 {
    checksum::fold(checksum::add(u32::from(!check), delta))
}

#[inline(always)]
fn get16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline(always)]
fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Rewrites the source and/or destination address of the IP header at
/// `buf[ip..]` (addresses as 16-byte key bytes, IPv4 in the first 4) and
/// decrements the TTL/hop limit if asked, updating the IPv4 header checksum.
/// Returns the pseudo-header delta for the transport checksum.
#[inline]
pub fn rewrite_ip(
    buf: &mut [u8],
    ip: usize,
    family: Family,
    src: Option<&[u8; 16]>,
    dst: Option<&[u8; 16]>,
    dec_ttl: bool,
) -> u32 {
    let (so, d_o, _) = addr_offsets(family);
    let h = &mut buf[ip..];
    // Fixed-size address fields: the delta loops unroll (a generic length
    // cost ~70 instructions per packet here).
    let put = |h: &mut [u8], at: usize, a: &[u8; 16]| match family {
        Family::V4 => replace::<4>(h, at, a),
        Family::V6 => replace::<16>(h, at, a),
    };
    let mut d = 0u32;
    if let Some(a) = src {
        d += put(h, so, a);
    }
    if let Some(a) = dst {
        d += put(h, d_o, a);
    }
    match family {
        Family::V4 => {
            let mut hd = d;
            if dec_ttl {
                let old = get16(h, V4_TTL);
                h[V4_TTL] -= 1;
                hd += u32::from(!old) + u32::from(get16(h, V4_TTL));
            }
            let c = apply(get16(h, V4_CHECKSUM), hd);
            put16(h, V4_CHECKSUM, c);
        }
        Family::V6 => {
            if dec_ttl {
                h[V6_HOP_LIMIT] -= 1;
            }
        }
    }
    d
}

/// Rewrites the ports of the TCP/UDP header at `buf[l4..l4 + avail]` and
/// updates its checksum with `addr_delta` (from [`rewrite_ip`]). `avail`
/// may be short of the checksum field (a header quoted in an ICMP error):
/// then only the ports change.
#[inline]
#[allow(clippy::too_many_arguments)]
pub fn rewrite_l4(
    buf: &mut [u8],
    l4: usize,
    avail: usize,
    proto: u8,
    family: Family,
    addr_delta: u32,
    sport: Option<u16>,
    dport: Option<u16>,
) {
    let h = &mut buf[l4..l4 + avail];
    let mut d = addr_delta;
    if let Some(p) = sport {
        d += u32::from(!get16(h, 0)) + u32::from(p);
        put16(h, 0, p);
    }
    if let Some(p) = dport {
        d += u32::from(!get16(h, 2)) + u32::from(p);
        put16(h, 2, p);
    }
    let at = match proto {
        PROTO_TCP => tcp::CHECKSUM,
        PROTO_UDP => udp::CHECKSUM,
        _ => return,
    };
    if avail < at + 2 {
        return;
    }
    let old = get16(h, at);
    if proto == PROTO_UDP && old == 0 && family == Family::V4 {
        return; // no checksum, and it stays so
    }
    let mut c = apply(old, d);
    if proto == PROTO_UDP && c == 0 {
        c = 0xffff;
    }
    put16(h, at, c);
}

/// The 32-bit pseudo-header sum of a transport segment.
fn pseudo(buf: &[u8], ip: usize, family: Family, proto: u8, len: usize) -> u32 {
    let h = &buf[ip..];
    match family {
        Family::V4 => checksum::add(
            checksum::sum(&h[V4_SRC..V4_DST + 4]),
            u32::from(proto) + len as u32,
        ),
        Family::V6 => {
            let a = checksum::sum(&h[V6_SRC..V6_DST + 16]);
            checksum::add(
                a,
                (len as u32 >> 16) + (len as u32 & 0xffff) + u32::from(proto),
            )
        }
    }
}

/// Fills the checksum of the transport segment `buf[l4..l4 + len]` from
/// scratch (pseudo-header included; ICMPv4 has none).
pub fn fill_l4_checksum(
    buf: &mut [u8],
    ip: usize,
    l4: usize,
    len: usize,
    family: Family,
    proto: u8,
) {
    let at = match proto {
        PROTO_TCP => tcp::CHECKSUM,
        PROTO_UDP => udp::CHECKSUM,
        _ => 2, // ICMP, ICMPv6
    };
    put16(buf, l4 + at, 0);
    let body = checksum::sum(&buf[l4..l4 + len]);
    let acc = if proto == protocol::ICMP {
        body
    } else {
        checksum::add(body, pseudo(buf, ip, family, proto, len))
    };
    let mut c = checksum::fold(acc);
    if proto == PROTO_UDP && c == 0 {
        c = 0xffff;
    }
    put16(buf, l4 + at, c);
}

/// The IP header from `src` to `dst` (key bytes: IPv4 in the first 4)
/// before `payload_len` bytes of `protocol`; TTL/hop limit 64.
fn ip_repr(
    family: Family,
    src: &[u8; 16],
    dst: &[u8; 16],
    protocol: u8,
    payload_len: usize,
) -> IpRepr {
    let v4 = |a: &[u8; 16]| Ipv4Addr::new(a[0], a[1], a[2], a[3]);
    match family {
        Family::V4 => IpRepr::V4(ipv4::Repr {
            src: v4(src),
            dst: v4(dst),
            protocol,
            payload_len,
            ttl: 64,
        }),
        Family::V6 => IpRepr::V6(ipv6::Repr {
            src: Ipv6Addr::from(*src),
            dst: Ipv6Addr::from(*dst),
            next_header: protocol,
            payload_len,
            hop_limit: 64,
        }),
    }
}

fn ip_header_len(family: Family) -> usize {
    match family {
        Family::V4 => 20,
        Family::V6 => 40,
    }
}

/// The endpoints and numbers of an RST.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RstSpec {
    pub family: Family,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    /// `tcp::RST`, or `tcp::RST | tcp::FLAG_ACK` when `ack` is meaningful.
    pub flags: u8,
}

/// Writes the IP + TCP RST of `s` at `buf[ip..]`; returns the IP length,
/// or `None` if `buf` is too short.
pub fn emit_rst(buf: &mut [u8], ip: usize, s: &RstSpec) -> Option<usize> {
    let tcp = tcp::Repr {
        src_port: s.src_port,
        dst_port: s.dst_port,
        seq: s.seq,
        ack: s.ack,
        flags: s.flags,
        window: 0,
    };
    let ip_hdr = ip_repr(s.family, &s.src, &s.dst, PROTO_TCP, tcp.buffer_len());
    let ih = ip_hdr.buffer_len();
    let total = ih + tcp.buffer_len();
    let b = buf.get_mut(ip..ip + total)?;
    ip_hdr.emit(b);
    tcp.emit(&mut b[ih..], ip_hdr.pseudo());
    Some(total)
}

/// The RST that answers a TCP segment nobody listens for (RFC 9293
/// §3.10.7.1): `seq = SEG.ACK` if the segment has ACK, else
/// `seq = 0, ack = SEG.SEQ + SEG.LEN` (SYN and FIN count one) with ACK set.
/// Never answers an RST.
pub fn rst_for(
    family: Family,
    src: &[u8; 16],
    dst: &[u8; 16],
    seg: &tcp::Packet<&[u8]>,
    payload_len: usize,
) -> Option<RstSpec> {
    if seg.rst() {
        return None;
    }
    let (seq, ack, flags) = if seg.ack() {
        (seg.ack_number(), 0, tcp::RST)
    } else {
        let len = payload_len as u32 + u32::from(seg.syn()) + u32::from(seg.fin());
        (0, seg.seq().wrapping_add(len), tcp::RST | tcp::FLAG_ACK)
    };
    Some(RstSpec {
        family,
        src: *dst,
        dst: *src,
        src_port: seg.dst_port(),
        dst_port: seg.src_port(),
        seq,
        ack,
        flags,
    })
}

/// Largest ICMP error datagram: 576 bytes for IPv4 (RFC 1812 §4.3.2.3),
/// the minimum MTU for IPv6 (RFC 4443 §2.4).
pub const ICMPV4_ERROR_MAX: usize = 576;
pub const ICMPV6_ERROR_MAX: usize = 1280;

/// Turns the IP packet at `buf[ip..ip + len]` into an ICMP (ICMPv6) port
/// unreachable to its sender, from its destination, in place: the original
/// packet moves back to become the quoted datagram (cut to the limits
/// above and to what `buf` holds). Returns the new IP length.
pub fn port_unreachable_in_place(
    buf: &mut [u8],
    ip: usize,
    len: usize,
    family: Family,
) -> Option<usize> {
    let (so, d_o, n) = addr_offsets(family);
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src[..n].copy_from_slice(buf.get(ip + so..ip + so + n)?);
    dst[..n].copy_from_slice(buf.get(ip + d_o..ip + d_o + n)?);
    let ih = ip_header_len(family);
    let head = ih + 8;
    let max = match family {
        Family::V4 => ICMPV4_ERROR_MAX,
        Family::V6 => ICMPV6_ERROR_MAX,
    };
    let room = buf.len().checked_sub(ip + head)?;
    let quote = len.min(max - head).min(room);
    buf.copy_within(ip..ip + quote, ip + head);
    let total = head + quote;
    let icmp = ip + ih;
    let (proto, msg_type, code) = match family {
        Family::V4 => (
            protocol::ICMP,
            icmpv4::DEST_UNREACHABLE,
            ICMPV4_PORT_UNREACHABLE,
        ),
        Family::V6 => (
            protocol::ICMPV6,
            ICMPV6_DEST_UNREACHABLE,
            ICMPV6_PORT_UNREACHABLE,
        ),
    };
    ip_repr(family, &dst, &src, proto, 8 + quote).emit(&mut buf[ip..]);
    buf[icmp] = msg_type;
    buf[icmp + 1] = code;
    buf[icmp + 4..icmp + 8].fill(0);
    fill_l4_checksum(buf, ip, icmp, 8 + quote, family, proto);
    Some(total)
}

/// Is this ICMP(v6) message an error that quotes a datagram the path may
/// have to translate?
pub fn is_icmp_error(family: Family, msg_type: u8) -> bool {
    match family {
        Family::V4 => matches!(
            msg_type,
            icmpv4::DEST_UNREACHABLE | icmpv4::TIME_EXCEEDED | 12
        ),
        Family::V6 => matches!(
            msg_type,
            ICMPV6_DEST_UNREACHABLE | ICMPV6_PACKET_TOO_BIG | ICMPV6_TIME_EXCEEDED | 4
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: [u8; 4]) -> [u8; 16] {
        let mut b = [0; 16];
        b[..4].copy_from_slice(&a);
        b
    }

    /// A UDP/IPv4 packet with its checksums filled from scratch.
    fn udp4(csum: bool) -> Vec<u8> {
        let mut b = vec![0u8; 20 + 8 + 5];
        ip_repr(
            Family::V4,
            &v4([10, 0, 0, 1]),
            &v4([192, 168, 77, 1]),
            PROTO_UDP,
            13,
        )
        .emit(&mut b);
        put16(&mut b, 20, 40000);
        put16(&mut b, 22, 53);
        put16(&mut b, 24, 13);
        b[28..].copy_from_slice(b"hello");
        if csum {
            fill_l4_checksum(&mut b, 0, 20, 13, Family::V4, PROTO_UDP);
        }
        b
    }

    #[test]
    fn incremental_equals_recomputed() {
        let mut b = udp4(true);
        let d = rewrite_ip(&mut b, 0, Family::V4, None, Some(&v4([10, 1, 0, 7])), true);
        rewrite_l4(&mut b, 20, 13, PROTO_UDP, Family::V4, d, None, Some(5353));
        let mut want = b.clone();
        let c = {
            want[10..12].fill(0);
            checksum::checksum(&want[..20])
        };
        put16(&mut want, 10, c);
        fill_l4_checksum(&mut want, 0, 20, 13, Family::V4, PROTO_UDP);
        assert_eq!(b, want);
        assert_eq!(b[8], 63);
    }

    #[test]
    fn udp_v4_zero_checksum_stays_zero() {
        let mut b = udp4(false);
        let d = rewrite_ip(&mut b, 0, Family::V4, None, Some(&v4([10, 1, 0, 7])), true);
        rewrite_l4(&mut b, 20, 13, PROTO_UDP, Family::V4, d, None, Some(5353));
        assert_eq!(get16(&b, 26), 0);
        assert_eq!(checksum::checksum(&b[..20]), 0);
    }

    #[test]
    fn quoted_header_without_checksum_only_changes_ports() {
        let mut b = udp4(true);
        let before = get16(&b, 26);
        rewrite_l4(&mut b, 20, 4, PROTO_UDP, Family::V4, 0x1234, Some(7), None);
        assert_eq!((get16(&b, 20), get16(&b, 26)), (7, before));
    }

    /// A bare segment from port 40000 to 81, seq 1000.
    fn segment(seg: &mut [u8; 20], ack: u32, flags: u8) {
        tcp::Repr {
            src_port: 40000,
            dst_port: 81,
            seq: 1000,
            ack,
            flags,
            window: 0,
        }
        .emit(seg, 0);
    }

    #[test]
    fn rst_answers_syn_and_ack_per_rfc() {
        let mut seg = [0u8; 20];
        segment(&mut seg, 0, tcp::SYN);
        let s = tcp::Packet::new_checked(&seg[..]).unwrap();
        let r = rst_for(
            Family::V4,
            &v4([10, 0, 0, 1]),
            &v4([192, 168, 77, 1]),
            &s,
            0,
        )
        .unwrap();
        assert_eq!((r.seq, r.ack, r.flags), (0, 1001, tcp::RST | tcp::FLAG_ACK));
        assert_eq!((r.src_port, r.dst_port), (81, 40000));
        segment(&mut seg, 555, tcp::FLAG_ACK);
        let s = tcp::Packet::new_checked(&seg[..]).unwrap();
        let r = rst_for(
            Family::V4,
            &v4([10, 0, 0, 1]),
            &v4([192, 168, 77, 1]),
            &s,
            10,
        )
        .unwrap();
        assert_eq!((r.seq, r.flags), (555, tcp::RST));
        segment(&mut seg, 555, tcp::RST);
        let s = tcp::Packet::new_checked(&seg[..]).unwrap();
        assert!(rst_for(Family::V4, &v4([1; 4]), &v4([2; 4]), &s, 0).is_none());
    }
}

//! Frame parsing for the slow path: the IP header (IPv4, or IPv6 and its
//! extension headers) into a `Pkt`, the TCP/UDP header into `Ports`.
//! Pure functions over the frame, no state: the rest of the path works on
//! their offsets and 5-tuple. The fast paths classify by fixed offsets
//! and never come here: `fast.rs` (IPv4) into its own record, `fast6.rs`
//! (IPv6 without extension headers) into these same `Pkt` and `Ports`.

use std::net::IpAddr;

use super::counters::L4Drop;
use crate::lb::flow::{Family, PROTO_TCP};
use crate::wire::{ipv4, tcp, udp};

/// A parsed IP packet: offsets into the frame and the 5-tuple.
#[derive(Clone, Copy, Debug)]
pub(super) struct Pkt {
    pub(super) family: Family,
    pub(super) ip: usize,
    pub(super) l4: usize,
    pub(super) end: usize,
    pub(super) proto: u8,
    pub(super) src: [u8; 16],
    pub(super) dst: [u8; 16],
    pub(super) ttl: u8,
    pub(super) frag: bool,
}

pub(super) fn ip_of(family: Family, b: &[u8; 16]) -> IpAddr {
    match family {
        Family::V4 => IpAddr::from([b[0], b[1], b[2], b[3]]),
        Family::V6 => IpAddr::from(*b),
    }
}

/// Parses the IP header at `frame[ip..len]`.
pub(super) fn parse_ip(frame: &[u8], ip: usize, len: usize) -> Result<Pkt, L4Drop> {
    let b = frame.get(ip..len).ok_or(L4Drop::IpMalformed)?;
    let version = b.first().ok_or(L4Drop::IpMalformed)? >> 4;
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    match version {
        4 => {
            // The header checksum was verified by the host stage (every
            // IPv4 frame from the wire is, before it reaches this path).
            let p = ipv4::Packet::new_checked(b).map_err(|_| L4Drop::IpMalformed)?;
            src[..4].copy_from_slice(&b[12..16]);
            dst[..4].copy_from_slice(&b[16..20]);
            Ok(Pkt {
                family: Family::V4,
                ip,
                l4: ip + p.header_len(),
                end: ip + p.total_len(),
                proto: p.protocol(),
                src,
                dst,
                ttl: p.ttl(),
                frag: p.is_fragment(),
            })
        }
        6 => {
            let p = crate::wire::ipv6::Packet::new_checked(b).map_err(|_| L4Drop::IpMalformed)?;
            src.copy_from_slice(&b[8..24]);
            dst.copy_from_slice(&b[24..40]);
            let end = 40 + p.payload_len();
            // Extension headers (RFC 8200 §4): skip hop-by-hop, routing,
            // destination options; note a Fragment header; at most 8.
            let (mut nh, mut off, mut frag) = (p.next_header(), 40usize, false);
            for _ in 0..8 {
                match nh {
                    0 | 43 | 60 => {
                        let h = b.get(off..off + 2).ok_or(L4Drop::IpMalformed)?;
                        nh = h[0];
                        off += (usize::from(h[1]) + 1) * 8;
                    }
                    44 => {
                        let h = b.get(off..off + 8).ok_or(L4Drop::IpMalformed)?;
                        nh = h[0];
                        off += 8;
                        frag = true;
                        break;
                    }
                    _ => break,
                }
            }
            if off > end {
                return Err(L4Drop::IpMalformed);
            }
            Ok(Pkt {
                family: Family::V6,
                ip,
                l4: ip + off,
                end: ip + end,
                proto: nh,
                src,
                dst,
                ttl: p.hop_limit(),
                frag,
            })
        }
        _ => Err(L4Drop::IpMalformed),
    }
}

/// Ports, TCP flags and payload length of the transport header.
#[derive(Clone, Copy, Debug)]
pub(super) struct Ports {
    pub(super) sport: u16,
    pub(super) dport: u16,
    /// TCP flag byte (0 for UDP).
    pub(super) flags: u8,
    /// TCP: header length; UDP: 8.
    pub(super) hlen: usize,
}

pub(super) fn parse_l4(frame: &[u8], p: &Pkt) -> Result<Ports, L4Drop> {
    let b = &frame[p.l4..p.end];
    match p.proto {
        PROTO_TCP => {
            let t = tcp::Packet::new_checked(b).map_err(|_| L4Drop::L4Malformed)?;
            Ok(Ports {
                sport: t.src_port(),
                dport: t.dst_port(),
                flags: t.flags(),
                hlen: t.header_len(),
            })
        }
        _ => {
            let u = udp::Packet::new_checked(b).map_err(|_| L4Drop::L4Malformed)?;
            Ok(Ports {
                sport: u.src_port(),
                dport: u.dst_port(),
                flags: 0,
                hlen: udp::HEADER_LEN,
            })
        }
    }
}

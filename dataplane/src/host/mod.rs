//! The data plane as an IPv4/IPv6 host on each port.
//!
//! Frames from the wire: ARP and Neighbor Discovery for the self IPs are
//! answered here (and mirrored to the TAP so the kernel learns its
//! neighbors too); ICMP/ICMPv6 echo to a self IP is answered here; anything
//! else for a self IP is punted to the port's TAP; the rest is dropped with
//! a reason.
//!
//! Frames from the TAP (what the kernel sends): the data plane is the
//! kernel's router. The kernel's ARP and NS are answered with the port's MAC
//! (it hands every packet to us), and each IP packet is routed through the
//! [`Fib`] with the next hop resolved by the data plane's own neighbor cache.
//!
//! Everything here works on a byte buffer and returns a verdict, so it is
//! tested without DPDK; the worker maps verdicts to mbuf operations.

pub mod fib;
pub mod neighbor;
pub mod policer;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::counters::{Drop, PortCounters};
use crate::wire::ethernet::{self, ethertype, Frame};
use crate::wire::{arp, checksum, icmpv4, icmpv6, ipv4, ipv6, protocol, udp, Error, IpRepr, Mac};
pub use fib::{Fib, Prefix, Route};
use neighbor::{Cache, Learned, Nanos};
use policer::{Class, PuntPolicer};

/// A self IP with its prefix length (the connected subnet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelfIp {
    pub addr: IpAddr,
    pub len: u8,
}

impl SelfIp {
    pub fn prefix(&self) -> Prefix {
        Prefix::new(self.addr, self.len)
    }
}

/// What to do with a frame from the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FromWire {
    /// Rewritten in place into a reply of this many bytes: send it back out
    /// of the port.
    Reply(usize),
    /// For the kernel: hand it to the TAP (without its VLAN tag).
    Punt,
    /// Fully handled (learned from); nothing to send.
    Consumed,
    /// A well-formed unicast IP packet for another address: virtual-server
    /// or flow traffic for the L4 path, else `not_for_us`.
    Transit,
    /// A BFD control packet for a self IP: `buf[payload]` is the UDP
    /// payload, for the worker's BFD sessions.
    Bfd {
        payload: (usize, usize),
        src: IpAddr,
        ttl: u8,
        multihop: bool,
    },
    Drop(Drop),
}

/// BFD's UDP ports: single hop (RFC 5881) and multihop (RFC 5883).
pub const BFD_SINGLE_HOP: u16 = 3784;
pub const BFD_MULTIHOP: u16 = 4784;

/// The UDP payload of a BFD packet in `l4` (an IP payload starting at
/// `at` in the frame), after checking the UDP header and checksum; the
/// pseudo-header sum is `pseudo(udp length)`.
fn bfd_payload(l4: &[u8], at: usize, pseudo: impl Fn(u32) -> u32) -> Option<(usize, usize, bool)> {
    let p = udp::Packet::new_checked(l4).ok()?;
    if p.dst_port() != BFD_SINGLE_HOP && p.dst_port() != BFD_MULTIHOP {
        return None;
    }
    let r = udp::Repr::parse(&p, pseudo(p.len() as u32)).ok()?;
    let start = at + r.buffer_len();
    Some((start, start + r.payload_len, r.dst_port == BFD_MULTIHOP))
}

/// What to do with a frame the kernel sent out of the TAP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FromTap {
    /// Rewritten in place into an answer for the kernel: send it back into
    /// the TAP.
    ReplyToTap(usize),
    /// Route it out of `port` to `next_hop`'s MAC.
    Forward {
        port: usize,
        next_hop: IpAddr,
    },
    /// Broadcast or multicast: send it as it is out of this port.
    Flood,
    Consumed,
    Drop(Drop),
}

/// Side effects of handling a frame that the worker performs.
pub trait HostIo {
    /// Give the kernel a copy of the frame `macs ++ rest` (12 bytes of MAC
    /// addresses, then EtherType and payload: the frame without its tag).
    fn mirror_to_tap(&mut self, macs: &[u8], rest: &[u8]);
    /// `ip` is now known to be at `mac`: release what waited for it.
    fn resolved(&mut self, ip: IpAddr, mac: Mac);
}

/// The host state of one port: addresses, neighbor cache, counters.
#[derive(Debug)]
pub struct Host {
    /// Index of this port in the data plane's port list.
    pub index: usize,
    pub mac: Mac,
    pub vlan: Option<u16>,
    pub mtu: u16,
    pub self_ips: Vec<SelfIp>,
    /// fe80::/64 address derived from the MAC (EUI-64), answered too.
    pub link_local: Ipv6Addr,
    pub neighbors: Cache,
    /// What may be punted to the TAP ([`policer`]).
    pub punt: PuntPolicer,
    pub counters: PortCounters,
}

const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

impl Host {
    pub fn new(index: usize, mac: Mac, vlan: Option<u16>, mtu: u16, self_ips: Vec<SelfIp>) -> Host {
        Host {
            index,
            mac,
            vlan,
            mtu,
            self_ips,
            link_local: link_local(mac),
            neighbors: Cache::new(1024),
            punt: PuntPolicer::default(),
            counters: PortCounters::default(),
        }
    }

    /// Bytes of 802.1Q tag in this port's frames from the wire (the IP
    /// header starts this much after the Ethernet header).
    pub fn tag_len(&self) -> usize {
        if self.vlan.is_some() {
            4
        } else {
            0
        }
    }

    /// Whether the frame `frame` (as received, tag included) may be punted
    /// to the TAP now; a refusal is counted as `punt_policed` and the
    /// caller drops the frame.
    pub fn admit_punt(&mut self, now: Nanos, frame: &[u8]) -> bool {
        let ok = self.punt.admit(punt_class(frame), now);
        if !ok {
            self.counters.drop(Drop::PuntPoliced);
        }
        ok
    }

    /// Mirrors an ARP/ND frame (`buf[..len]`, Ethernet header of `hdr`
    /// bytes) to the TAP, within the neighbor class's budget.
    fn mirror(&mut self, now: Nanos, buf: &[u8], hdr: usize, len: usize, io: &mut impl HostIo) {
        if self.punt.admit(Class::Neighbor, now) {
            io.mirror_to_tap(&buf[..12], &buf[hdr - 2..len]);
        } else {
            self.counters.drop(Drop::PuntPoliced);
        }
    }

    fn is_self(&self, ip: IpAddr) -> bool {
        self.self_ips.iter().any(|s| s.addr == ip) || ip == IpAddr::V6(self.link_local)
    }

    fn is_broadcast_v4(&self, ip: Ipv4Addr) -> bool {
        ip.is_broadcast()
            || self.self_ips.iter().any(|s| match s.addr {
                IpAddr::V4(a) if s.len < 31 => {
                    let host_mask = u32::MAX >> s.len;
                    u32::from(ip) == u32::from(a) | host_mask
                }
                _ => false,
            })
    }

    fn is_our_solicited_node(&self, ip: &Ipv6Addr) -> bool {
        let ours = |a: &Ipv6Addr| ipv6::solicited_node(a) == *ip;
        ours(&self.link_local)
            || self
                .self_ips
                .iter()
                .any(|s| matches!(s.addr, IpAddr::V6(a) if ours(&a)))
    }

    /// Handles a frame from the wire. `buf[..len]` is the frame; `buf` may
    /// be longer (tailroom) so that a reply can grow.
    pub fn rx_from_wire(
        &mut self,
        now: Nanos,
        buf: &mut [u8],
        len: usize,
        io: &mut impl HostIo,
    ) -> FromWire {
        let Some(frame_bytes) = buf.get(..len) else {
            return FromWire::Drop(Drop::EthTruncated);
        };
        let Ok(frame) = Frame::new_checked(frame_bytes) else {
            return FromWire::Drop(Drop::EthTruncated);
        };
        if frame.vlan() != self.vlan {
            return FromWire::Drop(Drop::VlanMismatch);
        }
        let hdr = frame.header_len();
        if len - hdr > usize::from(self.mtu) {
            return FromWire::Drop(Drop::Oversize);
        }
        let dst = frame.dst();
        if dst != self.mac && !dst.is_multicast() {
            return FromWire::Drop(Drop::NotOurMac);
        }
        match frame.ethertype() {
            ethertype::ARP => self.arp_from_wire(now, buf, hdr, len, io),
            ethertype::IPV4 => self.ipv4_from_wire(buf, hdr, len),
            ethertype::IPV6 => self.ipv6_from_wire(now, buf, hdr, len, io),
            _ => FromWire::Drop(Drop::UnknownEthertype),
        }
    }

    fn arp_from_wire(
        &mut self,
        now: Nanos,
        buf: &mut [u8],
        hdr: usize,
        len: usize,
        io: &mut impl HostIo,
    ) -> FromWire {
        let Ok(p) = arp::Packet::new_checked(&buf[hdr..len]) else {
            return FromWire::Drop(Drop::ArpMalformed);
        };
        let (op, smac, sip, tip) = (p.operation(), p.sender_mac(), p.sender_ip(), p.target_ip());
        let for_us = self.is_self(IpAddr::V4(tip));
        // RFC 826: merge what we know about the sender. Unlike RFC 826 an
        // unknown sender is not added even when the packet is for us: the
        // cache holds only what we asked about (neighbor.rs), so spoofed
        // senders cannot fill it. Probes (sender 0.0.0.0) teach nothing.
        if !sip.is_unspecified()
            && self.neighbors.update(IpAddr::V4(sip), smac, now, true) == Learned::Updated
        {
            io.resolved(IpAddr::V4(sip), smac);
        }
        if !for_us {
            return FromWire::Drop(Drop::ArpNotForUs);
        }
        self.mirror(now, buf, hdr, len, io);
        if op != arp::OP_REQUEST {
            return FromWire::Consumed;
        }
        if !self.punt.admit(Class::Answer, now) {
            return FromWire::Drop(Drop::AnswerPoliced);
        }
        arp::Packet::new_checked(&mut buf[hdr..len])
            .map(|mut p| p.make_reply(self.mac))
            .ok();
        self.set_macs(buf, smac);
        self.counters.arp_replies += 1;
        FromWire::Reply(len)
    }

    /// Addresses a frame (its first 12 bytes) to `to` from this port.
    pub fn set_macs(&self, buf: &mut [u8], to: Mac) {
        buf[0..6].copy_from_slice(&to.0);
        buf[6..12].copy_from_slice(&self.mac.0);
    }

    /// [`rx_from_wire`](Self::rx_from_wire)'s verdict, without its checks,
    /// for a frame to `dst` the L4 fast path classified (untagged IPv4 or
    /// IPv6 to our MAC, within the MTU, header valid, TCP or UDP, not to a
    /// BFD port, not multicast): such a frame is never consumed, dropped or
    /// answered here, only punted (addressed to us) or in transit
    /// (`ipv4_from_wire`'s and `ipv6_from_wire`'s cases for it).
    pub fn classified(&self, dst: IpAddr) -> FromWire {
        let ours = match dst {
            IpAddr::V4(v4) => self.is_self(dst) || self.is_broadcast_v4(v4),
            IpAddr::V6(_) => self.is_self(dst),
        };
        if ours {
            FromWire::Punt
        } else {
            FromWire::Transit
        }
    }

    fn ipv4_from_wire(&mut self, buf: &mut [u8], hdr: usize, len: usize) -> FromWire {
        let p = match ipv4::Packet::new_checked(&buf[hdr..len]) {
            Ok(p) => p,
            Err(Error::Truncated) => return FromWire::Drop(Drop::Ipv4Truncated),
            Err(_) => return FromWire::Drop(Drop::Ipv4Malformed),
        };
        if !p.verify_checksum() {
            return FromWire::Drop(Drop::Ipv4Checksum);
        }
        let dst = p.dst();
        if !self.is_self(IpAddr::V4(dst)) {
            return if self.is_broadcast_v4(dst) {
                FromWire::Punt
            } else if dst.is_multicast() {
                FromWire::Drop(Drop::NotForUs)
            } else {
                FromWire::Transit
            };
        }
        if p.protocol() == protocol::UDP && !p.is_fragment() {
            let at = hdr + p.header_len();
            let (src, ttl) = (p.src(), p.ttl());
            if let Some((from, to, multihop)) = bfd_payload(p.payload(), at, |len| {
                checksum::pseudo_v4(src, dst, protocol::UDP, len as u16)
            }) {
                return FromWire::Bfd {
                    payload: (from, to),
                    src: IpAddr::V4(src),
                    ttl,
                    multihop,
                };
            }
        }
        if p.protocol() != protocol::ICMP || p.is_fragment() {
            return FromWire::Punt;
        }
        let icmp = match icmpv4::Packet::new_checked(p.payload()) {
            Ok(i) => i,
            Err(_) => return FromWire::Drop(Drop::IcmpTruncated),
        };
        if !icmp.verify_checksum() {
            return FromWire::Drop(Drop::IcmpChecksum);
        }
        if icmp.msg_type() != icmpv4::ECHO_REQUEST {
            return FromWire::Punt;
        }
        let src_mac = Mac::from_slice(&buf[6..12]);
        if let Ok(mut p) = ipv4::Packet::new_checked(&mut buf[hdr..len]) {
            p.swap_addresses();
            p.set_ttl(64);
            if let Ok(mut i) = icmpv4::Packet::new_checked(p.payload_mut()) {
                i.make_echo_reply();
            }
        }
        self.set_macs(buf, src_mac);
        self.counters.echo_replies += 1;
        FromWire::Reply(len)
    }

    fn ipv6_from_wire(
        &mut self,
        now: Nanos,
        buf: &mut [u8],
        hdr: usize,
        len: usize,
        io: &mut impl HostIo,
    ) -> FromWire {
        let p = match ipv6::Packet::new_checked(&buf[hdr..len]) {
            Ok(p) => p,
            Err(Error::Truncated) => return FromWire::Drop(Drop::Ipv6Truncated),
            Err(_) => return FromWire::Drop(Drop::Ipv6Malformed),
        };
        let (src, dst) = (p.src(), p.dst());
        let unicast_for_us = self.is_self(IpAddr::V6(dst));
        let multicast_for_us = dst == ALL_NODES || self.is_our_solicited_node(&dst);
        if p.next_header() == protocol::UDP && unicast_for_us {
            let at = hdr + ipv6::HEADER_LEN;
            let pseudo = |len| checksum::pseudo_v6(&src, &dst, protocol::UDP, len);
            if let Some((from, to, multihop)) = bfd_payload(p.payload(), at, pseudo) {
                return FromWire::Bfd {
                    payload: (from, to),
                    src: IpAddr::V6(src),
                    ttl: p.hop_limit(),
                    multihop,
                };
            }
        }
        let transit = || {
            if dst.is_multicast() {
                FromWire::Drop(Drop::NotForUs)
            } else {
                FromWire::Transit
            }
        };
        if p.next_header() != protocol::ICMPV6 {
            return if unicast_for_us {
                FromWire::Punt
            } else {
                transit()
            };
        }
        if !unicast_for_us && !multicast_for_us {
            // ICMPv6 errors about a flow travel to the client's address.
            return transit();
        }
        let hop_limit = p.hop_limit();
        let Ok(icmp) = icmpv6::Packet::new_checked(p.payload()) else {
            return FromWire::Drop(Drop::IcmpTruncated);
        };
        if !icmp.verify_checksum(&src, &dst) {
            return FromWire::Drop(Drop::IcmpChecksum);
        }
        match icmp.msg_type() {
            icmpv6::NEIGHBOR_SOLICIT | icmpv6::NEIGHBOR_ADVERT => {
                // RFC 4861 §7.1.1/§7.1.2: hop limit 255, code 0, a well-formed target and options.
                let (Ok(target), Ok(lladdr)) = (icmp.nd_target(), icmp.nd_lladdr()) else {
                    return FromWire::Drop(Drop::NdMalformed);
                };
                if hop_limit != 255 || icmp.code() != 0 || target.is_multicast() {
                    return FromWire::Drop(Drop::NdMalformed);
                }
                let solicit = icmp.msg_type() == icmpv6::NEIGHBOR_SOLICIT;
                // RFC 4861 §4.4: the NA's flags word (R, S, O).
                let flags = icmp_flags(p.payload());
                let (learn_ip, for_us, override_mac) = if solicit {
                    // §7.2.3: an NS's source link-layer address replaces
                    // the cached one.
                    (src, self.is_self(IpAddr::V6(target)), true)
                } else {
                    // §7.2.5: "If no entry exists, the advertisement SHOULD
                    // be silently discarded"; with O clear a different
                    // link-layer address does not replace a known one.
                    (target, true, flags & icmpv6::NA_OVERRIDE != 0)
                };
                if let Some(mac) = lladdr.filter(|_| !learn_ip.is_unspecified()) {
                    if self
                        .neighbors
                        .update(IpAddr::V6(learn_ip), mac, now, override_mac)
                        == Learned::Updated
                    {
                        io.resolved(IpAddr::V6(learn_ip), mac);
                    }
                }
                if !for_us {
                    return FromWire::Drop(Drop::NotForUs);
                }
                if !src.is_unspecified() {
                    self.mirror(now, buf, hdr, len, io);
                }
                if !solicit {
                    return FromWire::Consumed;
                }
                if !self.punt.admit(Class::Answer, now) {
                    return FromWire::Drop(Drop::AnswerPoliced);
                }
                let peer_mac = Mac::from_slice(&buf[6..12]);
                match self.emit_advert(buf, hdr, src, target, peer_mac) {
                    Some(n) => {
                        self.counters.nd_replies += 1;
                        FromWire::Reply(n)
                    }
                    None => FromWire::Drop(Drop::NdMalformed),
                }
            }
            icmpv6::ROUTER_SOLICIT | icmpv6::ROUTER_ADVERT | icmpv6::REDIRECT => {
                FromWire::Drop(Drop::NdIgnored)
            }
            icmpv6::ECHO_REQUEST if unicast_for_us => {
                let src_mac = Mac::from_slice(&buf[6..12]);
                if let Ok(mut p) = ipv6::Packet::new_checked(&mut buf[hdr..len]) {
                    p.set_src(&dst);
                    p.set_dst(&src);
                    p.set_hop_limit(64);
                    if let Ok(mut i) = icmpv6::Packet::new_checked(p.payload_mut()) {
                        i.make_echo_reply();
                    }
                }
                self.set_macs(buf, src_mac);
                self.counters.echo_replies += 1;
                FromWire::Reply(len)
            }
            _ if unicast_for_us => FromWire::Punt,
            _ => FromWire::Drop(Drop::NotForUs),
        }
    }

    /// Writes, after the Ethernet header already in `buf[..hdr]`, a Neighbor
    /// Advertisement for `target` (answered with our MAC) to `to`, and points
    /// the frame at `to_mac`. Returns the frame length, or `None` without
    /// room.
    fn emit_advert(
        &self,
        buf: &mut [u8],
        hdr: usize,
        to: Ipv6Addr,
        target: Ipv6Addr,
        to_mac: Mac,
    ) -> Option<usize> {
        let total = hdr + ipv6::HEADER_LEN + icmpv6::ND_LEN + 8;
        if buf.len() < total {
            return None;
        }
        // RFC 4861 §7.2.4: to the solicitation's source, or all-nodes for DAD.
        let (dst, dst_mac, flags) = if to.is_unspecified() {
            (
                ALL_NODES,
                Mac::ipv6_multicast(&ALL_NODES.octets()),
                icmpv6::NA_OVERRIDE,
            )
        } else {
            (to, to_mac, icmpv6::NA_SOLICITED | icmpv6::NA_OVERRIDE)
        };
        self.set_macs(buf, dst_mac);
        ipv6::Repr {
            src: target,
            dst,
            next_header: protocol::ICMPV6,
            payload_len: icmpv6::ND_LEN + 8,
            hop_limit: 255,
        }
        .emit(&mut buf[hdr..]);
        let body = &mut buf[hdr + ipv6::HEADER_LEN..total];
        icmpv6::emit_nd(body, icmpv6::NEIGHBOR_ADVERT, flags, &target, self.mac);
        icmpv6::Packet::new_checked(body)
            .ok()?
            .fill_checksum(&target, &dst);
        Some(total)
    }

    /// Handles a frame the kernel sent out of the TAP (always untagged).
    pub fn rx_from_tap(&mut self, buf: &mut [u8], len: usize, fib: &Fib) -> FromTap {
        let Some(frame_bytes) = buf.get(..len) else {
            return FromTap::Drop(Drop::EthTruncated);
        };
        let Ok(frame) = Frame::new_checked(frame_bytes) else {
            return FromTap::Drop(Drop::EthTruncated);
        };
        let hdr = frame.header_len();
        match frame.ethertype() {
            ethertype::ARP => {
                let Ok(p) = arp::Packet::new_checked(&buf[hdr..len]) else {
                    return FromTap::Drop(Drop::ArpMalformed);
                };
                if p.operation() != arp::OP_REQUEST {
                    return FromTap::Consumed; // the data plane already answered
                }
                if p.sender_ip() == p.target_ip() {
                    return FromTap::Flood; // gratuitous: let the segment know
                }
                let asker = p.sender_mac();
                arp::Packet::new_checked(&mut buf[hdr..len])
                    .map(|mut p| p.make_reply(self.mac))
                    .ok();
                self.set_macs(buf, asker);
                FromTap::ReplyToTap(len)
            }
            ethertype::IPV4 => match ipv4::Packet::new_checked(&buf[hdr..len]) {
                Ok(p) if p.dst().is_multicast() || self.is_broadcast_v4(p.dst()) => FromTap::Flood,
                Ok(p) => self.route(fib, IpAddr::V4(p.dst())),
                Err(Error::Truncated) => FromTap::Drop(Drop::Ipv4Truncated),
                Err(_) => FromTap::Drop(Drop::Ipv4Malformed),
            },
            ethertype::IPV6 => {
                let p = match ipv6::Packet::new_checked(&buf[hdr..len]) {
                    Ok(p) => p,
                    Err(Error::Truncated) => return FromTap::Drop(Drop::Ipv6Truncated),
                    Err(_) => return FromTap::Drop(Drop::Ipv6Malformed),
                };
                let (src, dst) = (p.src(), p.dst());
                if p.next_header() == protocol::ICMPV6 {
                    let t = p.payload().first().copied().unwrap_or(0);
                    if (icmpv6::ROUTER_SOLICIT..=icmpv6::REDIRECT).contains(&t) {
                        return self.nd_from_tap(buf, hdr, len, src);
                    }
                }
                if dst.is_multicast() {
                    FromTap::Flood
                } else if dst.is_unicast_link_local() {
                    FromTap::Forward {
                        port: self.index,
                        next_hop: IpAddr::V6(dst),
                    }
                } else {
                    self.route(fib, IpAddr::V6(dst))
                }
            }
            _ => FromTap::Drop(Drop::UnknownEthertype),
        }
    }

    /// The kernel's own Neighbor Discovery: its solicitations are answered
    /// with our MAC (we route for it); DAD probes and the rest stay here.
    fn nd_from_tap(&mut self, buf: &mut [u8], hdr: usize, len: usize, src: Ipv6Addr) -> FromTap {
        let target = ipv6::Packet::new_checked(&buf[hdr..len])
            .ok()
            .and_then(|p| {
                let i = icmpv6::Packet::new_checked(p.payload()).ok()?;
                (i.msg_type() == icmpv6::NEIGHBOR_SOLICIT)
                    .then(|| i.nd_target().ok())
                    .flatten()
            });
        match target {
            Some(target) if !src.is_unspecified() => {
                let asker = Mac::from_slice(&buf[6..12]);
                match self.emit_advert(buf, hdr, src, target, asker) {
                    Some(n) => FromTap::ReplyToTap(n),
                    None => FromTap::Drop(Drop::NdMalformed),
                }
            }
            _ => FromTap::Consumed,
        }
    }

    fn route(&self, fib: &Fib, dst: IpAddr) -> FromTap {
        match fib.lookup(dst) {
            Some((port, next_hop)) => FromTap::Forward { port, next_hop },
            None => FromTap::Drop(Drop::NoRoute),
        }
    }

    /// Writes into `buf` an ARP request or a Neighbor Solicitation for
    /// `ip` from this port (tagged if the port is), and returns its length.
    pub fn emit_solicit(&self, ip: IpAddr, buf: &mut [u8]) -> Option<usize> {
        match ip {
            IpAddr::V4(target) => {
                let src = self.source_for(ip).and_then(|a| match a {
                    IpAddr::V4(a) => Some(a),
                    IpAddr::V6(_) => None,
                })?;
                let hdr = ethernet::emit(
                    buf.get_mut(..18)?,
                    Mac::BROADCAST,
                    self.mac,
                    self.vlan,
                    ethertype::ARP,
                );
                let body = buf.get_mut(hdr..hdr + arp::LEN)?;
                arp::emit(body, arp::OP_REQUEST, self.mac, src, Mac::ZERO, target);
                Some((hdr + arp::LEN).max(60))
            }
            IpAddr::V6(target) => {
                let src = match self.source_for(ip) {
                    Some(IpAddr::V6(a)) => a,
                    _ => self.link_local,
                };
                let group = ipv6::solicited_node(&target);
                let total = 18 + ipv6::HEADER_LEN + icmpv6::ND_LEN + 8;
                let buf = buf.get_mut(..total)?;
                let hdr = ethernet::emit(
                    buf,
                    Mac::ipv6_multicast(&group.octets()),
                    self.mac,
                    self.vlan,
                    ethertype::IPV6,
                );
                ipv6::Repr {
                    src,
                    dst: group,
                    next_header: protocol::ICMPV6,
                    payload_len: icmpv6::ND_LEN + 8,
                    hop_limit: 255,
                }
                .emit(&mut buf[hdr..]);
                let end = hdr + ipv6::HEADER_LEN + icmpv6::ND_LEN + 8;
                let body = &mut buf[hdr + ipv6::HEADER_LEN..end];
                icmpv6::emit_nd(body, icmpv6::NEIGHBOR_SOLICIT, 0, &target, self.mac);
                icmpv6::Packet::new_checked(body)
                    .ok()?
                    .fill_checksum(&src, &group);
                Some(end)
            }
        }
    }

    /// Writes into `buf` a UDP datagram from this port to `dst` (at
    /// `dst_mac`), sourced from the self IP in `dst`'s subnet, with hop limit
    /// `ttl`, and returns the frame length (`None`: no self IP of that
    /// family, or no room).
    pub fn emit_udp(
        &self,
        buf: &mut [u8],
        dst_mac: Mac,
        dst: IpAddr,
        ports: (u16, u16),
        ttl: u8,
        payload: &[u8],
    ) -> Option<usize> {
        let src = self.source_for(dst)?;
        let udp = udp::Repr {
            src_port: ports.0,
            dst_port: ports.1,
            payload_len: payload.len(),
        };
        let udp_len = udp.buffer_len() + payload.len();
        let ip = IpRepr::new(src, dst, protocol::UDP, udp_len, ttl)?;
        let hdr = ethernet::emit(
            buf.get_mut(..18)?,
            dst_mac,
            self.mac,
            self.vlan,
            ip.ethertype(),
        );
        let end = hdr + ip.buffer_len() + udp_len;
        let frame = buf.get_mut(..end)?;
        ip.emit(&mut frame[hdr..]);
        let datagram = &mut frame[hdr + ip.buffer_len()..];
        datagram[udp.buffer_len()..].copy_from_slice(payload);
        udp.emit(datagram, ip.pseudo());
        Some(end.max(60))
    }

    /// The self IP to source a solicitation for `ip` from: one in its
    /// subnet, else the first of its family.
    fn source_for(&self, ip: IpAddr) -> Option<IpAddr> {
        let same_family = |s: &&SelfIp| s.addr.is_ipv4() == ip.is_ipv4();
        self.self_ips
            .iter()
            .filter(same_family)
            .find(|s| s.prefix().contains(ip))
            .or_else(|| self.self_ips.iter().find(same_family))
            .map(|s| s.addr)
    }
}

/// The flags word of an ICMPv6 message (bytes 4–7; an NA's R/S/O bits).
fn icmp_flags(icmp: &[u8]) -> u32 {
    icmp.get(4..8)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// The punt policer's class of a frame: TCP to or from port 179 is BGP,
/// ARP and ND are the neighbor class, the rest is other.
fn punt_class(frame: &[u8]) -> Class {
    let Ok(f) = Frame::new_checked(frame) else {
        return Class::Other;
    };
    let hdr = f.header_len();
    let ip = &frame[hdr..];
    let l4 = match f.ethertype() {
        ethertype::ARP => return Class::Neighbor,
        ethertype::IPV4 => match ip.first() {
            Some(v) if ip.get(ipv4::field::PROTOCOL) == Some(&protocol::TCP) => {
                ip.get(usize::from(v & 0xf) * 4..)
            }
            _ => None,
        },
        ethertype::IPV6 => match ip.get(ipv6::field::NEXT_HEADER) {
            Some(&protocol::TCP) => ip.get(ipv6::HEADER_LEN..),
            Some(&protocol::ICMPV6) => {
                let t = ip.get(ipv6::HEADER_LEN).copied().unwrap_or(0);
                if (icmpv6::ROUTER_SOLICIT..=icmpv6::REDIRECT).contains(&t) {
                    return Class::Neighbor;
                }
                None
            }
            _ => None,
        },
        _ => None,
    };
    match l4.and_then(|t| t.get(..4)) {
        Some(p) if p[..2] == [0, 179] || p[2..4] == [0, 179] => Class::Bgp,
        _ => Class::Other,
    }
}

/// fe80::/64 with the modified EUI-64 of `mac` (RFC 4291 appendix A).
pub fn link_local(mac: Mac) -> Ipv6Addr {
    let m = mac.0;
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        m[0] ^ 0x02,
        m[1],
        m[2],
        0xff,
        0xfe,
        m[3],
        m[4],
        m[5],
    ])
}

#[cfg(test)]
mod tests;

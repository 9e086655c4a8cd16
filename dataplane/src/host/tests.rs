//! Packet-in/packet-out cases for the host behaviour of a port. Input frames
//! are built with etherparse, an independent implementation.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{Icmpv4Type, Icmpv6Type, NetSlice, PacketBuilder, SlicedPacket, TransportSlice};

use super::*;

const OUR_MAC: Mac = Mac([0x02, 0x50, 0, 0, 0, 0x02]);
const PEER_MAC: Mac = Mac([0x02, 0x50, 0, 0, 0, 0x01]);
const OUR_V4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PEER_V4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

fn our_v6() -> Ipv6Addr {
    "fd00::2".parse().unwrap()
}
fn peer_v6() -> Ipv6Addr {
    "fd00::1".parse().unwrap()
}

fn host(vlan: Option<u16>) -> Host {
    Host::new(
        0,
        OUR_MAC,
        vlan,
        1500,
        vec![
            SelfIp {
                addr: IpAddr::V4(OUR_V4),
                len: 24,
            },
            SelfIp {
                addr: IpAddr::V6(our_v6()),
                len: 64,
            },
        ],
    )
}

#[derive(Default)]
struct Io {
    mirrored: Vec<Vec<u8>>,
    resolved: Vec<(IpAddr, Mac)>,
}

impl HostIo for Io {
    fn mirror_to_tap(&mut self, macs: &[u8], rest: &[u8]) {
        self.mirrored.push([macs, rest].concat());
    }
    fn resolved(&mut self, ip: IpAddr, mac: Mac) {
        self.resolved.push((ip, mac));
    }
}

fn eth(vlan: Option<u16>) -> etherparse::PacketBuilderStep<etherparse::Ethernet2Header> {
    let _ = vlan;
    PacketBuilder::ethernet2(PEER_MAC.0, OUR_MAC.0)
}

fn echo_v4(vlan: Option<u16>) -> Vec<u8> {
    let mut out = vec![];
    let b = eth(vlan);
    match vlan {
        Some(v) => b
            .single_vlan(v.try_into().unwrap())
            .ipv4(PEER_V4.octets(), OUR_V4.octets(), 64)
            .icmpv4_echo_request(7, 1)
            .write(&mut out, b"ping")
            .unwrap(),
        None => b
            .ipv4(PEER_V4.octets(), OUR_V4.octets(), 64)
            .icmpv4_echo_request(7, 1)
            .write(&mut out, b"ping")
            .unwrap(),
    }
    out
}

fn run(h: &mut Host, mut frame: Vec<u8>) -> (FromWire, Vec<u8>, Io) {
    let len = frame.len();
    frame.resize(len + 128, 0); // tailroom, as an mbuf has
    let mut io = Io::default();
    let v = h.rx_from_wire(1, &mut frame, len, &mut io);
    let out_len = match v {
        FromWire::Reply(n) => n,
        _ => len,
    };
    frame.truncate(out_len);
    (v, frame, io)
}

#[test]
fn ipv4_echo_is_answered_in_place() {
    for vlan in [None, Some(100)] {
        let mut h = host(vlan);
        let (v, out, io) = run(&mut h, echo_v4(vlan));
        assert!(matches!(v, FromWire::Reply(_)), "{v:?}");
        assert!(io.mirrored.is_empty());
        let p = SlicedPacket::from_ethernet(&out).unwrap();
        let Some(NetSlice::Ipv4(ip)) = p.net else {
            panic!()
        };
        assert_eq!(ip.header().source_addr(), OUR_V4);
        assert_eq!(ip.header().destination_addr(), PEER_V4);
        assert_eq!(
            ip.header().to_header().calc_header_checksum(),
            ip.header().header_checksum()
        );
        let Some(TransportSlice::Icmpv4(icmp)) = p.transport else {
            panic!()
        };
        assert!(matches!(icmp.icmp_type(), Icmpv4Type::EchoReply(e) if e.id == 7 && e.seq == 1));
        assert_eq!(
            icmp.icmp_type().calc_checksum(icmp.payload()),
            icmp.checksum()
        );
        assert_eq!(&out[0..6], &PEER_MAC.0);
        assert_eq!(h.counters.echo_replies, 1);
    }
}

#[test]
fn ipv6_echo_is_answered_in_place() {
    let mut h = host(None);
    let mut f = vec![];
    eth(None)
        .ipv6(peer_v6().octets(), our_v6().octets(), 64)
        .icmpv6_echo_request(3, 9)
        .write(&mut f, b"abc")
        .unwrap();
    let (v, out, _) = run(&mut h, f);
    assert!(matches!(v, FromWire::Reply(_)));
    let p = SlicedPacket::from_ethernet(&out).unwrap();
    let Some(NetSlice::Ipv6(ip)) = p.net else {
        panic!()
    };
    assert_eq!(ip.header().source_addr(), our_v6());
    let Some(TransportSlice::Icmpv6(icmp)) = p.transport else {
        panic!()
    };
    assert!(matches!(icmp.icmp_type(), Icmpv6Type::EchoReply(e) if e.id == 3 && e.seq == 9));
    let want = icmp
        .icmp_type()
        .calc_checksum(our_v6().octets(), peer_v6().octets(), icmp.payload())
        .unwrap();
    assert_eq!(want, icmp.checksum());
}

fn arp_request(target: Ipv4Addr) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 28];
    ethernet::emit(&mut f, Mac::BROADCAST, PEER_MAC, None, ethertype::ARP);
    arp::emit(
        &mut f[14..],
        arp::OP_REQUEST,
        PEER_MAC,
        PEER_V4,
        Mac::ZERO,
        target,
    );
    f
}

#[test]
fn arp_request_for_self_ip_is_answered_learned_and_mirrored() {
    let mut h = host(None);
    // The sender is learned only because we asked about it.
    assert!(h.neighbors.should_solicit(IpAddr::V4(PEER_V4), 1));
    let (v, out, io) = run(&mut h, arp_request(OUR_V4));
    assert_eq!(v, FromWire::Reply(42));
    let p = arp::Packet::new_checked(&out[14..]).unwrap();
    assert_eq!(
        (p.operation(), p.sender_mac(), p.sender_ip()),
        (arp::OP_REPLY, OUR_MAC, OUR_V4)
    );
    assert_eq!((p.target_mac(), p.target_ip()), (PEER_MAC, PEER_V4));
    assert_eq!(&out[0..12], &[PEER_MAC.0, OUR_MAC.0].concat()[..]);
    assert_eq!(
        io.mirrored,
        vec![arp_request(OUR_V4)],
        "the kernel sees the original request"
    );
    assert_eq!(io.resolved, vec![(IpAddr::V4(PEER_V4), PEER_MAC)]);
    assert_eq!(h.neighbors.lookup(IpAddr::V4(PEER_V4), 2), Some(PEER_MAC));
}

#[test]
fn arp_for_others_is_dropped_and_not_learned() {
    let mut h = host(None);
    let (v, _, io) = run(&mut h, arp_request(Ipv4Addr::new(10, 0, 0, 77)));
    assert_eq!(v, FromWire::Drop(Drop::ArpNotForUs));
    assert!(io.mirrored.is_empty() && io.resolved.is_empty());
}

fn ns(src: Ipv6Addr, target: Ipv6Addr, hop_limit: u8) -> Vec<u8> {
    let group = ipv6::solicited_node(&target);
    let mut f = vec![0u8; 14 + 40 + 32];
    ethernet::emit(
        &mut f,
        Mac::ipv6_multicast(&group.octets()),
        PEER_MAC,
        None,
        ethertype::IPV6,
    );
    ipv6::Repr {
        src,
        dst: group,
        next_header: 58,
        payload_len: 32,
        hop_limit,
    }
    .emit(&mut f[14..]);
    icmpv6::emit_nd(&mut f[54..], icmpv6::NEIGHBOR_SOLICIT, 0, &target, PEER_MAC);
    icmpv6::Packet::new_checked(&mut f[54..])
        .unwrap()
        .fill_checksum(&src, &group);
    f
}

#[test]
fn neighbor_solicitation_gets_an_advertisement() {
    let mut h = host(None);
    let (v, out, io) = run(&mut h, ns(peer_v6(), our_v6(), 255));
    assert_eq!(v, FromWire::Reply(86));
    let p = SlicedPacket::from_ethernet(&out).unwrap();
    let Some(NetSlice::Ipv6(ip)) = p.net else {
        panic!()
    };
    assert_eq!(
        (ip.header().source_addr(), ip.header().destination_addr()),
        (our_v6(), peer_v6())
    );
    assert_eq!(ip.header().hop_limit(), 255);
    let Some(TransportSlice::Icmpv6(icmp)) = p.transport else {
        panic!()
    };
    let want = icmp
        .icmp_type()
        .calc_checksum(our_v6().octets(), peer_v6().octets(), icmp.payload())
        .unwrap();
    assert_eq!(want, icmp.checksum());
    let na = icmpv6::Packet::new_checked(&out[54..]).unwrap();
    assert_eq!(na.msg_type(), icmpv6::NEIGHBOR_ADVERT);
    assert_eq!(na.nd_target().unwrap(), our_v6());
    assert_eq!(na.nd_lladdr().unwrap(), Some(OUR_MAC));
    assert!(
        io.resolved.is_empty(),
        "an unknown asker takes no cache slot"
    );
    assert_eq!(io.mirrored.len(), 1);
    assert!(h.neighbors.should_solicit(IpAddr::V6(peer_v6()), 1));
    let (_, _, io) = run(&mut h, ns(peer_v6(), our_v6(), 255));
    assert_eq!(io.resolved, vec![(IpAddr::V6(peer_v6()), PEER_MAC)]);
}

#[test]
fn arp_from_unknown_senders_is_answered_but_not_learned() {
    let mut h = host(None);
    // About learning, not policing: 10 000 requests in one instant.
    h.punt = policer::PuntPolicer::new(0);
    for i in 0..10_000u32 {
        let mut f = arp_request(OUR_V4);
        f[14 + 14..14 + 18].copy_from_slice(&(0x0a00_1000 + i).to_be_bytes());
        let (v, _, io) = run(&mut h, f);
        assert_eq!(v, FromWire::Reply(42));
        assert!(io.resolved.is_empty());
    }
    assert_eq!(h.neighbors.entries().count(), 0);
    // A next hop asked about afterwards still resolves.
    assert!(h.neighbors.should_solicit(IpAddr::V4(PEER_V4), 1));
    let (_, _, io) = run(&mut h, arp_request(OUR_V4));
    assert_eq!(io.resolved, vec![(IpAddr::V4(PEER_V4), PEER_MAC)]);
}

fn na(target: Ipv6Addr, lladdr: Mac, flags: u32) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 40 + 32];
    ethernet::emit(&mut f, OUR_MAC, lladdr, None, ethertype::IPV6);
    ipv6::Repr {
        src: target,
        dst: our_v6(),
        next_header: 58,
        payload_len: 32,
        hop_limit: 255,
    }
    .emit(&mut f[14..]);
    icmpv6::emit_nd(
        &mut f[54..],
        icmpv6::NEIGHBOR_ADVERT,
        flags,
        &target,
        lladdr,
    );
    icmpv6::Packet::new_checked(&mut f[54..])
        .unwrap()
        .fill_checksum(&target, &our_v6());
    f
}

#[test]
fn unsolicited_na_is_ignored_and_override_clear_keeps_the_mac() {
    let mut h = host(None);
    let other = Mac([0x02, 0x66, 0, 0, 0, 0x66]);
    let o = icmpv6::NA_OVERRIDE;
    let (v, _, io) = run(&mut h, na(peer_v6(), PEER_MAC, o));
    assert_eq!(v, FromWire::Consumed);
    assert!(
        io.resolved.is_empty(),
        "no entry: ignored (RFC 4861 §7.2.5)"
    );
    assert!(!h.neighbors.knows(IpAddr::V6(peer_v6())));
    assert!(h.neighbors.should_solicit(IpAddr::V6(peer_v6()), 1));
    let (_, _, io) = run(&mut h, na(peer_v6(), PEER_MAC, icmpv6::NA_SOLICITED));
    assert_eq!(io.resolved, vec![(IpAddr::V6(peer_v6()), PEER_MAC)]);
    let (_, _, io) = run(&mut h, na(peer_v6(), other, 0));
    assert!(io.resolved.is_empty(), "O clear does not override");
    assert_eq!(h.neighbors.lookup(IpAddr::V6(peer_v6()), 2), Some(PEER_MAC));
    let (_, _, io) = run(&mut h, na(peer_v6(), other, o));
    assert_eq!(io.resolved, vec![(IpAddr::V6(peer_v6()), other)]);
}

#[test]
fn static_neighbor_is_not_overridden_by_arp() {
    let mut h = host(None);
    let fixed = Mac([0x02, 0x77, 0, 0, 0, 0x77]);
    assert!(h.neighbors.add_static(IpAddr::V4(PEER_V4), fixed));
    let (v, _, io) = run(&mut h, arp_request(OUR_V4));
    assert_eq!(v, FromWire::Reply(42), "still answered");
    assert!(io.resolved.is_empty());
    assert_eq!(
        h.neighbors.lookup(IpAddr::V4(PEER_V4), u64::MAX),
        Some(fixed)
    );
}

#[test]
fn arp_mirrors_to_the_tap_are_policed() {
    let mut h = host(None);
    h.punt = policer::PuntPolicer::new(1000); // ARP/ND: 100/s, burst 64
    let mirrored = (0..1000)
        .filter(|_| !run(&mut h, arp_request(OUR_V4)).2.mirrored.is_empty())
        .count();
    assert_eq!(mirrored, 64);
    assert_eq!(h.counters.dropped(Drop::PuntPoliced), 1000 - 64);
}

/// ARP replies (and NAs) are the data plane's own answers, within the
/// port's answer budget (`puntRate` per second, burst a tenth): unpoliced,
/// an ARP flood came back out of the port as a flood of replies that
/// crowded out BFD and BGP on the flooded link (issue 14).
#[test]
fn arp_replies_are_policed() {
    let mut h = host(None);
    h.punt = policer::PuntPolicer::new(1000); // answers: 1000/s, burst 100
    let replies = (0..1000)
        .filter(|_| matches!(run(&mut h, arp_request(OUR_V4)).0, FromWire::Reply(_)))
        .count();
    assert_eq!(replies, 100);
    assert_eq!(h.counters.arp_replies, 100);
    // A second later the bucket has refilled.
    let mut frame = arp_request(OUR_V4);
    let len = frame.len();
    frame.resize(len + 128, 0);
    let v = h.rx_from_wire(1_000_000_001, &mut frame, len, &mut Io::default());
    assert!(matches!(v, FromWire::Reply(_)), "{v:?}");
    // No policing at all with rate 0.
    h.punt = policer::PuntPolicer::new(0);
    let replies = (0..1000)
        .filter(|_| matches!(run(&mut h, arp_request(OUR_V4)).0, FromWire::Reply(_)))
        .count();
    assert_eq!(replies, 1000);
}

#[test]
fn punts_are_policed_by_class() {
    let mut h = host(None);
    h.punt = policer::PuntPolicer::new(1000); // other: burst 100, BGP: 200
    let tcp = |dport: u16| {
        let mut out = vec![];
        eth(None)
            .ipv4(PEER_V4.octets(), OUR_V4.octets(), 64)
            .tcp(40000, dport, 1, 1000)
            .write(&mut out, b"x")
            .unwrap();
        out
    };
    let udp = {
        let mut out = vec![];
        eth(None)
            .ipv4(PEER_V4.octets(), OUR_V4.octets(), 64)
            .udp(40000, 9)
            .write(&mut out, b"x")
            .unwrap();
        out
    };
    assert_eq!(punt_class(&tcp(179)), policer::Class::Bgp);
    assert_eq!(punt_class(&tcp(22)), policer::Class::Other);
    assert_eq!(punt_class(&arp_request(OUR_V4)), policer::Class::Neighbor);
    let now = 1_000_000_000;
    let passed = (0..10_000).filter(|_| h.admit_punt(now, &udp)).count();
    assert_eq!(passed, 100);
    assert_eq!(h.counters.dropped(Drop::PuntPoliced), 10_000 - 100);
    assert!(
        h.admit_punt(now, &tcp(179)),
        "the UDP flood left BGP its own bucket"
    );
}

#[test]
fn nd_with_wrong_hop_limit_is_dropped() {
    let mut h = host(None);
    let (v, _, io) = run(&mut h, ns(peer_v6(), our_v6(), 64));
    assert_eq!(v, FromWire::Drop(Drop::NdMalformed));
    assert!(io.resolved.is_empty());
}

#[test]
fn malformed_frames_are_dropped_by_reason() {
    let mut h = host(None);
    let good = echo_v4(None);
    let cases: Vec<(&str, Vec<u8>, Drop)> = vec![
        ("short ethernet", good[..10].to_vec(), Drop::EthTruncated),
        ("truncated ipv4", good[..30].to_vec(), Drop::Ipv4Truncated),
        (
            "bad ihl",
            {
                let mut f = good.clone();
                f[14] = 0x43;
                f
            },
            Drop::Ipv4Malformed,
        ),
        (
            "bad ip checksum",
            {
                let mut f = good.clone();
                f[24] ^= 0xff;
                f
            },
            Drop::Ipv4Checksum,
        ),
        (
            "bad icmp checksum",
            {
                let mut f = good.clone();
                f[36] ^= 0xff;
                f
            },
            Drop::IcmpChecksum,
        ),
        (
            "tagged on untagged port",
            echo_v4(Some(5)),
            Drop::VlanMismatch,
        ),
        (
            "oversize",
            {
                let mut f = good.clone();
                f.resize(14 + 1501, 0);
                f
            },
            Drop::Oversize,
        ),
        (
            "other mac",
            {
                let mut f = good.clone();
                f[5] = 0x77;
                f
            },
            Drop::NotOurMac,
        ),
        (
            "unknown ethertype",
            {
                let mut f = good.clone();
                f[12] = 0x88;
                f[13] = 0xcc;
                f
            },
            Drop::UnknownEthertype,
        ),
        (
            "short arp",
            arp_request(OUR_V4)[..30].to_vec(),
            Drop::ArpMalformed,
        ),
    ];
    for (what, frame, want) in cases {
        let (v, _, _) = run(&mut h, frame);
        assert_eq!(v, FromWire::Drop(want), "{what}");
    }
    // and a well-formed ping is still answered
    assert!(matches!(run(&mut h, good).0, FromWire::Reply(_)));
}

#[test]
fn tcp_to_self_ip_is_punted_to_the_kernel() {
    let mut h = host(None);
    let mut f = vec![];
    eth(None)
        .ipv4(PEER_V4.octets(), OUR_V4.octets(), 64)
        .tcp(40000, 179, 1, 1000)
        .syn()
        .write(&mut f, &[])
        .unwrap();
    assert_eq!(run(&mut h, f).0, FromWire::Punt);
    let mut f = vec![];
    eth(None)
        .ipv4(PEER_V4.octets(), [10, 0, 0, 99], 64)
        .tcp(40000, 179, 1, 1000)
        .write(&mut f, &[])
        .unwrap();
    assert_eq!(
        run(&mut h, f).0,
        FromWire::Transit,
        "for the L4 path to judge"
    );
}

fn fib() -> Fib {
    Fib::new(vec![
        Route {
            prefix: Prefix::new(IpAddr::V4(OUR_V4), 24),
            port: 0,
            via: None,
        },
        Route {
            prefix: Prefix::new("192.168.9.0".parse().unwrap(), 24),
            port: 1,
            via: Some("10.1.0.1".parse().unwrap()),
        },
    ])
}

#[test]
fn kernel_arp_is_answered_with_our_mac_and_ip_is_routed() {
    let mut h = host(None);
    let mut f = vec![0u8; 42];
    ethernet::emit(&mut f, Mac::BROADCAST, OUR_MAC, None, ethertype::ARP);
    arp::emit(
        &mut f[14..],
        arp::OP_REQUEST,
        OUR_MAC,
        OUR_V4,
        Mac::ZERO,
        PEER_V4,
    );
    let len = f.len();
    assert_eq!(h.rx_from_tap(&mut f, len, &fib()), FromTap::ReplyToTap(42));
    let p = arp::Packet::new_checked(&f[14..]).unwrap();
    assert_eq!(
        (p.sender_ip(), p.sender_mac(), p.target_ip()),
        (PEER_V4, OUR_MAC, OUR_V4)
    );

    let mut f = vec![];
    PacketBuilder::ethernet2(OUR_MAC.0, OUR_MAC.0)
        .ipv4(OUR_V4.octets(), [192, 168, 9, 5], 64)
        .udp(1, 2)
        .write(&mut f, b"x")
        .unwrap();
    let len = f.len();
    assert_eq!(
        h.rx_from_tap(&mut f, len, &fib()),
        FromTap::Forward {
            port: 1,
            next_hop: "10.1.0.1".parse().unwrap()
        }
    );
    let mut f = vec![];
    PacketBuilder::ethernet2(OUR_MAC.0, OUR_MAC.0)
        .ipv4(OUR_V4.octets(), [172, 16, 0, 1], 64)
        .udp(1, 2)
        .write(&mut f, b"x")
        .unwrap();
    let len = f.len();
    assert_eq!(
        h.rx_from_tap(&mut f, len, &fib()),
        FromTap::Drop(Drop::NoRoute)
    );
}

#[test]
fn kernel_ns_is_answered_and_dad_is_swallowed() {
    let mut h = host(None);
    let mut f = ns(our_v6(), peer_v6(), 255);
    f.resize(f.len() + 16, 0);
    assert_eq!(h.rx_from_tap(&mut f, 86, &fib()), FromTap::ReplyToTap(86));
    let na = icmpv6::Packet::new_checked(&f[54..86]).unwrap();
    assert_eq!(
        (na.msg_type(), na.nd_lladdr().unwrap()),
        (icmpv6::NEIGHBOR_ADVERT, Some(OUR_MAC))
    );
    let mut f = ns(Ipv6Addr::UNSPECIFIED, our_v6(), 255);
    assert_eq!(h.rx_from_tap(&mut f, 86, &fib()), FromTap::Consumed);
}

#[test]
fn solicitations_parse_with_an_independent_decoder() {
    let h = host(Some(100));
    let mut buf = [0u8; 128];
    let n = h.emit_solicit(IpAddr::V4(PEER_V4), &mut buf).unwrap();
    let p = SlicedPacket::from_ethernet(&buf[..n]).unwrap();
    let Some(etherparse::LinkSlice::Ethernet2(_)) = p.link else {
        panic!()
    };
    assert!(
        matches!(p.vlan, Some(etherparse::VlanSlice::SingleVlan(v)) if v.vlan_identifier().value() == 100)
    );
    let n = h.emit_solicit(IpAddr::V6(peer_v6()), &mut buf).unwrap();
    let p = SlicedPacket::from_ethernet(&buf[..n]).unwrap();
    let Some(NetSlice::Ipv6(ip)) = p.net else {
        panic!()
    };
    let Some(TransportSlice::Icmpv6(icmp)) = p.transport else {
        panic!()
    };
    let want = icmp
        .icmp_type()
        .calc_checksum(
            ip.header().source_addr().octets(),
            ip.header().destination_addr().octets(),
            icmp.payload(),
        )
        .unwrap();
    assert_eq!(want, icmp.checksum());
    assert!(
        matches!(icmp.icmp_type(), Icmpv6Type::Unknown { type_u8: 135, .. })
            || format!("{:?}", icmp.icmp_type()).contains("NeighborSolicitation")
    );
}

#[test]
fn link_local_is_eui64() {
    assert_eq!(
        link_local(Mac([0x02, 0x50, 0, 0, 0, 2])),
        "fe80::50:ff:fe00:2".parse::<Ipv6Addr>().unwrap()
    );
}

/// A BFD control packet (RFC 5880: version 1, Down, detect mult 3, 24
/// bytes, discriminators 1 and 0, 1 s intervals).
const BFD_PAYLOAD: [u8; 24] = [
    0x20, 0x40, 3, 24, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0x0f, 0x42, 0x40, 0, 0x0f, 0x42, 0x40, 0, 0, 0, 0,
];

/// [`BFD_PAYLOAD`] from port 49152 to the peer's 3784 with TTL 255, as
/// the BFD send path asks `emit_udp` for it; the frame's length.
fn emit_bfd(h: &Host, buf: &mut [u8], peer: IpAddr) -> usize {
    h.emit_udp(buf, PEER_MAC, peer, (49152, 3784), 255, &BFD_PAYLOAD)
        .unwrap()
}

#[test]
fn bfd_to_a_self_ip_goes_to_the_sessions_and_emit_udp_round_trips() {
    let h = host(None);
    let payload = BFD_PAYLOAD;
    let mut buf = [0u8; 128];
    let n = emit_bfd(&h, &mut buf, IpAddr::V4(PEER_V4));
    // What we send verifies with etherparse.
    let p = SlicedPacket::from_ethernet(&buf[..n]).unwrap();
    let Some(TransportSlice::Udp(u)) = p.transport else {
        panic!()
    };
    assert_eq!(
        (u.source_port(), u.destination_port(), u.payload()),
        (49152, 3784, &payload[..])
    );
    let Some(NetSlice::Ipv4(ip)) = p.net else {
        panic!()
    };
    assert_eq!(ip.header().ttl(), 255);
    assert_eq!(
        u.to_header()
            .calc_checksum_ipv4(&ip.header().to_header(), u.payload())
            .unwrap(),
        u.checksum()
    );
    // The same datagram from the peer is handed to the BFD sessions.
    let mut f = vec![];
    PacketBuilder::ethernet2(PEER_MAC.0, OUR_MAC.0)
        .ipv4(PEER_V4.octets(), OUR_V4.octets(), 255)
        .udp(49999, 3784)
        .write(&mut f, &payload)
        .unwrap();
    let mut h = host(None);
    let (v, out, _) = run(&mut h, f);
    let FromWire::Bfd {
        payload: (a, b),
        src,
        ttl,
        multihop,
    } = v
    else {
        panic!("{v:?}")
    };
    assert_eq!(
        (&out[a..b], src, ttl, multihop),
        (&payload[..], IpAddr::V4(PEER_V4), 255, false)
    );
    // Multihop over IPv6, and a bad UDP checksum is not BFD (punted to the kernel).
    let mut f = vec![];
    PacketBuilder::ethernet2(PEER_MAC.0, OUR_MAC.0)
        .ipv6(peer_v6().octets(), our_v6().octets(), 250)
        .udp(49999, 4784)
        .write(&mut f, &payload)
        .unwrap();
    let (v, _, _) = run(&mut h, f.clone());
    assert!(
        matches!(
            v,
            FromWire::Bfd {
                multihop: true,
                ttl: 250,
                ..
            }
        ),
        "{v:?}"
    );
    let n = f.len();
    f[n - 1] ^= 0xff;
    assert_eq!(run(&mut h, f).0, FromWire::Punt);
}

#[test]
fn emit_udp_writes_the_same_bfd_frames_byte_for_byte() {
    // Headers computed apart from pollux (Python's struct and an RFC 1071
    // sum): DF set, id 0, TTL/hop limit 255, next header at byte 6.
    let payload = BFD_PAYLOAD;
    let h = host(None);
    let mut buf = [0u8; 128];
    let n = emit_bfd(&h, &mut buf, IpAddr::V4(PEER_V4));
    assert_eq!(n, 66);
    assert_eq!(buf[..6], PEER_MAC.0);
    assert_eq!(buf[6..12], OUR_MAC.0);
    assert_eq!(buf[12..14], [0x08, 0x00]);
    #[rustfmt::skip]
    assert_eq!(buf[14..42], [
        0x45, 0x00, 0x00, 0x34, 0x00, 0x00, 0x40, 0x00, 0xff, 0x11, 0x67, 0xb6,
        0x0a, 0x00, 0x00, 0x02, 0x0a, 0x00, 0x00, 0x01,
        0xc0, 0x00, 0x0e, 0xc8, 0x00, 0x20, 0x74, 0xeb,
    ]);
    assert_eq!(buf[42..66], payload);
    let n = emit_bfd(&h, &mut buf, IpAddr::V6(peer_v6()));
    assert_eq!(n, 86);
    assert_eq!(buf[12..14], [0x86, 0xdd]);
    #[rustfmt::skip]
    assert_eq!(buf[14..22], [0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 0x11, 0xff]);
    assert_eq!(buf[22..38], our_v6().octets());
    assert_eq!(buf[38..54], peer_v6().octets());
    assert_eq!(
        buf[54..62],
        [0xc0, 0x00, 0x0e, 0xc8, 0x00, 0x20, 0x8e, 0xe9]
    );
    assert_eq!(buf[62..86], payload);
}

/// A TCP or UDP frame to `dst` with `ttl`, then `corrupt` applied (an
/// index into the frame and a byte to xor there).
fn l4_frame(tcp: bool, dst: Ipv4Addr, dport: u16, ttl: u8, corrupt: (usize, u8)) -> Vec<u8> {
    let mut out = vec![];
    let b = eth(None).ipv4(PEER_V4.octets(), dst.octets(), ttl);
    if tcp {
        b.tcp(40000, dport, 1, 1000)
            .ack(7)
            .write(&mut out, b"data")
            .unwrap();
    } else {
        b.udp(40000, dport).write(&mut out, b"data").unwrap();
    }
    let (at, x) = corrupt;
    if let Some(byte) = out.get_mut(at) {
        *byte ^= x;
    }
    out
}

proptest::proptest! {
    /// The L4 fast path skips the host stage for the frames it classifies
    /// (`Host::classified_v4` stands for it): for every such frame, the
    /// host stage's verdict is that one, and it changes neither the frame
    /// nor anything else (nothing mirrored, nothing learned).
    #[test]
    fn classified_frames_get_the_host_stages_verdict(
        tcp in proptest::bool::ANY,
        dst in 0usize..5,
        dport in proptest::sample::select(vec![80u16, 3784, 4784, 53]),
        ttl in proptest::sample::select(vec![0u8, 1, 2, 64]),
        corrupt in (0usize..60, proptest::num::u8::ANY),
    ) {
        let dst = [OUR_V4, Ipv4Addr::new(10, 0, 0, 255), Ipv4Addr::new(10, 0, 0, 7),
                   Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(224, 0, 0, 5)][dst];
        let frame = l4_frame(tcp, dst, dport, ttl, corrupt);
        let hasher = crate::lb::CtHasher::new(1);
        if let Some(flow) = crate::lb::classify_v4(&frame, &OUR_MAC, 1500, &hasher) {
            let mut h = host(None);
            let want = h.classified(IpAddr::from(flow.key.dst));
            let (v, out, io) = run(&mut h, frame.clone());
            proptest::prop_assert_eq!(v, want);
            proptest::prop_assert_eq!(out, frame);
            proptest::prop_assert!(io.mirrored.is_empty() && io.resolved.is_empty());
        }
    }
}

/// The property above sees both of `classified_v4`'s verdicts.
#[test]
fn classified_frames_are_punted_or_in_transit() {
    let hasher = crate::lb::CtHasher::new(1);
    let h = host(None);
    for (dst, want) in [
        (OUR_V4, FromWire::Punt),
        (Ipv4Addr::new(10, 0, 0, 255), FromWire::Punt),
        (Ipv4Addr::new(192, 0, 2, 1), FromWire::Transit),
    ] {
        let frame = l4_frame(false, dst, 80, 64, (0, 0));
        let flow = crate::lb::classify_v4(&frame, &OUR_MAC, 1500, &hasher).expect("fast class");
        assert_eq!(h.classified(IpAddr::from(flow.key.dst)), want, "{dst}");
    }
}

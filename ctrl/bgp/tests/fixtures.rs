//! Byte fixtures both ways (bytes ⇄ values), commented per field, and
//! messages captured from a real FRR 8.4 (tests/capture/capture-frr.sh).

mod common;

use std::net::{Ipv4Addr, Ipv6Addr};

use bgp::advertise::{self, RouteAttributes};
use bgp::fsm::{Config, GracefulRestartConfig};
use bgp::*;
use common::*;

const M: &str = "ffffffffffffffffffffffffffffffff"; // RFC 4271 §4.1 marker

fn both_ways(value: &Message, bytes: &[u8], ctx: &Context) {
    assert_bytes(&value.to_bytes(ctx).unwrap(), bytes);
    assert_eq!(&decode(bytes, ctx).unwrap(), value);
}

fn v4(a: [u8; 4], len: u8) -> Ipv4Prefix {
    Ipv4Prefix::new(Ipv4Addr::from(a), len).unwrap()
}

fn v6(s: &str, len: u8) -> Ipv6Prefix {
    Ipv6Prefix::new(s.parse().unwrap(), len).unwrap()
}

// ---------------------------------------------------------------------------
// Hand-written fixtures
// ---------------------------------------------------------------------------

#[test]
fn open_with_capabilities_and_4_octet_as() {
    let mut c = Config::new(4_200_000_001, 65001, Ipv4Addr::new(192, 0, 2, 1));
    c.graceful_restart = Some(GracefulRestartConfig {
        restart_time: 120,
        restarting: true,
        forwarding_state: true,
    });
    let bytes = hex(&format!(
        "{M}
        0047 01               # length 71, OPEN
        04                    # version 4
        5ba0                  # My AS = AS_TRANS 23456 (RFC 6793)
        005a                  # hold time 90
        c0000201              # BGP identifier 192.0.2.1
        2a                    # optional parameters length 42
        02 06 01 04 0001 00 01            # MP: IPv4 unicast
        02 06 01 04 0002 00 01            # MP: IPv6 unicast
        02 02 02 00                       # route refresh
        02 06 41 04 fa56ea01              # 4-octet AS 4200000001
        02 0c 40 0a 8078                  # GR: R flag, restart time 120
                    0001 01 80            # IPv4 unicast, F
                    0002 01 80            # IPv6 unicast, F
    "
    ));
    both_ways(&Message::Open(c.open()), &bytes, &Context::default());
    let Message::Open(o) = decode(&bytes, &Context::default()).unwrap() else {
        panic!()
    };
    assert_eq!(o.asn(), 4_200_000_001);
    assert!(o.graceful_restart().unwrap().restart_state());
}

#[test]
fn update_ipv4_vips_ebgp_with_graceful_shutdown() {
    let mut a = RouteAttributes::new(65000, true);
    a.next_hop_v4 = Some(Ipv4Addr::new(192, 0, 2, 1));
    a.communities = vec![Community::GRACEFUL_SHUTDOWN];
    let vips = [
        Prefix::V4(Ipv4Prefix::host(Ipv4Addr::new(203, 0, 113, 10))),
        Prefix::V4(Ipv4Prefix::host(Ipv4Addr::new(203, 0, 113, 11))),
    ];
    let ups = advertise::announce(&a, &vips, &Context::default()).unwrap();
    assert_eq!(ups.len(), 1);
    let bytes = hex(&format!(
        "{M}
        003c 02               # length 60, UPDATE
        0000                  # withdrawn routes length 0
        001b                  # total path attribute length 27
        40 01 01 00           # ORIGIN IGP
        40 02 06 02 01 0000fde8   # AS_PATH: AS_SEQUENCE [65000]
        40 03 04 c0000201     # NEXT_HOP 192.0.2.1
        c0 08 04 ffff0000     # COMMUNITIES GRACEFUL_SHUTDOWN (RFC 8326)
        20 cb00710a           # NLRI 203.0.113.10/32
        20 cb00710b           # NLRI 203.0.113.11/32
    "
    ));
    both_ways(
        &Message::Update(ups[0].clone()),
        &bytes,
        &Context::default(),
    );
}

#[test]
fn update_ipv6_vip_mp_reach_ibgp() {
    let mut a = RouteAttributes::new(65000, false);
    a.next_hop_v6 = Some("2001:db8::1".parse().unwrap());
    a.local_pref = Some(200);
    let vips = [Prefix::V6(Ipv6Prefix::host(
        "2001:db8:f::1".parse().unwrap(),
    ))];
    let ibgp = Context {
        four_octet_as: true,
        ebgp: false,
    };
    let ups = advertise::announce(&a, &vips, &ibgp).unwrap();
    let bytes = hex(&format!(
        "{M}
        004f 02               # length 79, UPDATE
        0000                  # withdrawn routes length 0
        0038                  # total path attribute length 56
        40 01 01 00           # ORIGIN IGP
        40 02 00              # AS_PATH empty (iBGP)
        40 05 04 000000c8     # LOCAL_PREF 200
        90 0e 0026            # MP_REACH_NLRI, extended length 38
           0002 01            # IPv6 unicast
           10 20010db8000000000000000000000001   # next hop 2001:db8::1
           00                 # reserved
           80 20010db8000f00000000000000000001   # 2001:db8:f::1/128
    "
    ));
    both_ways(&Message::Update(ups[0].clone()), &bytes, &ibgp);
}

#[test]
fn update_withdraw_ipv4_and_ipv6() {
    let ups = advertise::withdraw(&[
        Prefix::V4(Ipv4Prefix::host(Ipv4Addr::new(203, 0, 113, 10))),
        Prefix::V6(Ipv6Prefix::host("2001:db8:f::1".parse().unwrap())),
    ]);
    let v4 = hex(&format!(
        "{M}
        001c 02               # length 28, UPDATE
        0005 20 cb00710a      # withdrawn: 203.0.113.10/32
        0000                  # no attributes
    "
    ));
    let v6 = hex(&format!(
        "{M}
        002f 02               # length 47, UPDATE
        0000                  # no withdrawn routes
        0018                  # attributes 24
        90 0f 0014 0002 01    # MP_UNREACH_NLRI, IPv6 unicast
           80 20010db8000f00000000000000000001   # 2001:db8:f::1/128
    "
    ));
    both_ways(&Message::Update(ups[0].clone()), &v4, &Context::default());
    both_ways(&Message::Update(ups[1].clone()), &v6, &Context::default());
}

#[test]
fn end_of_rib_markers() {
    let eor4 = hex(&format!("{M} 0017 02 0000 0000   # empty UPDATE"));
    let eor6 = hex(&format!(
        "{M} 001d 02 0000 0006 80 0f 03 0002 01   # empty MP_UNREACH IPv6"
    ));
    both_ways(
        &Message::Update(Update::end_of_rib(Family::IPV4_UNICAST)),
        &eor4,
        &Context::default(),
    );
    both_ways(
        &Message::Update(Update::end_of_rib(Family::IPV6_UNICAST)),
        &eor6,
        &Context::default(),
    );
}

#[test]
fn notification_administrative_shutdown_with_message() {
    let bytes = hex(&format!(
        "{M}
        0019 03               # length 25, NOTIFICATION
        06 02                 # Cease / Administrative Shutdown
        03 627965             # RFC 8203 message: length 3, \"bye\"
    "
    ));
    let n = Notification::administrative_shutdown("bye");
    both_ways(
        &Message::Notification(n.clone()),
        &bytes,
        &Context::default(),
    );
    assert_eq!(n.shutdown_message().as_deref(), Some("bye"));
}

#[test]
fn keepalive_is_the_header_alone() {
    both_ways(
        &Message::Keepalive,
        &hex(&format!("{M} 0013 04")),
        &Context::default(),
    );
}

#[test]
fn route_refresh_ipv6_unicast() {
    let bytes = hex(&format!(
        "{M} 0017 05 0002 00 01   # AFI 2, reserved, SAFI 1"
    ));
    let rr = RouteRefresh {
        family: Family::IPV6_UNICAST,
        subtype: 0,
    };
    both_ways(&Message::RouteRefresh(rr), &bytes, &Context::default());
}

#[test]
fn as_path_on_a_2_octet_session_uses_as_trans_and_as4_path() {
    let mut a = RouteAttributes::new(4_200_000_001, true);
    a.next_hop_v4 = Some(Ipv4Addr::new(192, 0, 2, 1));
    let ctx = Context {
        four_octet_as: false,
        ebgp: true,
    };
    let ups = advertise::announce(&a, &[Prefix::V4(v4([203, 0, 113, 10], 32))], &ctx).unwrap();
    let bytes = hex(&format!(
        "{M}
        0037 02 0000 001b   # length 55, attributes 27
        40 01 01 00           # ORIGIN IGP
        40 02 04 02 01 5ba0   # AS_PATH [AS_TRANS] (2-octet)
        40 03 04 c0000201     # NEXT_HOP
        c0 11 06 02 01 fa56ea01   # AS4_PATH [4200000001]
        20 cb00710a
    "
    ));
    assert_bytes(
        &Message::Update(ups[0].clone()).to_bytes(&ctx).unwrap(),
        &bytes,
    );
    // Decoded on a 2-octet session: AS_TRANS in AS_PATH, the real AS in
    // AS4_PATH (merging them is the receiver's RFC 6793 §4.2.3 job).
    let Message::Update(u) = decode(&bytes, &ctx).unwrap() else {
        panic!()
    };
    assert_eq!(
        u.attribute(attr_type::AS_PATH),
        Some(&AttributeValue::AsPath(AsPath::sequence(&[u32::from(
            AS_TRANS
        )])))
    );
    assert_eq!(
        u.attribute(attr_type::AS4_PATH),
        Some(&AttributeValue::As4Path(AsPath::sequence(&[4_200_000_001])))
    );
}

// ---------------------------------------------------------------------------
// Captured from FRR 8.4 (AS 65001, router-id 10.99.0.1)
// ---------------------------------------------------------------------------

fn frr(name: &str) -> (Vec<u8>, Message) {
    let bytes = fixture(name);
    let m = decode(&bytes, &Context::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
    // Re-encoding FRR's message gives FRR's bytes back.
    assert_bytes(&m.to_bytes(&Context::default()).unwrap(), &bytes);
    (bytes, m)
}

#[test]
fn frr_open() {
    let (_, m) = frr("frr_open.hex");
    let Message::Open(o) = m else { panic!("{m:?}") };
    assert_eq!((o.version, o.my_as, o.hold_time), (4, 65001, 9));
    assert_eq!(o.bgp_id, Ipv4Addr::new(10, 99, 0, 1));
    assert_eq!(o.asn(), 65001);
    assert_eq!(
        o.families(),
        vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]
    );
    assert!(o.route_refresh());
    assert!(o.capabilities.contains(&Capability::EnhancedRouteRefresh));
    let gr = o.graceful_restart().unwrap();
    assert_eq!(gr.restart_time, 120);
    assert_eq!(
        gr.flags,
        GracefulRestart::RESTART_STATE | GracefulRestart::NOTIFICATION
    );
    assert_eq!(gr.families.len(), 2);
    // Old Cisco route refresh (128), extended message (6), ADD-PATH (69),
    // FQDN (73), long-lived GR (71): kept, not understood.
    let unknown: Vec<u8> = o
        .capabilities
        .iter()
        .filter_map(|c| match c {
            Capability::Unknown { code, .. } => Some(*code),
            _ => None,
        })
        .collect();
    assert_eq!(unknown, vec![128, 6, 69, 73, 71]);
    // And we accept it as AS 65001's OPEN.
    let mut cfg = Config::new(65002, 65001, Ipv4Addr::new(10, 99, 0, 2));
    cfg.hold_time = 90;
    assert!(bgp::fsm::validate_open(&cfg, &o).is_ok());
    let n = bgp::fsm::negotiate(&cfg, &o);
    assert_eq!(
        (n.hold_time, n.keepalive_time, n.four_octet_as),
        (9, 3, true)
    );
}

#[test]
fn frr_keepalive() {
    let (_, m) = frr("frr_keepalive.hex");
    assert_eq!(m, Message::Keepalive);
}

#[test]
fn frr_update_ipv4_with_communities() {
    let (_, m) = frr("frr_update_1.hex");
    let Message::Update(u) = m else { panic!() };
    assert!(u.withdrawn.is_empty());
    assert_eq!(
        u.nlri,
        vec![v4([10, 255, 0, 1], 32), v4([10, 255, 0, 2], 32)]
    );
    assert_eq!(
        u.attribute(attr_type::ORIGIN),
        Some(&AttributeValue::Origin(Origin::Igp))
    );
    assert_eq!(
        u.attribute(attr_type::AS_PATH),
        Some(&AttributeValue::AsPath(AsPath::sequence(&[65001])))
    );
    assert_eq!(
        u.attribute(attr_type::NEXT_HOP),
        Some(&AttributeValue::NextHop(Ipv4Addr::new(10, 99, 0, 1)))
    );
    assert_eq!(
        u.attribute(attr_type::MULTI_EXIT_DISC),
        Some(&AttributeValue::MultiExitDisc(0))
    );
    assert_eq!(
        u.attribute(attr_type::COMMUNITIES),
        Some(&AttributeValue::Communities(vec![
            Community::new(65001, 100),
            Community::GRACEFUL_SHUTDOWN
        ]))
    );
    // FRR sends AS_PATH with the Extended Length bit; we keep its flags.
    assert_eq!(
        u.attributes[1].flags,
        attr_flags::TRANSITIVE | attr_flags::EXTENDED_LENGTH
    );
}

#[test]
fn frr_update_ipv6_mp_reach_with_link_local() {
    let (_, m) = frr("frr_update_2.hex");
    let Message::Update(u) = m else { panic!() };
    assert!(u.nlri.is_empty());
    let Some(AttributeValue::MpReachNlri(r)) = u.attribute(attr_type::MP_REACH_NLRI) else {
        panic!()
    };
    assert_eq!(r.family, Family::IPV6_UNICAST);
    let MpNextHop::V6 { global, link_local } = r.next_hop else {
        panic!("{:?}", r.next_hop)
    };
    assert_eq!(global, "fd99::1".parse::<Ipv6Addr>().unwrap());
    assert!(link_local.unwrap().segments()[0] == 0xfe80);
    assert_eq!(r.nlri, MpNlri::Ipv6(vec![v6("2001:db8:ff::1", 128)]));
    assert_eq!(u.announced(), vec![Prefix::V6(v6("2001:db8:ff::1", 128))]);
    assert!(matches!(u.attribute(attr_type::COMMUNITIES),
                     Some(AttributeValue::Communities(c)) if c.contains(&Community::GRACEFUL_SHUTDOWN)));
}

#[test]
fn frr_end_of_rib_ipv4_and_ipv6() {
    let (_, m3) = frr("frr_update_3.hex");
    let (_, m4) = frr("frr_update_4.hex");
    let (Message::Update(u3), Message::Update(u4)) = (m3, m4) else {
        panic!()
    };
    assert_eq!(u3.is_end_of_rib(), Some(Family::IPV4_UNICAST));
    assert_eq!(u4.is_end_of_rib(), Some(Family::IPV6_UNICAST));
    // Ours are byte-identical to FRR's.
    assert_eq!(Update::end_of_rib(Family::IPV4_UNICAST), u3);
    assert_eq!(Update::end_of_rib(Family::IPV6_UNICAST), u4);
}

#[test]
fn frr_notification_administrative_shutdown() {
    let (_, m) = frr("frr_notification_shutdown.hex");
    let Message::Notification(n) = m else {
        panic!()
    };
    assert_eq!(
        (n.code, n.subcode),
        (error_code::CEASE, cease_subcode::ADMINISTRATIVE_SHUTDOWN)
    );
    assert_eq!(
        n.shutdown_message().as_deref(),
        Some("pollux fixture capture")
    );
}

#[test]
fn frr_notification_bad_peer_as() {
    let (_, m) = frr("frr_notification_bad_peer_as.hex");
    let Message::Notification(n) = m else {
        panic!()
    };
    assert_eq!(
        (n.code, n.subcode),
        (error_code::OPEN_MESSAGE, open_subcode::BAD_PEER_AS)
    );
    // FRR puts the offending AS (65099) in the data; RFC 4271 asks none.
    assert_eq!(n.data, vec![0xfe, 0x4b]);
}

//! Property tests: encode → decode round trips for generated messages, and
//! decode never panics on arbitrary bytes.

use std::net::{Ipv4Addr, Ipv6Addr};

use bgp::*;
use proptest::collection::vec;
use proptest::prelude::*;

fn v4_prefix() -> impl Strategy<Value = Ipv4Prefix> {
    (any::<u32>(), 0u8..=32).prop_map(|(a, l)| Ipv4Prefix::new(Ipv4Addr::from(a), l).unwrap())
}

fn v6_prefix() -> impl Strategy<Value = Ipv6Prefix> {
    (any::<u128>(), 0u8..=128).prop_map(|(a, l)| Ipv6Prefix::new(Ipv6Addr::from(a), l).unwrap())
}

fn as_path() -> impl Strategy<Value = AsPath> {
    let seg = (
        prop_oneof![
            Just(SegmentType::AsSet),
            Just(SegmentType::AsSequence),
            Just(SegmentType::ConfedSequence),
            Just(SegmentType::ConfedSet)
        ],
        vec(any::<u32>(), 1..6),
    )
        .prop_map(|(kind, asns)| AsSegment { kind, asns });
    vec(seg, 0..4).prop_map(|segments| AsPath { segments })
}

fn capability() -> impl Strategy<Value = Capability> {
    let family = prop_oneof![Just(Family::IPV4_UNICAST), Just(Family::IPV6_UNICAST)];
    prop_oneof![
        family.clone().prop_map(Capability::Multiprotocol),
        Just(Capability::RouteRefresh),
        Just(Capability::EnhancedRouteRefresh),
        any::<u32>().prop_map(Capability::FourOctetAs),
        (0u8..16, 0u16..4096, vec((family, any::<bool>()), 0..3)).prop_map(|(flags, t, f)| {
            Capability::GracefulRestart(GracefulRestart {
                flags,
                restart_time: t,
                families: f
                    .into_iter()
                    .map(|(family, forwarding_state)| GracefulRestartFamily {
                        family,
                        forwarding_state,
                    })
                    .collect(),
            })
        }),
        (100u8..=127, vec(any::<u8>(), 0..20))
            .prop_map(|(code, value)| Capability::Unknown { code, value }),
    ]
}

fn open() -> impl Strategy<Value = Open> {
    (
        any::<u16>(),
        prop_oneof![Just(0u16), 3u16..],
        1u32..,
        vec(capability(), 0..8),
    )
        .prop_map(|(my_as, hold_time, id, capabilities)| Open {
            version: 4,
            my_as,
            hold_time,
            bgp_id: Ipv4Addr::from(id),
            capabilities,
        })
}

/// Attributes that survive a round trip unchanged (valid values with their
/// canonical flags, as the decoder keeps them) on a 4-octet iBGP session.
fn attributes() -> impl Strategy<Value = Vec<PathAttribute>> {
    let origin = prop_oneof![
        Just(Origin::Igp),
        Just(Origin::Egp),
        Just(Origin::Incomplete)
    ];
    let next_hop = (1u32..0xe000_0000).prop_map(Ipv4Addr::from);
    (
        origin,
        as_path(),
        next_hop,
        proptest::option::of(any::<u32>()),
        any::<u32>(),
        vec(any::<u32>(), 1..5),
        vec(v6_prefix(), 0..5),
        vec(v6_prefix(), 0..5),
        proptest::option::of(any::<u128>()),
        vec(any::<u8>(), 0..300),
    )
        .prop_map(|(o, p, nh, med, lp, comms, reach, unreach, ll, unknown)| {
            let mut a = vec![
                PathAttribute::new(AttributeValue::Origin(o)),
                PathAttribute::new(AttributeValue::AsPath(p)),
                PathAttribute::new(AttributeValue::NextHop(nh)),
            ];
            if let Some(m) = med {
                a.push(PathAttribute::new(AttributeValue::MultiExitDisc(m)));
            }
            a.push(PathAttribute::new(AttributeValue::LocalPref(lp)));
            a.push(PathAttribute::new(AttributeValue::AtomicAggregate));
            a.push(PathAttribute::new(AttributeValue::Communities(
                comms.into_iter().map(Community).collect(),
            )));
            a.push(PathAttribute::new(AttributeValue::MpReachNlri(MpReach {
                family: Family::IPV6_UNICAST,
                next_hop: MpNextHop::V6 {
                    global: "2001:db8::1".parse().unwrap(),
                    link_local: ll.map(Ipv6Addr::from),
                },
                nlri: MpNlri::Ipv6(reach),
            })));
            a.push(PathAttribute::new(AttributeValue::MpUnreachNlri(
                MpUnreach {
                    family: Family::IPV6_UNICAST,
                    withdrawn: MpNlri::Ipv6(unreach),
                },
            )));
            // An unknown optional transitive attribute comes back Partial.
            a.push(PathAttribute {
                flags: attr_flags::OPTIONAL | attr_flags::TRANSITIVE | attr_flags::PARTIAL,
                value: AttributeValue::Unknown {
                    type_code: 200,
                    value: unknown,
                },
            });
            a
        })
}

fn update() -> impl Strategy<Value = Update> {
    (
        vec(v4_prefix(), 0..20),
        attributes(),
        vec(v4_prefix(), 1..20),
    )
        .prop_map(|(withdrawn, attributes, nlri)| Update {
            withdrawn,
            attributes,
            nlri,
        })
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        open().prop_map(Message::Open),
        update().prop_map(Message::Update),
        (any::<u8>(), any::<u8>(), vec(any::<u8>(), 0..64))
            .prop_map(|(c, s, d)| Message::Notification(Notification::with_data(c, s, d))),
        Just(Message::Keepalive),
        (any::<u16>(), any::<u8>(), any::<u8>()).prop_map(|(afi, sub, safi)| {
            Message::RouteRefresh(RouteRefresh {
                family: Family {
                    afi: Afi(afi),
                    safi: Safi(safi),
                },
                subtype: sub,
            })
        }),
    ]
}

/// Normalises what the wire cannot carry: the Extended Length bit follows
/// the value's size, so compare without it.
fn strip_ext(m: &Message) -> Message {
    let mut m = m.clone();
    if let Message::Update(u) = &mut m {
        for a in &mut u.attributes {
            a.flags &= !attr_flags::EXTENDED_LENGTH;
        }
    }
    m
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn encode_then_decode_gives_the_message_back(m in message()) {
        let ctx = Context { four_octet_as: true, ebgp: false };
        match m.to_bytes(&ctx) {
            Ok(bytes) => {
                prop_assert!(bytes.len() <= MAX_MESSAGE_LEN);
                let back = decode(&bytes, &ctx).map_err(|e| TestCaseError::fail(format!("{e}")))?;
                prop_assert_eq!(strip_ext(&back), strip_ext(&m));
            }
            // Only size limits may refuse a generated message.
            Err(EncodeError::MessageTooLong { .. } | EncodeError::FieldTooLong { .. }) => {}
            Err(e) => prop_assert!(false, "{e}"),
        }
    }

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(bytes in vec(any::<u8>(), 0..600)) {
        let _ = decode(&bytes, &Context::default());
        let _ = decode(&bytes, &Context { four_octet_as: false, ebgp: false });
        let _ = split_message(&bytes);
    }

    #[test]
    fn decode_never_panics_on_bodies_behind_a_valid_header(
        kind in 1u8..=5, body in vec(any::<u8>(), 0..600)
    ) {
        // Random bytes rarely pass the marker check; this reaches the
        // per-type decoders.
        let mut bytes = MARKER.to_vec();
        bytes.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
        bytes.push(kind);
        bytes.extend_from_slice(&body);
        let _ = decode(&bytes, &Context::default());
        let _ = decode(&bytes, &Context { four_octet_as: false, ebgp: false });
    }
}

//! UPDATE building for VIP sets: packing, identical attributes, errors.

use std::net::{Ipv4Addr, Ipv6Addr};

use bgp::advertise::{self, AdvertiseError, RouteAttributes};
use bgp::*;

fn attrs() -> RouteAttributes {
    let mut a = RouteAttributes::new(65000, true);
    a.next_hop_v4 = Some(Ipv4Addr::new(192, 0, 2, 1));
    a.next_hop_v6 = Some("2001:db8::1".parse().unwrap());
    a
}

fn v4_vips(n: u32) -> Vec<Prefix> {
    (0..n)
        .map(|i| Prefix::V4(Ipv4Prefix::host(Ipv4Addr::from(0x0a00_0000 + i))))
        .collect()
}

#[test]
fn hundred_thousand_ipv4_vips_pack_into_full_4096_octet_updates() {
    let ctx = Context::default();
    let ups = advertise::announce(&attrs(), &v4_vips(100_000), &ctx).unwrap();
    let sizes: Vec<usize> = ups
        .iter()
        .map(|u| Message::Update(u.clone()).to_bytes(&ctx).unwrap().len())
        .collect();
    assert!(sizes.iter().all(|s| *s <= MAX_MESSAGE_LEN));
    // All but the last are within one prefix (5 octets) of the maximum.
    assert!(sizes[..sizes.len() - 1]
        .iter()
        .all(|s| *s > MAX_MESSAGE_LEN - 5));
    // The fewest messages possible: attributes once per message, then as
    // many 5-octet /32s as fit.
    let base = sizes[0] - 5 * ups[0].nlri.len();
    assert_eq!(
        ups.len(),
        100_000usize.div_ceil((MAX_MESSAGE_LEN - base) / 5)
    );
    assert_eq!(ups.iter().map(|u| u.nlri.len()).sum::<usize>(), 100_000);
}

#[test]
fn hundred_thousand_ipv6_vips_pack_into_mp_reach_updates() {
    let ctx = Context::default();
    let vips: Vec<Prefix> = (0..100_000u128)
        .map(|i| Prefix::V6(Ipv6Prefix::host(Ipv6Addr::from(0x2001_0db8_u128 << 96 | i))))
        .collect();
    let ups = advertise::announce(&attrs(), &vips, &ctx).unwrap();
    let total: usize = ups.iter().map(|u| u.announced().len()).sum();
    assert_eq!(total, 100_000);
    for u in &ups {
        assert!(Message::Update(u.clone()).to_bytes(&ctx).unwrap().len() <= MAX_MESSAGE_LEN);
    }
    assert!(ups.len() <= 100_000 / 230, "{} UPDATEs", ups.len());
}

#[test]
fn every_update_carries_the_same_attributes_whatever_the_input_order() {
    let ctx = Context::default();
    let mut vips = v4_vips(3000);
    let a = advertise::announce(&attrs(), &vips, &ctx).unwrap();
    vips.reverse();
    vips.extend(v4_vips(10)); // duplicates are dropped
    let b = advertise::announce(&attrs(), &vips, &ctx).unwrap();
    assert_eq!(a, b);
    assert!(a.windows(2).all(|w| w[0].attributes == w[1].attributes));
}

#[test]
fn ebgp_attributes_are_origin_igp_our_as_and_next_hop_only() {
    let ups = advertise::announce(&attrs(), &v4_vips(1), &Context::default()).unwrap();
    assert_eq!(
        ups[0].attributes,
        vec![
            PathAttribute::new(AttributeValue::Origin(Origin::Igp)),
            PathAttribute::new(AttributeValue::AsPath(AsPath::sequence(&[65000]))),
            PathAttribute::new(AttributeValue::NextHop(Ipv4Addr::new(192, 0, 2, 1))),
        ]
    );
}

#[test]
fn ibgp_attributes_have_an_empty_as_path_and_local_pref_100() {
    let mut a = attrs();
    a.ebgp = false;
    let ups = advertise::announce(&a, &v4_vips(1), &Context::default()).unwrap();
    assert_eq!(
        ups[0].attribute(attr_type::AS_PATH),
        Some(&AttributeValue::AsPath(AsPath::default()))
    );
    assert_eq!(
        ups[0].attribute(attr_type::LOCAL_PREF),
        Some(&AttributeValue::LocalPref(100))
    );
}

#[test]
fn communities_are_sorted_and_deduplicated() {
    let mut a = attrs();
    a.communities = vec![
        Community::GRACEFUL_SHUTDOWN,
        Community::new(65000, 1),
        Community::GRACEFUL_SHUTDOWN,
    ];
    let ups = advertise::announce(&a, &v4_vips(1), &Context::default()).unwrap();
    assert_eq!(
        ups[0].attribute(attr_type::COMMUNITIES),
        Some(&AttributeValue::Communities(vec![
            Community::new(65000, 1),
            Community::GRACEFUL_SHUTDOWN
        ]))
    );
}

#[test]
fn ipv6_without_a_next_hop_is_an_error() {
    let mut a = attrs();
    a.next_hop_v6 = None;
    let v6 = [Prefix::V6(Ipv6Prefix::host("2001:db8::9".parse().unwrap()))];
    assert_eq!(
        advertise::announce(&a, &v6, &Context::default()),
        Err(AdvertiseError::NoIpv6NextHop)
    );
}

#[test]
fn withdrawing_100k_vips_packs_within_4096_octets() {
    let ups = advertise::withdraw(&v4_vips(100_000));
    assert_eq!(
        ups.iter().map(|u| u.withdrawn.len()).sum::<usize>(),
        100_000
    );
    for u in &ups {
        assert!(
            Message::Update(u.clone())
                .to_bytes(&Context::default())
                .unwrap()
                .len()
                <= MAX_MESSAGE_LEN
        );
    }
    assert_eq!(ups.len(), 100_000usize.div_ceil((MAX_MESSAGE_LEN - 23) / 5));
}

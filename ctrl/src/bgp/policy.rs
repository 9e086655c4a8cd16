//! Advertisement policy: which host routes a session carries and with what
//! attributes. Pure functions; the neighbor task applies their results.
//!
//! * Every VIP in the [`VipSet`] (the VIPs whose virtual server has at
//!   least one healthy member) becomes a /32 or /128, sent when the family
//!   was negotiated, the neighbor's `advertiseIPv4`/`advertiseIPv6` allows
//!   it and the session has a next hop of that family.
//! * Attributes are the same on every instance (ECMP): ORIGIN IGP, AS_PATH
//!   `[local]` to an external peer (empty to an internal one), no MED,
//!   NEXT_HOP the session's self IP (IPv6: the port's global self IP),
//!   and, while draining, the GRACEFUL_SHUTDOWN community (RFC 8326).
//! * A change of the set becomes the difference: withdrawals of what left,
//!   announcements of what arrived.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bgp::advertise::RouteAttributes;
use bgp::{Community, Family, Ipv4Prefix, Ipv6Prefix, Prefix};

use crate::config::VirtualServer;

/// The VIPs to advertise. A `watch` channel carries it from whoever judges
/// health (today: the configuration) to every session.
pub type VipSet = BTreeSet<IpAddr>;

/// The VIP set from the configuration alone: every virtual server with at
/// least one member (until health checks feed the channel).
pub fn configured_vips(virtual_servers: &[VirtualServer]) -> VipSet {
    virtual_servers
        .iter()
        .filter(|vs| !vs.members.is_empty())
        .map(|vs| vs.address)
        .collect()
}

/// The VIP set from health verdicts: every virtual server with at least
/// one member that is up (members of a virtual server without
/// `healthCheck` always are).
pub fn healthy_vips(virtual_servers: &[VirtualServer], health: &crate::health::Health) -> VipSet {
    virtual_servers
        .iter()
        .filter(|vs| {
            vs.members
                .iter()
                .any(|m| crate::health::member_up(health, vs, m.address, m.port))
        })
        .map(|vs| vs.address)
        .collect()
}

/// Follows the health checks: on every verdict, the new VIP set goes to
/// `publish` (which updates the speaker's `watch` channel). Ends when the
/// health channel closes.
pub async fn follow_health(
    mut health: tokio::sync::watch::Receiver<crate::health::Health>,
    virtual_servers: Vec<VirtualServer>,
    publish: impl Fn(VipSet) + Send + 'static,
) {
    loop {
        let set = healthy_vips(&virtual_servers, &health.borrow_and_update());
        publish(set);
        if health.changed().await.is_err() {
            return;
        }
    }
}

/// What one session may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope {
    /// IPv4 unicast negotiated, `advertiseIPv4`, and an IPv4 next hop.
    pub v4: bool,
    /// IPv6 unicast negotiated, `advertiseIPv6`, and an IPv6 next hop.
    pub v6: bool,
}

impl Scope {
    /// The scope of a session from what it negotiated, the neighbor's
    /// switches and the next hops it has.
    pub fn new(
        negotiated: &[Family],
        advertise: (bool, bool),
        next_hops: (Option<Ipv4Addr>, Option<Ipv6Addr>),
    ) -> Scope {
        Scope {
            v4: advertise.0 && next_hops.0.is_some() && negotiated.contains(&Family::IPV4_UNICAST),
            v6: advertise.1 && next_hops.1.is_some() && negotiated.contains(&Family::IPV6_UNICAST),
        }
    }
}

/// The host route of a VIP.
pub fn host_route(vip: IpAddr) -> Prefix {
    match vip {
        IpAddr::V4(a) => Prefix::V4(Ipv4Prefix::host(a)),
        IpAddr::V6(a) => Prefix::V6(Ipv6Prefix::host(a)),
    }
}

/// The routes a session in `scope` carries for `vips`.
pub fn desired(vips: &VipSet, scope: Scope) -> BTreeSet<Prefix> {
    vips.iter()
        .filter(|v| if v.is_ipv4() { scope.v4 } else { scope.v6 })
        .map(|v| host_route(*v))
        .collect()
}

/// How to go from what a session carries to what it should carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// Routes to withdraw (carried, no longer wanted).
    pub withdraw: Vec<Prefix>,
    /// Routes to announce (wanted, not carried).
    pub announce: Vec<Prefix>,
}

impl Diff {
    /// True when nothing changes.
    pub fn is_empty(&self) -> bool {
        self.withdraw.is_empty() && self.announce.is_empty()
    }
}

/// The difference between `current` and `wanted`.
pub fn diff(current: &BTreeSet<Prefix>, wanted: &BTreeSet<Prefix>) -> Diff {
    Diff {
        withdraw: current.difference(wanted).copied().collect(),
        announce: wanted.difference(current).copied().collect(),
    }
}

/// The attributes of every announcement on a session.
pub fn attributes(
    local_as: u32,
    ebgp: bool,
    next_hops: (Option<Ipv4Addr>, Option<Ipv6Addr>),
    draining: bool,
) -> RouteAttributes {
    let mut a = RouteAttributes::new(local_as, ebgp);
    a.next_hop_v4 = next_hops.0;
    a.next_hop_v6 = next_hops.1;
    if draining {
        // RFC 8326 §3: "the GRACEFUL_SHUTDOWN community ... SHOULD be
        // added to the routes" being drained, so receivers lower their
        // preference before the withdrawal.
        a.communities.push(Community::GRACEFUL_SHUTDOWN);
    }
    a
}

/// The families a neighbor announces in its OPEN: those it advertises,
/// or the session's own when it advertises neither.
pub fn families(advertise: (bool, bool), session_is_v6: bool) -> Vec<Family> {
    let mut f = Vec::new();
    if advertise.0 {
        f.push(Family::IPV4_UNICAST);
    }
    if advertise.1 {
        f.push(Family::IPV6_UNICAST);
    }
    if f.is_empty() {
        f.push(if session_is_v6 {
            Family::IPV6_UNICAST
        } else {
            Family::IPV4_UNICAST
        });
    }
    f
}

#[cfg(test)]
mod tests {
    use bgp::advertise::announce;
    use bgp::codec::Context;
    use bgp::{AttributeValue, Origin};

    use super::*;
    use crate::config::{Member, Protocol, Snat};

    fn vs(addr: &str, members: usize) -> VirtualServer {
        VirtualServer {
            name: format!("vs-{addr}"),
            address: addr.parse().unwrap(),
            port: 80,
            protocol: Protocol::Tcp,
            idle_timeout: 300,
            reset_on_timeout: true,
            snat: Snat::None,
            health_check: None,
            members: (0..members)
                .map(|i| Member {
                    address: format!("10.1.0.{}", i + 1).parse().unwrap(),
                    port: 8080,
                    weight: 1,
                })
                .collect(),
        }
    }

    fn set(v: &[&str]) -> VipSet {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    const NH: (Option<Ipv4Addr>, Option<Ipv6Addr>) = (
        Some(Ipv4Addr::new(10, 0, 0, 2)),
        Some(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2)),
    );
    const BOTH: [Family; 2] = [Family::IPV4_UNICAST, Family::IPV6_UNICAST];

    #[test]
    fn only_virtual_servers_with_members_are_vips() {
        let v = configured_vips(&[
            vs("192.0.2.10", 2),
            vs("192.0.2.11", 0),
            vs("2001:db8::10", 1),
        ]);
        assert_eq!(v, set(&["192.0.2.10", "2001:db8::10"]));
    }

    #[test]
    fn vips_follow_member_health() {
        use crate::config::{HealthCheck, HealthCheckKind};
        use crate::health::Target;
        let hc = HealthCheck {
            kind: HealthCheckKind::Tcp,
            interval_ms: 1000,
            timeout_ms: 500,
            rise: 2,
            fall: 2,
            path: "/".into(),
            expect_status: 200,
            port: None,
        };
        let mut checked = vs("192.0.2.20", 2);
        checked.health_check = Some(hc.clone());
        let unchecked = vs("192.0.2.21", 1);
        let vss = [checked.clone(), unchecked];
        let target = |i: usize| Target::new(checked.members[i].address, 8080, &hc);
        let health = |up: [bool; 2]| -> crate::health::Health {
            std::sync::Arc::new((0..2).map(|i| (target(i), up[i])).collect())
        };
        assert_eq!(
            healthy_vips(&vss, &health([false, false])),
            set(&["192.0.2.21"])
        );
        assert_eq!(
            healthy_vips(&vss, &health([false, true])),
            set(&["192.0.2.20", "192.0.2.21"])
        );
        assert_eq!(
            healthy_vips(&vss, &health([true, true])),
            set(&["192.0.2.20", "192.0.2.21"])
        );
    }

    #[tokio::test]
    async fn follower_publishes_every_verdict() {
        let (tx, rx) = tokio::sync::watch::channel(crate::health::Health::default());
        let (out_tx, mut out) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(follow_health(rx, vec![vs("192.0.2.30", 1)], move |v| {
            let _ = out_tx.send(v);
        }));
        assert_eq!(out.recv().await.unwrap(), set(&["192.0.2.30"]));
        tx.send_replace(crate::health::Health::default());
        assert_eq!(out.recv().await.unwrap(), set(&["192.0.2.30"]));
        drop(tx);
        task.await.unwrap();
    }

    #[test]
    fn two_virtual_servers_on_one_address_give_one_route() {
        let v = configured_vips(&[vs("192.0.2.10", 1), vs("192.0.2.10", 1)]);
        let d = desired(&v, Scope { v4: true, v6: true });
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn scope_needs_negotiation_switch_and_next_hop() {
        assert_eq!(
            Scope::new(&BOTH, (true, true), NH),
            Scope { v4: true, v6: true }
        );
        assert_eq!(
            Scope::new(&BOTH, (true, false), NH),
            Scope {
                v4: true,
                v6: false
            }
        );
        assert_eq!(
            Scope::new(&[Family::IPV4_UNICAST], (true, true), NH),
            Scope {
                v4: true,
                v6: false
            }
        );
        assert_eq!(
            Scope::new(&BOTH, (true, true), (NH.0, None)),
            Scope {
                v4: true,
                v6: false
            }
        );
    }

    #[test]
    fn vips_become_host_routes_of_the_allowed_families() {
        let v = set(&["192.0.2.10", "2001:db8::10"]);
        let d = desired(
            &v,
            Scope {
                v4: true,
                v6: false,
            },
        );
        assert_eq!(
            d.iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec!["192.0.2.10/32"]
        );
        let d = desired(&v, Scope { v4: true, v6: true });
        assert_eq!(
            d.iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec!["192.0.2.10/32", "2001:db8::10/128"]
        );
    }

    #[test]
    fn diff_withdraws_what_left_and_announces_what_arrived() {
        let all = Scope { v4: true, v6: true };
        let a = desired(&set(&["192.0.2.1", "192.0.2.2"]), all);
        let b = desired(&set(&["192.0.2.2", "192.0.2.3"]), all);
        let d = diff(&a, &b);
        assert_eq!(d.withdraw, vec![host_route("192.0.2.1".parse().unwrap())]);
        assert_eq!(d.announce, vec![host_route("192.0.2.3".parse().unwrap())]);
        assert!(diff(&b, &b).is_empty());
    }

    #[test]
    fn attributes_are_origin_igp_our_as_next_hop_and_no_med() {
        let a = attributes(65000, true, NH, false);
        let routes = desired(&set(&["192.0.2.10"]), Scope { v4: true, v6: true });
        let ups = announce(
            &a,
            &routes.into_iter().collect::<Vec<_>>(),
            &Context::default(),
        )
        .unwrap();
        assert_eq!(ups.len(), 1);
        let u = &ups[0];
        assert_eq!(u.attribute(1), Some(&AttributeValue::Origin(Origin::Igp)));
        assert_eq!(
            u.attribute(3),
            Some(&AttributeValue::NextHop(Ipv4Addr::new(10, 0, 0, 2)))
        );
        assert_eq!(u.attribute(4), None, "no MED");
        assert_eq!(u.attribute(8), None, "no communities");
        match u.attribute(2) {
            Some(AttributeValue::AsPath(p)) => assert_eq!(p, &bgp::AsPath::sequence(&[65000])),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn draining_adds_graceful_shutdown_and_nothing_else() {
        let plain = attributes(65000, true, NH, false);
        let drain = attributes(65000, true, NH, true);
        assert_eq!(drain.communities, vec![Community::GRACEFUL_SHUTDOWN]);
        let mut d = drain.clone();
        d.communities.clear();
        assert_eq!(d, plain);
    }

    #[test]
    fn identical_attributes_on_two_instances_differ_only_in_next_hop() {
        let a = attributes(65000, true, NH, false);
        let b = attributes(65000, true, (Some(Ipv4Addr::new(10, 0, 0, 3)), NH.1), false);
        let routes: Vec<Prefix> = desired(
            &set(&["192.0.2.10"]),
            Scope {
                v4: true,
                v6: false,
            },
        )
        .into_iter()
        .collect();
        let ua = &announce(&a, &routes, &Context::default()).unwrap()[0];
        let ub = &announce(&b, &routes, &Context::default()).unwrap()[0];
        let without_nh = |u: &bgp::Update| {
            u.attributes
                .iter()
                .filter(|a| a.type_code() != 3)
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(without_nh(ua), without_nh(ub));
    }

    #[test]
    fn open_families_follow_the_switches() {
        assert_eq!(families((true, false), false), vec![Family::IPV4_UNICAST]);
        assert_eq!(families((true, true), false), BOTH.to_vec());
        assert_eq!(families((false, false), true), vec![Family::IPV6_UNICAST]);
    }
}

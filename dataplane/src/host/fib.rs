//! The forwarding table: connected subnets of the self IPs and static routes,
//! longest prefix first. Built by ctrl, read by workers.
//!
//! It holds a handful of entries (the subnets of a few ports and the
//! configured routes), so a linear scan in prefix-length order is the fastest
//! structure; the virtual servers have their own tables.

use std::net::IpAddr;

/// An IP prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl Prefix {
    /// `addr` with the host bits cleared.
    pub fn new(addr: IpAddr, len: u8) -> Prefix {
        let addr = match addr {
            IpAddr::V4(a) => {
                let m = if len == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(len.min(32)))
                };
                IpAddr::V4((u32::from(a) & m).into())
            }
            IpAddr::V6(a) => {
                let m = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(len.min(128)))
                };
                IpAddr::V6((u128::from(a) & m).into())
            }
        };
        Prefix { addr, len }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                Prefix::new(ip, self.len).addr == self.addr
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Where a route sends a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub prefix: Prefix,
    /// Index of the egress port.
    pub port: usize,
    /// `None` for a connected subnet: the destination is the next hop.
    pub via: Option<IpAddr>,
}

#[derive(Debug, Clone, Default)]
pub struct Fib {
    routes: Vec<Route>,
    /// The IPv4 routes in the same order, as integers (the fast path's
    /// lookup: two operations per route).
    v4: Vec<V4Route>,
}

#[derive(Debug, Clone, Copy)]
struct V4Route {
    net: u32,
    mask: u32,
    route: Route,
}

impl Fib {
    /// Sorts the routes longest prefix first.
    pub fn new(mut routes: Vec<Route>) -> Fib {
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len));
        let v4 = routes
            .iter()
            .filter_map(|r| match r.prefix.addr {
                IpAddr::V4(a) => Some(V4Route {
                    net: u32::from(a),
                    mask: u32::MAX
                        .checked_shl(32 - u32::from(r.prefix.len.min(32)))
                        .unwrap_or(0),
                    route: *r,
                }),
                IpAddr::V6(_) => None,
            })
            .collect();
        Fib { routes, v4 }
    }

    /// [`lookup`](Self::lookup) of an IPv4 destination given as bytes.
    #[inline]
    pub fn lookup_v4(&self, dst: [u8; 4]) -> Option<(usize, IpAddr)> {
        let d = u32::from_be_bytes(dst);
        self.v4
            .iter()
            .find(|r| d & r.mask == r.net)
            .map(|r| (r.route.port, r.route.via.unwrap_or(IpAddr::from(dst))))
    }

    /// (egress port, next hop) for `dst`.
    pub fn lookup(&self, dst: IpAddr) -> Option<(usize, IpAddr)> {
        self.routes
            .iter()
            .find(|r| r.prefix.contains(dst))
            .map(|r| (r.port, r.via.unwrap_or(dst)))
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn lookup_v4_is_lookup(
            routes in prop::collection::vec((any::<[u8; 4]>(), 0u8..=32, 0usize..3, any::<bool>()), 0..8),
            v6 in any::<bool>(),
            dst in any::<[u8; 4]>(),
        ) {
            let mut rs: Vec<Route> = routes
                .iter()
                .map(|&(a, len, port, via)| Route {
                    prefix: Prefix::new(IpAddr::from(a), len),
                    port,
                    via: via.then(|| IpAddr::from([10, 0, 0, 1])),
                })
                .collect();
            if v6 {
                rs.push(Route { prefix: Prefix::new("::".parse().unwrap(), 0), port: 9, via: None });
            }
            // Also a route that covers dst exactly, half the time.
            if dst[0] % 2 == 0 {
                rs.push(Route { prefix: Prefix::new(IpAddr::from(dst), 24), port: 7, via: None });
            }
            let fib = Fib::new(rs);
            prop_assert_eq!(fib.lookup_v4(dst), fib.lookup(IpAddr::from(dst)));
        }
    }

    fn p(s: &str) -> Prefix {
        let (a, l) = s.split_once('/').unwrap();
        Prefix::new(a.parse().unwrap(), l.parse().unwrap())
    }

    #[test]
    fn longest_prefix_wins() {
        let fib = Fib::new(vec![
            Route {
                prefix: p("0.0.0.0/0"),
                port: 0,
                via: Some("10.0.0.1".parse().unwrap()),
            },
            Route {
                prefix: p("10.0.0.0/24"),
                port: 0,
                via: None,
            },
            Route {
                prefix: p("10.1.0.0/24"),
                port: 1,
                via: None,
            },
            Route {
                prefix: p("192.168.50.0/24"),
                port: 1,
                via: Some("10.1.0.1".parse().unwrap()),
            },
            Route {
                prefix: p("fd00::/64"),
                port: 0,
                via: None,
            },
        ]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(fib.lookup(ip("10.0.0.7")), Some((0, ip("10.0.0.7"))));
        assert_eq!(fib.lookup(ip("192.168.50.3")), Some((1, ip("10.1.0.1"))));
        assert_eq!(fib.lookup(ip("8.8.8.8")), Some((0, ip("10.0.0.1"))));
        assert_eq!(fib.lookup(ip("fd00::5")), Some((0, ip("fd00::5"))));
        assert_eq!(fib.lookup(ip("fd01::5")), None);
    }

    #[test]
    fn prefix_masks_host_bits() {
        assert_eq!(p("10.0.0.9/24").to_string(), "10.0.0.0/24");
        assert_eq!(p("fd00::1:2/112").to_string(), "fd00::1:0/112");
        assert!(p("0.0.0.0/0").contains("1.2.3.4".parse().unwrap()));
        assert!(!p("0.0.0.0/0").contains("::1".parse().unwrap()));
    }
}

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

/// The FIB's answer for one destination, and the destinations it holds
/// for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hop {
    /// Index of the egress port.
    pub port: usize,
    pub next_hop: IpAddr,
    /// Every destination that shares this many leading bits with the one
    /// looked up gets this same answer: the matched route's prefix length,
    /// more where a more-specific route lies inside that prefix (the span
    /// stops short of it); the whole address for a connected route, whose
    /// next hop is the destination itself. So a gateway's answer holds for
    /// all the clients behind it (the fast path's next-hop memo).
    pub span: u8,
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

    /// [`hop`](Self::hop) of an IPv4 destination given as bytes.
    #[inline]
    pub fn hop_v4(&self, dst: [u8; 4]) -> Option<Hop> {
        let d = u32::from_be_bytes(dst);
        let i = self.v4.iter().position(|r| d & r.mask == r.net)?;
        let r = &self.v4[i];
        let span = match r.route.via {
            None => 32,
            // The routes before it are as long or longer: those inside
            // its prefix do not hold `d` (else one had matched), and the
            // span stops a bit after `d` parts from each.
            Some(_) => self.v4[..i]
                .iter()
                .filter(|q| q.net & r.mask == r.net)
                .map(|q| (d ^ q.net).leading_zeros() as u8 + 1)
                .fold(r.route.prefix.len, u8::max),
        };
        Some(Hop {
            port: r.route.port,
            next_hop: r.route.via.unwrap_or(IpAddr::from(dst)),
            span,
        })
    }

    /// Where the FIB sends `dst`, and how far that answer holds.
    pub fn hop(&self, dst: IpAddr) -> Option<Hop> {
        let d = match dst {
            IpAddr::V4(a) => return self.hop_v4(a.octets()),
            IpAddr::V6(a) => u128::from(a),
        };
        let i = self.routes.iter().position(|r| r.prefix.contains(dst))?;
        let r = &self.routes[i];
        let span = match r.via {
            None => 128,
            // As `hop_v4`'s; an IPv4 route is inside no IPv6 prefix.
            Some(_) => self.routes[..i]
                .iter()
                .filter(|q| r.prefix.contains(q.prefix.addr))
                .filter_map(|q| match q.prefix.addr {
                    IpAddr::V6(n) => Some((d ^ u128::from(n)).leading_zeros() as u8 + 1),
                    IpAddr::V4(_) => None,
                })
                .fold(r.prefix.len, u8::max),
        };
        Some(Hop {
            port: r.port,
            next_hop: r.via.unwrap_or(dst),
            span,
        })
    }

    /// (egress port, next hop) for `dst`.
    pub fn lookup(&self, dst: IpAddr) -> Option<(usize, IpAddr)> {
        self.hop(dst).map(|h| (h.port, h.next_hop))
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
        fn a_span_holds_for_every_address_in_it(
            routes in prop::collection::vec((any::<[u8; 4]>(), 0u8..=32, 0usize..3, any::<bool>()), 0..8),
            v6 in any::<bool>(),
            dst in any::<[u8; 4]>(),
            other in any::<u32>(),
        ) {
            // Half the prefixes near `dst` (it, one bit flipped or not),
            // so that some hold it and some lie inside others.
            let mut rs: Vec<Route> = routes
                .iter()
                .map(|&(a, len, port, via)| {
                    let near = u32::from_be_bytes(dst) ^ (u32::from(a[1] % 2) << (a[2] % 32));
                    let a = if a[0] % 2 == 0 { near.to_be_bytes() } else { a };
                    Route {
                        prefix: Prefix::new(IpAddr::from(a), len),
                        port,
                        via: via.then(|| IpAddr::from([10, 0, 0, 1])),
                    }
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
            let hop = fib.hop_v4(dst);
            prop_assert_eq!(hop, fib.hop(IpAddr::from(dst)));
            // The longest matching prefix, the first in the list.
            let first = fib.routes().iter().find(|r| r.prefix.contains(IpAddr::from(dst)));
            prop_assert_eq!(hop.map(|h| (h.port, h.next_hop)), first.map(|r| (r.port, r.via.unwrap_or(IpAddr::from(dst)))));
            // Every destination in the span is routed the same way: with
            // random host bits, `dst`'s complemented, all zeros, all ones.
            if let Some(h) = hop {
                let d = u32::from_be_bytes(dst);
                let inside = |host: u32| {
                    let keep = u32::MAX.checked_shl(32 - u32::from(h.span)).unwrap_or(0);
                    IpAddr::from((d & keep | host & !keep).to_be_bytes())
                };
                for o in [inside(other), inside(!d), inside(0), inside(u32::MAX)] {
                    let got = fib.lookup(o);
                    prop_assert_eq!(got, Some((h.port, h.next_hop)), "{} in span /{} of {:?}", o, h.span, dst);
                }
            }
        }

        #[test]
        fn a_span_holds_for_every_address_in_it_v6(
            routes in prop::collection::vec((any::<u8>(), 0u8..=128, 0usize..3, any::<bool>()), 0..8),
            dst in any::<u128>(),
            other in any::<u128>(),
        ) {
            // Prefixes near `dst` (its first byte, or one bit off), so
            // that some hold it and some lie inside others.
            let rs: Vec<Route> = routes
                .iter()
                .map(|&(flip, len, port, via)| {
                    let a = dst ^ (u128::from(flip % 2) << (flip / 2 % 128));
                    Route {
                        prefix: Prefix::new(IpAddr::from(a.to_be_bytes()), len),
                        port,
                        via: via.then(|| "fd00::1".parse().unwrap()),
                    }
                })
                .collect();
            let fib = Fib::new(rs);
            let d = IpAddr::from(dst.to_be_bytes());
            if let Some(h) = fib.hop(d) {
                prop_assert_eq!(fib.lookup(d), Some((h.port, h.next_hop)));
                let keep = u128::MAX.checked_shl(128 - u32::from(h.span)).unwrap_or(0);
                let o = IpAddr::from((dst & keep | other & !keep).to_be_bytes());
                prop_assert_eq!(fib.lookup(o), Some((h.port, h.next_hop)), "{} in span /{} of {}", o, h.span, d);
            }
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
        // How far each answer holds: a connected route's for one address;
        // the default route's up to the first bit where 8.8.8.8 parts from
        // 10.0.0.0/24 and 10.1.0.0/24 (000010 alike, then 0 vs 1):
        // 8.0.0.0/7.
        let span = |s: &str| fib.hop(ip(s)).map(|h| h.span);
        assert_eq!(span("10.0.0.7"), Some(32));
        assert_eq!(span("192.168.50.3"), Some(24));
        assert_eq!(span("8.8.8.8"), Some(7));
        assert_eq!(span("200.1.2.3"), Some(5)); // 11001 vs 192.168.50.0's 11000
        assert_eq!(span("fd00::5"), Some(128));
    }

    #[test]
    fn prefix_masks_host_bits() {
        assert_eq!(p("10.0.0.9/24").to_string(), "10.0.0.0/24");
        assert_eq!(p("fd00::1:2/112").to_string(), "fd00::1:0/112");
        assert!(p("0.0.0.0/0").contains("1.2.3.4".parse().unwrap()));
        assert!(!p("0.0.0.0/0").contains("::1".parse().unwrap()));
    }
}

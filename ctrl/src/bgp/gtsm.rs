//! The Generalized TTL Security Mechanism (RFC 5082) for BGP sessions.
//!
//! A neighbor with `ttlSecurity: true` sends every segment with TTL (hop
//! limit) 255, and its sockets accept only segments that arrive with at
//! least `256 - ebgpMultihop` (255 for a directly connected peer): a
//! forged segment from further away cannot reach BGP. Linux does the
//! check (`IP_MINTTL`, `IPV6_MINHOPCOUNT`): a listening socket with it
//! drops the SYN, a connected one drops the segment.

use std::io;
use std::net::IpAddr;

use nix::{setsockopt_impl, sockopt_impl};

sockopt_impl!(
    IpMinTtl,
    SetOnly,
    libc::IPPROTO_IP,
    libc::IP_MINTTL,
    libc::c_int
);
sockopt_impl!(
    Ipv6MinHopCount,
    SetOnly,
    libc::IPPROTO_IPV6,
    libc::IPV6_MINHOPCOUNT,
    libc::c_int
);

/// The TTL a GTSM speaker sends.
pub const TTL: u32 = 255;

/// The smallest TTL accepted from a peer `hops` routers away (1: directly
/// connected).
pub fn min_ttl(hops: u8) -> u8 {
    255u8.saturating_sub(hops.max(1) - 1)
}

/// Drops (in the kernel) every segment on `socket` that arrives with a
/// TTL / hop limit below `min`. `v6` is the socket's family.
pub fn set_min_ttl<S: std::os::fd::AsFd>(socket: &S, v6: bool, min: u8) -> io::Result<()> {
    let v = libc::c_int::from(min);
    let r = if v6 {
        nix::sys::socket::setsockopt(socket, Ipv6MinHopCount, &v)
    } else {
        nix::sys::socket::setsockopt(socket, IpMinTtl, &v)
    };
    r.map_err(io::Error::from)
}

/// [`set_min_ttl`] for the family of `peer`.
pub fn set_min_ttl_for<S: std::os::fd::AsFd>(socket: &S, peer: IpAddr, min: u8) -> io::Result<()> {
    set_min_ttl(socket, peer.is_ipv6(), min)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_ttl_is_255_for_a_connected_peer() {
        assert_eq!(min_ttl(1), 255);
        assert_eq!(min_ttl(0), 255);
        assert_eq!(min_ttl(3), 253);
        assert_eq!(min_ttl(255), 1);
    }

    #[test]
    fn the_kernel_takes_the_option_on_both_families() {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        set_min_ttl(&s, false, 255).unwrap();
        let s = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None).unwrap();
        set_min_ttl(&s, true, 255).unwrap();
    }
}

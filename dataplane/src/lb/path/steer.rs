//! Flow ownership: which worker handles a frame, so that both directions
//! of a flow meet the one connection entry that tracks it.
//!
//! Every worker computes the same answer from the frame and the tables
//! alone (no state), so a worker that receives a frame it does not own
//! hands it to the owner over a ring, and the owner never hands it on:
//!
//! ```text
//!   TCP/UDP to a VIP:port            client → VIP     owner = hash(src addr, src port)
//!   TCP/UDP to a SNAT address, port  member → SNAT    owner = the worker whose share of
//!     in the SNAT range                                 the SNAT ports holds the port
//!   TCP/UDP to a self IP (else)      BGP, BFD, punts  the port's home worker
//!   TCP/UDP to anything else         member → client  owner = hash(dst addr, dst port)
//!   ICMP error quoting a TCP/UDP     either way       as the quoted packet's answer
//!   anything else (ARP, ND, echo…)                    the port's home worker
//! ```
//!
//! The client's endpoint is the one thing both directions of a DNAT flow
//! carry unchanged (the source going in, the destination coming back); a
//! SNAT flow's return carries only our port, so SNAT ports are dealt to
//! the workers ([`snat_port_owner`]) and a worker allocates from its own
//! share. Symmetric RSS (a symmetric Toeplitz key) cannot do this: it
//! pairs a 5-tuple with its mirror image, but NAT changes the tuple, so the
//! two directions of a NATed flow hash differently (docs/architecture.md).

use super::icmp::parse_inner;
use super::parse::parse_ip;
use super::{snat_port_owner, Family, PROTO_TCP, PROTO_UDP};
use crate::lb::hash::fmix64;
use crate::lb::nat;
use crate::lb::vs::{key_bytes, VsTable};
use crate::wire::ipv4::protocol;

/// Who handles a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// The worker that holds (or will hold) the flow's connection entry.
    Worker(u16),
    /// The worker that owns the receiving port's host state (ARP/ND, BFD,
    /// the TAP to the kernel).
    Home,
}

/// What a worker needs to tell a frame's owner; the same on every worker.
#[derive(Debug, Clone)]
pub struct Steering {
    workers: u16,
    snat_ports: (u16, u16),
    /// Every self IP of every port (the host's addresses), 16-byte form.
    self_ips: Vec<([u8; 16], Family)>,
    /// Keys the owner hash (the same for every worker of an instance).
    seed: u64,
}

impl Steering {
    pub fn new(
        workers: u16,
        snat_ports: (u16, u16),
        self_ips: &[std::net::IpAddr],
        seed: u64,
    ) -> Steering {
        let self_ips = self_ips.iter().map(|&ip| key_bytes(ip)).collect();
        Steering {
            workers: workers.max(1),
            snat_ports,
            self_ips,
            seed,
        }
    }

    pub fn workers(&self) -> u16 {
        self.workers
    }

    /// The owner of `frame` (an Ethernet frame whose IP header starts
    /// after `vlan_hdr_len` bytes of tag) under `tables`.
    pub fn owner(&self, frame: &[u8], vlan_hdr_len: usize, tables: &VsTable) -> Owner {
        if self.workers == 1 {
            return Owner::Worker(0);
        }
        let ip = crate::wire::ethernet::HEADER_LEN + vlan_hdr_len;
        let Ok(p) = parse_ip(frame, ip, frame.len()) else {
            return Owner::Home;
        };
        if p.frag || p.end > frame.len() {
            return Owner::Home;
        }
        match (p.proto, p.family) {
            (PROTO_TCP | PROTO_UDP, _) => {
                let Some(t) = frame.get(p.l4..p.l4 + 4) else {
                    return Owner::Home;
                };
                let sport = u16::from_be_bytes([t[0], t[1]]);
                let dport = u16::from_be_bytes([t[2], t[3]]);
                self.of_ports(tables, p.family, (&p.src, sport), (&p.dst, dport), p.proto)
            }
            (protocol::ICMP, Family::V4) | (protocol::ICMPV6, Family::V6) => {
                let icmp_error = frame
                    .get(p.l4)
                    .is_some_and(|&t| nat::is_icmp_error(p.family, t));
                if !icmp_error || p.end < p.l4 + 8 {
                    return Owner::Home;
                }
                // An error about a packet we sent: its flow is that of the
                // quoted packet's answer (quoted dst → quoted src).
                match parse_inner(frame, p.l4 + 8, p.end, p.family) {
                    Some(q) => self.of_ports(
                        tables,
                        p.family,
                        (&q.dst, q.dport),
                        (&q.src, q.sport),
                        q.proto,
                    ),
                    None => Owner::Home,
                }
            }
            _ => Owner::Home,
        }
    }

    fn of_ports(
        &self,
        tables: &VsTable,
        family: Family,
        (src, sport): (&[u8; 16], u16),
        (dst, dport): (&[u8; 16], u16),
        proto: u8,
    ) -> Owner {
        if tables.lookup(dst, family, dport, proto).is_some() {
            return Owner::Worker(self.hash(src, sport));
        }
        if tables.is_snat_addr(dst, family) {
            if let Some(w) = snat_port_owner(self.snat_ports, self.workers, dport) {
                return Owner::Worker(w);
            }
        }
        if self.self_ips.iter().any(|(a, f)| a == dst && *f == family) {
            return Owner::Home;
        }
        Owner::Worker(self.hash(dst, dport))
    }

    /// The owner of a TCP or UDP frame from IPv4 client `src:sport` to a
    /// virtual server's VIP and port (what [`owner`](Self::owner) finds
    /// for it, from the two alone).
    #[inline]
    pub fn client_owner_v4(&self, src: [u8; 4], sport: u16) -> u16 {
        let mut addr = [0; 16];
        addr[..4].copy_from_slice(&src);
        self.hash(&addr, sport)
    }

    /// A client endpoint's worker: the keyed endpoint through a 64-bit
    /// finaliser (MurmurHash3's fmix64: every input bit moves every output
    /// bit, so structured addresses still spread), reduced to 0..workers
    /// by a multiply-shift (no division).
    #[inline]
    fn hash(&self, addr: &[u8; 16], port: u16) -> u16 {
        let lo = u64::from_le_bytes(addr[..8].try_into().unwrap_or_default());
        let hi = u64::from_le_bytes(addr[8..].try_into().unwrap_or_default());
        let x = fmix64(lo ^ hi.rotate_left(29) ^ (u64::from(port) << 48) ^ self.seed);
        (((x >> 32) * u64::from(self.workers)) >> 32) as u16
    }
}

//! The L4 load balancer's pure cores: Maglev member choice and the
//! per-worker connection table.
//!
//! ```text
//!   ctrl (tokio)                          worker (pinned, one per core)
//!   ------------                          -----------------------------
//!   members + weights                     per burst: now = coarse clock
//!     -> maglev::Table::build   publish   per packet:
//!     (per VS, off the packet path) ====>   key   = FlowKey::v4/v6(..)
//!                                 snapshot  h_ct  = worker_hasher.hash(&key)
//!                                           conntrack.lookup(&key, h_ct, now)
//!                                             hit  -> entry.member, NAT
//!                                             miss -> m = table.lookup(
//!                                                     FlowHasher::MAGLEV.hash(&key))
//!                                                     conntrack.insert(..)
//!                                                     Err -> forward to m
//!                                                            statelessly (counted)
//!   per loop: conntrack.sweep(now, budget, &mut expired) -> RSTs on timeout
//! ```
//!
//! - [`hash`]: pollux-hash v1, the fixed hash every instance shares.
//! - [`flow`]: [`FlowKey`] (5-tuple + family) and [`FlowHasher`].
//! - [`maglev`]: consistent hashing tables, built in ctrl.
//! - [`conntrack`]: the fixed-size, cache-line-bucketed connection table.
//! - [`vs`]: the virtual-server snapshot ([`VsTable`]), built in ctrl.
//! - [`nat`]: in-place NAT rewrites with incremental checksums, RST and
//!   ICMP port unreachable builders.
//! - [`path`]: the per-worker L4 data path ([`L4::process`],
//!   [`L4::sweep`]): conntrack + Maglev + NAT over a frame.
//! - The connection table's hugepage arena and prefetch hint come
//!   from `crate::dpdk::hugemem` (the DPDK layer holds all the `unsafe`).
//!
//! Everything here is `core`/`std` + `thiserror` + `libc`;
//! no locks, and no allocation in any per-packet function.

pub mod conntrack;
pub mod flow;
pub mod hash;
pub mod maglev;
pub mod nat;
pub mod path;
#[cfg(test)]
mod tests;
pub mod vs;

pub use crate::dpdk::hugemem::Backing;
pub use conntrack::{
    ConnTable, ConnTableError, Counters, Entry, Expired, FlowRef, FlowValue, InsertError, Secs,
    Slot, TcpState, Timeouts, V4Key, FLAG_RESET_ON_TIMEOUT,
};
pub use flow::{CtHasher, Family, FlowHasher, FlowKey, PROTO_TCP, PROTO_UDP};
pub use maglev::{MaglevError, Member, MemberKey, Table};
pub use path::{
    classify_v4, snat_port_owner, snat_range, Classified, Classifier, FastHit, FastHit6, L4Config,
    L4Counters, L4Drop, L4Verdict, MemberCounters, Miss, Owner, Pick, Side, Steering, V4Flow,
    V6Flow, VsCounters, L4,
};
pub use vs::{MemberSpec, Proto, SecondChance, Snat, Vs, VsError, VsSpec, VsTable};

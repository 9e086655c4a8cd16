//! pollux's data plane: a library with no async runtime.
//!
//! - [`dpdk`]: the safe layer over DPDK (the only `unsafe` in the crate).
//! - [`wire`]: zero-copy header views.
//! - [`host`]: what a port does as an IPv4/IPv6 host (ARP, ND, echo, the
//!   exception path to the kernel, routing for the kernel).
//! - [`worker`]: the poll loop.
//! - [`capture`]: packet capture from the workers (a bounded ring each).
//! - [`api`]: all that ctrl sees (the contract); `runtime` implements it
//!   (start-up, the running handles, stop); [`shared`]: what the contract
//!   and the workers both name.
pub mod api;
pub mod bfd;
pub mod capture;
pub mod counters;
pub mod dpdk;
pub mod host;
#[cfg(test)]
mod layers;
pub mod lb;
mod runtime;
pub mod shared;
pub mod wire;
pub mod worker;

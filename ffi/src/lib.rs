//! Generated bindings to the system DPDK and the C shim for its static-inline
//! fast path (`shim.h`). Nothing hand-written lives here: the safe layer is
//! `dataplane::dpdk`.
#![allow(non_upper_case_globals, non_camel_case_types, non_snake_case)]
#![allow(dead_code, improper_ctypes, missing_debug_implementations)]
#![allow(clippy::all, unsafe_code, unsafe_op_in_unsafe_fn)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));

/// The DPDK version pkg-config reported at build time (e.g. "22.11.11").
pub const DPDK_VERSION: &str = env!("POLLUX_DPDK_VERSION");

//! The safe layer over DPDK and worker memory: the only code in the
//! workspace that calls `dpdk-sys`, and with `vfio::sys` the only place
//! `unsafe` is allowed. [`hugemem`] holds the worker tables' hugepage
//! allocation (first touch by the pinned worker), [`simd`] the vector
//! compare of the connection table's signatures.
//!
//! Ownership rule that makes the rest safe: after `rx_burst` the software
//! owns an mbuf (an [`Mbuf`]) until `tx_burst` accepts it or it is freed;
//! what TX refuses is freed. An `Mbuf` is freed exactly once, by `Drop`,
//! unless it was handed to the NIC by [`Mbuf::into_raw`] inside a TX call.
#![allow(unsafe_code)]

mod eal;
pub mod hugemem;
mod mbuf;
mod mempool;
mod port;
pub(crate) mod simd;

use std::ffi::CStr;

pub use eal::{launch, set_timer_slack_ns, tsc, tsc_hz, wait, Clock, Eal};
pub use mbuf::{Burst, Drain, Mbuf, TxBuffer, BURST};
pub use mempool::Mempool;
pub use port::{link, stats, Link, Port, PortId, PortStats, RxQueue, TxQueue};

/// A failed DPDK call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{call} failed: {msg} (rte_errno {errno})")]
    Call {
        call: &'static str,
        errno: i32,
        msg: String,
    },
    #[error("no DPDK port named {0:?}: the EAL arguments must create it (--vdev=... for a virtual device, -a <PCI address> for a VF)")]
    NoSuchPort(String),
    #[error("invalid argument for {0}: it contains a NUL byte")]
    Nul(&'static str),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Turns a DPDK return code (negative errno, or -1 with `rte_errno` set)
/// into a typed error naming the call.
fn check(call: &'static str, rc: i32) -> Result<i32> {
    if rc >= 0 {
        return Ok(rc);
    }
    let errno = if rc == -1 {
        // SAFETY: reads the calling thread's rte_errno through the shim.
        unsafe { dpdk_sys::pollux_errno() }
    } else {
        -rc
    };
    Err(Error::Call {
        call,
        errno,
        msg: strerror(errno),
    })
}

fn last_error(call: &'static str) -> Error {
    // SAFETY: reads the calling thread's rte_errno through the shim.
    let errno = unsafe { dpdk_sys::pollux_errno() };
    Error::Call {
        call,
        errno,
        msg: strerror(errno),
    }
}

fn strerror(errno: i32) -> String {
    if errno == 0 {
        // EAL fails some checks without setting rte_errno.
        return "see the EAL messages above".to_string();
    }
    // SAFETY: rte_strerror returns a pointer to a static or thread-local
    // NUL-terminated string, valid at least until the next call here.
    unsafe { CStr::from_ptr(dpdk_sys::rte_strerror(errno)) }
        .to_string_lossy()
        .into_owned()
}

/// The DPDK version this binary was built against.
pub fn version() -> &'static str {
    dpdk_sys::DPDK_VERSION
}

//! What ctrl's handle on the data plane and the workers share: the tables
//! ctrl publishes, the orders it sends, and the state the workers publish
//! back. [`api`](crate::api) (the contract) and [`worker`](crate::worker)
//! (the loop) both import this module, and it imports neither, so the
//! dependency between them points one way: `api` → `runtime` → `worker`
//! → `shared` (`layers.rs` checks).

use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use crate::bfd::{self, RxCounters, SessionInfo};
use crate::host::Fib;
use crate::lb::VsTable;

/// How a worker waits when there is nothing to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollMode {
    /// Spin like testpmd: lowest latency, one core per worker at 100 %.
    Busy,
    /// Sleep briefly after a run of empty polls (shared cores, CI).
    Adaptive,
}

/// Read-mostly tables built by ctrl and published whole.
#[derive(Debug, Clone, Default)]
pub struct Tables {
    pub fib: Fib,
    /// The virtual servers (VIPs, members and their health, Maglev tables).
    pub vs: Arc<VsTable>,
}

/// Orders from ctrl to the workers' BFD sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BfdCommand {
    /// Drain: every session goes AdminDown (peers do not count it as a
    /// failure).
    AdminDownAll,
    /// A reload added, removed or retimed one session (`bfd_live`).
    Change(bfd::Change),
}

/// BFD state the workers publish for `show bfd sessions` and metrics.
#[derive(Debug, Default)]
pub struct SharedBfd {
    /// One per configured peer, in configuration order.
    pub sessions: Mutex<Vec<BfdSessionStatus>>,
    /// Packets dropped by reason, one slot per worker.
    pub drops: Mutex<Vec<RxCounters>>,
    /// Events lost because ctrl did not drain the ring.
    pub lost_events: AtomicU64,
    /// Live changes a worker could not apply (its session table full).
    pub rejected_changes: AtomicU64,
}

#[derive(Debug, Clone)]
pub struct BfdSessionStatus {
    pub peer: IpAddr,
    /// The port it runs on.
    pub port: usize,
    /// `None` until its worker published it.
    pub info: Option<SessionInfo>,
    /// When the session last changed state, in ns since the Unix epoch
    /// (CLOCK_REALTIME), dated by its worker's clock at the change (the
    /// `now` of the loop iteration that made it; a detection-time expiry is
    /// dated when the worker noticed it). `None` before the first change.
    pub last_change_unix_ns: Option<u64>,
}

/// A worker's L4 counters as last published (ctrl sums the workers).
#[derive(Debug, Default)]
pub struct SharedL4 {
    pub snapshot: Mutex<L4Snapshot>,
}

#[derive(Debug, Clone, Default)]
pub struct L4Snapshot {
    /// Generation of the virtual-server table the per-VS vectors follow.
    pub generation: u64,
    pub counters: crate::lb::L4Counters,
    pub vs: Vec<crate::lb::VsCounters>,
    /// Per VS, per member (in table order).
    pub members: Vec<Vec<crate::lb::MemberCounters>>,
    /// Each family's connection table: slots in use (a tracked flow takes
    /// two), slots, memory (an IPv4 slot is 32 bytes, an IPv6 slot 56).
    pub ipv4: crate::lb::conntrack::Size,
    pub ipv6: crate::lb::conntrack::Size,
    /// The hugetlb page size it is in (`None`: ordinary pages, slower).
    pub table_page_size: Option<usize>,
    pub conntrack: crate::lb::conntrack::Counters,
}

impl L4Snapshot {
    /// Both families' connection tables together.
    pub fn table(&self) -> crate::lb::conntrack::Size {
        self.ipv4 + self.ipv6
    }
}

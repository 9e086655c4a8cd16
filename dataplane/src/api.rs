//! All that ctrl sees of the data plane: a validated configuration in,
//! [`Dataplane::start`], table snapshots published with `publish_*`,
//! counter snapshots out, and an orderly stop.
//!
//! ```text
//!  ctrl (tokio)                         workers (pinned EAL lcores)
//!  ───────────                          ───────────────────────────
//!  Dataplane::start ── EAL, mempool, ports, TAPs ──► launch Worker::run
//!  publish tables  ── ArcSwap<Tables> ─────────────► load once per iteration
//!  stats()         ◄── SharedPort/SharedWorker ───── publish every 10 ms
//!  stop()          ── stop flag ────────────────────► return; lcore joined
//! ```

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use crossbeam::queue::ArrayQueue;

use crate::bfd::{self, PeerKey, RxCounters, SessionInfo, SessionTable, StateChange};
use crate::lb::{L4Config, Steering, L4};
use crate::worker::{BfdIo, News, Parcel, Rings, SharedL4, RING};

use crate::capture::{self, Record};
use crate::counters::{PortCounters, SharedPort, SharedWorker, WorkerCounters};
use crate::dpdk::{self, Eal, Mempool, Port, RxQueue, TxBuffer, TxQueue};
use crate::host::{Fib, Host, Route};
use crate::worker::{Worker, WorkerPort};

// The contract's vocabulary: the types and constants of the data plane's
// modules that ctrl names. ctrl imports this module and nothing else of
// the crate (ctrl/tests/api_contract.rs checks).
pub use crate::bfd::{
    Hop as BfdHop, State as BfdState, StateChange as BfdStateChange, Timers as BfdTimers,
};
pub use crate::capture::{Dir as CaptureDir, Filter as CaptureFilter, SNAP as CAPTURE_SNAP};
pub use crate::counters::Drop;
pub use crate::dpdk::{version as dpdk_version, PortStats};
pub use crate::host::policer::DEFAULT_RATE as DEFAULT_PUNT_RATE;
pub use crate::host::{Prefix, SelfIp};
pub use crate::lb::{
    L4Drop, MemberSpec, Proto, SecondChance, Snat, VsCounters, VsError, VsSpec, VsTable,
};
pub use crate::wire::Mac;
pub use crate::worker::L4Snapshot;

mod bfd_live;
pub use bfd_live::BfdChanges;

/// How a worker waits when there is nothing to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollMode {
    /// Spin like testpmd: lowest latency, one core per worker at 100 %.
    Busy,
    /// Sleep briefly after a run of empty polls (shared cores, CI).
    Adaptive,
}

/// One port of the validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// Also the name of the port's kernel TAP.
    pub name: String,
    /// The DPDK device name (`net_af_xdp0`, a PCI address…).
    pub device: String,
    pub self_ips: Vec<SelfIp>,
    pub vlan: Option<u16>,
    pub mtu: u16,
    /// Configured neighbors (never expire, never overridden by ARP/ND).
    pub neighbors: Vec<(IpAddr, Mac)>,
    /// The punt policer's rate (frames/s of the `other` class; 0 = none).
    pub punt_rate: u32,
    /// Queue pairs wanted (`None`: one per worker); fewer if the device
    /// offers fewer.
    pub queues: Option<u16>,
}

/// A static route of the validated configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticRoute {
    pub prefix: Prefix,
    pub via: IpAddr,
}

/// A BFD peer (one per BGP neighbor with `bfd: true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BfdPeer {
    pub addr: IpAddr,
    pub timers: bfd::Timers,
    /// RFC 5883 multihop (port 4784) with this minimum received TTL, for
    /// `ebgpMultihop` > 1; `None`: single hop (RFC 5881).
    pub multihop: Option<u8>,
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

/// The workers' BFD state changes, for ctrl's reader: a handle that
/// needs no lock on the [`Dataplane`] (the workers cannot wake a tokio
/// task; the reader polls [`BfdEvents::drain`]).
#[derive(Debug, Clone)]
pub struct BfdEvents {
    ring: Arc<ArrayQueue<StateChange>>,
    discrs: Arc<Mutex<bfd::discr::Discriminators>>,
    shared: Arc<SharedBfd>,
}

impl BfdEvents {
    /// The state changes since the last call, oldest first, each with its
    /// configured peer. A change of a session removed since (a reload) has
    /// no peer and is left out.
    pub fn drain(&self) -> Vec<(IpAddr, StateChange)> {
        let mut out = Vec::new();
        while let Some(ev) = self.ring.pop() {
            let discrs = lock(&self.discrs);
            let peer = discrs.peer_of(ev.local_discr).and_then(|i| {
                let sessions = self.shared.sessions.lock().ok()?;
                sessions.get(i).map(|s| s.peer)
            });
            out.extend(peer.map(|p| (p, ev)));
        }
        out
    }
}

/// A mutex's value even if a holder panicked (the maps it guards stay
/// consistent: each update is one call).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A worker: the EAL lcore id it runs as and the CPU it is pinned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerSpec {
    pub lcore: u32,
    pub cpu: usize,
}

/// The data plane's part of the configuration, validated by ctrl.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Names DPDK's runtime files (`--file-prefix`) unless the EAL args do.
    pub instance: String,
    /// Extra EAL arguments from the config (vdevs, memory, allow-list).
    pub eal: Vec<String>,
    pub workers: Vec<WorkerSpec>,
    /// CPUs the main (control) thread may run on.
    pub control_cpus: Vec<usize>,
    pub poll_mode: PollMode,
    pub ports: Vec<PortSpec>,
    pub routes: Vec<StaticRoute>,
    pub bfd: Vec<BfdPeer>,
    /// Connection-table slots per worker (two per tracked flow): IPv4
    /// flows' and IPv6 flows' tables.
    pub connections: usize,
    pub connections_v6: usize,
    /// New flows per second per worker above which new flows are
    /// forwarded statelessly (0 = no limit).
    pub new_flows_per_sec: u32,
    /// SNAT source ports (split between the workers); keep them clear of
    /// the kernel's ephemeral range on self IPs used for automap.
    pub snat_ports: (u16, u16),
    /// Mbufs in each port's pool (raised to what the rings need).
    pub mbufs: u32,
    /// Test hook: make a worker panic after it starts.
    pub panic_for_test: bool,
    /// Benchmark hook: a fixed seed for the connection tables' hash, so
    /// that callgrind's instruction counts repeat exactly (the default is
    /// a random seed per worker: flow keys an attacker picks cannot be
    /// aimed at one bucket).
    pub hash_seed: Option<u64>,
    /// Benchmark hook: a virtual worker clock that advances this many
    /// nanoseconds per loop pass instead of reading the TSC, so that what
    /// the packet path does (which reads the clock) is a function of the
    /// frames alone and callgrind's counts repeat exactly. Never in
    /// production: BFD and timeouts then follow loop passes, not time.
    pub clock_step_ns: Option<u64>,
}

impl Config {
    /// The home worker of port `i` (ports are dealt round-robin): it polls
    /// the port's first queue and its TAP, runs its BFD sessions and
    /// resolves its neighbours.
    pub fn worker_of(&self, port: usize) -> usize {
        port % self.workers.len().max(1)
    }

    /// Which queue of port `i` (of `queues`) worker `w` owns, if any: the
    /// home worker the first, the next workers round the ring the others.
    pub fn queue_of(&self, port: usize, queues: u16, w: usize) -> Option<u16> {
        let n = self.workers.len().max(1);
        let k = (w + n - self.worker_of(port)) % n;
        (k < usize::from(queues)).then_some(k as u16)
    }

    /// DPDK's runtime file prefix when the EAL arguments do not name one.
    pub fn file_prefix(&self) -> String {
        format!("pollux-{}", self.instance)
    }

    /// DPDK's runtime directory for this instance, when pollux chose its
    /// prefix (removed after a clean stop: EAL leaves it behind).
    pub fn runtime_dir(&self) -> Option<std::path::PathBuf> {
        let ours = !self.eal.iter().any(|a| a.starts_with("--file-prefix"));
        ours.then(|| std::path::Path::new("/var/run/dpdk").join(self.file_prefix()))
    }

    /// The full EAL argument vector: lcore map, file prefix, one TAP vdev
    /// per port, then the configured arguments.
    pub fn eal_args(&self) -> Vec<String> {
        let cpus = |v: &[usize]| {
            v.iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut lcores = vec![format!("0@({})", cpus(&self.control_cpus))];
        lcores.extend(
            self.workers
                .iter()
                .map(|w| format!("{}@{}", w.lcore, w.cpu)),
        );
        let mut args = vec![format!("--lcores={}", lcores.join(","))];
        if !self.eal.iter().any(|a| a.starts_with("--file-prefix")) {
            args.push(format!("--file-prefix={}", self.file_prefix()));
        }
        for (i, p) in self.ports.iter().enumerate() {
            args.push(format!("--vdev={}", tap_device(i, &p.name)));
        }
        args.extend(self.eal.iter().cloned());
        args
    }

    /// Connected subnets of the self IPs, then the static routes, each
    /// resolved to the port whose subnet holds its next hop.
    pub fn fib(&self) -> Result<Fib, String> {
        let mut routes: Vec<Route> = self
            .ports
            .iter()
            .enumerate()
            .flat_map(|(i, p)| {
                p.self_ips.iter().map(move |s| Route {
                    prefix: s.prefix(),
                    port: i,
                    via: None,
                })
            })
            .collect();
        let connected = Fib::new(routes.clone());
        for r in &self.routes {
            let (port, _) = connected.lookup(r.via).ok_or_else(|| {
                format!(
                    "next hop {} of {} is in no self IP's subnet",
                    r.via, r.prefix
                )
            })?;
            routes.push(Route {
                prefix: r.prefix,
                port,
                via: Some(r.via),
            });
        }
        Ok(Fib::new(routes))
    }
}

/// Descriptors per port queue, and per TAP queue (the exception path is
/// low-volume; net_tap fills every RX descriptor with an mbuf up front).
const PORT_DESC: u16 = 1024;
const TAP_DESC: u16 = 256;
const POOL_CACHE: u32 = 256;
/// The af_xdp PMD's driver name (its pools are packed: `Mempool::packed`).
const AF_XDP: &str = "net_af_xdp";

impl Config {
    /// Mbufs one port's rings (and its TAP's) can hold at once, plus
    /// lcore caches, the neighbor queue and slack: a smaller pool would
    /// starve a PMD at start.
    pub fn mbufs_needed(&self) -> u32 {
        2 * u32::from(PORT_DESC)
            + 2 * u32::from(TAP_DESC)
            + 64
            + (self.workers.len() as u32 + 1) * POOL_CACHE
            + 1024
    }
}

fn tap_device(i: usize, name: &str) -> String {
    format!("net_tap{i},iface={name}")
}

/// Read-mostly tables built by ctrl and published whole.
#[derive(Debug, Clone, Default)]
pub struct Tables {
    pub fib: Fib,
    /// The virtual servers (VIPs, members and their health, Maglev tables).
    pub vs: Arc<VsTable>,
}

/// Start-up failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("DPDK: {0}")]
    Dpdk(#[from] dpdk::Error),
    #[error("port {port:?} (device {device:?}): {source}")]
    Port {
        port: String,
        device: String,
        source: dpdk::Error,
    },
    #[error("routes: {0}")]
    Routes(String),
    #[error("connection table: {0}")]
    Conntrack(String),
    #[error("port {port:?}: {outside} of its {mbufs} mbufs lie outside the af_xdp UMEM (the pool is not one contiguous chunk: more memory for DPDK, or fewer mbufs); the kernel would refuse them and lose the frames in them")]
    Umem {
        port: String,
        outside: u32,
        mbufs: u32,
    },
}

/// The system-clock time of `at`, a reading of a worker's clock taken
/// before `clock_now`, which was read together with `unix_now`. Dating by
/// age keeps the error to the clock's rate error over the age, not over
/// the process's uptime.
fn unix_time_of(at: u64, clock_now: u64, unix_now: u64) -> u64 {
    unix_now.saturating_sub(clock_now.saturating_sub(at))
}

/// A worker but its connection table: built by `Dataplane::start`, made
/// whole on the worker's lcore.
struct WorkerSeed {
    shared: Arc<SharedWorker>,
    l4: L4Config,
    self_ips: Vec<IpAddr>,
    make: Box<dyn FnOnce(L4) -> Worker + Send>,
}

/// A running data plane. Dropping it stops the workers and releases ports,
/// TAPs, the mempool and the EAL, in that order.
#[derive(Debug)]
pub struct Dataplane {
    stop: Arc<AtomicBool>,
    failure: Arc<Mutex<Option<String>>>,
    workers: Vec<(WorkerSpec, Arc<SharedWorker>, bool)>,
    interfaces: Vec<Interface>,
    tables: Arc<ArcSwap<Tables>>,
    bfd_events: BfdEvents,
    bfd_commands: Vec<Arc<ArrayQueue<BfdCommand>>>,
    bfd_shared: Arc<SharedBfd>,
    /// Local discriminator → configured BFD peer (the values are random).
    /// (Shared with [`BfdEvents`]; locked before `bfd_shared.sessions`
    /// where both are.)
    bfd_discrs: Arc<Mutex<bfd::discr::Discriminators>>,
    /// Each worker's clock, to date its BFD state changes.
    clocks: Vec<dpdk::Clock>,
    l4_shared: Vec<Arc<SharedL4>>,
    /// Queue handles until `build_worker` deals them: per port, per queue.
    queues: Vec<Vec<Option<(RxQueue, TxQueue)>>>,
    taps: Vec<Option<(RxQueue, TxQueue)>>,
    /// Rings between workers: `parcels[from][to]`, `news[to]`.
    parcels: Vec<Vec<Option<Arc<ArrayQueue<Parcel>>>>>,
    news: Vec<Arc<ArrayQueue<News>>>,
    /// The owner hash's key, the same on every worker.
    steering_seed: u64,
    /// Each worker's capture slot; whether a [`Capture`] holds them, and
    /// the last capture's generation.
    captures: Vec<Arc<capture::Slot>>,
    capturing: Arc<AtomicBool>,
    capture_generation: AtomicU64,
    // Ports close when they and their queue handles are gone; pools and
    // the EAL outlive them (field order).
    ports: Vec<(Port, Port)>,
    pools: Vec<Arc<Mempool>>,
    _eal: Eal,
}

/// What `show interfaces` tells about a port.
#[derive(Debug, Clone)]
pub struct Interface {
    pub name: String,
    pub device: String,
    pub driver: String,
    pub port_id: u16,
    pub tap_port_id: u16,
    pub mac: Mac,
    pub vlan: Option<u16>,
    pub mtu: u16,
    pub self_ips: Vec<SelfIp>,
    /// The home worker (TAP, BFD, neighbour resolution).
    pub worker: WorkerSpec,
    /// Queue pairs: one per worker up to what the device offers.
    pub queues: u16,
    /// One slot per worker (each counts what it handled on the port).
    shared: Vec<Arc<SharedPort>>,
}

/// A snapshot of every counter.
#[derive(Debug, Clone)]
pub struct Stats {
    pub ports: Vec<PortSnapshot>,
    pub workers: Vec<WorkerSnapshot>,
}

#[derive(Debug, Clone)]
pub struct PortSnapshot {
    pub name: String,
    pub counters: PortCounters,
    pub pmd: PortStats,
    pub tap_pmd: PortStats,
    /// Free mbufs in the port's pool now (a leak shows as a shrinking
    /// number at rest).
    pub mbufs_free: u32,
}

#[derive(Debug, Clone)]
pub struct WorkerSnapshot {
    pub lcore: u32,
    pub cpu: usize,
    pub running: bool,
    pub counters: WorkerCounters,
}

impl Dataplane {
    /// Initialises DPDK, opens every port and its TAP, and launches the
    /// workers with `vs` as their first virtual-server table (so that VIP
    /// traffic is served from the first packet). Nothing is left behind
    /// on error.
    pub fn start(cfg: &Config, vs: VsTable) -> Result<Dataplane, Error> {
        let fib = cfg.fib().map_err(Error::Routes)?;
        let eal = Eal::init(&cfg.eal_args())?;
        let mbufs = cfg.mbufs.max(cfg.mbufs_needed());
        if mbufs > cfg.mbufs {
            tracing::info!(
                configured = cfg.mbufs,
                using = mbufs,
                "dataplane.mbufs raised to what the rings need"
            );
        }
        let workers = cfg.workers.len().max(1);
        let mut ports = Vec::new();
        let (mut queues, mut taps) = (Vec::new(), Vec::new());
        let mut pools = Vec::new();
        let mut interfaces = Vec::new();
        for (i, spec) in cfg.ports.iter().enumerate() {
            let port_err = |source| Error::Port {
                port: spec.name.clone(),
                device: spec.device.clone(),
                source,
            };
            let mut port = Port::by_name(&spec.device).map_err(port_err)?;
            // One pool per port: af_xdp builds its UMEM over the RX pool,
            // and two ports over one pool stall each other's TX. Its pool
            // is packed, so that every mbuf lies inside the UMEM
            // (`Mempool::packed`); the others keep DPDK's layout (buffers
            // IOVA-contiguous, as a NIC's DMA needs).
            let name = format!("pollux_pool{i}");
            let af_xdp = port.driver == AF_XDP;
            let pool = Arc::new(
                if af_xdp {
                    Mempool::packed(&name, mbufs, POOL_CACHE, -1)
                } else {
                    Mempool::new(&name, mbufs, POOL_CACHE, -1)
                }
                .map_err(port_err)?,
            );
            let outside = if af_xdp { pool.outside_umem() } else { 0 };
            if outside > 0 {
                return Err(Error::Umem {
                    port: spec.name.clone(),
                    outside,
                    mbufs,
                });
            }
            let nq = spec
                .queues
                .unwrap_or(workers as u16)
                .clamp(1, workers as u16)
                .min(port.max_queues());
            port.configure(nq, PORT_DESC, &pool).map_err(port_err)?;
            port.start().map_err(port_err)?;
            let mac = port.mac().map_err(port_err)?;
            let mut tap = Port::by_name(&format!("net_tap{i}")).map_err(port_err)?;
            tap.configure(1, TAP_DESC, &pool).map_err(port_err)?;
            tap.set_mac(mac).map_err(port_err)?;
            tap.set_mtu(spec.mtu).map_err(port_err)?;
            tap.start().map_err(port_err)?;
            tracing::info!(port = ?port.id, tap = ?tap.id, name = %spec.name, device = %spec.device, driver = %port.driver, %mac, queues = nq, "port started");
            if usize::from(nq) < workers {
                tracing::info!(port = %spec.name, queues = nq, workers, "fewer queues than workers: the others hand their frames for this port to its home worker");
            }
            queues.push(port.take_queues().into_iter().map(Some).collect());
            taps.push(tap.take_queues().into_iter().next());
            interfaces.push(Interface {
                name: spec.name.clone(),
                device: spec.device.clone(),
                driver: port.driver.clone(),
                port_id: port.id.0,
                tap_port_id: tap.id.0,
                mac,
                vlan: spec.vlan,
                mtu: spec.mtu,
                self_ips: spec.self_ips.clone(),
                worker: cfg.workers[cfg.worker_of(i)],
                queues: nq,
                shared: (0..workers).map(|_| Arc::default()).collect(),
            });
            ports.push((port, tap));
            pools.push(pool);
        }
        let bfd_discrs: Arc<Mutex<bfd::discr::Discriminators>> = Arc::default();
        let bfd_shared = Arc::new(SharedBfd::default());
        let mut dp = Dataplane {
            stop: Arc::new(AtomicBool::new(false)),
            failure: Arc::new(Mutex::new(None)),
            workers: Vec::new(),
            interfaces,
            tables: Arc::new(ArcSwap::from_pointee(Tables {
                fib: fib.clone(),
                vs: Arc::new(vs),
            })),
            l4_shared: Vec::new(),
            queues,
            taps,
            parcels: (0..workers)
                .map(|from| {
                    (0..workers)
                        .map(|to| {
                            (workers > 1 && to != from).then(|| Arc::new(ArrayQueue::new(RING)))
                        })
                        .collect()
                })
                .collect(),
            news: (0..workers)
                .map(|_| Arc::new(ArrayQueue::new(256)))
                .collect(),
            steering_seed: cfg.hash_seed.unwrap_or_else(crate::dpdk::tsc),
            captures: Vec::new(),
            capturing: Arc::new(AtomicBool::new(false)),
            capture_generation: AtomicU64::new(0),
            bfd_events: BfdEvents {
                ring: Arc::new(ArrayQueue::new(4096)),
                discrs: bfd_discrs.clone(),
                shared: bfd_shared.clone(),
            },
            bfd_commands: Vec::new(),
            bfd_shared,
            bfd_discrs,
            clocks: Vec::new(),
            ports,
            pools,
            _eal: eal,
        };
        // Each BFD peer runs on the worker of the port that reaches it.
        let bfd_ports: Vec<usize> = cfg
            .bfd
            .iter()
            .map(|b| {
                fib.lookup(b.addr).map(|(port, _)| port).ok_or_else(|| {
                    Error::Routes(format!(
                        "BFD peer {} is not reachable through any port",
                        b.addr
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        if let Ok(mut s) = dp.bfd_shared.sessions.lock() {
            *s = cfg
                .bfd
                .iter()
                .zip(&bfd_ports)
                .map(|(b, &port)| BfdSessionStatus {
                    peer: b.addr,
                    port,
                    info: None,
                    last_change_unix_ns: None,
                })
                .collect();
        }
        if let Ok(mut d) = dp.bfd_shared.drops.lock() {
            *d = vec![RxCounters::default(); cfg.workers.len()];
        }
        let (ready_tx, ready) = std::sync::mpsc::channel();
        for (w, spec) in cfg.workers.iter().enumerate() {
            let seed = dp.build_worker(cfg, w, &bfd_ports)?;
            let shared = seed.shared.clone();
            let failure = dp.failure.clone();
            let stop = dp.stop.clone();
            let lcore = spec.lcore;
            let ready_tx = ready_tx.clone();
            dpdk::launch(lcore, move || {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    // The connection table, allocated and first touched
                    // here, on the pinned worker (its NUMA node).
                    match L4::new(seed.l4) {
                        Ok(mut l4) => {
                            l4.set_self_ips(&seed.self_ips);
                            let _ = ready_tx.send(Ok(l4.conntrack().backing()));
                            (seed.make)(l4).run();
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(format!("worker {w}: {e}")));
                        }
                    }
                }));
                r.map_err(|e| {
                    let what = e
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| e.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".into());
                    let msg = format!("worker on lcore {lcore} panicked: {what}");
                    if let Ok(mut f) = failure.lock() {
                        f.get_or_insert(msg.clone());
                    }
                    stop.store(true, Relaxed);
                    msg
                })
            })?;
            dp.workers.push((*spec, shared, true));
            tracing::info!(lcore = spec.lcore, cpu = spec.cpu, "worker launched");
        }
        for _ in &cfg.workers {
            match ready.recv_timeout(std::time::Duration::from_secs(60)) {
                Ok(Ok(backing)) => {
                    if backing != crate::lb::Backing::HugeTlb {
                        tracing::warn!(
                            "a connection table is not in hugepages (fell back to ordinary pages)"
                        );
                    }
                }
                Ok(Err(e)) => return Err(Error::Conntrack(e)), // dropping dp stops the others
                Err(_) => return Err(Error::Conntrack("a worker did not start in 60 s".into())),
            }
        }
        Ok(dp)
    }

    /// Everything worker `w` needs but its connection table, which the
    /// worker allocates itself once pinned (first touch: on its NUMA node).
    fn build_worker(
        &mut self,
        cfg: &Config,
        w: usize,
        bfd_ports: &[usize],
    ) -> Result<WorkerSeed, Error> {
        let clock = crate::dpdk::Clock::new();
        self.clocks.push(clock);
        let capture = Arc::new(capture::Slot::new(clock));
        self.captures.push(capture.clone());
        let mine: Vec<(usize, &BfdPeer)> = cfg
            .bfd
            .iter()
            .enumerate()
            .filter(|(i, _)| cfg.worker_of(bfd_ports[*i]) == w)
            .collect();
        let mut bfd = SessionTable::with_capacity(mine.len() + bfd::change::SPARE);
        for (i, peer) in mine {
            // RFC 5880 §6.3: unique per instance, random (bfd::discr).
            let discr = lock(&self.bfd_discrs).fresh(i);
            let sc = bfd_live::session_config(discr, peer);
            let key = PeerKey {
                addr: peer.addr,
                iface: bfd_ports[i] as u32,
            };
            if let Err(e) = bfd.add(clock.now(), key, sc) {
                tracing::warn!(peer = %peer.addr, error = ?e, "BFD session not created");
            }
        }
        let commands = Arc::new(ArrayQueue::new(64));
        self.bfd_commands.push(commands.clone());
        let bfd_io = BfdIo {
            worker: w,
            events: self.bfd_events.ring.clone(),
            commands,
            shared: self.bfd_shared.clone(),
        };
        let mut l4c = L4Config::new(cfg.connections, w as u16, cfg.workers.len() as u16);
        l4c.conntrack.capacity_v6 = cfg.connections_v6;
        // The table's limit counts entries: two per new flow.
        l4c.conntrack.new_flows_per_sec = cfg.new_flows_per_sec.saturating_mul(2);
        l4c.snat_ports = cfg.snat_ports;
        l4c.seed = cfg.hash_seed.unwrap_or_else(crate::dpdk::tsc) ^ ((w as u64) << 32);
        let self_ips: Vec<IpAddr> = cfg
            .ports
            .iter()
            .flat_map(|p| p.self_ips.iter().map(|s| s.addr))
            .collect();
        let l4_shared = Arc::new(SharedL4::default());
        self.l4_shared.push(l4_shared.clone());
        let ports = cfg
            .ports
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let home = cfg.worker_of(i);
                let mut host = Host::new(
                    i,
                    self.interfaces[i].mac,
                    spec.vlan,
                    spec.mtu,
                    spec.self_ips.clone(),
                );
                host.punt = crate::host::policer::PuntPolicer::new(spec.punt_rate);
                for &(ip, mac) in &spec.neighbors {
                    if !host.neighbors.add_static(ip, mac) {
                        tracing::warn!(port = %spec.name, %ip, "static neighbor not added: cache window full");
                    }
                }
                let queues = cfg
                    .queue_of(i, self.interfaces[i].queues, w)
                    .and_then(|q| self.queues[i][usize::from(q)].take())
                    .map(|(rx, tx)| {
                        let mut tx = TxBuffer::new(tx);
                        tx.capture_into(capture.clone(), i);
                        (rx, tx)
                    });
                let tap = if home == w {
                    self.taps[i].take().map(|(rx, tx)| (rx, TxBuffer::new(tx)))
                } else {
                    None
                };
                WorkerPort::new(
                    host,
                    self.pools[i].clone(),
                    queues,
                    tap,
                    home,
                    self.interfaces[i].shared[w].clone(),
                )
            })
            .collect();
        let rings = if cfg.workers.len() > 1 {
            Rings {
                to: self.parcels[w].clone(),
                from: self.parcels.iter().map(|row| row[w].clone()).collect(),
                news_to: (0..self.news.len())
                    .map(|to| (to != w).then(|| self.news[to].clone()))
                    .collect(),
                news: Some(self.news[w].clone()),
            }
        } else {
            Rings::default()
        };
        let steering = Steering::new(
            cfg.workers.len() as u16,
            cfg.snat_ports,
            &self_ips,
            self.steering_seed,
        );
        let shared = Arc::new(SharedWorker::default());
        let (tables, stop) = (self.tables.clone(), self.stop.clone());
        let (poll_mode, panic_for_test) = (cfg.poll_mode, cfg.panic_for_test && w == 0);
        let clock_step = cfg.clock_step_ns;
        Ok(WorkerSeed {
            shared: shared.clone(),
            l4: l4c,
            self_ips,
            make: Box::new(move |l4| Worker {
                index: w,
                ports,
                steering,
                rings,
                tables,
                stop,
                poll_mode,
                shared,
                panic_for_test,
                bfd,
                bfd_io,
                clock,
                clock_step,
                l4,
                l4_shared,
                expired: Default::default(),
                handoff: Default::default(),
                capture,
            }),
        })
    }

    pub fn interfaces(&self) -> &[Interface] {
        &self.interfaces
    }

    pub fn tables(&self) -> Arc<Tables> {
        self.tables.load_full()
    }

    /// Replaces the tables every worker reads (whole, atomically).
    pub fn publish(&self, tables: Tables) {
        self.tables.store(Arc::new(tables));
    }

    pub fn stats(&self) -> Stats {
        Stats {
            ports: self
                .interfaces
                .iter()
                .zip(&self.ports)
                .zip(&self.pools)
                .map(|((i, (p, t)), pool)| PortSnapshot {
                    name: i.name.clone(),
                    counters: i.shared.iter().fold(PortCounters::default(), |mut sum, w| {
                        sum.add(&w.read());
                        sum
                    }),
                    pmd: p.stats(),
                    tap_pmd: t.stats(),
                    mbufs_free: pool.available(),
                })
                .collect(),
            workers: self
                .workers
                .iter()
                .map(|(spec, shared, _)| WorkerSnapshot {
                    lcore: spec.lcore,
                    cpu: spec.cpu,
                    running: shared.running.load(Relaxed),
                    counters: shared.read(),
                })
                .collect(),
        }
    }

    /// Replaces the virtual-server table (whole, atomically; the FIB stays).
    pub fn publish_vs(&self, vs: VsTable) {
        let current = self.tables.load();
        // A table equal to the one serving changes nothing: keep its
        // generation, so workers do not re-adopt (and the fast path does
        // not pause) on every republish of the same state.
        if current.vs.same_content(&vs) {
            return;
        }
        let fib = current.fib.clone();
        self.tables.store(Arc::new(Tables {
            fib,
            vs: Arc::new(vs),
        }));
    }

    /// Each worker's L4 counters as last published.
    pub fn l4_snapshots(&self) -> Vec<L4Snapshot> {
        self.l4_shared
            .iter()
            .map(|s| s.snapshot.lock().map(|x| x.clone()).unwrap_or_default())
            .collect()
    }

    /// The workers' BFD event ring, for a reader of its own: it needs no
    /// access to the [`Dataplane`] (see [`BfdEvents::drain`]).
    pub fn bfd_events(&self) -> BfdEvents {
        self.bfd_events.clone()
    }

    /// Every configured BFD session as its worker last published it, with
    /// the time of its last state change on the system clock.
    pub fn bfd_sessions(&self) -> Vec<BfdSessionStatus> {
        let mut sessions = self
            .bfd_shared
            .sessions
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        let unix_now = unix_now_ns();
        for s in &mut sessions {
            let worker = self
                .interfaces
                .get(s.port)
                .and_then(|i| self.workers.iter().position(|(spec, ..)| *spec == i.worker));
            let clock = worker.and_then(|w| self.clocks.get(w));
            s.last_change_unix_ns = match (&s.info, clock) {
                (Some(i), Some(c)) if i.stats.last_change_at != 0 => {
                    Some(unix_time_of(i.stats.last_change_at, c.now(), unix_now))
                }
                _ => None,
            };
        }
        sessions
    }

    /// BFD packets dropped by reason, summed over the workers.
    pub fn bfd_drops(&self) -> Vec<(&'static str, u64)> {
        let d = self
            .bfd_shared
            .drops
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default();
        bfd::RxError::ALL
            .iter()
            .map(|r| (r.name(), d.iter().map(|c| c.get(*r)).sum()))
            .collect()
    }

    /// Orders every worker's BFD sessions AdminDown (drain).
    pub fn bfd_admin_down_all(&self) {
        for q in &self.bfd_commands {
            let _ = q.push(BfdCommand::AdminDownAll);
        }
    }

    /// Starts capturing the frames of port `port` (its name) that pass
    /// `filter`, received and sent, on every worker; until the
    /// [`Capture`] is dropped. One at a time: a second is refused.
    pub fn capture(&self, port: &str, filter: CaptureFilter) -> Result<Capture, String> {
        let Some(index) = self.interfaces.iter().position(|i| i.name == port) else {
            let names: Vec<&str> = self.interfaces.iter().map(|i| i.name.as_str()).collect();
            return Err(format!(
                "no port named {port:?} (ports: {})",
                names.join(", ")
            ));
        };
        if self.capturing.swap(true, Relaxed) {
            return Err("a capture is already running (one at a time)".into());
        }
        let generation = self.capture_generation.fetch_add(1, Relaxed) + 1;
        let unix_now = unix_now_ns();
        let mut epochs = Vec::new();
        for slot in &self.captures {
            // What a worker filed after the last capture ended: freed.
            while slot.full.pop().is_some() {}
            while slot.free.len() < capture::RECORDS {
                let _ = slot.free.push(Record::new());
            }
            epochs.push((slot.clock.now(), unix_now));
            slot.arm(capture::Spec {
                generation,
                port: index,
                filter,
            });
        }
        Ok(Capture {
            slots: self.captures.clone(),
            busy: self.capturing.clone(),
            generation,
            epochs,
            batch: Vec::with_capacity(capture::RECORDS),
        })
    }

    /// Every worker entered its loop and none has left it.
    pub fn all_running(&self) -> bool {
        self.workers.iter().all(|(_, s, _)| s.running.load(Relaxed))
    }

    /// Why a worker died, if one did (the data plane is then stopping).
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|f| f.clone())
    }

    /// Free mbufs in each port's pool (a leak shows as a shrinking number
    /// at rest).
    pub fn mbufs_available(&self) -> Vec<u32> {
        self.pools.iter().map(|p| p.available()).collect()
    }

    /// Stops the workers and waits for them. Idempotent.
    pub fn stop(&mut self) {
        self.stop.store(true, Relaxed);
        for (spec, _, live) in &mut self.workers {
            if std::mem::take(live) {
                let rc = dpdk::wait(spec.lcore);
                tracing::debug!(lcore = spec.lcore, rc, "worker joined");
            }
        }
    }
}

fn unix_now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A running capture ([`Dataplane::capture`]): the workers file frames
/// until it is stopped or dropped. It holds no borrow of the data plane:
/// a task may own it.
#[derive(Debug)]
pub struct Capture {
    slots: Vec<Arc<capture::Slot>>,
    busy: Arc<AtomicBool>,
    generation: u64,
    /// Per worker: its clock and the system clock at the start (ns).
    epochs: Vec<(u64, u64)>,
    /// The records of one [`drain`](Capture::drain), reused.
    batch: Vec<(u64, usize, Box<Record>)>,
}

/// One captured frame, as [`Capture::drain`] hands it out.
#[derive(Debug)]
pub struct CapturedFrame<'a> {
    /// When the worker saw it (after receive, before transmit), ns since
    /// the Unix epoch.
    pub unix_ns: u64,
    pub dir: CaptureDir,
    /// Its length on the wire (`data` holds at most [`CAPTURE_SNAP`]).
    pub orig_len: u32,
    pub data: &'a [u8],
}

impl Capture {
    /// Hands `f` the frames the workers filed since the last call, the
    /// workers' merged in time order; gives their buffers back to the
    /// workers. Returns how many.
    pub fn drain(&mut self, mut f: impl FnMut(CapturedFrame<'_>)) -> usize {
        for (w, slot) in self.slots.iter().enumerate() {
            let (clock0, unix0) = self.epochs[w];
            for _ in 0..capture::RECORDS {
                let Some(r) = slot.full.pop() else { break };
                if r.generation != self.generation {
                    let _ = slot.free.push(r);
                    continue;
                }
                let unix_ns = unix0.saturating_add(r.at_ns.saturating_sub(clock0));
                self.batch.push((unix_ns, w, r));
            }
        }
        // Stable: one worker's frames keep their order.
        self.batch.sort_by_key(|(t, ..)| *t);
        let n = self.batch.len();
        for (unix_ns, w, r) in self.batch.drain(..) {
            f(CapturedFrame {
                unix_ns,
                dir: r.dir,
                orig_len: r.orig_len,
                data: r.frame(),
            });
            let _ = self.slots[w].free.push(r);
        }
        n
    }

    /// Frames that matched but found the ring full, on all workers.
    pub fn dropped(&self) -> u64 {
        self.slots.iter().map(|s| s.dropped.load(Relaxed)).sum()
    }

    /// Stops the workers filing (what they filed can still be drained).
    pub fn stop(&self) {
        for s in &self.slots {
            s.disarm();
        }
    }
}

impl std::ops::Drop for Capture {
    fn drop(&mut self) {
        self.stop();
        for s in &self.slots {
            while s.free.pop().is_some() {}
            while s.full.pop().is_some() {}
        }
        self.busy.store(false, Relaxed);
    }
}

impl std::ops::Drop for Dataplane {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config {
            instance: "a".into(),
            eal: vec!["--no-huge".into(), "--vdev=net_null0".into()],
            workers: vec![
                WorkerSpec { lcore: 1, cpu: 1 },
                WorkerSpec { lcore: 2, cpu: 3 },
            ],
            control_cpus: vec![0, 2],
            poll_mode: PollMode::Busy,
            ports: vec![
                PortSpec {
                    name: "ext".into(),
                    device: "net_null0".into(),
                    self_ips: vec![SelfIp {
                        addr: "10.0.0.2".parse().unwrap(),
                        len: 24,
                    }],
                    vlan: None,
                    mtu: 1500,
                    neighbors: vec![],
                    punt_rate: 0,
                    queues: None,
                },
                PortSpec {
                    name: "int".into(),
                    device: "net_null1".into(),
                    self_ips: vec![SelfIp {
                        addr: "10.1.0.2".parse().unwrap(),
                        len: 24,
                    }],
                    vlan: Some(7),
                    mtu: 1500,
                    neighbors: vec![],
                    punt_rate: 0,
                    queues: None,
                },
            ],
            routes: vec![StaticRoute {
                prefix: Prefix::new("192.168.0.0".parse().unwrap(), 16),
                via: "10.1.0.1".parse().unwrap(),
            }],
            bfd: vec![],
            connections: 4096,
            connections_v6: 1024,
            new_flows_per_sec: 0,
            snat_ports: (61000, 65535),
            mbufs: 4095,
            panic_for_test: false,
            hash_seed: None,
            clock_step_ns: None,
        }
    }

    #[test]
    fn eal_args_map_lcores_and_add_taps() {
        assert_eq!(
            cfg().eal_args(),
            vec![
                "--lcores=0@(0,2),1@1,2@3",
                "--file-prefix=pollux-a",
                "--vdev=net_tap0,iface=ext",
                "--vdev=net_tap1,iface=int",
                "--no-huge",
                "--vdev=net_null0",
            ]
        );
    }

    #[test]
    fn fib_resolves_static_routes_to_ports() {
        let fib = cfg().fib().unwrap();
        assert_eq!(
            fib.lookup("192.168.3.4".parse().unwrap()),
            Some((1, "10.1.0.1".parse().unwrap()))
        );
        let mut bad = cfg();
        bad.routes[0].via = "172.16.0.1".parse().unwrap();
        assert!(bad.fib().unwrap_err().contains("172.16.0.1"));
    }

    #[test]
    fn each_queue_of_a_port_has_one_worker_and_the_home_has_the_first() {
        let mut c = cfg();
        c.workers.push(WorkerSpec { lcore: 3, cpu: 5 });
        // Port 1's home is worker 1: queue 0 to it, queue 1 to the next.
        assert_eq!(
            (0..3).map(|w| c.queue_of(1, 2, w)).collect::<Vec<_>>(),
            vec![None, Some(0), Some(1)]
        );
        // As many queues as workers: every worker one, none twice.
        for port in 0..3 {
            let mut qs: Vec<u16> = (0..3).filter_map(|w| c.queue_of(port, 3, w)).collect();
            qs.sort_unstable();
            assert_eq!(qs, vec![0, 1, 2], "port {port}");
            assert_eq!(c.queue_of(port, 3, c.worker_of(port)), Some(0));
        }
        // One queue: only the home worker polls.
        assert_eq!(
            (0..3).map(|w| c.queue_of(2, 1, w)).collect::<Vec<_>>(),
            vec![None, None, Some(0)]
        );
    }

    #[test]
    fn ports_are_dealt_round_robin() {
        let c = cfg();
        assert_eq!((c.worker_of(0), c.worker_of(1), c.worker_of(2)), (0, 1, 0));
    }

    #[test]
    fn bfd_changes_are_dated_by_their_age() {
        // A change 30 ms before the clock's reading is 30 ms before the
        // system time read with it; ages past the epoch saturate.
        let unix = 1_800_000_000_000_000_000;
        assert_eq!(
            unix_time_of(70_000_000, 100_000_000, unix),
            unix - 30_000_000
        );
        assert_eq!(unix_time_of(100, 100, unix), unix);
        assert_eq!(unix_time_of(0, 50, 10), 0);
    }
}

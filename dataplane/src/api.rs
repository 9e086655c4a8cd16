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
//!
//! This module is the contract only: the configuration, the handle's
//! methods, the snapshots and errors, and the vocabulary ctrl names. The
//! start-up and the running state live in `runtime` (private to the
//! crate), which [`Dataplane`] forwards to; what the workers and this
//! contract both need lives in [`shared`](crate::shared).

use std::net::IpAddr;
use std::sync::Arc;

use crate::counters::{PortCounters, SharedPort, WorkerCounters};
use crate::dpdk;
use crate::host::{Fib, Route};
use crate::runtime::Runtime;

// The contract's vocabulary: the types and constants of the data plane's
// modules that ctrl names. ctrl imports this module and nothing else of
// the crate (ctrl/tests/api_contract.rs checks).
pub use crate::bfd::{
    Hop as BfdHop, State as BfdState, StateChange as BfdStateChange, Timers as BfdTimers,
};
pub use crate::capture::{
    Capture, CapturedFrame, Dir as CaptureDir, Filter as CaptureFilter, SNAP as CAPTURE_SNAP,
};
pub use crate::counters::Drop;
pub use crate::dpdk::{version as dpdk_version, PortStats};
pub use crate::host::policer::DEFAULT_RATE as DEFAULT_PUNT_RATE;
pub use crate::host::{Prefix, SelfIp};
pub use crate::lb::{
    L4Drop, MemberSpec, Proto, SecondChance, Snat, VsCounters, VsError, VsSpec, VsTable,
};
pub use crate::runtime::BfdEvents;
pub use crate::shared::{BfdCommand, BfdSessionStatus, L4Snapshot, PollMode, SharedBfd, Tables};
pub use crate::wire::Mac;

/// What [`Dataplane::bfd_reconfigure`] ordered, one line per session.
pub type BfdChanges = Vec<String>;

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
    pub timers: BfdTimers,
    /// RFC 5883 multihop (port 4784) with this minimum received TTL, for
    /// `ebgpMultihop` > 1; `None`: single hop (RFC 5881).
    pub multihop: Option<u8>,
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
pub(crate) const PORT_DESC: u16 = 1024;
pub(crate) const TAP_DESC: u16 = 256;
pub(crate) const POOL_CACHE: u32 = 256;
/// The af_xdp PMD's driver name (its pools are packed: `Mempool::packed`).
pub(crate) const AF_XDP: &str = "net_af_xdp";

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
    /// Whether the device verifies received IPv4 header checksums (the
    /// fast path then does not).
    pub rx_ip_checksum: bool,
    /// One slot per worker (each counts what it handled on the port).
    pub(crate) shared: Vec<Arc<SharedPort>>,
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

/// A running data plane. Dropping it stops the workers and releases ports,
/// TAPs, the mempool and the EAL, in that order.
#[derive(Debug)]
pub struct Dataplane {
    rt: Runtime,
}

impl Dataplane {
    /// Initialises DPDK, opens every port and its TAP, and launches the
    /// workers with `vs` as their first virtual-server table (so that VIP
    /// traffic is served from the first packet). Nothing is left behind
    /// on error.
    pub fn start(cfg: &Config, vs: VsTable) -> Result<Dataplane, Error> {
        Runtime::start(cfg, vs).map(|rt| Dataplane { rt })
    }

    pub fn interfaces(&self) -> &[Interface] {
        self.rt.interfaces()
    }

    pub fn tables(&self) -> Arc<Tables> {
        self.rt.tables()
    }

    /// Replaces the tables every worker reads (whole, atomically).
    pub fn publish(&self, tables: Tables) {
        self.rt.publish(tables)
    }

    /// Replaces the virtual-server table (whole, atomically; the FIB
    /// stays). A table equal to the one serving changes nothing.
    pub fn publish_vs(&self, vs: VsTable) {
        self.rt.publish_vs(vs)
    }

    /// Every counter, summed over the workers per port.
    pub fn stats(&self) -> Stats {
        self.rt.stats()
    }

    /// Each worker's L4 counters as last published.
    pub fn l4_snapshots(&self) -> Vec<L4Snapshot> {
        self.rt.l4_snapshots()
    }

    /// The workers' BFD event ring, for a reader of its own: it needs no
    /// access to the [`Dataplane`] (see [`BfdEvents::drain`]).
    pub fn bfd_events(&self) -> BfdEvents {
        self.rt.bfd_events()
    }

    /// Every configured BFD session as its worker last published it, with
    /// the time of its last state change on the system clock.
    pub fn bfd_sessions(&self) -> Vec<BfdSessionStatus> {
        self.rt.bfd_sessions()
    }

    /// BFD packets dropped by reason, summed over the workers.
    pub fn bfd_drops(&self) -> Vec<(&'static str, u64)> {
        self.rt.bfd_drops()
    }

    /// Orders every worker's BFD sessions AdminDown (drain).
    pub fn bfd_admin_down_all(&self) {
        self.rt.bfd_admin_down_all()
    }

    /// Moves the BFD sessions from `old` (what runs) to `new`: a peer in
    /// `new` only is added, one in `old` only is removed, one whose
    /// timers changed gets them, one whose hop changed is replaced. The
    /// rest are not touched. Orders are queued to the workers, which apply
    /// them within about 10 ms; [`Dataplane::bfd_rejected_changes`] counts
    /// the ones a worker could not apply (its table full).
    pub fn bfd_reconfigure(
        &mut self,
        old: &[BfdPeer],
        new: &[BfdPeer],
    ) -> Result<BfdChanges, Error> {
        self.rt.bfd_reconfigure(old, new)
    }

    /// Changes the workers could not apply (a full session table).
    pub fn bfd_rejected_changes(&self) -> u64 {
        self.rt.bfd_rejected_changes()
    }

    /// Starts capturing the frames of port `port` (its name) that pass
    /// `filter`, received and sent, on every worker; until the
    /// [`Capture`] is dropped. One at a time: a second is refused.
    pub fn capture(&self, port: &str, filter: CaptureFilter) -> Result<Capture, String> {
        self.rt.capture(port, filter)
    }

    /// Every worker entered its loop and none has left it.
    pub fn all_running(&self) -> bool {
        self.rt.all_running()
    }

    /// Why a worker died, if one did (the data plane is then stopping).
    pub fn failure(&self) -> Option<String> {
        self.rt.failure()
    }

    /// Free mbufs in each port's pool (a leak shows as a shrinking number
    /// at rest).
    pub fn mbufs_available(&self) -> Vec<u32> {
        self.rt.mbufs_available()
    }

    /// Stops the workers and waits for them. Idempotent (dropping the
    /// [`Dataplane`] stops them too).
    pub fn stop(&mut self) {
        self.rt.stop()
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
}

//! The data plane at run time: [`Runtime::start`] brings up the EAL, one
//! mempool, port and TAP per configured port, the rings between workers,
//! and launches a [`Worker`] on every worker lcore; the running
//! [`Runtime`] holds the handles ctrl's calls need (tables, counters, BFD
//! rings, capture slots) and stops the workers when dropped.
//!
//! [`api::Dataplane`](crate::api::Dataplane) is the contract ctrl calls;
//! it forwards here. This module is private to the crate: ctrl never
//! names it.
//!
//! ```text
//!  start:  EAL ─► per port: pool, port (queues), TAP ─► rings, BFD tables
//!          ─► per worker: build_worker (ports, queues dealt, rings, BFD)
//!          ─► launch on the lcore: L4 (connection table, first touched
//!             there) ─► Worker::run        ◄─ wait for every "ready"
//! ```

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use crossbeam::queue::ArrayQueue;

use crate::api::{
    BfdPeer, Config, Error, Interface, PortSnapshot, Stats, WorkerSnapshot, WorkerSpec, AF_XDP,
    POOL_CACHE, PORT_DESC, TAP_DESC,
};
use crate::bfd::{self, PeerKey, RxCounters, SessionTable, StateChange};
use crate::capture::{self, Capture, Filter, Record};
use crate::counters::{PortCounters, SharedWorker};
use crate::dpdk::{self, Eal, Mempool, Port, RxQueue, TxBuffer, TxQueue};
use crate::host::Host;
use crate::lb::{L4Config, Steering, VsTable, L4};
use crate::shared::{BfdCommand, BfdSessionStatus, L4Snapshot, SharedBfd, SharedL4, Tables};
use crate::worker::{BfdIo, News, Parcel, Rings, Worker, WorkerPort, RING};

mod bfd_live;

/// The workers' BFD state changes, for ctrl's reader: a handle that
/// needs no lock on the [`Dataplane`](crate::api::Dataplane) (the workers
/// cannot wake a tokio task; the reader polls [`BfdEvents::drain`]).
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

/// The system-clock time of `at`, a reading of a worker's clock taken
/// before `clock_now`, which was read together with `unix_now`. Dating by
/// age keeps the error to the clock's rate error over the age, not over
/// the process's uptime.
fn unix_time_of(at: u64, clock_now: u64, unix_now: u64) -> u64 {
    unix_now.saturating_sub(clock_now.saturating_sub(at))
}

/// A worker but its connection table: built by `Runtime::start`, made
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
pub(crate) struct Runtime {
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

impl Runtime {
    /// Initialises DPDK, opens every port and its TAP, and launches the
    /// workers with `vs` as their first virtual-server table (so that VIP
    /// traffic is served from the first packet). Nothing is left behind
    /// on error.
    pub fn start(cfg: &Config, vs: VsTable) -> Result<Runtime, Error> {
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
            port.configure(nq, PORT_DESC, &pool, true)
                .map_err(port_err)?;
            port.start().map_err(port_err)?;
            let mac = port.mac().map_err(port_err)?;
            let mut tap = Port::by_name(&format!("net_tap{i}")).map_err(port_err)?;
            tap.configure(1, TAP_DESC, &pool, false).map_err(port_err)?;
            tap.set_mac(mac).map_err(port_err)?;
            tap.set_mtu(spec.mtu).map_err(port_err)?;
            tap.start().map_err(port_err)?;
            tracing::info!(port = ?port.id, tap = ?tap.id, name = %spec.name, device = %spec.device, driver = %port.driver, %mac, queues = nq, rx_ip_checksum = port.rx_ip_checksum(), "port started");
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
                rx_ip_checksum: port.rx_ip_checksum(),
                shared: (0..workers).map(|_| Arc::default()).collect(),
            });
            ports.push((port, tap));
            pools.push(pool);
        }
        let bfd_discrs: Arc<Mutex<bfd::discr::Discriminators>> = Arc::default();
        let bfd_shared = Arc::new(SharedBfd::default());
        let mut dp = Runtime {
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
                            let ct = l4.conntrack();
                            let _ = ready_tx.send(Ok((w, ct.page_size(), ct.bytes())));
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
                Ok(Ok((worker, page, bytes))) => {
                    let mib = bytes.div_ceil(1 << 20);
                    match page {
                        Some(page) => tracing::info!(
                            worker,
                            table_mib = mib,
                            page_kib = page >> 10,
                            "connection tables in hugepages"
                        ),
                        None => tracing::warn!(
                            worker,
                            table_mib = mib,
                            "a connection table is not in hugepages (fell back to ordinary pages): \
                             no hugepage size has that many pages free within this process's \
                             hugetlb cgroup limits"
                        ),
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
                let mut port = WorkerPort::new(
                    host,
                    self.pools[i].clone(),
                    queues,
                    tap,
                    home,
                    self.interfaces[i].shared[w].clone(),
                );
                port.rx_ip_checksum = self.interfaces[i].rx_ip_checksum;
                port
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
    /// access to the data plane (see [`BfdEvents::drain`]).
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
    pub fn capture(&self, port: &str, filter: Filter) -> Result<Capture, String> {
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

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

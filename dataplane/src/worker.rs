//! The worker: one pinned lcore serving every port.
//!
//! ```text
//!   loop until stop:
//!     now = TSC (once per iteration)      tables = current snapshot (once)
//!     for each port with a queue of ours:
//!       wire: rx burst → fast | steer: not ours → ring to the owner
//!                              | slow: host → reply | punt to TAP | L4 → route
//!       TAP (home ports only): rx burst → route + resolve → port TX
//!     rings from the other workers: frames to handle, to send, to punt
//!     flush TX buffers
//!     every 1 ms: neighbor queue timers      every 10 ms: publish counters
//!     adaptive mode: sleep after a run of empty polls
//! ```
//!
//! Every worker has its own RX and TX queue on each port whose device
//! offers enough of them; on a port with fewer queues than workers, the
//! workers without one hand their frames for it to the port's *home*
//! worker over a ring. The home worker also owns the port's host state:
//! the TAP to the kernel, BFD sessions, neighbour resolution (it copies
//! what it learns to the other workers). A flow is handled by the worker
//! that owns it ([`Steering`]): both directions meet its one connection
//! entry, whichever worker received them.
//!
//! The loop shape is DPDK l3fwd's. No allocation and no locks after start:
//! bursts, TX buffers, rings, the neighbor cache and its queue are sized
//! when the worker is built; ctrl's tables arrive as an `Arc` snapshot.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use crossbeam::queue::ArrayQueue;

use crate::bfd::{self, PeerKey, RxMeta, SessionTable, StateChange};
use crate::capture::{self, Dir};
use crate::counters::{Drop, SharedPort, SharedWorker, WorkerCounters};
use crate::dpdk::{Burst, Clock, Drain, Mbuf, Mempool, RxQueue, TxBuffer, BURST};
use crate::host::fib::Hop;
use crate::host::neighbor::{Nanos, Pending};
use crate::host::{FromTap, FromWire, Host, HostIo};
use crate::lb::{
    Classified, Classifier, Expired, FastHit, L4Verdict, Miss, Owner, Pick, Side, Steering, V4Flow,
    V4Key, V6Flow, VsTable, L4,
};
use crate::shared::{BfdCommand, PollMode, SharedBfd, SharedL4, Tables};
use crate::wire::Mac;

const MS: Nanos = 1_000_000;
/// How often the exception path (the TAPs) is read: the kernel's traffic
/// (BGP, ARP it originates) waits at most this long.
const TAP_POLL_NS: Nanos = 50_000;
/// Frames that may wait for ARP/ND per port.
const PENDING: usize = 64;

/// One port as a worker sees it (every worker has one per port).
#[derive(Debug)]
pub struct WorkerPort {
    /// This worker's view of the port: addresses, counters, and the
    /// neighbours (learned here on the home worker, copies elsewhere).
    pub host: Host,
    /// The port's own pool (copies to the TAP, solicitations).
    pub pool: Arc<Mempool>,
    /// This worker's queue pair on the port, if the device has one for it.
    pub rx: Option<RxQueue>,
    pub tx: Option<TxBuffer>,
    /// The TAP's queues: on the home worker only.
    pub tap: Option<(RxQueue, TxBuffer)>,
    /// The worker that owns the port's host state.
    pub home: usize,
    /// Frames waiting for ARP/ND (home worker only).
    pub pending: Pending<Mbuf>,
    /// This worker's slot of the port's counters.
    pub shared: Arc<SharedPort>,
    /// The device verifies IPv4 header checksums (classify trusts its
    /// "good"; anything else it checks itself).
    pub rx_ip_checksum: bool,
}

impl WorkerPort {
    pub fn new(
        host: Host,
        pool: Arc<Mempool>,
        queues: Option<(RxQueue, TxBuffer)>,
        tap: Option<(RxQueue, TxBuffer)>,
        home: usize,
        shared: Arc<SharedPort>,
    ) -> WorkerPort {
        let (rx, tx) = queues.unzip();
        let pending = Pending::new(if tap.is_some() { PENDING } else { 1 });
        WorkerPort {
            host,
            pool,
            rx,
            tx,
            tap,
            home,
            pending,
            shared,
            rx_ip_checksum: false,
        }
    }
}

/// What one worker hands another.
#[derive(Debug)]
pub enum Parcel {
    /// A frame received on `port` that the addressee owns: handled as if
    /// it had received it (and never handed on again).
    Rx { port: usize, m: Mbuf },
    /// A routed frame for `port` (of which the addressee is the home) to
    /// `next_hop`: resolve and send. `learn`: the sender transmits on the
    /// port itself and wants the next hop's MAC.
    Tx {
        port: usize,
        next_hop: IpAddr,
        learn: bool,
        m: Mbuf,
    },
    /// A complete frame to send out of `port` as it is (a reply).
    Out { port: usize, m: Mbuf },
    /// A frame for `port`'s TAP (the kernel), within its punt policer.
    Tap { port: usize, m: Mbuf },
}

/// A neighbour the home worker of `port` resolved.
#[derive(Debug, Clone, Copy)]
pub struct News {
    pub port: usize,
    pub ip: IpAddr,
    pub mac: Mac,
}

/// Parcels in flight between two workers (bounded; full = counted drop).
pub const RING: usize = 4096;

/// A worker's ends of the rings between workers (indexed by worker).
#[derive(Debug, Default)]
pub struct Rings {
    /// To each worker (`None`: this one).
    pub to: Vec<Option<Arc<ArrayQueue<Parcel>>>>,
    /// From each worker (`None`: this one).
    pub from: Vec<Option<Arc<ArrayQueue<Parcel>>>>,
    /// Neighbour news to each worker, and this worker's inbox.
    pub news_to: Vec<Option<Arc<ArrayQueue<News>>>>,
    pub news: Option<Arc<ArrayQueue<News>>>,
}

#[derive(Debug)]
pub struct Worker {
    /// This worker's index (0..workers).
    pub index: usize,
    /// Every port, by its index in the data plane.
    pub ports: Vec<WorkerPort>,
    /// Which worker owns a frame's flow.
    pub steering: Steering,
    pub rings: Rings,
    pub tables: Arc<ArcSwap<Tables>>,
    pub stop: Arc<AtomicBool>,
    pub poll_mode: PollMode,
    pub shared: Arc<SharedWorker>,
    /// Test hook: panic once the loop has run (proves a worker panic stops
    /// the process cleanly).
    pub panic_for_test: bool,
    /// BFD sessions to peers reached through this worker's ports (`iface`
    /// of a peer = the port's index in the data plane).
    pub bfd: SessionTable,
    pub bfd_io: BfdIo,
    /// The origin of every `now` the loop hands its tables: made by
    /// `build_worker` before the BFD sessions are added, so their first
    /// deadlines and the loop's clock count from the same instant.
    pub clock: Clock,
    /// `Config::clock_step_ns`: a virtual clock for benchmarks.
    pub clock_step: Option<Nanos>,
    /// The L4 path: connection table, SNAT ports, counters.
    pub l4: L4,
    pub l4_shared: Arc<SharedL4>,
    /// Flows the sweep found idle (reset-on-timeout), reused every sweep.
    pub expired: [Expired; 16],
    /// Hand-offs between workers, counted here, published with the loop's.
    pub handoff: Handoffs,
    /// This worker's capture slot (idle unless ctrl arms it); its TX
    /// buffers on the ports hold it too.
    pub capture: Arc<capture::Slot>,
}

/// What the stages found of each frame of a burst: classify's record
/// ([`V4Flow`]) and, for a new flow, the probe stage's [`Pick`] (if its
/// record says [`picked`](V4Flow::picked)). One a worker, lent to every
/// burst (rebuilt for each, the records cost 6 instructions a packet): a
/// stage writes every field that it or a later stage reads of a frame it
/// admits, and nothing reads a frame's record that classify did not.
#[derive(Debug)]
struct Records {
    flows: [V4Flow; BURST],
    picks: [Pick; BURST],
    /// The record of the IPv6 frame at hand (`fast6` classifies one at a
    /// time).
    flow6: V6Flow,
    /// The fast stages' next hops, cleared at each burst's start.
    memo: Memo,
}

impl Default for Records {
    fn default() -> Self {
        Records {
            flows: [V4Flow::default(); BURST],
            picks: [Pick::default(); BURST],
            flow6: V6Flow::default(),
            memo: Memo::default(),
        }
    }
}

/// A burst's frames as bits (bit `i`: the `i`th frame), as classify marks
/// the fast class.
type FrameMask = u64;
const _: () = assert!(BURST <= FrameMask::BITS as usize);

/// What [`Worker`] counts of its hand-offs.
#[derive(Debug, Default, Clone, Copy)]
pub struct Handoffs {
    pub out: u64,
    pub inbound: u64,
    pub full: u64,
}

/// The worker's BFD rings and published session state.
#[derive(Debug, Clone)]
pub struct BfdIo {
    /// This worker's index (its slot in the shared drop counters).
    pub worker: usize,
    /// State changes for ctrl (RFC 5882: BGP reacts at once).
    pub events: Arc<ArrayQueue<StateChange>>,
    /// Orders from ctrl (AdminDown on drain).
    pub commands: Arc<ArrayQueue<BfdCommand>>,
    pub shared: Arc<SharedBfd>,
}

/// What handling a frame from the wire asks of the worker.
struct WireIo<'a> {
    pool: &'a Mempool,
    /// The port's TAP, on its home worker (the only one that receives ARP
    /// and ND: steering sends them home).
    tap_tx: Option<&'a mut TxBuffer>,
    to_tap: u64,
    drops: [u64; 2], // TapFull, NoMbuf
    /// The neighbor this frame taught us (ARP and ND teach one per frame).
    resolved: Option<(IpAddr, Mac)>,
}

impl HostIo for WireIo<'_> {
    fn mirror_to_tap(&mut self, macs: &[u8], rest: &[u8]) {
        let Some(tap_tx) = self.tap_tx.as_deref_mut() else {
            self.drops[0] += 1;
            return;
        };
        let Some(mut m) = self.pool.alloc() else {
            self.drops[1] += 1;
            return;
        };
        let n = macs.len() + rest.len();
        if !m.set_len(n) {
            return;
        }
        let d = m.data_mut();
        d[..macs.len()].copy_from_slice(macs);
        d[macs.len()..].copy_from_slice(rest);
        self.to_tap += 1;
        if let Some((_, dropped)) = tap_tx.push(m) {
            self.drops[0] += dropped as u64;
        }
    }

    fn resolved(&mut self, ip: IpAddr, mac: Mac) {
        self.resolved = Some((ip, mac));
    }
}

impl Worker {
    /// The loop; returns when `stop` is set.
    pub fn run(mut self) {
        let clock = self.clock;
        let mut burst = Burst::default();
        let mut records = Records::default();
        let mut counters = WorkerCounters::default();
        let (mut last_timers, mut last_publish, mut last_tap) = (0, 0, 0);
        let mut idle_streak: u32 = 0;
        // The longest sleep BFD allows (see the adaptive block below),
        // recomputed with the counters every 10 ms.
        let mut bfd_sleep_cap = MAX_SLEEP_NS;
        if self.poll_mode == PollMode::Adaptive {
            // Sleeps wake on time, not up to 50 µs late (the default slack).
            crate::dpdk::set_timer_slack_ns(1_000);
        }
        self.shared.running.store(true, Relaxed);
        // The first table's counters are set up here, not on the first
        // packet (adopting allocates).
        self.l4.adopt(&self.tables.load().vs);
        // The tables as of this pass: a relaxed load and a compare while
        // they stay the same (`ArcSwap::load`'s guard cost ~65
        // instructions and two atomic read-modify-writes a pass).
        let mut snapshot = arc_swap::Cache::new(Arc::clone(&self.tables));
        let mut last_now = clock.now();
        // A virtual clock starts on a whole second, so that a run's frames
        // (the first ~10^5 passes) all fall in the same second.
        let mut virtual_now = (last_now / 1_000_000_000 + 1) * 1_000_000_000;
        while !self.stop.load(Relaxed) {
            let now = match self.clock_step {
                Some(step) => {
                    virtual_now += step;
                    virtual_now
                }
                None => clock.now(),
            };
            counters.max_gap_ns = counters.max_gap_ns.max(now - last_now);
            last_now = now;
            let tables: &Tables = snapshot.load();
            let mut work = 0;
            // The TAP's receive is a read() system call: polled every
            // TAP_POLL_NS, not on every pass, or it costs the wire a
            // syscall per burst.
            let tap_due = now - last_tap >= TAP_POLL_NS;
            if tap_due {
                last_tap = now;
            }
            for pi in 0..self.ports.len() {
                work += self.poll_wire(pi, now, (&mut burst, &mut records), tables);
                if tap_due {
                    work += self.poll_tap(pi, now, &mut burst, tables);
                }
            }
            if self.rings.news.is_some() {
                work += self.poll_rings(now, (&mut burst, &mut records), tables);
            }
            self.bfd_timers(now);
            for p in &mut self.ports {
                let c = &mut p.host.counters;
                if let Some(tx) = &mut p.tx {
                    flush(tx, &mut c.tx_packets, &mut c.drops[Drop::TxFull as usize]);
                }
                if let Some((_, tap_tx)) = &mut p.tap {
                    flush(tap_tx, &mut 0, &mut c.drops[Drop::TapFull as usize]);
                }
            }
            if now - last_timers >= MS {
                last_timers = now;
                self.timers(now, tables);
            }
            if now - last_publish >= 10 * MS {
                last_publish = now;
                self.publish(&counters, tables);
                self.bfd_commands(now);
                bfd_sleep_cap = bfd_sleep_cap_ns(&self.bfd);
                if self.panic_for_test {
                    panic!("worker panic requested by POLLUX_TEST_WORKER_PANIC");
                }
            }
            if work > 0 {
                counters.busy_polls += 1;
                idle_streak = 0;
            } else {
                counters.idle_polls += 1;
                idle_streak = idle_streak.saturating_add(1);
                if self.poll_mode == PollMode::Adaptive && idle_streak >= 256 {
                    // VPP-style adaptive polling: short sleeps once idle,
                    // longer ones after a second of nothing; timers run at
                    // the latest 1 ms late. BFD bounds the sleep twice:
                    // - a packet that arrives during a sleep is stamped
                    //   (last_rx) when the sleep ends, which pushes the
                    //   detection deadline late by up to the sleep: sleeps
                    //   stay a small fraction of the shortest detection
                    //   time (`bfd_sleep_cap`);
                    // - a sleep overshoots (wake-up latency): it ends
                    //   SLEEP_MARGIN_NS before the next BFD deadline and the
                    //   loop polls the rest, so expiry and transmission run
                    //   on time. (The old bound slept right up to the
                    //   deadline, at least 10 µs, from the loop's stale
                    //   `now`: every overshoot made a Down late.)
                    let ns = if idle_streak >= 10_000 {
                        MAX_SLEEP_NS
                    } else {
                        MAX_SLEEP_NS / 10
                    };
                    let ns = if self.bfd.is_empty() {
                        ns
                    } else {
                        let until = self.bfd.next_deadline().saturating_sub(clock.now());
                        ns.min(bfd_sleep_cap)
                            .min(until.saturating_sub(SLEEP_MARGIN_NS))
                    };
                    if ns >= MIN_SLEEP_NS {
                        counters.sleeps += 1;
                        std::thread::sleep(Duration::from_nanos(ns));
                    }
                }
            }
        }
        self.publish(&counters, &self.tables.load());
        self.shared.running.store(false, Relaxed);
    }

    fn publish(&self, counters: &WorkerCounters, tables: &Tables) {
        for p in &self.ports {
            p.shared.publish(&p.host.counters);
        }
        let mut c = counters.clone();
        (c.handoff_out, c.handoff_in, c.handoff_full) =
            (self.handoff.out, self.handoff.inbound, self.handoff.full);
        self.shared.publish(&c);
        // Never blocks; reuses the snapshot's vectors (no allocation unless
        // the table grew at a reload).
        if let Ok(mut snap) = self.l4_shared.snapshot.try_lock() {
            let vs = &*tables.vs;
            snap.generation = vs.generation();
            snap.counters.clone_from(self.l4.counters());
            snap.ipv4 = self.l4.conntrack().v4().size();
            snap.ipv6 = self.l4.conntrack().v6().size();
            snap.table_page_size = self.l4.conntrack().page_size();
            snap.conntrack = self.l4.conntrack().counters();
            snap.vs.resize(vs.len(), Default::default());
            snap.members.resize_with(vs.len(), Vec::new);
            for (v, one) in vs.iter().enumerate() {
                snap.vs[v] = self.l4.vs_counters(v as u32).unwrap_or_default();
                let m = &mut snap.members[v];
                m.resize(one.members.len(), Default::default());
                for (i, slot) in m.iter_mut().enumerate() {
                    *slot = self
                        .l4
                        .member_counters(vs, v as u32, i as u16)
                        .copied()
                        .unwrap_or_default();
                }
            }
        }
        if self.bfd.is_empty() {
            return;
        }
        // Never blocks: if ctrl is reading, publish next time.
        if let Ok(mut out) = self.bfd_io.shared.sessions.try_lock() {
            let mine = out.iter_mut().filter(|s| {
                self.bfd
                    .iter()
                    .any(|(p, _)| p.addr == s.peer && p.iface as usize == s.port)
            });
            for slot in mine {
                if let Some((_, session)) = self
                    .bfd
                    .iter()
                    .find(|(p, _)| p.addr == slot.peer && p.iface as usize == slot.port)
                {
                    slot.info = Some(session.info());
                }
            }
        }
        if let Ok(mut d) = self.bfd_io.shared.drops.try_lock() {
            if let Some(slot) = d.get_mut(self.bfd_io.worker) {
                *slot = *self.bfd.drops();
            }
        }
    }

    /// A BFD payload from the wire (already checked as UDP to a self IP).
    fn bfd_rx(
        &mut self,
        now: Nanos,
        port: usize,
        payload: &[u8],
        src: IpAddr,
        ttl: u8,
        multihop: bool,
    ) {
        let meta = RxMeta {
            peer: PeerKey {
                addr: src,
                iface: port as u32,
            },
            ttl,
            multihop,
        };
        if let Ok(Some(ev)) = self.bfd.handle_rx(now, &meta, payload) {
            self.bfd_event(ev);
        }
    }

    fn bfd_event(&self, ev: StateChange) {
        if self.bfd_io.events.push(ev).is_err() {
            self.bfd_io.shared.lost_events.fetch_add(1, Relaxed);
        }
    }

    /// Transmit and detection timers of every session, from the loop.
    fn bfd_timers(&mut self, now: Nanos) {
        if self.bfd.is_empty() || self.bfd.next_deadline() > now {
            return;
        }
        let Worker {
            bfd, ports, bfd_io, ..
        } = self;
        bfd.poll_timers(now, &mut |out| match out {
            bfd::Output::StateChange(ev) => {
                if bfd_io.events.push(ev).is_err() {
                    bfd_io.shared.lost_events.fetch_add(1, Relaxed);
                }
            }
            bfd::Output::Transmit(tx) => {
                let Some(p) = ports
                    .iter_mut()
                    .find(|p| p.host.index == tx.peer.iface as usize)
                else {
                    return;
                };
                bfd_send(p, now, &tx);
            }
        });
    }

    fn bfd_commands(&mut self, now: Nanos) {
        while let Some(cmd) = self.bfd_io.commands.pop() {
            match cmd {
                BfdCommand::AdminDownAll => {
                    let Worker { bfd, bfd_io, .. } = self;
                    bfd.admin_down_all(now, &mut |ev| {
                        let _ = bfd_io.events.push(ev);
                    });
                }
                BfdCommand::Change(c) => {
                    if self.bfd.apply(now, c).is_err() {
                        self.bfd_io.shared.rejected_changes.fetch_add(1, Relaxed);
                    }
                }
            }
        }
    }

    fn poll_wire(
        &mut self,
        pi: usize,
        now: Nanos,
        (burst, records): (&mut Burst, &mut Records),
        tables: &Tables,
    ) -> usize {
        let Some(q) = &self.ports[pi].rx else {
            return 0;
        };
        let n = burst.rx(q);
        if n > 0 {
            self.wire_burst(pi, now, (burst, records), tables, true);
        }
        n
    }

    /// Everything the worker does with one received burst, up to queueing
    /// the results for transmission (the TX buffer holds two bursts, so
    /// the PMD's transmit runs in the loop's flush, not here). Never
    /// inlined: `bench/callgrind.sh` counts pollux's own instructions per
    /// packet by collecting inside this function only. `steer`: frames
    /// of another worker's flows go to it (false for frames handed over,
    /// which are this worker's by construction).
    ///
    /// ```text
    ///   classify   every frame: fast class? key, hash, prefetch buckets;
    ///              the burst counted received
    ///   in order:
    ///     fast     a run of classified frames, each: match a tracked
    ///              flow, route (memoised), commit, queue; or, a new
    ///              flow's first frame the probe stage picked for,
    ///              fast_new: the L4 path's decision, the fast path's
    ///              rewrite -> route; up to the first it leaves, which
    ///              goes on below
    ///     fast6    an IPv6 frame: classify, match, route, commit, queue
    ///     steer    another worker's flow or the port's home's: hand over
    ///     slow_classified   a classified frame the fast path left: the
    ///              L4 path's decision on classify's record -> route
    ///     slow     host stage -> BFD | reply | punt | L4 stage -> route
    /// ```
    #[inline(never)]
    fn wire_burst(
        &mut self,
        pi: usize,
        now: Nanos,
        (burst, records): (&mut Burst, &mut Records),
        tables: &Tables,
        steer: bool,
    ) {
        // A capture's whole cost while none runs: a load and a branch per
        // burst. Frames handed over (`steer` false) were shown by the
        // worker that received them.
        if self.capture.armed() && steer {
            self.capture.record(pi, Dir::In, burst.frames());
        }
        let steer = steer && self.steering.workers() > 1;
        let ready = self.ports[pi].host.vlan.is_none() && self.l4.fast_ready(&tables.vs);
        if ready {
            self.l4.begin_probes();
        }
        let (fast, bytes) = if ready && self.ports[pi].rx_ip_checksum {
            self.classify::<true>(pi, burst, records, tables, steer)
        } else if ready {
            self.classify::<false>(pi, burst, records, tables, steer)
        } else {
            if !tables.vs.is_empty() {
                let vlan = self.ports[pi].host.tag_len();
                for frame in burst.frames() {
                    self.l4.prefetch(frame, vlan);
                }
            }
            (0, burst.frames().map(<[u8]>::len).sum())
        };
        // Every frame of the burst counted received here, once: a frame
        // `steer` hands to another worker is taken back out (that one
        // counts it in its burst; one a full ring drops stays, a drop).
        let c = &mut self.ports[pi].host.counters;
        c.rx_packets += burst.len() as u64;
        c.rx_bytes += bytes as u64;
        let s = secs(now);
        let Records {
            flows,
            picks,
            flow6,
            memo,
        } = records;
        memo.clear();
        let mut frames = burst.drain();
        // The fast stage takes the run of frames up to the first it
        // leaves; that one goes on here, then the next run. A frame
        // classify did not admit (IPv6 above all) skips the stage.
        let mut next = 0;
        loop {
            let left = if fast.checked_shr(next).unwrap_or(0) & 1 == 0 {
                frames
                    .next_indexed()
                    .map(|(i, m)| (i, Left::Unclassified(m), &flows[i % BURST]))
            } else {
                let (flows, picks) = (&*flows, &*picks);
                self.fast(
                    pi,
                    (&mut frames, flows, picks),
                    fast,
                    (now, s),
                    tables,
                    memo,
                )
            };
            let Some((i, m, flow)) = left else {
                break;
            };
            next = i as u32 + 1;
            // A classified frame the fast path left: its record, why, and
            // a new flow's pick.
            let mut left = None;
            let m = match m {
                Left::Missed(m, why) => {
                    let pick = flow.picked().then(|| picks[i]);
                    left = Some((Classified::V4(flow), why, pick));
                    m
                }
                Left::Unclassified(m) if ready => {
                    match self.fast6(pi, m, (now, s), tables, &mut memo.v6, flow6) {
                        Ok(()) => continue,
                        Err((m, why)) => {
                            left = why.map(|why| (Classified::V6(flow6), why, None));
                            m
                        }
                    }
                }
                Left::Unclassified(m) => m,
            };
            let m = if steer {
                match self.steer(pi, m, tables) {
                    Some(m) => m,
                    None => continue,
                }
            } else {
                m
            };
            match left {
                // Neither learns a neighbour nor changes the FIB. (A frame
                // the fast stage gave the new flows' stage comes here only
                // if that left it too.)
                Some(left) => self.slow_classified(pi, m, left, now, tables, memo),
                None => {
                    // The slow path may learn a neighbour or change the table.
                    memo.clear();
                    self.slow(pi, m, now, tables);
                }
            }
        }
    }

    /// The frame back if this worker handles it; else handed to the
    /// worker that does (the flow's owner, or the port's home worker).
    #[inline(never)]
    fn steer(&mut self, pi: usize, m: Mbuf, tables: &Tables) -> Option<Mbuf> {
        let vlan = self.ports[pi].host.tag_len();
        let to = match self.steering.owner(m.data(), vlan, &tables.vs) {
            Owner::Worker(w) => usize::from(w),
            Owner::Home => self.ports[pi].home,
        };
        if to == self.index {
            return Some(m);
        }
        let len = m.len() as u64;
        if self.hand(to, pi, Parcel::Rx { port: pi, m }) {
            let c = &mut self.ports[pi].host.counters;
            c.rx_packets -= 1;
            c.rx_bytes -= len;
        }
        None
    }

    /// Puts `parcel` on the ring to worker `to` (true); a full ring drops
    /// it, counted on port `pi` (false).
    fn hand(&mut self, to: usize, pi: usize, parcel: Parcel) -> bool {
        if let Some(ring) = self.rings.to.get(to).and_then(Option::as_ref) {
            // (A parcel the ring refuses is freed here.)
            if ring.push(parcel).is_ok() {
                self.handoff.out += 1;
                return true;
            }
            self.handoff.full += 1;
        }
        self.ports[pi].host.counters.drop(Drop::HandoffFull);
        false
    }

    /// Parcels from the other workers, up to two bursts from each; and
    /// the neighbours the home workers resolved.
    fn poll_rings(
        &mut self,
        now: Nanos,
        (burst, records): (&mut Burst, &mut Records),
        tables: &Tables,
    ) -> usize {
        let mut work = 0;
        while let Some(n) = self.rings.news.as_ref().and_then(|q| q.pop()) {
            if let Some(p) = self.ports.get_mut(n.port) {
                p.host.neighbors.mirror(n.ip, n.mac, now);
            }
            work += 1;
        }
        for from in 0..self.rings.from.len() {
            // Consecutive frames received on one port form a burst.
            let mut at = usize::MAX;
            for _ in 0..2 * BURST {
                let Some(parcel) = self.rings.from[from].as_ref().and_then(|q| q.pop()) else {
                    break;
                };
                work += 1;
                let Some((port, m)) = self.take_parcel(from, parcel, now) else {
                    continue;
                };
                if port != at || burst.len() == BURST {
                    if !burst.is_empty() {
                        self.wire_burst(at, now, (burst, records), tables, false);
                    }
                    at = port;
                }
                if let Err(m) = burst.push(m) {
                    drop(m); // cannot happen: flushed when full above
                }
            }
            if !burst.is_empty() {
                self.wire_burst(at, now, (burst, records), tables, false);
            }
        }
        work
    }

    /// One parcel from worker `from`: a frame to send or punt is handled
    /// here; a received frame comes back for the caller's burst. (Not
    /// inlined: `bench/callgrind.sh` counts it beside `wire_burst`.)
    #[inline(never)]
    fn take_parcel(&mut self, from: usize, parcel: Parcel, now: Nanos) -> Option<(usize, Mbuf)> {
        self.handoff.inbound += 1;
        match parcel {
            Parcel::Rx { port, m } => return Some((port, m)),
            Parcel::Tx {
                port,
                next_hop,
                learn,
                m,
            } => {
                if learn {
                    self.tell(from, port, next_hop, now);
                }
                self.transmit(port, m, next_hop, now);
            }
            Parcel::Out { port, m } => self.send_out(port, m),
            Parcel::Tap { port, m } => self.punt(port, m, now),
        }
        None
    }

    /// Tells worker `to` the MAC of `next_hop` on `port`, if known here.
    fn tell(&self, to: usize, port: usize, ip: IpAddr, now: Nanos) {
        let Some(mac) = self.ports[port].host.neighbors.lookup(ip, now) else {
            return;
        };
        if let Some(q) = self.rings.news_to.get(to).and_then(Option::as_ref) {
            let _ = q.push(News { port, ip, mac });
        }
    }

    /// Tells every other worker that `ip` is at `mac` on `port`.
    fn tell_all(&self, port: usize, ip: IpAddr, mac: Mac) {
        for q in self.rings.news_to.iter().flatten() {
            let _ = q.push(News { port, ip, mac });
        }
    }

    /// Stage 1: which frames are of the fast class, their flow keys and
    /// hashes; prefetches their primary connection-table buckets, then
    /// their entries (or secondary buckets, and what a new flow's
    /// decision will need, keeping its pick), so that the misses of the
    /// whole burst overlap.
    /// Returns the fast-class frames as a mask (bit `i`: `flows[i]`), and
    /// the burst's bytes (its frames' lengths, for the port's counters).
    /// `DEVICE_CHECKS`: the port's device verifies IPv4 header checksums
    /// (its verdict is read only then: two instances, so that a device
    /// that does not, like the benches' net_pcap and memif, pays nothing).
    /// `steer`: the frames came from the wire to a worker of several (not
    /// handed over), so some may be other workers' flows.
    #[inline(never)]
    fn classify<const DEVICE_CHECKS: bool>(
        &self,
        pi: usize,
        burst: &Burst,
        Records { flows, picks, .. }: &mut Records,
        tables: &Tables,
        steer: bool,
    ) -> (FrameMask, usize) {
        let host = &self.ports[pi].host;
        let classifier = Classifier::new(&host.mac, host.mtu, self.l4.hasher());
        let (mut fast, mut bytes) = (0, 0);
        let frames = burst.frames_checked();
        for (i, (flow, (frame, verified))) in flows.iter_mut().zip(frames).enumerate() {
            bytes += frame.len();
            if classifier.classify(frame, DEVICE_CHECKS && verified, flow) {
                fast |= 1 << i;
                self.l4.prefetch_flow(flow);
            }
        }
        self.probe(fast, flows, picks, &tables.vs, steer);
        (fast, bytes)
    }

    /// Classify's second pass, over the fast-class frames (`fast`): the
    /// buckets of the first frames have arrived by now, so it starts the
    /// dependent miss, each frame's entry, for the whole burst too. A
    /// frame not in its primary bucket gets a third pass, once its
    /// secondary's line has come: its entry there; or, in neither, a new
    /// flow's: the buckets of its reverse entry, and its pick (not for a
    /// client's frame that `steer` will hand to the worker owning its
    /// client, which decides it there). Out of line: in classify's body,
    /// its registers made the first pass spill (+5 instructions a packet,
    /// measured).
    #[inline(never)]
    fn probe(
        &self,
        fast: FrameMask,
        flows: &mut [V4Flow; BURST],
        picks: &mut [Pick; BURST],
        tables: &VsTable,
        steer: bool,
    ) {
        let mut second: FrameMask = 0;
        for (i, flow) in flows.iter_mut().enumerate() {
            if fast >> i & 1 != 0 && self.l4.probe_primary(flow) {
                second |= 1 << i;
            }
        }
        if second != 0 {
            self.probe_secondaries(second, flows, picks, tables, steer);
        }
    }

    /// [`probe`](Self::probe)'s third pass, over the frames not in their
    /// primary bucket (`second`). Out of line, so that a new flow's
    /// prefetch ([`L4::prefetch_new`]) is inlined here (a call less: 34
    /// instructions a new flow) without changing how the second pass
    /// compiles (inlined there: +1 instruction every packet, measured).
    #[inline(never)]
    fn probe_secondaries(
        &self,
        mut second: FrameMask,
        flows: &mut [V4Flow; BURST],
        picks: &mut [Pick; BURST],
        tables: &VsTable,
        steer: bool,
    ) {
        let me = self.index as u16;
        let decides_here =
            |k: &V4Key| !steer || self.steering.client_owner_v4(k.src, k.sport) == me;
        while second != 0 {
            let i = second.trailing_zeros() as usize % BURST;
            second &= second - 1;
            if let Some(pick) = self.l4.probe_secondary(&mut flows[i], tables, decides_here) {
                picks[i] = pick;
            }
        }
    }

    /// Stage 2, over a run of frames: each frame of the fast class (bit
    /// `i` of `fast` for the `i`th) of a tracked flow, translated and
    /// queued as the slow path would; and each the probe stage picked for
    /// (`picks[i]`: a new flow's first frame), given to the new flows'
    /// stage ([`fast_new`](Self::fast_new)). Returns the first frame it
    /// leaves and its index, untouched: not of the fast class, or
    /// classified and missed (and why); `None` when the burst is done.
    #[inline(never)]
    fn fast<'f>(
        &mut self,
        pi: usize,
        (frames, flows, picks): (&mut Drain<'_>, &'f [V4Flow; BURST], &[Pick; BURST]),
        fast: FrameMask,
        (now, s): (Nanos, crate::lb::conntrack::Secs),
        tables: &Tables,
        memo: &mut Memo,
    ) -> Option<(usize, Left, &'f V4Flow)> {
        while let Some((i, m)) = frames.next_indexed() {
            let flow = &flows[i % BURST]; // i < BURST: no bounds check
            if fast >> i & 1 == 0 {
                return Some((i, Left::Unclassified(m), flow));
            }
            let m = match self.fast_one(pi, m, flow, (now, s), tables, &mut memo.v4) {
                Ok(()) => continue,
                // Picked: this worker decides it (no steering to do).
                Err((m, Miss::Untracked)) if flow.picked() => m,
                Err((m, why)) => return Some((i, Left::Missed(m, why), flow)),
            };
            if let Err(m) = self.fast_new(pi, m, (flow, &picks[i % BURST]), now, tables, memo) {
                return Some((i, Left::Missed(m, Miss::Untracked), flow));
            }
        }
        None
    }

    /// [`fast`](Self::fast) for one frame of the fast class: `Err` hands
    /// it back untouched, with why.
    #[inline(always)]
    fn fast_one(
        &mut self,
        pi: usize,
        m: Mbuf,
        flow: &V4Flow,
        (now, s): (Nanos, crate::lb::conntrack::Secs),
        tables: &Tables,
        memo: &mut Hops<[u8; 4]>,
    ) -> Result<(), (Mbuf, Miss)> {
        if m.segments() != 1 {
            return Err((m, Miss::Slow));
        }
        let hit = match self.l4.fast_match(flow, s, &tables.vs) {
            Ok(hit) => hit,
            Err(why) => return Err((m, why)),
        };
        // One copy of the rest a direction, so that each tests it once.
        match hit.is_reply() {
            false => self.fast_send::<false>(pi, m, (flow, hit), now, tables, memo),
            true => self.fast_send::<true>(pi, m, (flow, hit), now, tables, memo),
        }
    }

    /// [`fast_one`](Self::fast_one) once its hit is found, for a member's
    /// packet (`REPLY`) or a client's.
    #[inline(always)]
    fn fast_send<const REPLY: bool>(
        &mut self,
        pi: usize,
        mut m: Mbuf,
        (flow, hit): (&V4Flow, FastHit),
        now: Nanos,
        tables: &Tables,
        memo: &mut Hops<[u8; 4]>,
    ) -> Result<(), (Mbuf, Miss)> {
        let hit = hit.replying::<REPLY>();
        let dst = hit.dst(flow);
        let route = || tables.fib.hop_v4(dst);
        let Some(memo) = self.next_hop(memo, dst, REPLY, route, now) else {
            return Err((m, Miss::Slow));
        };
        self.l4.fast_commit(&hit, flow, m.data_mut(), &memo.macs);
        self.send_fast(pi, m, memo);
        Ok(())
    }

    /// The fast path for an IPv6 frame (classify, match, commit in one:
    /// no prefetch stages), its record in `flow`; `Err` hands the frame
    /// back untouched, with why if it was classified (`flow` holds its
    /// record then).
    #[inline(never)]
    fn fast6(
        &mut self,
        pi: usize,
        mut m: Mbuf,
        (now, s): (Nanos, crate::lb::conntrack::Secs),
        tables: &Tables,
        memo: &mut Hops<[u8; 16]>,
        flow: &mut V6Flow,
    ) -> Result<(), (Mbuf, Option<Miss>)> {
        if m.segments() != 1 {
            return Err((m, None));
        }
        let host = &self.ports[pi].host;
        let classifier = Classifier::new(&host.mac, host.mtu, self.l4.hasher());
        if !classifier.classify_v6_into(m.data(), flow) {
            return Err((m, None));
        }
        let hit = match self.l4.fast_match_v6(flow, s, &tables.vs) {
            Ok(hit) => hit,
            Err(why) => return Err((m, Some(why))),
        };
        let dst = hit.dst(flow);
        let route = || tables.fib.hop(IpAddr::from(dst));
        let Some(memo) = self.next_hop(memo, dst, hit.is_reply(), route, now) else {
            return Err((m, Some(Miss::Slow)));
        };
        let frame = m.data_mut();
        self.l4.fast_commit_v6(&hit, flow, frame, s);
        frame[..12].copy_from_slice(&memo.macs);
        self.send_fast(pi, m, memo);
        Ok(())
    }

    /// Queues a frame the fast path translated and addressed to `memo`'s
    /// MACs (what `send_to` does); or hands it to the egress port's home
    /// worker if this one has no queue there (which addresses it again:
    /// the MACs written were zeros).
    #[inline(always)]
    fn send_fast<A: Dst>(&mut self, pi: usize, m: Mbuf, memo: &NextHop<A>) {
        let p = &mut self.ports[memo.port];
        let Some(tx) = &mut p.tx else {
            let (home, port, next_hop) = (p.home, memo.port, memo.next_hop);
            let parcel = Parcel::Tx {
                port,
                next_hop,
                learn: false,
                m,
            };
            self.hand(home, pi, parcel);
            return;
        };
        let c = &mut p.host.counters;
        push(
            tx,
            m,
            &mut c.tx_packets,
            &mut c.drops[Drop::TxFull as usize],
        );
    }

    /// The memo of `hops` for a frame to `dst` (a client if `reply`, else
    /// a member), [`resolve`](Self::resolve)d first if it does not hold
    /// `dst`; `None` if that fails.
    #[inline(always)]
    fn next_hop<'h, A: Dst>(
        &self,
        hops: &'h mut Hops<A>,
        dst: A,
        reply: bool,
        route: impl FnOnce() -> Option<Hop>,
        now: Nanos,
    ) -> Option<&'h NextHop<A>> {
        let i = Hops::index(dst, reply);
        if !hops.memos[i].holds(dst) && !self.resolve(dst, route, now, (&mut *hops, i)) {
            return None;
        }
        Some(&hops.memos[i])
    }

    /// Points memo `i` of `hops` at the untagged egress port and next-hop
    /// MACs for `dst` (whose FIB answer `route` finds), if both are known
    /// now (what [`route`](Self::route) would send to at once), for every
    /// destination the FIB sends the same way ([`Hop::span`]: all the
    /// clients behind a gateway); false if not, the memo unchanged.
    /// Consecutive frames through the same next hop (a gateway, a member)
    /// skip the neighbour lookup. A port without a queue of this worker's
    /// needs no MAC: its home worker resolves and sends. Out of line and
    /// cold: the fast stage calls it once per burst and next hop, and its
    /// body inlined there made the stage spill more for every packet.
    #[cold]
    #[inline(never)]
    fn resolve<A: Dst>(
        &self,
        dst: A,
        route: impl FnOnce() -> Option<Hop>,
        now: Nanos,
        (hops, i): (&mut Hops<A>, usize),
    ) -> bool {
        let Some(Hop {
            port,
            next_hop,
            span,
        }) = route()
        else {
            return false;
        };
        let memo = &mut hops.memos[i];
        // (An empty memo's port is none.)
        if memo.next_hop != next_hop || memo.port != port {
            let Some(p) = self.ports.get(port) else {
                return false;
            };
            let host = &p.host;
            if host.vlan.is_some() {
                return false; // tagged egress: the slow path inserts the tag
            }
            let mut macs = [0; 12];
            if p.tx.is_some() {
                let Some(mac) = host.neighbors.lookup(next_hop, now) else {
                    return false;
                };
                host.set_macs(&mut macs, mac);
            }
            (memo.next_hop, memo.port, memo.macs) = (next_hop, port, macs);
        }
        memo.mask = A::mask(span);
        memo.net = dst.bits() & memo.mask;
        hops.filled |= 1 << i;
        true
    }

    /// Everything else, one frame: the host stage, then BFD, replies,
    /// punts or the L4 stage.
    #[inline(never)]
    fn slow(&mut self, pi: usize, mut m: Mbuf, now: Nanos, tables: &Tables) {
        let p = &mut self.ports[pi];
        let pool = &*p.pool;
        let c = &mut p.host.counters;
        if m.segments() != 1 {
            c.drop(Drop::MultiSegment);
            return;
        }
        let len = m.len();
        let mut io = WireIo {
            pool,
            tap_tx: p.tap.as_mut().map(|(_, tx)| tx),
            to_tap: 0,
            drops: [0; 2],
            resolved: None,
        };
        let verdict = p
            .host
            .rx_from_wire(now, m.data_and_tailroom(), len, &mut io);
        let WireIo {
            to_tap,
            drops,
            resolved,
            ..
        } = io;
        let c = &mut p.host.counters;
        c.to_tap += to_tap;
        c.drops[Drop::TapFull as usize] += drops[0];
        c.drops[Drop::NoMbuf as usize] += drops[1];
        // What waited for a neighbor this frame taught us goes out now,
        // and the workers that transmit on this port learn it too.
        if let Some((ip, mac)) = resolved {
            if let Some(tx) = &mut p.tx {
                let host = &mut p.host;
                p.pending.take_for(ip, |m| send_to(host, tx, m, mac));
            }
            self.tell_all(pi, ip, mac);
        }
        let p = &mut self.ports[pi];
        let c = &mut p.host.counters;
        match verdict {
            FromWire::Reply(n) => {
                if m.set_len(n) {
                    self.send_out(pi, m);
                }
            }
            FromWire::Punt | FromWire::Transit => {
                self.l4_stage(pi, m, verdict, now, tables);
            }
            FromWire::Consumed => {}
            FromWire::Drop(why) => c.drop(why),
            FromWire::Bfd {
                payload: (a, b),
                src,
                ttl,
                multihop,
            } => {
                let port = p.host.index;
                self.bfd_rx(now, port, &m.data()[a..b], src, ttl, multihop);
            }
        }
    }

    /// Virtual-server and flow traffic: what the host logic punts (a SNAT
    /// flow's return traffic comes to a self IP) or does not own.
    fn l4_stage(&mut self, pi: usize, mut m: Mbuf, host: FromWire, now: Nanos, tables: &Tables) {
        let verdict = if tables.vs.is_empty() {
            L4Verdict::NotL4
        } else {
            let len = m.len();
            self.l4.process(
                secs(now),
                m.data_and_tailroom(),
                len,
                self.ports[pi].host.tag_len(),
                &tables.vs,
            )
        };
        self.l4_verdict(pi, m, verdict, host, now, tables);
    }

    /// A frame of the fast class that the fast path left (a new flow, a
    /// SYN, an entry only the slow path may change): what `slow` does
    /// with it, without the host stage's checks (classify made them) and
    /// the L4 path's parse (nor, for a new flow, its pick's lookups).
    #[inline(never)]
    fn slow_classified(
        &mut self,
        pi: usize,
        mut m: Mbuf,
        (flow, miss, pick): (Classified<'_>, Miss, Option<Pick>),
        now: Nanos,
        tables: &Tables,
        memo: &mut Memo,
    ) {
        if m.segments() != 1 {
            return self.slow(pi, m, now, tables); // dropped, counted
        }
        let len = m.len();
        let l4 = self.l4.process_classified(
            secs(now),
            m.data_and_tailroom(),
            len,
            (flow, miss, pick),
            &tables.vs,
        );
        self.after_classified(pi, m, l4, flow, now, tables, memo);
    }

    /// The new flows' stage, for a frame the probe stage picked for
    /// ([`L4::fast_new`]): its decision, and a packet forwarded to its
    /// member sent as [`slow_classified`](Self::slow_classified) sends
    /// it; `Err` hands the frame back untouched, for `slow_classified`.
    /// `m` is one segment (the fast stage's [`fast_one`](Self::fast_one)
    /// leaves it here only then).
    #[inline(never)]
    fn fast_new(
        &mut self,
        pi: usize,
        mut m: Mbuf,
        (flow, pick): (&V4Flow, &Pick),
        now: Nanos,
        tables: &Tables,
        memo: &mut Memo,
    ) -> Result<(), Mbuf> {
        debug_assert_eq!(m.segments(), 1);
        let len = m.len();
        let frame = (m.data_and_tailroom(), len);
        let Some(l4) = self.l4.fast_new(secs(now), frame, flow, pick, &tables.vs) else {
            return Err(m);
        };
        self.after_classified(pi, m, l4, Classified::V4(flow), now, tables, memo);
        Ok(())
    }

    /// A classified frame after the L4 path's verdict `l4`: a forward goes
    /// where `route` would send it, through the memo of the fast path's
    /// forward direction (a new flow's first packet goes to its member);
    /// the rest as [`l4_verdict`](Self::l4_verdict) has it, after the host
    /// stage's verdict for the frame (which classify's checks imply).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn after_classified(
        &mut self,
        pi: usize,
        m: Mbuf,
        l4: L4Verdict,
        flow: Classified<'_>,
        now: Nanos,
        tables: &Tables,
        memo: &mut Memo,
    ) {
        let m = match l4 {
            L4Verdict::Forward {
                dst: IpAddr::V4(dst),
            } => {
                let route = || tables.fib.hop_v4(dst.octets());
                match self.send_memoised(pi, m, dst.octets(), route, now, &mut memo.v4) {
                    Ok(()) => return,
                    Err(m) => m,
                }
            }
            L4Verdict::Forward {
                dst: IpAddr::V6(dst),
            } => {
                let route = || tables.fib.hop(IpAddr::V6(dst));
                match self.send_memoised(pi, m, dst.octets(), route, now, &mut memo.v6) {
                    Ok(()) => return,
                    Err(m) => m,
                }
            }
            _ => m,
        };
        let host = self.ports[pi].host.classified(flow.dst());
        self.l4_verdict(pi, m, l4, host, now, tables);
    }

    /// Addresses an untagged frame for `dst` through `memo` (resolved
    /// from `route` if it holds another destination) and queues it, as the
    /// fast path does; `Err` hands it back untouched when the next hop is
    /// not known now (the caller routes it the slow way).
    #[inline(always)]
    fn send_memoised<A: Dst>(
        &mut self,
        pi: usize,
        mut m: Mbuf,
        dst: A,
        route: impl FnOnce() -> Option<Hop>,
        now: Nanos,
        memo: &mut Hops<A>,
    ) -> Result<(), Mbuf> {
        let Some(memo) = self.next_hop(memo, dst, false, route, now) else {
            return Err(m);
        };
        m.data_mut()[..12].copy_from_slice(&memo.macs);
        self.send_fast(pi, m, memo);
        Ok(())
    }

    /// What follows the L4 stage's `verdict` for a frame the host stage
    /// gave `host`.
    fn l4_verdict(
        &mut self,
        pi: usize,
        mut m: Mbuf,
        verdict: L4Verdict,
        host: FromWire,
        now: Nanos,
        tables: &Tables,
    ) {
        let vlan = self.ports[pi].host.vlan.is_some();
        match (verdict, host) {
            // Second chance (lb/path.rs): a redirect goes to the draining
            // peer `next_hop` through the FIB, as a forward to it would.
            (L4Verdict::Forward { dst } | L4Verdict::Redirect { next_hop: dst }, _) => {
                if vlan {
                    m.strip_vlan();
                }
                self.route(pi, m, dst, now, tables);
            }
            (L4Verdict::Reply(n), _) => {
                if m.set_len(n) {
                    self.send_out(pi, m);
                }
            }
            (L4Verdict::Drop(_), _) => {} // counted by the L4 path, by reason
            (L4Verdict::NotL4, FromWire::Punt) => {
                if vlan {
                    m.strip_vlan();
                }
                self.punt(pi, m, now);
            }
            (L4Verdict::NotL4, _) => self.ports[pi].host.counters.drop(Drop::NotForUs),
        }
    }

    /// Hands an untagged frame to port `pi`'s kernel (its TAP), within
    /// the port's punt policer; through the home worker if not this one.
    fn punt(&mut self, pi: usize, m: Mbuf, now: Nanos) {
        let p = &mut self.ports[pi];
        let Some((_, tap_tx)) = &mut p.tap else {
            let home = p.home;
            self.hand(home, pi, Parcel::Tap { port: pi, m });
            return;
        };
        if !p.host.admit_punt(now, m.data()) {
            return; // counted as punt_policed
        }
        let c = &mut p.host.counters;
        c.to_tap += 1;
        push(tap_tx, m, &mut 0, &mut c.drops[Drop::TapFull as usize]);
    }

    /// Sends a complete frame out of port `pi` as it is (tagged as the
    /// port wants it already); through the home worker if this one has
    /// no queue there.
    fn send_out(&mut self, pi: usize, m: Mbuf) {
        let p = &mut self.ports[pi];
        match &mut p.tx {
            Some(tx) => {
                let c = &mut p.host.counters;
                push(
                    tx,
                    m,
                    &mut c.tx_packets,
                    &mut c.drops[Drop::TxFull as usize],
                );
            }
            None => {
                let home = p.home;
                self.hand(home, pi, Parcel::Out { port: pi, m });
            }
        }
    }

    /// Sends an untagged frame to `dst` through the FIB (received on port
    /// `pi`, where a missing route is counted).
    fn route(&mut self, pi: usize, m: Mbuf, dst: IpAddr, now: Nanos, tables: &Tables) {
        match tables.fib.lookup(dst) {
            Some((port, next_hop)) => self.transmit(port, m, next_hop, now),
            None => self.ports[pi].host.counters.drop(Drop::NoRoute),
        }
    }

    /// Idle TCP flows with reset-on-timeout: probes to both ends (whose
    /// answers `L4::process` turns into exact RSTs).
    fn sweep(&mut self, now: Nanos, tables: &Tables) {
        if tables.vs.is_empty() || self.ports.is_empty() {
            return;
        }
        let n = self.l4.sweep(secs(now), 64, &mut self.expired, &tables.vs);
        // Resets leave from the first port's pool (any pool will do).
        for i in 0..n {
            let e = self.expired[i];
            for side in [Side::Client, Side::Member] {
                let Some(mut m) = self.ports[0].pool.alloc() else {
                    self.ports[0].host.counters.drop(Drop::NoMbuf);
                    continue;
                };
                if let Some((len, dst)) =
                    self.l4
                        .build_reset(&e, side, &tables.vs, m.data_and_tailroom())
                {
                    if m.set_len(len) {
                        self.route(0, m, dst, now, tables);
                    }
                }
            }
        }
    }

    fn poll_tap(&mut self, pi: usize, now: Nanos, burst: &mut Burst, tables: &Tables) -> usize {
        let Some((q, _)) = &self.ports[pi].tap else {
            return 0;
        };
        let n = burst.rx(q);
        for mut m in burst.drain() {
            let p = &mut self.ports[pi];
            p.host.counters.from_tap += 1;
            let len = m.len();
            let verdict = p.host.rx_from_tap(m.data_and_tailroom(), len, &tables.fib);
            match verdict {
                FromTap::Forward { port, next_hop } => self.transmit(port, m, next_hop, now),
                FromTap::ReplyToTap(n) => {
                    let p = &mut self.ports[pi];
                    if let (true, Some((_, tap_tx))) = (m.set_len(n), &mut p.tap) {
                        let c = &mut p.host.counters;
                        push(tap_tx, m, &mut 0, &mut c.drops[Drop::TapFull as usize]);
                    }
                }
                FromTap::Flood => {
                    let vlan = self.ports[pi].host.vlan;
                    if vlan.is_none_or(|v| m.insert_vlan(v)) {
                        self.send_out(pi, m);
                    }
                }
                FromTap::Consumed => {}
                FromTap::Drop(why) => self.ports[pi].host.counters.drop(why),
            }
        }
        n
    }

    /// Sends `m` out of port `ei` to `next_hop`: on this worker's queue
    /// with the MAC known here; else the port's home worker resolves it
    /// (the home itself queues it and asks ARP/ND).
    fn transmit(&mut self, ei: usize, m: Mbuf, next_hop: IpAddr, now: Nanos) {
        let me = self.index;
        let Some(p) = self.ports.get_mut(ei) else {
            return;
        };
        if let (Some(tx), Some(mac)) = (&mut p.tx, p.host.neighbors.lookup(next_hop, now)) {
            send_to(&mut p.host, tx, m, mac);
            return;
        }
        if p.home != me {
            let learn = p.tx.is_some();
            let home = p.home;
            let parcel = Parcel::Tx {
                port: ei,
                next_hop,
                learn,
                m,
            };
            self.hand(home, ei, parcel);
            return;
        }
        if let Err(m) = p.pending.push(next_hop, now, m) {
            drop(m);
            p.host.counters.drop(Drop::NeighborQueueFull);
        }
        solicit(p, next_hop, now);
    }

    fn timers(&mut self, now: Nanos, tables: &Tables) {
        self.sweep(now, tables);
        for p in self.ports.iter_mut().filter(|p| p.tap.is_some()) {
            let c = &mut p.host.counters;
            p.pending.expire(now, |m| {
                drop(m);
                c.drop(Drop::NeighborUnresolved);
            });
            let mut waiting = [None; 8];
            for (slot, ip) in waiting.iter_mut().zip(p.pending.waiting()) {
                *slot = Some(ip);
            }
            for ip in waiting.into_iter().flatten() {
                solicit(p, ip, now);
            }
        }
    }
}

/// The adaptive mode's longest sleep, after a second of idle polls.
const MAX_SLEEP_NS: Nanos = MS;
/// Shorter sleeps than this are not worth a system call: poll instead.
const MIN_SLEEP_NS: Nanos = 20_000;
/// How early a sleep ends before the next BFD deadline: covers the
/// kernel's wake-up latency, so the deadline is met by polling.
const SLEEP_MARGIN_NS: Nanos = 150_000;

/// The longest sleep that keeps BFD's reception timestamps within 1/128
/// of the shortest detection time of `bfd`'s sessions (30 ms: 234 µs),
/// between `MIN_SLEEP_NS` and `MAX_SLEEP_NS`.
fn bfd_sleep_cap_ns(bfd: &SessionTable) -> Nanos {
    bfd.iter()
        .map(|(_, s)| s.detection_time_ns())
        .filter(|&d| d > 0)
        .min()
        .map_or(MAX_SLEEP_NS, |d| {
            (d / 128).clamp(MIN_SLEEP_NS, MAX_SLEEP_NS)
        })
}

/// The L4 path's clock: whole seconds of the worker's.
#[inline]
fn secs(now: Nanos) -> crate::lb::conntrack::Secs {
    (now / 1_000_000_000) as crate::lb::conntrack::Secs
}

/// The last route the fast path resolved in this burst, and the
/// destinations it holds for (consecutive frames mostly go to the same
/// member, or through the same gateway to many clients), for destinations
/// `A` (IPv4 or IPv6 address bytes).
#[derive(Debug, Clone, Copy)]
struct NextHop<A: Dst> {
    /// The destinations routed here: those whose bits under `mask` are
    /// `net` (the FIB's [`Hop::span`] around the last one resolved; none
    /// yet: `A::NOWHERE`).
    net: A::Bits,
    mask: A::Bits,
    next_hop: IpAddr,
    /// The egress port (its index in the data plane and in `ports`).
    port: usize,
    /// Destination and source MAC, as the frame starts (zeros when the
    /// port's home worker sends: it addresses the frame).
    macs: [u8; 12],
}

impl<A: Dst> NextHop<A> {
    /// Whether `dst` goes where this memo says.
    #[inline(always)]
    fn holds(&self, dst: A) -> bool {
        dst.bits() & self.mask == self.net
    }
}

impl<A: Dst> Default for NextHop<A> {
    fn default() -> Self {
        let (net, mask) = A::NOWHERE;
        NextHop {
            net,
            mask,
            next_hop: IpAddr::from([0, 0, 0, 0]),
            port: usize::MAX,
            macs: [0; 12],
        }
    }
}

/// A destination address as a [`NextHop`] memo matches it: its bytes as
/// one integer in the machine's byte order (no swap a packet), masks
/// likewise.
trait Dst: Copy {
    type Bits: Copy + PartialEq + std::ops::BitAnd<Output = Self::Bits> + std::fmt::Debug;
    /// A (net, mask) that no address matches.
    const NOWHERE: (Self::Bits, Self::Bits);
    fn bits(self) -> Self::Bits;
    /// The mask of the first `len` bits (of the address in network order).
    fn mask(len: u8) -> Self::Bits;
    /// A hash of the address's last four bytes (where the members of a
    /// subnet differ), for [`Hops`]: any `usize`.
    fn way(self) -> usize;
}

/// Fibonacci hashing of an address's last four bytes: the product's top
/// byte (well mixed in every bit; `Hops` takes it modulo its memos).
#[inline(always)]
fn way_of(last: [u8; 4]) -> usize {
    (u32::from_ne_bytes(last).wrapping_mul(0x9e37_79b1) >> 24) as usize
}

impl Dst for [u8; 4] {
    type Bits = u32;
    const NOWHERE: (u32, u32) = (1, 0);
    #[inline(always)]
    fn bits(self) -> u32 {
        u32::from_ne_bytes(self)
    }
    fn mask(len: u8) -> u32 {
        let m = u32::MAX
            .checked_shl(32 - u32::from(len.min(32)))
            .unwrap_or(0);
        u32::from_ne_bytes(m.to_be_bytes())
    }
    #[inline(always)]
    fn way(self) -> usize {
        way_of(self)
    }
}

impl Dst for [u8; 16] {
    type Bits = u128;
    const NOWHERE: (u128, u128) = (1, 0);
    #[inline(always)]
    fn bits(self) -> u128 {
        u128::from_ne_bytes(self)
    }
    fn mask(len: u8) -> u128 {
        let m = u128::MAX
            .checked_shl(128 - u32::from(len.min(128)))
            .unwrap_or(0);
        u128::from_ne_bytes(m.to_be_bytes())
    }
    #[inline(always)]
    fn way(self) -> usize {
        way_of([self[12], self[13], self[14], self[15]])
    }
}

/// The fast path's next-hop memos for one burst, per family.
#[derive(Debug, Default)]
struct Memo {
    v4: Hops<[u8; 4]>,
    v6: Hops<[u8; 16]>,
}

impl Memo {
    /// Forgets every next hop (a new burst; the slow path may have
    /// learnt a neighbour or changed the tables).
    #[inline(always)]
    fn clear(&mut self) {
        self.v4.clear();
        self.v6.clear();
    }
}

/// How many next-hop memos a burst keeps for frames to members: a
/// virtual server spreads a burst over its members, each its own next
/// hop (one memo for them all resolved again at nearly every frame).
const MEMBER_MEMOS: usize = 16;

/// One family's next-hop memos: client -> member frames (and a new flow's
/// first) by a hash of the member's address, direct-mapped (two members
/// on one memo take turns, each resolved again); member -> client frames
/// in one, the last, as their clients mostly share a gateway (one span).
/// Cleared memo by memo, only those filled since the last clear: a burst
/// fills one or a few, and a clear of them all (2 KiB, both families)
/// cost ≈ 140 instructions a burst.
#[derive(Debug)]
struct Hops<A: Dst> {
    memos: [NextHop<A>; MEMBER_MEMOS + 1],
    /// The memos filled since the last clear, as bits.
    filled: u32,
}

impl<A: Dst> Hops<A> {
    /// Which memo a frame to `dst` takes (a client if `reply`, else a
    /// member); [`Worker::next_hop`] fills it if it does not hold `dst`.
    #[inline(always)]
    fn index(dst: A, reply: bool) -> usize {
        match reply {
            true => MEMBER_MEMOS,
            false => dst.way() % MEMBER_MEMOS,
        }
    }

    fn clear(&mut self) {
        let mut filled = self.filled;
        while filled != 0 {
            self.memos[filled.trailing_zeros() as usize] = NextHop::default();
            filled &= filled - 1;
        }
        self.filled = 0;
    }
}

const _: () = assert!(MEMBER_MEMOS < u32::BITS as usize);

impl<A: Dst> Default for Hops<A> {
    fn default() -> Self {
        Hops {
            memos: [NextHop::default(); MEMBER_MEMOS + 1],
            filled: 0,
        }
    }
}

/// A frame the fast stage leaves to the rest of `wire_burst`.
enum Left {
    /// Not of the (IPv4) fast class.
    Unclassified(Mbuf),
    /// Classified, but not the fast path's to handle (a new flow, a SYN
    /// on a closing flow, an entry only the slow path may change, a next
    /// hop not known now): why.
    Missed(Mbuf, Miss),
}

/// Sends an ARP request or NS for `ip` out of `p`, at most once a second.
fn solicit(p: &mut WorkerPort, ip: IpAddr, now: Nanos) {
    if !p.host.neighbors.should_solicit(ip, now) {
        return;
    }
    let Some(tx) = &mut p.tx else {
        return;
    };
    let Some(mut m) = p.pool.alloc() else {
        p.host.counters.drop(Drop::NoMbuf);
        return;
    };
    if let Some(n) = p.host.emit_solicit(ip, m.data_and_tailroom()) {
        if m.set_len(n) {
            let c = &mut p.host.counters;
            c.solicits += 1;
            push(
                tx,
                m,
                &mut c.tx_packets,
                &mut c.drops[Drop::TxFull as usize],
            );
        }
    }
}

/// Wraps a BFD control packet in UDP/IP (TTL 255)/Ethernet and queues it
/// out of `p`; with the peer's MAC unknown, solicits it instead (the next
/// interval's packet goes out once it answers).
fn bfd_send(p: &mut WorkerPort, now: Nanos, tx: &bfd::Transmit<'_>) {
    let Some(mac) = p.host.neighbors.lookup(tx.peer.addr, now) else {
        solicit(p, tx.peer.addr, now);
        return;
    };
    let Some(mut m) = p.pool.alloc() else {
        p.host.counters.drop(Drop::NoMbuf);
        return;
    };
    let ports = (tx.src_port, tx.hop.dest_port());
    if let Some(n) = p.host.emit_udp(
        m.data_and_tailroom(),
        mac,
        tx.peer.addr,
        ports,
        bfd::session::TX_TTL,
        tx.payload,
    ) {
        if let (true, Some(tx)) = (m.set_len(n), &mut p.tx) {
            let c = &mut p.host.counters;
            push(
                tx,
                m,
                &mut c.tx_packets,
                &mut c.drops[Drop::TxFull as usize],
            );
        }
    }
}

/// Points `m` at `mac` from `host`'s port, tags it, queues it for TX.
fn send_to(host: &mut Host, tx: &mut TxBuffer, mut m: Mbuf, mac: Mac) {
    host.set_macs(m.data_mut(), mac);
    let c = &mut host.counters;
    if host.vlan.is_none_or(|v| m.insert_vlan(v)) {
        push(
            tx,
            m,
            &mut c.tx_packets,
            &mut c.drops[Drop::TxFull as usize],
        );
    }
}

/// Queues `m` on `tx`, counting what a flush sent and dropped. Always
/// inlined: the fast path's queueing is a store and an increment.
#[inline(always)]
fn push(tx: &mut TxBuffer, m: Mbuf, sent: &mut u64, dropped: &mut u64) {
    if let Some((s, d)) = tx.push(m) {
        *sent += s as u64;
        *dropped += d as u64;
    }
}

#[inline]
fn flush(tx: &mut TxBuffer, sent: &mut u64, dropped: &mut u64) {
    let (s, d) = tx.flush();
    *sent += s as u64;
    *dropped += d as u64;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A memo set as `resolve` sets it: the span of `len` bits around `dst`.
    fn memo<A: Dst>(dst: A, len: u8) -> NextHop<A> {
        let mut m = NextHop::<A>::default();
        m.mask = A::mask(len);
        m.net = dst.bits() & m.mask;
        m
    }

    #[test]
    fn an_empty_memo_holds_no_destination() {
        for d in [[0; 4], [255; 4], [10, 1, 2, 3]] {
            assert!(!NextHop::<[u8; 4]>::default().holds(d));
        }
        for d in [[0; 16], [255; 16]] {
            assert!(!NextHop::<[u8; 16]>::default().holds(d));
        }
    }

    #[test]
    fn members_of_a_subnet_get_memos_of_their_own() {
        let ways: std::collections::HashSet<usize> = (0..8u8)
            .map(|i| Hops::index([10, 0, 0, 50 + i], false))
            .collect();
        assert_eq!(ways.len(), 8, "eight consecutive addresses, eight memos");
        assert!(ways.iter().all(|&i| i < MEMBER_MEMOS));
        // Replies share the last memo, whatever the client.
        for c in [[10, 1, 0, 7], [192, 0, 2, 1], [10, 0, 0, 50]] {
            assert_eq!(Hops::index(c, true), MEMBER_MEMOS);
        }
    }

    #[test]
    fn a_clear_empties_exactly_the_filled_memos() {
        let mut hops = Hops::<[u8; 4]>::default();
        let members = [[10, 0, 0, 50], [10, 0, 0, 51]];
        for (dst, reply) in [
            (members[0], false),
            (members[1], false),
            ([10, 1, 0, 7], true),
        ] {
            let i = Hops::index(dst, reply);
            hops.memos[i] = memo(dst, 32);
            hops.filled |= 1 << i;
        }
        // One memo holds a destination without being marked filled: a
        // clear leaves it (nothing but `resolve` fills a memo, and it
        // marks what it fills).
        let unmarked = (0..MEMBER_MEMOS)
            .find(|i| hops.filled & 1 << i == 0)
            .unwrap();
        hops.memos[unmarked] = memo([1, 2, 3, 4], 32);
        hops.clear();
        assert_eq!(hops.filled, 0);
        for dst in [members[0], members[1], [10, 1, 0, 7]] {
            assert!(
                hops.memos.iter().all(|m| !m.holds(dst)),
                "{dst:?} forgotten"
            );
        }
        assert!(hops.memos.iter().any(|m| m.holds([1, 2, 3, 4])));
    }

    proptest! {
        /// The memo holds exactly the addresses whose first `len` bits
        /// (in network order) are `dst`'s: what the FIB's span promises.
        #[test]
        fn a_memo_holds_its_span_v4(dst in any::<u32>(), noise in any::<u32>(), from in 0u32..=32, len in 0u8..=32) {
            // Another address agreeing with `dst` on at least `from` bits.
            let other = dst ^ noise.checked_shr(from).unwrap_or(0);
            let shared = (dst ^ other).leading_zeros();
            let m = memo(dst.to_be_bytes(), len);
            prop_assert_eq!(m.holds(other.to_be_bytes()), shared >= u32::from(len));
            prop_assert!(m.holds(dst.to_be_bytes()));
        }

        #[test]
        fn a_memo_holds_its_span_v6(dst in any::<u128>(), noise in any::<u128>(), from in 0u32..=128, len in 0u8..=128) {
            let other = dst ^ noise.checked_shr(from).unwrap_or(0);
            let shared = (dst ^ other).leading_zeros();
            let m = memo(dst.to_be_bytes(), len);
            prop_assert_eq!(m.holds(other.to_be_bytes()), shared >= u32::from(len));
            prop_assert!(m.holds(dst.to_be_bytes()));
        }
    }
}

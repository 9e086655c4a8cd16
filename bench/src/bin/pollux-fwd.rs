//! `pollux-fwd`: pollux's worker loop with no per-packet work, on one port.
//!
//! Every packet received on the port is sent back out of the same port,
//! unchanged, by one EAL worker lcore running the loop shape of
//! `dataplane::worker::Worker::run`:
//!
//! ```text
//!   loop until stop:
//!     now = clock (once per iteration)
//!     rx burst → drain → TxBuffer::push        (no per-packet work)
//!     flush the TX buffer
//!     every 10 ms: publish counters (relaxed atomics)
//! ```
//!
//! It is the "floor" row of the benchmarks (issue 3, issue 8): the same
//! memif link is driven by `dpdk-testpmd --forward-mode=io` in the same run,
//! and `bench/run.sh` prints both and their ratio.
//!
//! ```text
//! pollux-fwd [--seconds N] [--port NAME] [--lcore N] [--mbufs N] [--desc N]
//!            [--report SECS] [--record-cycles] -- EAL ARGS...
//! ```
//!
//! Stops on SIGTERM, SIGINT or after `--seconds`. SIGUSR1 prints a `window`
//! line: the rates since the previous SIGUSR1 (or since start), like
//! testpmd's `show port stats` Rx-pps. At exit it prints the worker's own
//! counters and the port's (`rte_eth_stats`).
//!
//! `--record-cycles` is testpmd's `--record-core-cycles`: the TSC ticks of
//! the iterations that received packets (from the clock read at the top of
//! the iteration to the end of the flush), summed, so that busy cycles per
//! packet can be compared with testpmd's "CPU cycles/packet". It costs one
//! more TSC read per non-empty burst.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench::worker_lcore;
use dataplane::dpdk::{
    self, Burst, Clock, Eal, Mempool, Port, PortStats, RxQueue, TxBuffer, TxQueue,
};
use tokio::signal::unix::{signal, SignalKind};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const MS: u64 = 1_000_000;

#[derive(Debug)]
struct Opts {
    seconds: Option<f64>,
    port: String,
    lcore: Option<u32>,
    mbufs: u32,
    desc: u16,
    report: f64,
    record_cycles: bool,
    eal: Vec<String>,
}

const USAGE: &str = "usage: pollux-fwd [--seconds N] [--port NAME] [--lcore N] [--mbufs N] [--desc N] [--report SECS] -- EAL ARGS...
  --seconds N    stop after N seconds (default: run until SIGTERM/SIGINT)
  --port NAME    DPDK device to forward on (default net_memif0)
  --lcore N      EAL worker lcore for the loop (default: the first lcore of -l that is not --main-lcore)
  --mbufs N      mbufs in the pool (default 16384)
  --desc N       RX/TX descriptors (default 1024)
  --report SECS  print rates every SECS seconds, 0 = never (default 1)
  --record-cycles  sum the TSC ticks of non-empty iterations (testpmd's --record-core-cycles)
SIGUSR1 prints the rates since the previous SIGUSR1.";

fn parse_args(args: &[String]) -> Result<Opts, BoxError> {
    let mut o = Opts {
        seconds: None,
        port: "net_memif0".into(),
        lcore: None,
        mbufs: 16384,
        desc: 1024,
        report: 1.0,
        record_cycles: false,
        eal: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| -> Result<String, BoxError> {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}").into())
        };
        match a.as_str() {
            "--" => {
                o.eal = it.cloned().collect();
                break;
            }
            "--seconds" => o.seconds = Some(val(a)?.parse()?),
            "--port" => o.port = val(a)?,
            "--lcore" => o.lcore = Some(val(a)?.parse()?),
            "--mbufs" => o.mbufs = val(a)?.parse()?,
            "--desc" => o.desc = val(a)?.parse()?,
            "--report" => o.report = val(a)?.parse()?,
            "--record-cycles" => o.record_cycles = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}").into()),
        }
    }
    if o.eal.is_empty() {
        return Err(format!("EAL arguments are missing after --\n{USAGE}").into());
    }
    Ok(o)
}

/// What the worker publishes every 10 ms (and when it stops).
#[derive(Debug, Default)]
struct Shared {
    running: AtomicBool,
    rx: AtomicU64,
    tx: AtomicU64,
    tx_dropped: AtomicU64,
    busy_polls: AtomicU64,
    idle_polls: AtomicU64,
    /// TSC ticks of the non-empty iterations (with `--record-cycles`).
    busy_cycles: AtomicU64,
    /// Clock ns of the first and the last non-empty RX burst (0 = none yet).
    first_rx_ns: AtomicU64,
    last_rx_ns: AtomicU64,
}

#[derive(Debug, Default)]
struct Local {
    rx: u64,
    tx: u64,
    tx_dropped: u64,
    busy_polls: u64,
    idle_polls: u64,
    busy_cycles: u64,
    first_rx_ns: u64,
    last_rx_ns: u64,
}

impl Shared {
    fn publish(&self, l: &Local) {
        self.rx.store(l.rx, Relaxed);
        self.tx.store(l.tx, Relaxed);
        self.tx_dropped.store(l.tx_dropped, Relaxed);
        self.busy_polls.store(l.busy_polls, Relaxed);
        self.idle_polls.store(l.idle_polls, Relaxed);
        self.busy_cycles.store(l.busy_cycles, Relaxed);
        self.first_rx_ns.store(l.first_rx_ns, Relaxed);
        self.last_rx_ns.store(l.last_rx_ns, Relaxed);
    }
}

/// The loop: pollux's worker shape, no per-packet work.
fn forward(
    rx: RxQueue,
    tx: TxQueue,
    clock: Clock,
    record_cycles: bool,
    stop: &AtomicBool,
    shared: &Shared,
) {
    let mut burst = Burst::default();
    let mut txb = TxBuffer::new(tx);
    let mut c = Local::default();
    let mut last_publish = 0;
    shared.running.store(true, Relaxed);
    while !stop.load(Relaxed) {
        let start = dpdk::tsc();
        let now = clock.ns(start);
        let n = burst.rx(&rx);
        for m in burst.drain() {
            if let Some((sent, dropped)) = txb.push(m) {
                c.tx += sent as u64;
                c.tx_dropped += dropped as u64;
            }
        }
        let (sent, dropped) = txb.flush();
        c.tx += sent as u64;
        c.tx_dropped += dropped as u64;
        if n > 0 {
            c.rx += n as u64;
            c.busy_polls += 1;
            if c.first_rx_ns == 0 {
                c.first_rx_ns = now.max(1);
            }
            c.last_rx_ns = now;
            if record_cycles {
                c.busy_cycles += dpdk::tsc().wrapping_sub(start);
            }
        } else {
            c.idle_polls += 1;
        }
        if now - last_publish >= 10 * MS {
            last_publish = now;
            shared.publish(&c);
        }
    }
    shared.publish(&c);
    shared.running.store(false, Relaxed);
}

fn per(a: u64, b: u64) -> f64 {
    if b > 0 {
        a as f64 / b as f64
    } else {
        0.0
    }
}

fn mpps(pkts: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        pkts as f64 / secs / 1e6
    } else {
        0.0
    }
}

/// Counters at one instant, for rates between two of them.
#[derive(Debug, Clone, Copy)]
struct Mark {
    at: Instant,
    rx: u64,
    tx: u64,
    busy_polls: u64,
    idle_polls: u64,
    busy_cycles: u64,
    port: PortStats,
}

impl Mark {
    fn take(shared: &Shared, port: &Port) -> Mark {
        Mark {
            at: Instant::now(),
            rx: shared.rx.load(Relaxed),
            tx: shared.tx.load(Relaxed),
            busy_polls: shared.busy_polls.load(Relaxed),
            idle_polls: shared.idle_polls.load(Relaxed),
            busy_cycles: shared.busy_cycles.load(Relaxed),
            port: port.stats(),
        }
    }

    /// `label secs=… rx_pps=… tx_pps=… port_rx_pps=… port_tx_pps=…
    /// busy_polls=… idle_polls=… busy_cycles_per_pkt=…`
    fn rates_since(&self, prev: &Mark, label: &str) -> String {
        let secs = self.at.duration_since(prev.at).as_secs_f64();
        let pps = |a: u64, b: u64| mpps(a.saturating_sub(b), secs) * 1e6;
        let rx = self.rx.saturating_sub(prev.rx);
        let cycles = self.busy_cycles.saturating_sub(prev.busy_cycles);
        format!(
            "pollux-fwd: {label} secs={secs:.3} rx_pps={:.0} tx_pps={:.0} port_rx_pps={:.0} port_tx_pps={:.0} busy_polls={} idle_polls={} busy_cycles_per_pkt={:.2}",
            pps(self.rx, prev.rx),
            pps(self.tx, prev.tx),
            pps(self.port.ipackets, prev.port.ipackets),
            pps(self.port.opackets, prev.port.opackets),
            self.busy_polls.saturating_sub(prev.busy_polls),
            self.idle_polls.saturating_sub(prev.idle_polls),
            per(cycles, rx),
        )
    }
}

/// Waits for a stop reason, printing rates on the way.
async fn control(
    o: &Opts,
    shared: &Shared,
    port: &Port,
    started: Instant,
) -> Result<&'static str, BoxError> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let deadline = o.seconds.map(|s| started + Duration::from_secs_f64(s));
    let until_deadline = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d.into()).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(until_deadline);
    let every = if o.report > 0.0 { o.report } else { 3600.0 };
    let mut tick = tokio::time::interval(Duration::from_secs_f64(every));
    tick.tick().await; // the first tick is immediate
    let (mut last_tick, mut last_window) = (Mark::take(shared, port), Mark::take(shared, port));
    let mut seen_running = false;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok("SIGTERM"),
            _ = int.recv() => return Ok("SIGINT"),
            _ = &mut until_deadline => return Ok("--seconds"),
            _ = usr1.recv() => {
                let now = Mark::take(shared, port);
                println!("{}", now.rates_since(&last_window, "window"));
                last_window = now;
            }
            _ = tick.tick() => {
                let now = Mark::take(shared, port);
                if o.report > 0.0 {
                    println!("{}", now.rates_since(&last_tick, "rate"));
                }
                last_tick = now;
                let running = shared.running.load(Relaxed);
                if seen_running && !running {
                    return Err("the worker left its loop".into());
                }
                seen_running |= running;
            }
        }
    }
}

fn run(o: Opts) -> Result<(), BoxError> {
    let lcore = match o.lcore {
        Some(l) => l,
        None => worker_lcore(&o.eal)
            .ok_or("cannot tell the worker lcore from the EAL arguments: pass --lcore N")?,
    };
    let eal = Eal::init(&o.eal)?;
    let pool = Arc::new(Mempool::new("pxfwd_pool", o.mbufs, 256, -1)?);
    let mut port = Port::by_name(&o.port)?;
    port.configure(1, o.desc, &pool, false)?;
    port.start()?;
    println!(
        "pollux-fwd: DPDK {}; port {} ({:?}, driver {}) rx→tx on worker lcore {lcore}; {} mbufs, {} descriptors, burst {}{}",
        dpdk::version(),
        o.port,
        port.id,
        port.driver,
        o.mbufs,
        o.desc,
        dpdk::BURST,
        if o.record_cycles { ", recording busy cycles" } else { "" },
    );

    let stop = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(Shared::default());
    let clock = Clock::new();
    let record_cycles = o.record_cycles;
    let (rxq, txq) = port
        .take_queues()
        .pop()
        .ok_or("the port has no configured queue")?;
    {
        let (stop, shared) = (stop.clone(), shared.clone());
        dpdk::launch(lcore, move || {
            forward(rxq, txq, clock, record_cycles, &stop, &shared);
            Ok(())
        })?;
    }
    let started = Instant::now();
    println!("pollux-fwd: running");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let why = rt.block_on(control(&o, &shared, &port, started));
    stop.store(true, Relaxed);
    let rc = dpdk::wait(lcore);
    let ran = started.elapsed().as_secs_f64();
    let why = why?;

    let ps = port.stats();
    let (rx, tx) = (shared.rx.load(Relaxed), shared.tx.load(Relaxed));
    let (first, last) = (
        shared.first_rx_ns.load(Relaxed),
        shared.last_rx_ns.load(Relaxed),
    );
    let active = if first > 0 && last > first {
        (last - first) as f64 / 1e9
    } else {
        0.0
    };
    println!("pollux-fwd: stopped by {why} after {ran:.2} s (worker rc {rc})");
    println!(
        "pollux-fwd: worker: rx {rx} tx {tx} tx_dropped {} busy_polls {} idle_polls {}; active {active:.3} s (first to last rx): rx {:.2} Mpps, tx {:.2} Mpps",
        shared.tx_dropped.load(Relaxed),
        shared.busy_polls.load(Relaxed),
        shared.idle_polls.load(Relaxed),
        mpps(rx, active),
        mpps(tx, active),
    );
    if o.record_cycles {
        let cycles = shared.busy_cycles.load(Relaxed);
        println!(
            "pollux-fwd: busy cycles/packet={:.2} (busy cycles={cycles} / rx packets={rx}) at {} MHz TSC",
            per(cycles, rx),
            dpdk::tsc_hz() / 1_000_000,
        );
    }
    println!(
        "pollux-fwd: port {}: ipackets {} opackets {} ibytes {} obytes {} imissed {} ierrors {} oerrors {} rx_nombuf {}; over the active window: rx {:.2} Mpps, tx {:.2} Mpps",
        o.port,
        ps.ipackets,
        ps.opackets,
        ps.ibytes,
        ps.obytes,
        ps.imissed,
        ps.ierrors,
        ps.oerrors,
        ps.rx_nombuf,
        mpps(ps.ipackets, active),
        mpps(ps.opackets, active),
    );
    // Drop order: port (stop, close), then the pool, then the EAL.
    drop(port);
    drop(pool);
    drop(eal);
    if rc != 0 {
        return Err(format!("the worker on lcore {lcore} failed (rc {rc})").into());
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = parse_args(&args).and_then(run);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pollux-fwd: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn args_split_at_double_dash() {
        let o = parse_args(&v("--seconds 3 --port net_memif1 -- -l 0,1 --no-pci")).unwrap();
        assert_eq!(o.seconds, Some(3.0));
        assert_eq!(o.port, "net_memif1");
        assert_eq!(o.eal, v("-l 0,1 --no-pci"));
        assert!(parse_args(&v("--seconds 3")).is_err());
        assert!(parse_args(&v("--bogus -- -l 0")).is_err());
    }
}

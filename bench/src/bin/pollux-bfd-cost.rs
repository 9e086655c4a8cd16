//! `pollux-bfd-cost`: what N BFD sessions cost a worker, measured on the
//! data plane's own sans-IO session table (`dataplane::bfd::SessionTable`)
//! under a virtual clock. Bench row (g2) of `bench/bfd.py`.
//!
//! ```text
//! pollux-bfd-cost [--sessions 1000] [--interval-ms 10] [--mult 3]
//!                 [--seconds 1] [--reps 5] [--step-us 10] [--once]
//! ```
//!
//! The model: one worker's table with `--sessions` single-hop sessions, each
//! facing a simulated peer that is Up and sends every `--interval-ms`
//! (peers staggered evenly over the interval, answering Poll with Final),
//! and the worker loop that calls `handle_rx` for every arriving packet and
//! `poll_timers` once per iteration, one iteration every `--step-us` of
//! virtual time. The sessions are brought Up and settled (Poll Sequences
//! done) for one virtual second first; then `--seconds` of virtual time are
//! measured, `--reps` times.
//!
//! What is counted: the table's work only — parsing and demultiplexing each
//! received payload, the state machine, the timer heap, writing each
//! transmitted payload (jittered, ~1.14 packets per interval per session),
//! and the per-iteration "anything due?" check. Not counted: the packet
//! I/O around it (Ethernet/IP/UDP parsing and building, mbufs, the PMD),
//! which costs the same as any other packet of the same size and is in the
//! loop benchmark. The simulator's own work (a cursor over the peers, a
//! counter and a flag test per transmitted payload) is inside the timed
//! region and small.
//!
//! Output (stdout, one JSON object): `cpu_ms_per_s` (CPU milliseconds the
//! table needs per second of BFD operation: the share of one core, in ‰),
//! per rep and their median, `ns_per_packet` (per packet received or sent),
//! and the packet counts (which also prove the run was healthy: every
//! session Up, no state change during the measurement). `--once` runs one
//! measured stretch inside `measured_stretch`, for
//! `valgrind --tool=callgrind --toggle-collect=*measured_stretch*`
//! (instructions: deterministic; jitter seeds are fixed).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::process::ExitCode;
use std::time::Instant;

use dataplane::bfd::{
    Diag, Output, PeerKey, Repr, RxMeta, SessionConfig, SessionId, SessionTable, State, Timers,
};

const NS: u64 = 1_000_000_000;
const FLAG_P: u8 = 0x20;

struct Args {
    sessions: u32,
    interval_ms: u32,
    mult: u8,
    seconds: u64,
    reps: usize,
    step_us: u64,
    once: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        sessions: 1000,
        interval_ms: 10,
        mult: 3,
        seconds: 1,
        reps: 5,
        step_us: 10,
        once: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        if k == "--once" {
            a.once = true;
            continue;
        }
        let v = it.next().ok_or_else(|| format!("{k} needs a value"))?;
        let bad = |e: std::num::ParseIntError| format!("{k} {v}: {e}");
        match k.as_str() {
            "--sessions" => a.sessions = v.parse().map_err(bad)?,
            "--interval-ms" => a.interval_ms = v.parse().map_err(bad)?,
            "--mult" => a.mult = v.parse().map_err(bad)?,
            "--seconds" => a.seconds = v.parse().map_err(bad)?,
            "--reps" => a.reps = v.parse().map_err(bad)?,
            "--step-us" => a.step_us = v.parse().map_err(bad)?,
            _ => return Err(format!("unknown argument {k}")),
        }
    }
    if a.sessions == 0 || a.sessions > 60_000 || a.interval_ms == 0 || a.mult == 0 {
        return Err("--sessions 1..60000, --interval-ms and --mult > 0".into());
    }
    if a.seconds == 0 || a.reps == 0 || a.step_us == 0 {
        return Err("--seconds, --reps and --step-us must be > 0".into());
    }
    Ok(a)
}

/// The table and its simulated peers.
struct Sim {
    table: SessionTable,
    peers: Vec<PeerKey>,
    /// Per session: the peer's Up packet, without and with Final.
    up: Vec<[[u8; 24]; 2]>,
    final_owed: Vec<bool>,
    /// The peers send round-robin, evenly spaced: next sender and when.
    cursor: usize,
    next_peer_at: u64,
    peer_gap: u64,
    now: u64,
    step: u64,
    rx: u64,
    tx: u64,
    changes: u64,
}

fn local_discr(i: usize) -> u32 {
    0x0001_0000 | (i as u32 + 1)
}

fn peer_repr(
    i: usize,
    state: State,
    your: u32,
    final_: bool,
    interval_us: u32,
    mult: u8,
) -> [u8; 24] {
    let r = Repr {
        version: 1,
        diag: Diag::None,
        state,
        poll: false,
        final_,
        control_plane_independent: false,
        demand: false,
        multipoint: false,
        detect_mult: mult,
        my_discr: 0x8000_0000 | (i as u32 + 1),
        your_discr: your,
        desired_min_tx: interval_us,
        required_min_rx: interval_us,
        required_min_echo_rx: 0,
        auth: None,
    };
    let mut b = [0u8; 24];
    let n = r.emit(&mut b).expect("a 24-byte packet");
    assert_eq!(n, 24);
    b
}

impl Sim {
    fn new(a: &Args) -> Sim {
        let n = a.sessions as usize;
        let interval_us = a.interval_ms * 1000;
        let mut table = SessionTable::with_capacity(n);
        let mut peers = Vec::with_capacity(n);
        let mut up = Vec::with_capacity(n);
        for i in 0..n {
            // Distinct peers on one port (10.0.0.0/8 host addresses).
            let addr = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (i as u32 + 1)));
            let peer = PeerKey { addr, iface: 0 };
            let mut sc = SessionConfig::single_hop(
                local_discr(i),
                Timers::symmetric_us(interval_us, a.mult),
            );
            sc.jitter_seed = 0x5eed ^ i as u64;
            table.add(0, peer, sc).expect("room for every session");
            peers.push(peer);
            up.push([
                peer_repr(i, State::Up, local_discr(i), false, interval_us, a.mult),
                peer_repr(i, State::Up, local_discr(i), true, interval_us, a.mult),
            ]);
        }
        let interval = u64::from(interval_us) * 1000;
        Sim {
            table,
            peers,
            up,
            final_owed: vec![false; n],
            cursor: 0,
            next_peer_at: 0,
            peer_gap: (interval / n as u64).max(1),
            now: 0,
            step: a.step_us * 1000,
            rx: 0,
            tx: 0,
            changes: 0,
        }
    }

    fn rx(&mut self, i: usize, payload: &[u8]) {
        let meta = RxMeta {
            peer: self.peers[i],
            ttl: 255,
            multihop: false,
        };
        match self.table.handle_rx(self.now, &meta, payload) {
            Ok(Some(_)) => self.changes += 1,
            Ok(None) => {}
            Err(e) => panic!("session {i}: the table dropped the peer's packet: {e:?}"),
        }
        self.rx += 1;
    }

    /// Down (your discriminator 0), then Up: every session Up.
    fn bring_up(&mut self, a: &Args) {
        let interval_us = a.interval_ms * 1000;
        for i in 0..self.peers.len() {
            let down = peer_repr(i, State::Down, 0, false, interval_us, a.mult);
            self.rx(i, &down);
            let up = self.up[i][0];
            self.rx(i, &up);
        }
    }

    /// Virtual time up to `until`, one loop iteration per step.
    #[inline(never)]
    fn run_until(&mut self, until: u64) {
        while self.now < until {
            self.now += self.step;
            while self.next_peer_at <= self.now {
                let i = self.cursor;
                let pkt = self.up[i][usize::from(self.final_owed[i])];
                self.final_owed[i] = false;
                self.rx(i, &pkt);
                self.cursor = (i + 1) % self.peers.len();
                self.next_peer_at += self.peer_gap;
            }
            let Sim {
                table,
                final_owed,
                tx,
                changes,
                now,
                ..
            } = self;
            table.poll_timers(*now, &mut |out| match out {
                Output::Transmit(t) => {
                    *tx += 1;
                    if t.payload[1] & FLAG_P != 0 {
                        final_owed[t.session.0 as usize] = true;
                    }
                    black_box(t.payload);
                }
                Output::StateChange(_) => *changes += 1,
            });
        }
    }

    fn all_up(&self) -> bool {
        (0..self.peers.len()).all(|i| {
            self.table
                .get(SessionId(i as u32))
                .is_some_and(|s| s.state() == State::Up)
        })
    }
}

/// One measured stretch (the callgrind toggle point).
#[inline(never)]
fn measured_stretch(sim: &mut Sim, ns: u64) {
    let until = sim.now + ns;
    sim.run_until(until);
}

fn main() -> ExitCode {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("pollux-bfd-cost: {e}");
            return ExitCode::from(2);
        }
    };
    let mut sim = Sim::new(&a);
    sim.bring_up(&a);
    // Settle: the Poll Sequences of the move to fast timers complete.
    sim.run_until(NS);
    if !sim.all_up() {
        eprintln!("pollux-bfd-cost: not every session came Up");
        return ExitCode::FAILURE;
    }
    let reps = if a.once { 1 } else { a.reps };
    let mut cpu_ms = Vec::new();
    let mut ns_pkt = Vec::new();
    let (mut rx, mut tx) = (0, 0);
    let changes_before = sim.changes;
    for _ in 0..reps {
        let (rx0, tx0) = (sim.rx, sim.tx);
        let t = Instant::now();
        measured_stretch(&mut sim, a.seconds * NS);
        let el = t.elapsed().as_nanos() as f64;
        rx = sim.rx - rx0;
        tx = sim.tx - tx0;
        cpu_ms.push(el / 1e6 / a.seconds as f64);
        ns_pkt.push(el / (rx + tx) as f64);
    }
    let stable = sim.changes == changes_before && sim.all_up();
    let median = |v: &[f64]| {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        s[s.len() / 2]
    };
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.3}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    println!(
        "{{\"sessions\":{},\"interval_ms\":{},\"mult\":{},\"virtual_seconds\":{},\"step_us\":{},\"reps\":{},\
\"rx_per_s\":{},\"tx_per_s\":{},\"iterations_per_s\":{},\"cpu_ms_per_s\":[{}],\"cpu_ms_per_s_median\":{:.3},\
\"ns_per_packet\":[{}],\"ns_per_packet_median\":{:.1},\"stable\":{}}}",
        a.sessions,
        a.interval_ms,
        a.mult,
        a.seconds,
        a.step_us,
        reps,
        rx / a.seconds,
        tx / a.seconds,
        1_000_000 / a.step_us,
        list(&cpu_ms),
        median(&cpu_ms),
        list(&ns_pkt),
        median(&ns_pkt),
        stable
    );
    if stable {
        ExitCode::SUCCESS
    } else {
        eprintln!("pollux-bfd-cost: a session changed state during the measurement");
        ExitCode::FAILURE
    }
}

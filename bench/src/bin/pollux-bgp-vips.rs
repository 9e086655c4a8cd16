//! `pollux-bgp-vips`: pollux's BGP speaker (`ctrl::bgp::Speaker`, the code
//! `pollux run` uses) advertising N host routes to one eBGP neighbor, with
//! no data plane: the session is a kernel TCP socket bound to `--local`,
//! which must already be configured on an interface of the current network
//! namespace (the bench puts it on a veth). It is the pollux side of bench
//! row (f), "BGP: 100 k VIPs into FRR" (`bench/bgp.py`).
//!
//! ```text
//! pollux-bgp-vips --local 10.0.0.2/30 --peer 10.0.0.1 [--asn 65002]
//!                 [--peer-asn 65001] [--count 100000] [--first 10.64.0.0]
//!                 [--seconds 120] [--no-graceful-restart]
//! ```
//!
//! The VIP set (`--count` consecutive /32s from `--first`) is complete
//! before the speaker starts, so the session announces everything as soon
//! as it is Established, as `pollux run` does for configured virtual
//! servers. The neighbor is configured as `pollux run` would configure it
//! from YAML with defaults (ebgpMultihop 1, hold 90 s, graceful restart
//! 120 s unless `--no-graceful-restart`), and the runtime is the one
//! `pollux run` builds (multi-thread, 2 workers).
//!
//! On stdout, one line per event, wall-clock seconds since the epoch (the
//! bench compares them with FRR's log and its own polls):
//!
//! ```text
//! start <epoch>
//! established <epoch>
//! advertised <count> <epoch>     the Adj-RIB-Out holds every VIP (queued to TCP)
//! ```
//!
//! Runs until SIGTERM/SIGINT or `--seconds`; then exits without draining
//! (the bench tears the peer down itself).

use std::net::{IpAddr, Ipv4Addr};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ctrl::bgp::{Speaker, VipSet};
use ctrl::config::{Bgp, Neighbor, PeerAddress};
use dataplane::api::PortSpec;
use dataplane::host::SelfIp;
use tokio::sync::watch;

#[derive(Debug)]
struct Args {
    local: IpAddr,
    len: u8,
    peer: IpAddr,
    asn: u32,
    peer_asn: u32,
    count: u32,
    first: Ipv4Addr,
    seconds: u64,
    graceful_restart: bool,
}

const USAGE: &str = "usage: pollux-bgp-vips --local ADDR/LEN --peer ADDR [--asn N] [--peer-asn N] \
                     [--count N] [--first IPV4] [--seconds N] [--no-graceful-restart]";

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        local: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        len: 0,
        peer: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        asn: 65002,
        peer_asn: 65001,
        count: 100_000,
        first: Ipv4Addr::new(10, 64, 0, 0),
        seconds: 120,
        graceful_restart: true,
    };
    let (mut have_local, mut have_peer) = (false, false);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--no-graceful-restart" {
            a.graceful_restart = false;
            continue;
        }
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.into());
        }
        let v = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let bad = |what: &str| format!("{flag}: {v:?} is not {what}");
        match flag.as_str() {
            "--local" => {
                let (ip, len) = v.split_once('/').ok_or_else(|| bad("ADDR/LEN"))?;
                a.local = ip.parse().map_err(|_| bad("ADDR/LEN"))?;
                a.len = len.parse().map_err(|_| bad("ADDR/LEN"))?;
                have_local = true;
            }
            "--peer" => {
                a.peer = v.parse().map_err(|_| bad("an IP address"))?;
                have_peer = true;
            }
            "--asn" => a.asn = v.parse().map_err(|_| bad("an AS number"))?,
            "--peer-asn" => a.peer_asn = v.parse().map_err(|_| bad("an AS number"))?,
            "--count" => a.count = v.parse().map_err(|_| bad("a count"))?,
            "--first" => a.first = v.parse().map_err(|_| bad("an IPv4 address"))?,
            "--seconds" => a.seconds = v.parse().map_err(|_| bad("a number of seconds"))?,
            _ => return Err(format!("unknown argument {flag}\n{USAGE}")),
        }
    }
    if !have_local || !have_peer {
        return Err(format!("--local and --peer are required\n{USAGE}"));
    }
    if u64::from(u32::from(a.first)) + u64::from(a.count) > 1 << 32 {
        return Err("--first + --count runs past 255.255.255.255".into());
    }
    Ok(a)
}

fn epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The neighbor's state and advertised prefix count, from the speaker's
/// own `show bgp summary` view.
fn session(s: &Speaker) -> (String, u64) {
    let v = ctrl::render::bgp::summary_json(s);
    let n = &v["neighbors"][0];
    (
        n["state"].as_str().unwrap_or("").to_string(),
        n["prefixes_advertised"].as_u64().unwrap_or(0),
    )
}

async fn run(a: Args) -> Result<(), String> {
    let cfg = Bgp {
        asn: a.asn,
        router_id: match a.local {
            IpAddr::V4(v) => v,
            IpAddr::V6(_) => Ipv4Addr::new(10, 255, 255, 1),
        },
        graceful_restart: a.graceful_restart.then_some(120),
        neighbors: vec![Neighbor {
            address: PeerAddress::Fixed(a.peer),
            asn: a.peer_asn,
            password_file: None,
            ebgp_multihop: 1,
            bfd: false,
            advertise_ipv4: true,
            advertise_ipv6: false,
            hold_time: 90,
            min_hold_time: 3,
            max_prefixes: 10_000,
            ttl_security: false,
        }],
        drain_delay: Duration::ZERO,
    };
    let port = PortSpec {
        name: "bench".into(),
        device: "none".into(),
        self_ips: vec![SelfIp {
            addr: a.local,
            len: a.len,
        }],
        vlan: None,
        mtu: 1500,
        neighbors: vec![],
        punt_rate: 0,
        queues: None,
    };
    let base = u32::from(a.first);
    let vips: VipSet = (0..a.count)
        .map(|i| IpAddr::V4(Ipv4Addr::from(base + i)))
        .collect();
    let (_tx, rx) = watch::channel(vips);
    println!("start {:.6}", epoch());
    let speaker = Speaker::start(&cfg, None, &[port], rx);
    let deadline = Instant::now() + Duration::from_secs(a.seconds);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("SIGTERM handler: {e}"))?;
    let mut established = false;
    let mut advertised = false;
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = tick.tick() => {}
        }
        if Instant::now() >= deadline {
            return Err(format!("stopped after --seconds {}", a.seconds));
        }
        if advertised {
            continue;
        }
        let (state, n) = session(&speaker);
        if !established && state == "Established" {
            established = true;
            println!("established {:.6}", epoch());
        }
        if established && n >= u64::from(a.count) {
            advertised = true;
            println!("advertised {n} {:.6}", epoch());
        }
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    // The runtime `pollux run` builds (ctrl/src/run.rs).
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pollux-bgp-vips: {e}");
            ExitCode::FAILURE
        }
    }
}

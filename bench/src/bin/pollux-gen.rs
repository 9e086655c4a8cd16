//! `pollux-gen`: a pktgen-style traffic generator on one DPDK port.
//!
//! One EAL worker lcore does everything on the port (TX and RX); the main
//! thread reads commands, signals and prints results.
//!
//! ```text
//!  main thread                         worker lcore (one port, one queue)
//!  ───────────                         ──────────────────────────────────
//!  CLI phase / stdin lines ──Cmd──▶    idle: rx → answer ARP, free the rest
//!  SIGTERM/SIGINT → stop flag          phase: [warm-up] → window → drain
//!  print `result …` lines  ◀─Report─     each loop: rx burst (ARP, count magic,
//!                                        sample latency) + paced tx burst
//!                                      pause: stop polling (memif peer may quit)
//! ```
//!
//! Traffic (what a *phase* sends):
//! - frames of a fixed size (64..1518 B, Ethernet sizes with the FCS, as
//!   pktgen and RFC 2544 count them: the mbuf holds size − 4 bytes) or IMIX
//!   7:4:1 of 64/570/1518;
//! - IPv4 UDP (or TCP ACK segments) toward one destination IP:port (the
//!   VIP) and MAC, from `--flows N` 5-tuples walked over a source range
//!   like pktgen-dpdk's range mode: flow i has source address
//!   `src_ip + i % ips` and source port `src_port + (i / ips) % ports`;
//!   `--flows new` walks the whole range sequentially instead, so that
//!   every packet is a new 5-tuple;
//! - at a fixed rate (TSC pacing: each loop sends what is due, at most a
//!   burst) or at the maximum rate (a full burst every loop); what the TX
//!   ring refuses stays queued and is offered again (no new frames are
//!   built meanwhile), so the generator itself drops nothing and its core
//!   is not spent building frames that are thrown away;
//! - the payload is `magic | epoch`, a sequence number and the TX TSC. A
//!   received frame counts if it carries the magic of the current window's
//!   epoch, whatever its headers (pollux rewrites them, testpmd io does
//!   not); its TSC gives a latency sample (one packet in 16).
//!
//! A phase: optional warm-up (every flow once, or W seconds), then the
//! measurement window (`--secs`), then a drain (`--drain-ms`) in which late
//! frames of the window still count. With `--search`, the window is
//! replaced by an RFC 2544 binary search on the rate for the zero-loss
//! throughput (NDR) and the ≤ 0.1 % loss rate (PDR), each trial a window
//! of `--trial-secs`, at most `--trials` per search, starting from the
//! maximum-rate result as the upper bound.
//!
//! ARP requests for any address in `--arp PREFIX` (e.g. the backend
//! addresses pollux resolves) are answered with the port's MAC, always,
//! also between phases.
//!
//! Output: one machine-readable `result key=value …` line per phase and a
//! human `pollux-gen: …` line. With `--stdin`, each input line is a phase
//! (the same options as the command line, which give the defaults),
//! `pause` (stop polling: let a memif peer quit without crashing it),
//! `resume`, or `quit`; EOF quits. SIGTERM/SIGINT stop at once (the
//! worker leaves its loop before the port is closed); `--timeout` bounds
//! the whole run.
//!
//! ```text
//! pollux-gen --dst-mac MAC [--dst-ip IP] [--dst-port N] [--flows N|new] [--size N|imix]
//!            [--rate PPS|max] [--secs S] [--warm once|S] [--search] ... -- EAL ARGS
//! ```

use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use bench::worker_lcore;
use dataplane::dpdk::{self, Burst, Eal, Mbuf, Mempool, Port, RxQueue, TxBuffer, BURST};
use dataplane::wire::{ipv4, tcp, udp};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

// ------------------------------------------------------------------ options

const USAGE: &str = "usage: pollux-gen [OPTIONS] -- EAL ARGS...
  --port NAME        DPDK device (default net_memif0)
  --lcore N          EAL worker lcore (default: the first of -l that is not --main-lcore)
  --mbufs N          mbufs in the pool (default 32767)      --desc N  ring size (default 1024)
  --queues N         queue pairs on the port, all polled by the one lcore; flow i is
                     sent on queue i % N, as a NIC's RSS keeps a flow on one queue (default 1)
  --dst-mac MAC      destination MAC of the frames (the device under test) [required]
  --dst-ip IP        destination address, the VIP (default 192.0.2.10)
  --dst-port N       destination port (default 80)
  --proto udp|tcp    (default udp; tcp sends ACK segments and needs --size >= 74)
  --src-ip IP        first source address (default 172.16.0.0)
  --src-ips N        source addresses in the range (default 1048576)
  --src-port N       first source port (default 1024)   --src-ports N  ports in the range (default 64512)
  --flows N|new      N flows walked round robin, or `new`: every packet a new 5-tuple (default 1000)
  --size N|imix      frame size with FCS, 64..1518, or IMIX 7:4:1 of 64/570/1518 (default 64)
  --rate PPS|max     offered rate (default max)
  --warm once|S|0    warm-up: every flow once, S seconds, or none (default once)
  --secs S           measurement window (default 2)
  --drain-ms N       keep counting the window's frames after it (default 50)
  --search           RFC 2544: NDR and PDR (<= --pdr-loss) by binary search on the rate
  --trial-secs S     one search trial (default 1)   --trials N  trials per search (default 8)
  --pdr-loss F       loss fraction for the PDR (default 0.001)
  --backoff-ns N     while the TX ring is full, retry every N ns (default 0: every loop)
  --arp PREFIX       answer ARP requests for addresses in PREFIX (e.g. 10.0.1.0/24)
  --stdin            read phases / pause / resume / quit from stdin (one per line)
  --timeout S        stop after S seconds in all (default 600)";

/// Frame sizes: fixed, or the IMIX cycle.
#[derive(Debug, Clone, PartialEq)]
enum Sizes {
    Fixed(u16),
    Imix,
}

/// The 12-frame IMIX cycle: 7 × 64, 4 × 570, 1 × 1518 (simple IMIX), mixed
/// so that large frames are spread out.
const IMIX: [u16; 12] = [64, 570, 64, 64, 570, 64, 1518, 64, 570, 64, 64, 570];

impl Sizes {
    /// The distinct sizes (one frame template each).
    fn distinct(&self) -> Vec<u16> {
        match self {
            Sizes::Fixed(s) => vec![*s],
            Sizes::Imix => vec![64, 570, 1518],
        }
    }

    /// Size of packet number `seq`.
    #[inline]
    fn of(&self, seq: u64) -> u16 {
        match self {
            Sizes::Fixed(s) => *s,
            Sizes::Imix => IMIX[(seq % IMIX.len() as u64) as usize],
        }
    }

    fn name(&self) -> String {
        match self {
            Sizes::Fixed(s) => s.to_string(),
            Sizes::Imix => "imix".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Warm {
    None,
    /// Every flow once (at the phase's rate).
    Once,
    Secs(f64),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Proto {
    Udp,
    Tcp,
}

/// Everything one phase sends and measures.
#[derive(Debug, Clone)]
struct Phase {
    dst_mac: Option<[u8; 6]>,
    dst_ip: Ipv4Addr,
    dst_port: u16,
    proto: Proto,
    space: FlowSpace,
    /// 0 = new-flows mode.
    flows: u64,
    sizes: Sizes,
    /// Packets per second; None = max.
    rate: Option<f64>,
    warm: Warm,
    secs: f64,
    drain_ms: u64,
    search: bool,
    trial_secs: f64,
    trials: u32,
    pdr_loss: f64,
    /// Pause between TX attempts while the ring refuses (ns).
    backoff_ns: u64,
}

#[derive(Debug)]
struct Opts {
    port: String,
    lcore: Option<u32>,
    mbufs: u32,
    desc: u16,
    queues: u16,
    arp: Option<(u32, u32)>,
    stdin: bool,
    timeout: f64,
    phase: Phase,
    eal: Vec<String>,
}

fn default_phase() -> Phase {
    Phase {
        dst_mac: None,
        dst_ip: Ipv4Addr::new(192, 0, 2, 10),
        dst_port: 80,
        proto: Proto::Udp,
        space: FlowSpace {
            ip_base: u32::from(Ipv4Addr::new(172, 16, 0, 0)),
            ips: 1 << 20,
            port_base: 1024,
            ports: 64512,
        },
        flows: 1000,
        sizes: Sizes::Fixed(64),
        rate: None,
        warm: Warm::Once,
        secs: 2.0,
        drain_ms: 50,
        search: false,
        trial_secs: 1.0,
        trials: 8,
        pdr_loss: 0.001,
        backoff_ns: 0,
    }
}

fn parse_mac(s: &str) -> Result<[u8; 6], BoxError> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err(format!("bad MAC {s:?}").into());
    }
    let mut m = [0u8; 6];
    for (b, p) in m.iter_mut().zip(parts) {
        *b = u8::from_str_radix(p, 16).map_err(|_| format!("bad MAC {s:?}"))?;
    }
    Ok(m)
}

/// `A.B.C.D/LEN` → (network, mask).
fn parse_prefix(s: &str) -> Result<(u32, u32), BoxError> {
    let (ip, len) = s.split_once('/').unwrap_or((s, "32"));
    let ip = u32::from(ip.parse::<Ipv4Addr>()?);
    let len: u32 = len.parse()?;
    if len > 32 {
        return Err(format!("bad prefix length in {s:?}").into());
    }
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Ok((ip & mask, mask))
}

/// Applies phase options from `args` onto `p`; returns what it did not
/// know (for the process-level options).
fn parse_phase<'a>(args: &'a [String], p: &mut Phase) -> Result<Vec<&'a String>, BoxError> {
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || -> Result<&String, BoxError> {
            it.next().ok_or_else(|| format!("{a} needs a value").into())
        };
        match a.as_str() {
            "--dst-mac" => p.dst_mac = Some(parse_mac(val()?)?),
            "--dst-ip" => p.dst_ip = val()?.parse()?,
            "--dst-port" => p.dst_port = val()?.parse()?,
            "--proto" => {
                p.proto = match val()?.as_str() {
                    "udp" => Proto::Udp,
                    "tcp" => Proto::Tcp,
                    o => return Err(format!("--proto {o:?}: udp or tcp").into()),
                }
            }
            "--src-ip" => p.space.ip_base = u32::from(val()?.parse::<Ipv4Addr>()?),
            "--src-ips" => p.space.ips = val()?.parse()?,
            "--src-port" => p.space.port_base = val()?.parse()?,
            "--src-ports" => p.space.ports = val()?.parse()?,
            "--flows" => {
                let v = val()?;
                p.flows = if v == "new" { 0 } else { v.parse()? };
                if p.flows == 0 && v != "new" {
                    return Err("--flows must be > 0 (or `new`)".into());
                }
            }
            "--size" => {
                let v = val()?;
                p.sizes = if v == "imix" {
                    Sizes::Imix
                } else {
                    Sizes::Fixed(v.parse()?)
                };
            }
            "--rate" => {
                let v = val()?;
                p.rate = if v == "max" { None } else { Some(v.parse()?) };
            }
            "--warm" => {
                let v = val()?;
                p.warm = match v.as_str() {
                    "once" => Warm::Once,
                    "0" | "none" => Warm::None,
                    s => Warm::Secs(s.parse()?),
                };
            }
            "--secs" => p.secs = val()?.parse()?,
            "--drain-ms" => p.drain_ms = val()?.parse()?,
            "--search" => p.search = true,
            "--trial-secs" => p.trial_secs = val()?.parse()?,
            "--trials" => p.trials = val()?.parse()?,
            "--pdr-loss" => p.pdr_loss = val()?.parse()?,
            "--backoff-ns" => p.backoff_ns = val()?.parse()?,
            _ => rest.push(a),
        }
    }
    check_phase(p)?;
    Ok(rest)
}

fn check_phase(p: &Phase) -> Result<(), BoxError> {
    let min = match p.proto {
        Proto::Udp => MIN_UDP,
        Proto::Tcp => MIN_TCP,
    };
    for s in p.sizes.distinct() {
        if !(min..=1518).contains(&s) {
            return Err(format!("frame size {s} out of {min}..1518 for {:?}", p.proto).into());
        }
    }
    if p.space.ips == 0 || p.space.ports == 0 || p.space.ports > 65536 {
        return Err("--src-ips and --src-ports must be > 0 (ports <= 65536)".into());
    }
    if p.flows > p.space.size() {
        return Err(format!(
            "--flows {} exceeds the source range ({} addresses x {} ports)",
            p.flows, p.space.ips, p.space.ports
        )
        .into());
    }
    if !(p.secs > 0.0 && p.secs <= 300.0 && p.trial_secs > 0.0 && p.trial_secs <= 60.0) {
        return Err("--secs must be in (0, 300] and --trial-secs in (0, 60]".into());
    }
    if matches!(p.rate, Some(r) if !(1.0..=1e9).contains(&r)) {
        return Err("--rate must be in 1..1e9 pps or max".into());
    }
    if matches!(p.warm, Warm::Secs(w) if !(0.0..=60.0).contains(&w)) {
        return Err("--warm must be once, none or 0..60 seconds".into());
    }
    if p.trials == 0 || p.trials > 32 || p.drain_ms > 5000 || p.backoff_ns > 1_000_000 {
        return Err("--trials must be 1..32, --drain-ms <= 5000, --backoff-ns <= 1000000".into());
    }
    Ok(())
}

fn parse_args(args: &[String]) -> Result<Opts, BoxError> {
    let split = args.iter().position(|a| a == "--");
    let (ours, eal) = match split {
        Some(i) => (&args[..i], args[i + 1..].to_vec()),
        None => (args, Vec::new()),
    };
    let mut phase = default_phase();
    let rest = parse_phase(ours, &mut phase)?;
    let mut o = Opts {
        port: "net_memif0".into(),
        lcore: None,
        mbufs: 32767,
        desc: 1024,
        queues: 1,
        arp: None,
        stdin: false,
        timeout: 600.0,
        phase,
        eal,
    };
    let mut it = rest.into_iter();
    while let Some(a) = it.next() {
        let mut val = || -> Result<&String, BoxError> {
            it.next()
                .ok_or_else(|| format!("{a} needs a value\n{USAGE}").into())
        };
        match a.as_str() {
            "--port" => o.port = val()?.clone(),
            "--lcore" => o.lcore = Some(val()?.parse()?),
            "--mbufs" => o.mbufs = val()?.parse()?,
            "--desc" => o.desc = val()?.parse()?,
            "--queues" => o.queues = val()?.parse::<u16>()?.max(1),
            "--arp" => o.arp = Some(parse_prefix(val()?)?),
            "--stdin" => o.stdin = true,
            "--timeout" => o.timeout = val()?.parse()?,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}").into()),
        }
    }
    if o.eal.is_empty() {
        return Err(format!("EAL arguments are missing after --\n{USAGE}").into());
    }
    if o.phase.dst_mac.is_none() {
        return Err(format!("--dst-mac is required\n{USAGE}").into());
    }
    Ok(o)
}

// ------------------------------------------------------------------ flows

/// The source range: `ips` addresses from `ip_base` × `ports` ports from
/// `port_base` (pktgen-dpdk range mode over source IP and source port).
#[derive(Debug, Clone, Copy, PartialEq)]
struct FlowSpace {
    ip_base: u32,
    ips: u32,
    port_base: u16,
    ports: u32,
}

impl FlowSpace {
    fn size(&self) -> u64 {
        u64::from(self.ips) * u64::from(self.ports)
    }

    /// Source (address, port) of flow `i`; the address varies fastest.
    /// Distinct for `i < size()`, then it wraps.
    #[inline]
    fn tuple(&self, i: u64) -> (u32, u16) {
        let ips = u64::from(self.ips);
        let ip = self.ip_base.wrapping_add((i % ips) as u32);
        let port = u64::from(self.port_base) + (i / ips) % u64::from(self.ports);
        (ip, port as u16)
    }
}

/// Flow of packet `seq` in a phase with `flows` flows (0 = every packet a
/// new one).
#[inline]
fn flow_of(seq: u64, flows: u64) -> u64 {
    if flows == 0 {
        seq
    } else {
        seq % flows
    }
}

// ------------------------------------------------------------------ frames

const ETH: usize = 14;
const IP: usize = 20;
const UDP: usize = 8;
const TCP: usize = 20;
/// Payload: magic|epoch (4), sequence (4), TX TSC (8).
const PAYLOAD: usize = 16;
const MIN_UDP: u16 = (ETH + IP + UDP + PAYLOAD + 4) as u16; // 62, so 64 fits
const MIN_TCP: u16 = (ETH + IP + TCP + PAYLOAD + 4) as u16; // 74
/// The magic's top 24 bits ("PXG"); the low byte is the epoch.
const MAGIC: u32 = 0x5058_4700;

/// One frame size's bytes with the variable fields zeroed, and the
/// checksum sums of its constant parts.
#[derive(Debug, Clone)]
struct Template {
    bytes: Vec<u8>,
    l4: usize,
    payload: usize,
    /// Ones-complement sum (unfolded) of the IPv4 header's constant words.
    ip_sum: u32,
    /// Ones-complement sum of pseudo-header + L4 header + payload, constant
    /// words only.
    l4_sum: u32,
}

/// Ones-complement sum of big-endian 16-bit words (odd tail padded).
fn sum16(data: &[u8]) -> u32 {
    let mut s = 0u32;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        s += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        s += u32::from(*b) << 8;
    }
    s
}

fn fold(mut s: u64) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

impl Template {
    /// `size` with FCS: the frame is `size - 4` bytes.
    fn new(p: &Phase, src_mac: [u8; 6], size: u16) -> Template {
        let len = usize::from(size) - 4;
        let l4 = ETH + IP;
        let l4_len = match p.proto {
            Proto::Udp => UDP,
            Proto::Tcp => TCP,
        };
        let payload = l4 + l4_len;
        let mut b = vec![0u8; len];
        b[0..6].copy_from_slice(&p.dst_mac.unwrap_or([0xff; 6]));
        b[6..12].copy_from_slice(&src_mac);
        b[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let ip_len = len - ETH;
        let seg_len = ip_len - IP;
        let protocol = match p.proto {
            Proto::Udp => ipv4::protocol::UDP,
            Proto::Tcp => ipv4::protocol::TCP,
        };
        // The headers with the variable fields (source address and port,
        // both checksums) zero: `fill` writes them per frame.
        ipv4::Repr {
            src: Ipv4Addr::UNSPECIFIED,
            dst: p.dst_ip,
            protocol,
            payload_len: seg_len,
            ttl: 64,
        }
        .emit(&mut b[ETH..]);
        b[ETH + ipv4::field::CHECKSUM.start..ETH + ipv4::field::CHECKSUM.end].fill(0);
        let l4_check = match p.proto {
            Proto::Udp => {
                udp::Repr {
                    src_port: 0,
                    dst_port: p.dst_port,
                    payload_len: seg_len - UDP,
                }
                .emit(&mut b[l4..], 0);
                l4 + udp::CHECKSUM
            }
            Proto::Tcp => {
                tcp::Repr {
                    src_port: 0,
                    dst_port: p.dst_port,
                    seq: 1,
                    ack: 1,
                    flags: tcp::FLAG_ACK,
                    window: 0xffff,
                }
                .emit(&mut b[l4..], 0);
                l4 + tcp::CHECKSUM
            }
        };
        b[l4_check..l4_check + 2].fill(0);
        let seg_len = seg_len as u16;
        let ip_sum = sum16(&b[ETH..l4]);
        // pseudo header: dst (src is variable), protocol, L4 length
        let pseudo = sum16(&p.dst_ip.octets()) + u32::from(protocol) + u32::from(seg_len);
        let l4_sum = pseudo + sum16(&b[l4..]);
        Template {
            bytes: b,
            l4,
            payload,
            ip_sum,
            l4_sum,
        }
    }

    /// Writes the template into `buf` (exactly its length) with the
    /// variable fields and both checksums.
    #[inline]
    fn fill(&self, buf: &mut [u8], src: u32, sport: u16, magic: u32, seq: u32, tsc: u64) {
        buf.copy_from_slice(&self.bytes);
        let ip = ETH;
        buf[ip + 12..ip + 16].copy_from_slice(&src.to_be_bytes());
        let src_sum = (src >> 16) + (src & 0xffff);
        let ipc = !fold(u64::from(self.ip_sum + src_sum));
        buf[ip + 10..ip + 12].copy_from_slice(&ipc.to_be_bytes());
        buf[self.l4..self.l4 + 2].copy_from_slice(&sport.to_be_bytes());
        let pl = self.payload;
        buf[pl..pl + 4].copy_from_slice(&magic.to_be_bytes());
        buf[pl + 4..pl + 8].copy_from_slice(&seq.to_be_bytes());
        buf[pl + 8..pl + 16].copy_from_slice(&tsc.to_be_bytes());
        let var = u64::from(src_sum)
            + u64::from(sport)
            + u64::from(magic >> 16)
            + u64::from(magic & 0xffff)
            + u64::from(seq >> 16)
            + u64::from(seq & 0xffff)
            + (tsc >> 48)
            + ((tsc >> 32) & 0xffff)
            + ((tsc >> 16) & 0xffff)
            + (tsc & 0xffff);
        let mut c = !fold(u64::from(self.l4_sum) + var);
        let at = if self.payload - self.l4 == UDP {
            if c == 0 {
                c = 0xffff; // UDP: 0 means "no checksum"
            }
            self.l4 + 6
        } else {
            self.l4 + 16
        };
        buf[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }
}

/// What a received frame is, to the generator.
#[derive(Debug, PartialEq)]
enum Rx {
    /// Ours: (magic with epoch, sequence, TX TSC, IPv4 destination).
    Magic(u32, u32, u64, u32),
    /// An ARP request; the target address.
    ArpRequest(u32),
    Other,
}

/// Classifies a frame: IPv4 UDP/TCP with our magic after the L4 header
/// (whatever the addresses), or an ARP request.
#[inline]
fn classify(f: &[u8]) -> Rx {
    if f.len() < ETH {
        return Rx::Other;
    }
    let (mut et, mut off) = (u16::from_be_bytes([f[12], f[13]]), ETH);
    if et == 0x8100 && f.len() >= ETH + 4 {
        et = u16::from_be_bytes([f[16], f[17]]);
        off += 4;
    }
    match et {
        0x0800 => classify_ipv4(&f[off..]),
        0x0806 if f.len() >= off + 28 => {
            let a = &f[off..off + 28];
            if a[0..8] == [0, 1, 8, 0, 6, 4, 0, 1] {
                Rx::ArpRequest(u32::from_be_bytes([a[24], a[25], a[26], a[27]]))
            } else {
                Rx::Other
            }
        }
        _ => Rx::Other,
    }
}

fn classify_ipv4(ip: &[u8]) -> Rx {
    if ip.len() < IP || ip[0] >> 4 != 4 {
        return Rx::Other;
    }
    let ihl = usize::from(ip[0] & 0xf) * 4;
    let pl = match ip[9] {
        17 => ihl + UDP,
        6 if ip.len() >= ihl + TCP => ihl + usize::from(ip[ihl + 12] >> 4) * 4,
        _ => return Rx::Other,
    };
    let Some(p) = ip.get(pl..pl + PAYLOAD) else {
        return Rx::Other;
    };
    let magic = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
    if magic & 0xffff_ff00 != MAGIC {
        return Rx::Other;
    }
    let seq = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
    let tsc = u64::from_be_bytes([p[8], p[9], p[10], p[11], p[12], p[13], p[14], p[15]]);
    let dst = u32::from_be_bytes([ip[16], ip[17], ip[18], ip[19]]);
    Rx::Magic(magic, seq, tsc, dst)
}

/// Turns an ARP request (as classified) into the reply from `mac`, in place.
fn arp_reply(f: &mut [u8], mac: [u8; 6]) {
    let off = if u16::from_be_bytes([f[12], f[13]]) == 0x8100 {
        ETH + 4
    } else {
        ETH
    };
    let (req_mac, req_ip, target): ([u8; 6], [u8; 4], [u8; 4]) = {
        let a = &f[off..off + 28];
        (
            a[8..14].try_into().unwrap_or_default(),
            a[14..18].try_into().unwrap_or_default(),
            a[24..28].try_into().unwrap_or_default(),
        )
    };
    f[0..6].copy_from_slice(&req_mac);
    f[6..12].copy_from_slice(&mac);
    let a = &mut f[off..off + 28];
    a[7] = 2; // reply
    a[8..14].copy_from_slice(&mac);
    a[14..18].copy_from_slice(&target);
    a[18..24].copy_from_slice(&req_mac);
    a[24..28].copy_from_slice(&req_ip);
}

// ------------------------------------------------------------------ latency

/// Latency samples (ns), bounded; percentiles at the end.
#[derive(Debug, Default)]
struct Latency {
    samples: Vec<u32>,
}

const LAT_CAP: usize = 1 << 21;
/// One packet in LAT_EVERY (by sequence number) is sampled.
const LAT_EVERY: u32 = 16;

impl Latency {
    #[inline]
    fn add(&mut self, ns: u64) {
        if self.samples.len() < LAT_CAP {
            self.samples.push(ns.min(u64::from(u32::MAX)) as u32);
        }
    }

    /// (p50, p99, max) in ns, nearest-rank; None without samples.
    fn summary(&mut self) -> Option<(u32, u32, u32)> {
        if self.samples.is_empty() {
            return None;
        }
        self.samples.sort_unstable();
        Some((
            percentile(&self.samples, 50.0),
            percentile(&self.samples, 99.0),
            *self.samples.last().unwrap_or(&0),
        ))
    }
}

/// Nearest-rank percentile of sorted, non-empty `s`.
fn percentile(s: &[u32], p: f64) -> u32 {
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

// ------------------------------------------------------------------ search

/// One trial's outcome: frames accepted by the port and frames back.
#[derive(Debug, Clone, Copy, Default)]
struct Trial {
    tx: u64,
    rx: u64,
}

impl Trial {
    fn loss(&self) -> f64 {
        if self.tx == 0 {
            return 1.0;
        }
        self.tx.saturating_sub(self.rx) as f64 / self.tx as f64
    }
}

/// RFC 2544 binary search: the highest rate in `[lo, hi]` whose trial
/// loses at most `max_loss`, with at most `trials` trials (the first at
/// `hi`), stopping early when the interval is within 0.5 % of `hi`.
/// Returns (rate, trials used); rate 0 if no trial passed.
fn search(
    max_loss: f64,
    lo: f64,
    hi: f64,
    trials: u32,
    mut trial: impl FnMut(f64) -> Option<Trial>,
) -> (f64, u32) {
    let (mut lo, mut hi, mut best, mut used) = (lo, hi, 0.0, 0);
    let mut rate = hi;
    while used < trials {
        let Some(t) = trial(rate) else { break };
        used += 1;
        if t.loss() <= max_loss {
            best = rate;
            lo = rate;
            if rate >= hi {
                break;
            }
        } else {
            hi = rate;
        }
        if hi - lo <= hi * 0.005 {
            break;
        }
        rate = (lo + hi) / 2.0;
    }
    (best, used)
}

// ------------------------------------------------------------------ engine

/// Counters of one window.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    /// Frames the port accepted; TX calls that left frames queued (ring
    /// full, retried); frames dropped at the end of the window (still
    /// refused); frames that could not be allocated.
    tx: u64,
    tx_refused: u64,
    tx_dropped: u64,
    no_mbuf: u64,
    /// Our frames of this window's epoch back; of another epoch (late).
    rx: u64,
    rx_stale: u64,
    /// Ours with another IPv4 destination than sent (NATed on the way).
    rx_rewritten: u64,
    /// Frames without our magic (not ARP requests).
    rx_other: u64,
    arp_replies: u64,
    /// TSC ticks from the window's first to its last transmission.
    tx_ticks: u64,
}

/// What a phase reports.
#[derive(Debug, Default)]
struct Report {
    phase: u32,
    desc: String,
    c: Counts,
    warm_tx: u64,
    lat: Option<(u32, u32, u32)>,
    lat_samples: usize,
    ndr: Option<(f64, u32)>,
    pdr: Option<(f64, u32)>,
    aborted: bool,
    secs: f64,
}

enum Cmd {
    Run(u32, Box<Phase>),
    Pause,
    Resume,
}

enum Event {
    Done(Box<Report>),
    Paused,
    Resumed,
}

/// The worker's state: the port, pool and the current window's counters.
struct Engine {
    /// One per queue pair, with `gen_tx[q]` its TX side.
    rx: Vec<RxQueue>,
    pool: Arc<Mempool>,
    mac: [u8; 6],
    arp: Option<(u32, u32)>,
    hz: u64,
    burst: Burst,
    epoch: u8,
    /// The current phase's destination (to count rewritten frames).
    dst: u32,
    seq: u64,
    c: Counts,
    lat: Latency,
    /// Total ARP replies (all phases and idle time), read by main.
    arp_total: Arc<AtomicU64>,
    gen_tx: Vec<TxBuffer>,
    mbufs: Vec<Mbuf>,
}

impl Engine {
    /// Polls every RX queue once: answers ARP, counts and samples our
    /// frames.
    #[inline]
    fn poll_rx(&mut self) -> usize {
        (0..self.rx.len()).map(|q| self.poll_queue(q)).sum()
    }

    /// [`poll_rx`](Self::poll_rx) for queue `q` (ARP answered on it).
    #[inline]
    fn poll_queue(&mut self, q: usize) -> usize {
        let n = self.burst.rx(&self.rx[q]);
        if n == 0 {
            return 0;
        }
        let now = dpdk::tsc();
        let want = MAGIC | u32::from(self.epoch);
        for mut m in self.burst.drain() {
            match classify(m.data()) {
                Rx::Magic(magic, seq, tsc, dst) if magic == want => {
                    self.c.rx += 1;
                    self.c.rx_rewritten += u64::from(dst != self.dst);
                    if seq % LAT_EVERY == 0 {
                        let ticks = now.saturating_sub(tsc);
                        self.lat
                            .add((u128::from(ticks) * 1_000_000_000 / u128::from(self.hz)) as u64);
                    }
                }
                Rx::Magic(..) => self.c.rx_stale += 1,
                Rx::ArpRequest(t) => {
                    if matches!(self.arp, Some((net, mask)) if t & mask == net) {
                        arp_reply(m.data_mut(), self.mac);
                        self.arp_total.fetch_add(1, Relaxed);
                        self.c.arp_replies += 1;
                        self.gen_tx[q].send_now(m);
                    }
                }
                Rx::Other => self.c.rx_other += 1,
            }
        }
        n
    }

    /// Builds `n` packets of `p` (n ≤ BURST) into the (empty) TX buffer
    /// and offers them to the ring. Returns how many were built.
    fn send(&mut self, p: &Phase, t: &[(u16, Template)], n: usize) -> usize {
        if !self.pool.alloc_bulk(n, &mut self.mbufs) {
            self.c.no_mbuf += n as u64;
            return 0;
        }
        let mut built = 0;
        let tsc = dpdk::tsc();
        let magic = MAGIC | u32::from(self.epoch);
        let mut mbufs = std::mem::take(&mut self.mbufs);
        for mut m in mbufs.drain(..) {
            let seq = self.seq;
            self.seq += 1;
            let size = p.sizes.of(seq);
            let tpl = t.iter().find(|(s, _)| *s == size).map(|(_, t)| t);
            let Some(tpl) = tpl else { continue };
            let flow = flow_of(seq, p.flows);
            let (src, sport) = p.space.tuple(flow);
            if !m.set_len(tpl.bytes.len()) {
                continue;
            }
            tpl.fill(m.data_mut(), src, sport, magic, seq as u32, tsc);
            // Each buffer holds two bursts and starts empty: no flush here.
            let q = (flow % self.gen_tx.len() as u64) as usize;
            self.gen_tx[q].push(m);
            built += 1;
        }
        self.mbufs = mbufs;
        self.retry();
        built
    }

    /// Offers the TX buffer to the ring again; what it refuses stays
    /// queued, in order (no frame is dropped by the generator, and a
    /// warm-up misses no flow).
    #[inline]
    fn retry(&mut self) {
        for tx in &mut self.gen_tx {
            self.c.tx += tx.flush_keep() as u64;
        }
        if self.tx_queued() {
            self.c.tx_refused += 1;
        }
    }

    /// Whether a TX ring refused frames that are still queued.
    #[inline]
    fn tx_queued(&self) -> bool {
        self.gen_tx.iter().any(|tx| !tx.is_empty())
    }

    /// Sends `p`'s traffic at `rate` (None = max) for `secs` or until the
    /// port accepted `count` packets, polling RX all along; then drains RX
    /// for `drain_ms`. Returns false if stopped.
    fn stream(
        &mut self,
        p: &Phase,
        t: &[(u16, Template)],
        rate: Option<f64>,
        secs: f64,
        count: Option<u64>,
        stop: &AtomicBool,
    ) -> bool {
        let start = dpdk::tsc();
        let end = start + (secs * self.hz as f64) as u64;
        // Packets built so far: the pacing's and the count's measure.
        let mut built = 0u64;
        let (mut first, mut last) = (0u64, 0u64);
        let (backoff, mut retry_at) = (p.backoff_ns * self.hz / 1_000_000_000, 0u64);
        loop {
            self.poll_rx();
            let now = dpdk::tsc();
            if now >= end || stop.load(Relaxed) {
                break;
            }
            if self.tx_queued() {
                // Ring full: back off a little (RX keeps being polled), so
                // that failed TX calls do not hammer the ring's shared
                // cache lines while the peer drains it.
                if now >= retry_at {
                    self.retry();
                    retry_at = now + backoff;
                }
                continue;
            }
            if count.is_some_and(|c| built >= c) {
                break;
            }
            let due = match rate {
                None => BURST as u64,
                Some(r) => {
                    let should =
                        (u128::from(now - start) * (r as u128) / u128::from(self.hz)) as u64;
                    should.saturating_sub(built).min(BURST as u64)
                }
            };
            let due = count.map_or(due, |c| due.min(c - built));
            if due > 0 {
                built += self.send(p, t, due as usize) as u64;
                if first == 0 {
                    first = now;
                }
                last = now;
            }
        }
        // What the ring still refuses now is dropped (counted as not sent).
        for tx in &mut self.gen_tx {
            let (sent, dropped) = tx.flush();
            self.c.tx += sent as u64;
            self.c.tx_dropped += dropped as u64;
        }
        self.c.tx_ticks = last.saturating_sub(first);
        self.drain(p.drain_ms, stop)
    }

    /// Keeps polling RX for `ms` (late frames of the window still count).
    fn drain(&mut self, ms: u64, stop: &AtomicBool) -> bool {
        let end = dpdk::tsc() + ms * self.hz / 1000;
        while dpdk::tsc() < end {
            if stop.load(Relaxed) {
                return false;
            }
            self.poll_rx();
        }
        true
    }

    /// A new window: new epoch (frames of the previous one become stale),
    /// zeroed counters and latency samples.
    fn new_window(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        self.c = Counts::default();
        self.lat.samples.clear();
    }

    fn run_phase(&mut self, id: u32, p: &Phase, stop: &AtomicBool) -> Report {
        let t: Vec<(u16, Template)> = p
            .sizes
            .distinct()
            .into_iter()
            .map(|s| (s, Template::new(p, self.mac, s)))
            .collect();
        let began = dpdk::tsc();
        self.dst = u32::from(p.dst_ip);
        let mut r = Report {
            phase: id,
            desc: describe(p),
            ..Report::default()
        };
        // Warm-up: its own epoch, not counted.
        self.new_window();
        let ok = match p.warm {
            Warm::None => true,
            Warm::Once if p.flows > 0 => self.stream(p, &t, p.rate, 60.0, Some(p.flows), stop),
            Warm::Once => true,
            Warm::Secs(w) => self.stream(p, &t, p.rate, w, None, stop),
        };
        r.warm_tx = self.c.tx;
        if !ok {
            r.aborted = true;
            return r;
        }
        // The window at the phase's rate.
        self.new_window();
        r.aborted = !self.stream(p, &t, p.rate, p.secs, None, stop);
        r.c = self.c;
        r.lat_samples = self.lat.samples.len();
        r.lat = self.lat.summary();
        if p.search && !r.aborted {
            self.rfc2544(p, &t, &mut r, stop);
        }
        r.secs = (dpdk::tsc() - began) as f64 / self.hz as f64;
        r
    }

    /// NDR then PDR, the window's received rate as the upper bound.
    fn rfc2544(&mut self, p: &Phase, t: &[(u16, Template)], r: &mut Report, stop: &AtomicBool) {
        let hi = rx_pps(&r.c, self.hz).max(1.0);
        let mut trial = |rate: f64| -> Option<Trial> {
            self.new_window();
            if !self.stream(p, t, Some(rate), p.trial_secs, None, stop) {
                return None;
            }
            println!(
                "pollux-gen: trial rate={:.0} tx={} rx={} loss={:.6}",
                rate,
                self.c.tx,
                self.c.rx,
                Trial {
                    tx: self.c.tx,
                    rx: self.c.rx
                }
                .loss()
            );
            Some(Trial {
                tx: self.c.tx,
                rx: self.c.rx,
            })
        };
        let ndr = search(0.0, 0.0, hi, p.trials, &mut trial);
        let pdr = search(p.pdr_loss, ndr.0, hi, p.trials, &mut trial);
        r.ndr = Some(ndr);
        r.pdr = Some(pdr);
        r.aborted = stop.load(Relaxed);
    }
}

fn describe(p: &Phase) -> String {
    format!(
        "flows={} size={} proto={} rate={} dst={}:{}",
        if p.flows == 0 {
            "new".into()
        } else {
            p.flows.to_string()
        },
        p.sizes.name(),
        match p.proto {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        },
        p.rate.map_or("max".into(), |r| format!("{r:.0}")),
        p.dst_ip,
        p.dst_port
    )
}

fn rx_pps(c: &Counts, hz: u64) -> f64 {
    if c.tx_ticks == 0 {
        return 0.0;
    }
    c.rx as f64 * hz as f64 / c.tx_ticks as f64
}

/// The worker lcore: idle polling (ARP) between commands, phases on demand.
fn worker(
    mut e: Engine,
    mut cmds: UnboundedReceiver<Cmd>,
    events: UnboundedSender<Event>,
    stop: &AtomicBool,
) {
    let mut paused = false;
    while !stop.load(Relaxed) {
        match cmds.try_recv() {
            Ok(Cmd::Run(id, p)) => {
                let r = e.run_phase(id, &p, stop);
                let _ = events.send(Event::Done(Box::new(r)));
            }
            Ok(Cmd::Pause) => {
                paused = true;
                let _ = events.send(Event::Paused);
            }
            Ok(Cmd::Resume) => {
                paused = false;
                let _ = events.send(Event::Resumed);
            }
            Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => break,
            Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {}
        }
        if paused {
            std::thread::sleep(Duration::from_millis(1));
        } else {
            e.poll_rx();
        }
    }
}

// ------------------------------------------------------------------ output

fn print_report(r: &Report, hz: u64, arp_total: u64) {
    let c = &r.c;
    let secs = c.tx_ticks as f64 / hz as f64;
    let mpps = |n: u64| {
        if secs > 0.0 {
            n as f64 / secs / 1e6
        } else {
            0.0
        }
    };
    let loss = Trial { tx: c.tx, rx: c.rx }.loss();
    let us = |ns: u32| format!("{:.2}", f64::from(ns) / 1000.0);
    let (p50, p99, max) = r
        .lat
        .map_or(("".into(), "".into(), "".into()), |(a, b, m)| {
            (us(a), us(b), us(m))
        });
    let mut line = format!(
        "result phase={} {} warm_tx={} window_s={secs:.3} tx={} tx_refused={} tx_dropped={} no_mbuf={} rx={} rx_rewritten={} rx_stale={} rx_other={} tx_mpps={:.3} rx_mpps={:.3} loss={loss:.6} lat_p50_us={p50} lat_p99_us={p99} lat_max_us={max} lat_samples={} arp_replies={} arp_total={arp_total} aborted={} phase_s={:.2}",
        r.phase, r.desc, r.warm_tx, c.tx, c.tx_refused, c.tx_dropped, c.no_mbuf, c.rx, c.rx_rewritten, c.rx_stale, c.rx_other,
        mpps(c.tx), mpps(c.rx), r.lat_samples, c.arp_replies, u8::from(r.aborted), r.secs,
    );
    for (k, v) in [("ndr", r.ndr), ("pdr", r.pdr)] {
        if let Some((rate, n)) = v {
            line += &format!(" {k}_mpps={:.3} {k}_trials={n}", rate / 1e6);
        }
    }
    println!("{line}");
    println!(
        "pollux-gen: phase {}: {}: sent {:.2} Mpps, back {:.2} Mpps ({:.3} % lost), latency p50 {p50} µs p99 {p99} µs max {max} µs{}",
        r.phase,
        r.desc,
        mpps(c.tx),
        mpps(c.rx),
        loss * 100.0,
        match (r.ndr, r.pdr) {
            (Some(n), Some(p)) => format!(", NDR {:.3} Mpps, PDR {:.3} Mpps", n.0 / 1e6, p.0 / 1e6),
            _ => String::new(),
        }
    );
}

// ------------------------------------------------------------------ main

/// Lines of stdin, read by a plain thread (tokio's stdin is not enabled
/// in the workspace).
fn stdin_lines() -> UnboundedReceiver<String> {
    let (tx, rx) = unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Feeds commands to the worker and prints its events until done.
async fn control(
    o: &Opts,
    cmds: UnboundedSender<Cmd>,
    mut events: UnboundedReceiver<Event>,
    hz: u64,
    arp_total: impl Fn() -> u64,
) -> Result<&'static str, BoxError> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let deadline = tokio::time::sleep(Duration::from_secs_f64(o.timeout));
    tokio::pin!(deadline);
    let mut lines = if o.stdin {
        Some(stdin_lines())
    } else {
        cmds.send(Cmd::Run(1, Box::new(o.phase.clone())))?;
        None
    };
    let (mut pending, mut next_id, mut eof) = (u32::from(!o.stdin), 1u32, !o.stdin);
    loop {
        if eof && pending == 0 {
            return Ok(if o.stdin { "quit" } else { "done" });
        }
        tokio::select! {
            _ = term.recv() => return Ok("SIGTERM"),
            _ = int.recv() => return Ok("SIGINT"),
            _ = &mut deadline => return Ok("--timeout"),
            ev = events.recv() => match ev {
                Some(Event::Done(r)) => { pending -= 1; print_report(&r, hz, arp_total()); }
                Some(Event::Paused) => println!("pollux-gen: paused"),
                Some(Event::Resumed) => println!("pollux-gen: resumed"),
                None => return Err("the worker left its loop".into()),
            },
            line = async { lines.as_mut()?.recv().await }, if !eof => {
                let Some(line) = line else { eof = true; continue };
                let words: Vec<String> = line.split_whitespace().map(String::from).collect();
                match words.first().map(String::as_str) {
                    None => {}
                    Some("quit") => eof = true,
                    Some("pause") => cmds.send(Cmd::Pause)?,
                    Some("resume") => cmds.send(Cmd::Resume)?,
                    Some(_) => {
                        let mut p = o.phase.clone();
                        match parse_phase(&words, &mut p) {
                            Ok(rest) if rest.is_empty() => {
                                next_id += 1;
                                pending += 1;
                                cmds.send(Cmd::Run(next_id - 1, Box::new(p)))?;
                            }
                            Ok(rest) => println!("pollux-gen: error: unknown phase options {rest:?}"),
                            Err(e) => println!("pollux-gen: error: {e}"),
                        }
                    }
                }
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
    let pool = Arc::new(Mempool::new("pxgen_pool", o.mbufs, 256, -1)?);
    let mut port = Port::by_name(&o.port)?;
    port.configure(o.queues, o.desc, &pool, false)?;
    port.start()?;
    let mac = port.mac()?.0;
    let hz = dpdk::tsc_hz();
    let fmt_mac = |m: [u8; 6]| m.map(|b| format!("{b:02x}")).join(":");
    println!(
        "pollux-gen: DPDK {}; port {} ({:?}, driver {}, mac {}) on worker lcore {lcore}; TSC {} MHz; dst mac {}; ARP for {}",
        dpdk::version(),
        o.port,
        port.id,
        port.driver,
        fmt_mac(mac),
        hz / 1_000_000,
        fmt_mac(o.phase.dst_mac.unwrap_or_default()),
        o.arp.map_or("nothing".into(), |(n, m)| format!("{}/{}", Ipv4Addr::from(n), m.count_ones())),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let arp_total = Arc::new(AtomicU64::new(0));
    let (cmd_tx, cmd_rx) = unbounded_channel();
    let (ev_tx, ev_rx) = unbounded_channel();
    let (rx, tx): (Vec<_>, Vec<_>) = port.take_queues().into_iter().unzip();
    if rx.len() != usize::from(o.queues) {
        return Err(format!(
            "the port opened {} of the {} queues asked for",
            rx.len(),
            o.queues
        )
        .into());
    }
    let engine = Engine {
        rx,
        pool: pool.clone(),
        mac,
        arp: o.arp,
        hz,
        burst: Burst::default(),
        epoch: 0,
        dst: 0,
        seq: 0,
        c: Counts::default(),
        lat: Latency::default(),
        arp_total: arp_total.clone(),
        gen_tx: tx.into_iter().map(TxBuffer::new).collect(),
        mbufs: Vec::with_capacity(BURST),
    };
    {
        let stop = stop.clone();
        dpdk::launch(lcore, move || {
            worker(engine, cmd_rx, ev_tx, &stop);
            Ok(())
        })?;
    }
    println!("pollux-gen: running");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let why = rt.block_on(control(&o, cmd_tx, ev_rx, hz, || arp_total.load(Relaxed)));
    // Stop polling before the port closes (a memif peer must not see us
    // vanish while we poll, nor we it).
    stop.store(true, Relaxed);
    let rc = dpdk::wait(lcore);
    let why = why?;
    let ps = port.stats();
    println!(
        "pollux-gen: stopped by {why} (worker rc {rc}); ARP replies {}; port ipackets {} opackets {} imissed {} oerrors {} rx_nombuf {}",
        arp_total.load(Relaxed),
        ps.ipackets,
        ps.opackets,
        ps.imissed,
        ps.oerrors,
        ps.rx_nombuf
    );
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
    match parse_args(&args).and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pollux-gen: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    fn v(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn phase(extra: &str) -> Phase {
        let mut p = default_phase();
        p.dst_mac = Some([2, 0, 0, 0, 0, 2]);
        parse_phase(&v(extra), &mut p).unwrap();
        p
    }

    const SRC_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

    fn frame(p: &Phase, size: u16, src: u32, sport: u16, seq: u32, tsc: u64) -> Vec<u8> {
        let t = Template::new(p, SRC_MAC, size);
        let mut b = vec![0u8; t.bytes.len()];
        t.fill(&mut b, src, sport, MAGIC | 7, seq, tsc);
        b
    }

    /// Checks the frame with etherparse: addresses, lengths, both checksums.
    fn check_frame(p: &Phase, b: &[u8], src: u32, sport: u16) {
        let pkt = SlicedPacket::from_ethernet(b).unwrap();
        let Some(NetSlice::Ipv4(ip)) = pkt.net else {
            panic!("not IPv4")
        };
        let iph = ip.header().to_header();
        assert_eq!(
            iph.header_checksum,
            iph.calc_header_checksum(),
            "IPv4 checksum"
        );
        assert_eq!(iph.source, src.to_be_bytes());
        assert_eq!(iph.destination, p.dst_ip.octets());
        assert_eq!(usize::from(iph.total_len), b.len() - ETH);
        match pkt.transport {
            Some(TransportSlice::Udp(u)) => {
                let h = u.to_header();
                assert_eq!((h.source_port, h.destination_port), (sport, p.dst_port));
                assert_eq!(usize::from(h.length), b.len() - ETH - IP);
                let want = h.calc_checksum_ipv4(&iph, u.payload()).unwrap();
                assert_eq!(h.checksum, want, "UDP checksum");
            }
            Some(TransportSlice::Tcp(t)) => {
                let h = t.to_header();
                assert_eq!((h.source_port, h.destination_port), (sport, p.dst_port));
                assert!(h.ack && !h.syn);
                let want = h.calc_checksum_ipv4(&iph, t.payload()).unwrap();
                assert_eq!(h.checksum, want, "TCP checksum");
            }
            other => panic!("unexpected transport {other:?}"),
        }
    }

    #[test]
    fn frames_have_correct_checksums_at_every_size() {
        let udp = phase("");
        for size in [64u16, 65, 128, 570, 1024, 1518] {
            for (src, sport, seq, tsc) in [
                (0xac10_0000u32, 1024u16, 0u32, 0u64),
                (0xac1f_ffff, 65535, u32::MAX, u64::MAX),
                (0x0a00_0001, 4242, 0x1234_5678, 0x0123_4567_89ab_cdef),
            ] {
                let b = frame(&udp, size, src, sport, seq, tsc);
                assert_eq!(b.len(), usize::from(size) - 4);
                check_frame(&udp, &b, src, sport);
            }
        }
        let tcp = phase("--proto tcp --size 74");
        for size in [74u16, 1518] {
            let b = frame(&tcp, size, 0xac10_0102, 5555, 99, 123_456_789);
            check_frame(&tcp, &b, 0xac10_0102, 5555);
        }
    }

    #[test]
    fn udp_checksum_zero_is_sent_as_all_ones() {
        // Search a few sequence numbers for one whose checksum folds to 0.
        let p = phase("");
        let t = Template::new(&p, SRC_MAC, 64);
        let mut b = vec![0u8; t.bytes.len()];
        let mut seen = false;
        for seq in 0..200_000u32 {
            t.fill(&mut b, 0xac10_0000, 1024, MAGIC, seq, 0);
            let c = u16::from_be_bytes([b[ETH + IP + 6], b[ETH + IP + 7]]);
            assert_ne!(c, 0);
            seen |= c == 0xffff;
        }
        assert!(seen, "no case of a zero checksum in the range");
    }

    #[test]
    fn classify_finds_the_magic_whatever_the_headers() {
        let p = phase("");
        let mut b = frame(&p, 64, 0xac10_0001, 2000, 77, 999);
        assert_eq!(
            classify(&b),
            Rx::Magic(MAGIC | 7, 77, 999, u32::from(p.dst_ip))
        );
        // NAT rewrote the destination: still ours, another destination.
        b[ETH + 16..ETH + 20].copy_from_slice(&[10, 0, 1, 3]);
        assert_eq!(classify(&b), Rx::Magic(MAGIC | 7, 77, 999, 0x0a00_0103));
        // TCP: the payload is found by the data offset.
        let t = phase("--proto tcp --size 90");
        let b = frame(&t, 90, 1, 2, 5, 6);
        assert!(matches!(classify(&b), Rx::Magic(_, 5, 6, _)));
        assert_eq!(classify(&b[..40]), Rx::Other);
        let mut x = b.clone();
        x[ETH + IP + 20] ^= 0xff; // not our magic
        assert_eq!(classify(&x), Rx::Other);
    }

    #[test]
    fn arp_requests_are_answered_with_our_mac() {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[2, 0, 0, 0, 0, 9]); // requester
        f.extend_from_slice(&[8, 6, 0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&[2, 0, 0, 0, 0, 9, 10, 0, 0, 1]); // sha, spa
        f.extend_from_slice(&[0, 0, 0, 0, 0, 0, 10, 0, 1, 3]); // tha, tpa
        f.resize(60, 0);
        assert_eq!(classify(&f), Rx::ArpRequest(0x0a00_0103));
        arp_reply(&mut f, SRC_MAC);
        assert_eq!(&f[0..6], &[2, 0, 0, 0, 0, 9]);
        assert_eq!(&f[6..12], &SRC_MAC);
        assert_eq!(&f[20..22], &[0, 2]);
        assert_eq!(&f[22..28], &SRC_MAC);
        assert_eq!(&f[28..32], &[10, 0, 1, 3]);
        assert_eq!(&f[32..38], &[2, 0, 0, 0, 0, 9]);
        assert_eq!(&f[38..42], &[10, 0, 0, 1]);
        assert_eq!(classify(&f), Rx::Other, "a reply is not a request");
        assert_eq!(
            parse_prefix("10.0.1.7/24").unwrap(),
            (0x0a00_0100, 0xffff_ff00)
        );
    }

    #[test]
    fn flows_walk_the_range_like_pktgen() {
        let s = FlowSpace {
            ip_base: 0xac10_0000,
            ips: 4,
            port_base: 1000,
            ports: 3,
        };
        assert_eq!(s.size(), 12);
        let all: Vec<_> = (0..12).map(|i| s.tuple(i)).collect();
        assert_eq!(all[0], (0xac10_0000, 1000));
        assert_eq!(all[1], (0xac10_0001, 1000));
        assert_eq!(all[4], (0xac10_0000, 1001));
        assert_eq!(all[11], (0xac10_0003, 1002));
        let distinct: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(distinct.len(), 12);
        assert_eq!(s.tuple(12), s.tuple(0), "wraps after the range");
        // N flows: round robin; new-flow mode: every packet its own.
        assert_eq!(flow_of(2500, 1000), 500);
        assert_eq!(flow_of(2500, 0), 2500);
        let d = default_phase().space;
        let new: std::collections::HashSet<_> =
            (0..300_000).map(|i| d.tuple(flow_of(i, 0))).collect();
        assert_eq!(new.len(), 300_000);
        assert!(d.size() > 60_000_000_000);
    }

    #[test]
    fn imix_is_7_4_1() {
        let s = Sizes::Imix;
        let mut n = std::collections::HashMap::new();
        for seq in 0..1200 {
            *n.entry(s.of(seq)).or_insert(0) += 1;
        }
        assert_eq!((n[&64], n[&570], n[&1518]), (700, 400, 100));
        let mean = (0..12).map(|i| f64::from(s.of(i))).sum::<f64>() / 12.0;
        assert!((mean - 353.83).abs() < 0.01);
        assert_eq!(Sizes::Fixed(128).of(5), 128);
        assert_eq!(s.distinct(), vec![64, 570, 1518]);
    }

    /// A link that forwards up to `cap` pps and drops the excess.
    fn link(cap: f64) -> impl FnMut(f64) -> Option<Trial> {
        move |rate: f64| {
            let tx = rate as u64;
            Some(Trial {
                tx,
                rx: tx.min(cap as u64),
            })
        }
    }

    #[test]
    fn rfc2544_search_finds_ndr_and_pdr() {
        let cap = 7_300_000.0;
        let (ndr, n) = search(0.0, 0.0, 10e6, 16, link(cap));
        assert!(ndr <= cap && ndr >= cap * 0.99, "ndr {ndr}");
        assert!(n <= 16);
        // PDR: 0.1 % loss allowed: up to cap / 0.999.
        let (pdr, _) = search(0.001, ndr, 10e6, 16, link(cap));
        assert!(pdr >= ndr && pdr <= cap / 0.999 + 1.0, "pdr {pdr}");
        // The upper bound passes: one trial.
        assert_eq!(search(0.0, 0.0, 5e6, 8, link(cap)), (5e6, 1));
        // Nothing passes: 0; the trial budget is respected.
        let (r, n) = search(0.0, 0.0, 5e6, 5, |_| Some(Trial { tx: 100, rx: 0 }));
        assert_eq!((r, n), (0.0, 5));
        // A stopped trial ends the search.
        assert_eq!(search(0.0, 0.0, 5e6, 5, |_| None), (0.0, 0));
    }

    #[test]
    fn latency_percentiles_are_nearest_rank() {
        let mut l = Latency::default();
        assert_eq!(l.summary(), None);
        for ns in (1..=100).rev() {
            l.add(ns * 1000);
        }
        assert_eq!(l.summary(), Some((50_000, 99_000, 100_000)));
        let s = [5u32];
        assert_eq!((percentile(&s, 50.0), percentile(&s, 99.0)), (5, 5));
    }

    #[test]
    fn args_and_phase_lines() {
        let o = parse_args(&v("--dst-mac 02:00:00:00:00:02 --flows new --size imix --rate 1e6 --warm 0.5 --arp 10.0.1.0/24 --stdin -- -l 0,1")).unwrap();
        assert_eq!(o.phase.flows, 0);
        assert_eq!(o.phase.sizes, Sizes::Imix);
        assert_eq!(o.phase.rate, Some(1e6));
        assert_eq!(o.phase.warm, Warm::Secs(0.5));
        assert!(o.stdin);
        assert_eq!(o.eal, v("-l 0,1"));
        assert!(
            parse_args(&v("--flows 10 -- -l 0")).is_err(),
            "--dst-mac is required"
        );
        assert!(parse_args(&v("--dst-mac 1:2:3 -- -l 0")).is_err());
        let mut p = default_phase();
        assert!(
            parse_phase(&v("--proto tcp --size 64"), &mut p).is_err(),
            "tcp needs 74 B"
        );
        let mut p = default_phase();
        assert!(parse_phase(&v("--size 1519"), &mut p).is_err());
        let mut p = default_phase();
        assert!(parse_phase(&v("--src-ips 10 --src-ports 10 --flows 101"), &mut p).is_err());
    }
}

//! Packet capture from the workers: one [`Slot`] per worker, made at
//! start-up, idle until ctrl arms it; ctrl holds a [`Capture`] while one
//! runs.
//!
//! ```text
//!   worker (per RX burst, per TX flush)        ctrl (capture task)
//!   ───────────────────────────────────        ────────────────────
//!   armed? ── no: nothing more (one load)      arm: buffers → free, spec
//!     └ yes: port? filter? ── a buffer         drain: full → frames → pcapng
//!            from free, copy, → full            → buffers back to free
//!            none free: dropped += 1            disarm
//! ```
//!
//! The worker never allocates, frees, locks or waits: the buffers are
//! ctrl's (allocated when a capture starts, freed when it ends), handed
//! back and forth over two bounded lock-free queues. A worker that finds
//! no free buffer counts the frame as dropped and goes on: a slow reader
//! costs frames of the capture, never time of the packet path.

use std::net::IpAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use crossbeam::queue::ArrayQueue;

use crate::dpdk::Clock;

/// Bytes kept of a frame: a whole frame at MTU 1500 with a VLAN tag fits
/// (jumbo frames are cut here; the record keeps their original length).
pub const SNAP: usize = 2048;

/// Buffers per worker while a capture runs (8 MiB of ctrl's memory per
/// worker, only then): about 4 ms of a worker's line rate at 1 Mpps, what
/// ctrl's 1 ms drain needs with room to spare.
pub const RECORDS: usize = 4096;

/// Which way a frame crossed the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Received (after the PMD's receive).
    In,
    /// Sent (before the PMD's transmit).
    Out,
}

/// One captured frame.
#[derive(Debug)]
pub struct Record {
    /// The capture it belongs to (a worker may still file one for the
    /// previous capture while ctrl starts the next).
    pub generation: u64,
    /// The worker's clock, ns ([`Clock::now`]).
    pub at_ns: u64,
    pub port: u16,
    pub dir: Dir,
    /// The frame's length on the wire; `len` of it were kept.
    pub orig_len: u32,
    pub len: u16,
    pub data: [u8; SNAP],
}

impl Record {
    pub fn new() -> Box<Record> {
        Box::new(Record {
            generation: 0,
            at_ns: 0,
            port: 0,
            dir: Dir::In,
            orig_len: 0,
            len: 0,
            data: [0; SNAP],
        })
    }

    pub fn frame(&self) -> &[u8] {
        &self.data[..usize::from(self.len)]
    }
}

/// Which frames a capture keeps: every part set must match (as tcpdump's
/// `host H and port P and PROTO`). `host` matches either address, `port`
/// either TCP/UDP port. Frames that are not IP match only an empty filter.
/// IPv6 extension headers are not walked: the protocol is the first next
/// header; IPv4 fragments after the first have no port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Filter {
    pub host: Option<IpAddr>,
    pub port: Option<u16>,
    /// The IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6).
    pub proto: Option<u8>,
}

impl FromStr for Filter {
    type Err = String;

    /// `HOST`, `PORT`, `PROTO` or any of them joined by `/`, in any order:
    /// `10.0.0.5`, `53`, `udp`, `10.0.0.5/80/tcp`. PROTO is `tcp`, `udp`,
    /// `icmp`, `icmpv6` or `proto=N`.
    fn from_str(s: &str) -> Result<Filter, String> {
        let mut f = Filter::default();
        for part in s.split('/').filter(|p| !p.is_empty()) {
            let proto = match part.to_ascii_lowercase().as_str() {
                "tcp" => Some(6),
                "udp" => Some(17),
                "icmp" => Some(1),
                "icmpv6" | "icmp6" => Some(58),
                p => match p.strip_prefix("proto=") {
                    Some(n) => Some(
                        n.parse()
                            .map_err(|_| format!("filter {s:?}: {part:?} is not proto=0..255"))?,
                    ),
                    None => None,
                },
            };
            let dup = |what: &str| format!("filter {s:?}: more than one {what}");
            if let Some(p) = proto {
                if f.proto.replace(p).is_some() {
                    return Err(dup("protocol"));
                }
            } else if let Ok(a) = part.parse::<IpAddr>() {
                if f.host.replace(a).is_some() {
                    return Err(dup("host"));
                }
            } else if let Ok(p) = part.parse::<u16>() {
                if f.port.replace(p).is_some() {
                    return Err(dup("port"));
                }
            } else {
                return Err(format!(
                    "filter {s:?}: {part:?} is not a host address, a port or a protocol \
                     (tcp, udp, icmp, icmpv6, proto=N)"
                ));
            }
        }
        Ok(f)
    }
}

impl std::fmt::Display for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(h) = self.host {
            parts.push(h.to_string());
        }
        if let Some(p) = self.port {
            parts.push(p.to_string());
        }
        match self.proto {
            Some(6) => parts.push("tcp".into()),
            Some(17) => parts.push("udp".into()),
            Some(1) => parts.push("icmp".into()),
            Some(58) => parts.push("icmpv6".into()),
            Some(n) => parts.push(format!("proto={n}")),
            None => {}
        }
        if parts.is_empty() {
            return f.write_str("all");
        }
        f.write_str(&parts.join("/"))
    }
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }

    /// Whether `frame` (Ethernet, maybe one 802.1Q tag) matches.
    pub fn matches(&self, frame: &[u8]) -> bool {
        if self.is_empty() {
            return true;
        }
        let at = |i: usize| frame.get(i).copied().unwrap_or(0);
        let mut l3 = 14;
        let mut ethertype = u16::from_be_bytes([at(12), at(13)]);
        if ethertype == 0x8100 {
            l3 = 18;
            ethertype = u16::from_be_bytes([at(16), at(17)]);
        }
        let ip = frame.get(l3..).unwrap_or(&[]);
        let (proto, src, dst, l4): (u8, IpAddr, IpAddr, Option<usize>) = match ethertype {
            0x0800 if ip.len() >= 20 => {
                let ihl = usize::from(ip[0] & 0x0f) * 4;
                let first = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff == 0;
                let a = |i: usize| IpAddr::from([ip[i], ip[i + 1], ip[i + 2], ip[i + 3]]);
                (ip[9], a(12), a(16), first.then_some(ihl))
            }
            0x86dd if ip.len() >= 40 => {
                let a = |i: usize| {
                    let mut b = [0u8; 16];
                    b.copy_from_slice(&ip[i..i + 16]);
                    IpAddr::from(b)
                };
                (ip[6], a(8), a(24), Some(40))
            }
            _ => return false,
        };
        if self.proto.is_some_and(|p| p != proto) {
            return false;
        }
        if self.host.is_some_and(|h| h != src && h != dst) {
            return false;
        }
        if let Some(want) = self.port {
            let ports = l4
                .filter(|_| proto == 6 || proto == 17)
                .and_then(|o| ip.get(o..o + 4));
            let Some(p) = ports else {
                return false;
            };
            let (sp, dp) = (
                u16::from_be_bytes([p[0], p[1]]),
                u16::from_be_bytes([p[2], p[3]]),
            );
            if sp != want && dp != want {
                return false;
            }
        }
        true
    }
}

/// What one capture wants: set by ctrl before it arms the slots.
#[derive(Debug, Clone, Copy, Default)]
pub struct Spec {
    pub generation: u64,
    /// The port's index in the data plane.
    pub port: usize,
    pub filter: Filter,
}

/// A worker's capture slot.
#[derive(Debug)]
pub struct Slot {
    armed: AtomicBool,
    spec: ArcSwap<Spec>,
    /// Empty buffers (ctrl → worker) and filed records (worker → ctrl).
    pub free: ArrayQueue<Box<Record>>,
    pub full: ArrayQueue<Box<Record>>,
    /// Frames that matched but found no free buffer.
    pub dropped: AtomicU64,
    /// The worker's clock (records are dated on it).
    pub clock: Clock,
}

impl Slot {
    pub fn new(clock: Clock) -> Slot {
        Slot {
            armed: AtomicBool::new(false),
            spec: ArcSwap::from_pointee(Spec::default()),
            free: ArrayQueue::new(RECORDS),
            full: ArrayQueue::new(RECORDS),
            dropped: AtomicU64::new(0),
            clock,
        }
    }

    /// The whole cost of capture while none runs: one load (the caller
    /// branches on it). Acquire: a worker that sees it set sees the spec
    /// and the buffers ctrl put in place before setting it.
    #[inline(always)]
    pub fn armed(&self) -> bool {
        self.armed.load(Ordering::Acquire)
    }

    /// ctrl: starts filing frames for `spec` (buffers already in `free`).
    pub fn arm(&self, spec: Spec) {
        self.dropped.store(0, Ordering::Relaxed);
        self.spec.store(Arc::new(spec));
        self.armed.store(true, Ordering::Release);
    }

    /// ctrl: stops filing. A worker in the middle of a burst may still
    /// file that burst's frames (under the old generation).
    pub fn disarm(&self) {
        self.armed.store(false, Ordering::Release);
    }

    /// Worker, when armed: files the frames of `port` that pass the filter.
    #[cold]
    #[inline(never)]
    pub fn record<'a>(&self, port: usize, dir: Dir, frames: impl Iterator<Item = &'a [u8]>) {
        let spec = **self.spec.load();
        if spec.port != port {
            return;
        }
        let at_ns = self.clock.now();
        let mut dropped = 0;
        for frame in frames {
            if !spec.filter.matches(frame) {
                continue;
            }
            let Some(mut r) = self.free.pop() else {
                dropped += 1;
                continue;
            };
            let len = frame.len().min(SNAP);
            r.data[..len].copy_from_slice(&frame[..len]);
            r.len = len as u16;
            r.orig_len = frame.len() as u32;
            r.generation = spec.generation;
            r.at_ns = at_ns;
            r.port = port as u16;
            r.dir = dir;
            // Cannot be full: as many buffers as places. Were it, the
            // record would be freed here, once.
            if self.full.push(r).is_err() {
                dropped += 1;
            }
        }
        if dropped > 0 {
            self.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
    }
}

/// A running capture ([`Dataplane::capture`](crate::api::Dataplane::capture)): the workers file frames
/// until it is stopped or dropped. It holds no borrow of the data plane:
/// a task may own it.
#[derive(Debug)]
pub struct Capture {
    pub(crate) slots: Vec<Arc<Slot>>,
    pub(crate) busy: Arc<AtomicBool>,
    pub(crate) generation: u64,
    /// Per worker: its clock and the system clock at the start (ns).
    pub(crate) epochs: Vec<(u64, u64)>,
    /// The records of one [`drain`](Capture::drain), reused.
    pub(crate) batch: Vec<(u64, usize, Box<Record>)>,
}

/// One captured frame, as [`Capture::drain`] hands it out.
#[derive(Debug)]
pub struct CapturedFrame<'a> {
    /// When the worker saw it (after receive, before transmit), ns since
    /// the Unix epoch.
    pub unix_ns: u64,
    pub dir: Dir,
    /// Its length on the wire (`data` holds at most [`SNAP`]).
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
            for _ in 0..RECORDS {
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
        self.slots
            .iter()
            .map(|s| s.dropped.load(Ordering::Relaxed))
            .sum()
    }

    /// Stops the workers filing (what they filed can still be drained).
    pub fn stop(&self) {
        for s in &self.slots {
            s.disarm();
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop();
        for s in &self.slots {
            while s.free.pop().is_some() {}
            while s.full.pop().is_some() {}
        }
        self.busy.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, vlan: bool) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        if vlan {
            f.extend_from_slice(&[0x81, 0x00, 0x00, 0x07]);
        }
        f.extend_from_slice(&[0x08, 0x00]);
        let mut ip = vec![0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0];
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        ip.extend_from_slice(&sport.to_be_bytes());
        ip.extend_from_slice(&dport.to_be_bytes());
        ip.extend_from_slice(&[0, 8, 0, 0]);
        f.extend_from_slice(&ip);
        f
    }

    #[test]
    fn filters_parse_in_any_order_and_refuse_nonsense() {
        let f: Filter = "10.0.0.5/80/tcp".parse().unwrap();
        assert_eq!(
            f,
            Filter {
                host: Some("10.0.0.5".parse().unwrap()),
                port: Some(80),
                proto: Some(6)
            }
        );
        assert_eq!(f, "tcp/80/10.0.0.5".parse().unwrap());
        assert_eq!(f.to_string(), "10.0.0.5/80/tcp");
        assert_eq!("udp".parse::<Filter>().unwrap().proto, Some(17));
        assert_eq!("proto=47".parse::<Filter>().unwrap().proto, Some(47));
        assert_eq!(
            "fd00::1".parse::<Filter>().unwrap().host,
            Some("fd00::1".parse().unwrap())
        );
        assert!("".parse::<Filter>().unwrap().is_empty());
        assert!("80/81"
            .parse::<Filter>()
            .unwrap_err()
            .contains("more than one port"));
        assert!("bogus".parse::<Filter>().is_err());
        assert!("proto=300".parse::<Filter>().is_err());
    }

    #[test]
    fn filters_match_host_port_and_protocol_either_way() {
        let f = udp4([10, 0, 0, 1], [10, 0, 0, 2], 1234, 53, false);
        let tagged = udp4([10, 0, 0, 1], [10, 0, 0, 2], 1234, 53, true);
        for (s, want) in [
            ("", true),
            ("10.0.0.1", true),
            ("10.0.0.2", true),
            ("10.0.0.3", false),
            ("53", true),
            ("1234", true),
            ("80", false),
            ("udp", true),
            ("tcp", false),
            ("10.0.0.2/53/udp", true),
            ("10.0.0.2/53/tcp", false),
        ] {
            let filter: Filter = s.parse().unwrap();
            assert_eq!(filter.matches(&f), want, "{s}");
            assert_eq!(filter.matches(&tagged), want, "{s} (tagged)");
        }
        // ARP (not IP) matches only the empty filter; runts match nothing.
        let mut arp = vec![0u8; 42];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(Filter::default().matches(&arp));
        assert!(!"udp".parse::<Filter>().unwrap().matches(&arp));
        assert!(!"udp".parse::<Filter>().unwrap().matches(&f[..20]));
    }

    #[test]
    fn a_slot_files_matching_frames_and_counts_what_finds_no_buffer() {
        let slot = Slot::new(Clock::with_hz(0, 1_000_000_000));
        let a = udp4([10, 0, 0, 1], [10, 0, 0, 2], 1, 53, false);
        let b = udp4([10, 0, 0, 1], [10, 0, 0, 2], 1, 80, false);
        for _ in 0..2 {
            let _ = slot.free.push(Record::new());
        }
        slot.arm(Spec {
            generation: 7,
            port: 1,
            filter: "53".parse().unwrap(),
        });
        assert!(slot.armed());
        // Another port: nothing.
        slot.record(0, Dir::In, [&a[..]].into_iter());
        assert!(slot.full.is_empty());
        // Three matches, two buffers: one dropped; the non-match ignored.
        slot.record(1, Dir::Out, [&a[..], &b[..], &a[..], &a[..]].into_iter());
        assert_eq!(slot.full.len(), 2);
        assert_eq!(slot.dropped.load(Ordering::Relaxed), 1);
        let r = slot.full.pop().unwrap();
        assert_eq!((r.generation, r.port, r.dir), (7, 1, Dir::Out));
        assert_eq!(r.frame(), &a[..]);
        assert_eq!(r.orig_len as usize, a.len());
        slot.disarm();
        assert!(!slot.armed());
    }

    #[test]
    fn long_frames_are_cut_at_the_snap_length_keeping_their_length() {
        let slot = Slot::new(Clock::with_hz(0, 1_000_000_000));
        let _ = slot.free.push(Record::new());
        slot.arm(Spec::default());
        let big = vec![0xabu8; 9000];
        slot.record(0, Dir::In, [&big[..]].into_iter());
        let r = slot.full.pop().unwrap();
        assert_eq!((usize::from(r.len), r.orig_len), (SNAP, 9000));
    }
}

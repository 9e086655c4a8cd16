//! DPDK-free micro-benchmark of the packet path's stages over N tracked
//! flows: the same functions the worker runs, on frames in memory.
//!
//! ```text
//!   classify       parse + validate + key + hash + bucket prefetch (a burst)
//!   fast           classify, then match + commit (rewrite, count) per frame
//!   slow           L4::process per frame (what every frame cost before the
//!                  fast path, minus the host stage and routing)
//! ```
//!
//! Per iteration a burst (the worker's [`BURST`], 64) of established UDP
//! frames (client -> VIP) is copied from templates (the rewrite changes
//! them) and handled; the flows cycle through all N, so at 1 M flows the
//! table lines come from memory as in row b. Run: `cargo bench -p bench
//! --bench stages` (the numbers are time per burst; divide by 64).

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dataplane::dpdk::BURST;
use dataplane::lb::{classify_v4, Backing, L4Config, MemberSpec, Proto, Snat, VsSpec, VsTable, L4};
use dataplane::wire::Mac;

const OUR_MAC: Mac = Mac([0x02, 0, 0, 0, 0, 0x02]);
/// The MACs the commit stage addresses a frame with: the next hop's, ours.
const NEXT_HOP_MACS: [u8; 12] = [0x02, 0, 0, 0, 1, 1, 0x02, 0, 0, 0, 0, 0x02];

fn csum(b: &[u8]) -> u16 {
    let mut s: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// A 60-byte UDP frame from client `i` to the VIP (UDP checksum 0).
fn frame(i: u32) -> [u8; 60] {
    let mut f = [0u8; 60];
    f[..6].copy_from_slice(&OUR_MAC.0);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 1, 1]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(20u16 + 26).to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
    ip[16..20].copy_from_slice(&[192, 0, 2, 10]);
    let c = csum(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f[34..36].copy_from_slice(&(10000 + (i % 50000) as u16).to_be_bytes());
    f[36..38].copy_from_slice(&80u16.to_be_bytes());
    f[38..40].copy_from_slice(&26u16.to_be_bytes());
    f
}

fn setup(flows: u32) -> (L4, VsTable, Vec<[u8; 60]>) {
    let t = VsTable::build(&[VsSpec {
        name: "bench".into(),
        vip: IpAddr::from([192, 0, 2, 10]),
        port: 80,
        proto: Proto::Udp,
        idle_timeout: 300,
        reset_on_timeout: false,
        snat: Snat::None,
        members: (1..=4)
            .map(|m| MemberSpec {
                addr: IpAddr::from([10, 0, 1, m]),
                port: 8080,
                weight: 1,
                healthy: true,
            })
            .collect(),
    }])
    .unwrap();
    let mut c = L4Config::new((flows as usize * 4).max(1024), 0, 1);
    c.conntrack.backing = Backing::Transparent;
    let mut l4 = L4::new(c).unwrap();
    let frames: Vec<_> = (0..flows).map(frame).collect();
    for f in &frames {
        let mut b = *f;
        let _ = l4.process(1, &mut b, 60, 0, &t);
    }
    (l4, t, frames)
}

fn stages(c: &mut Criterion) {
    let mut g = c.benchmark_group("stages");
    g.throughput(Throughput::Elements(BURST as u64));
    let sizes: Vec<u32> = std::env::var("STAGES_FLOWS")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 100_000, 1_000_000]);
    for flows in sizes {
        let (mut l4, t, frames) = setup(flows);
        let mut next = 0usize;
        let mut burst = [[0u8; 60]; BURST];
        let fill = |burst: &mut [[u8; 60]; BURST], next: &mut usize| {
            for b in burst.iter_mut() {
                *b = frames[*next];
                *next = (*next + 1) % frames.len();
            }
        };
        g.bench_function(BenchmarkId::new("classify", flows), |b| {
            b.iter(|| {
                fill(&mut burst, &mut next);
                for f in &burst {
                    if let Some(flow) = classify_v4(f, &OUR_MAC, 1500, l4.hasher()) {
                        l4.prefetch_flow(&flow);
                        black_box(flow);
                    }
                }
            })
        });
        g.bench_function(BenchmarkId::new("fast", flows), |b| {
            b.iter(|| {
                fill(&mut burst, &mut next);
                let mut flows = [None; BURST];
                for (slot, f) in flows.iter_mut().zip(&burst) {
                    *slot = classify_v4(f, &OUR_MAC, 1500, l4.hasher());
                    if let Some(flow) = slot {
                        l4.prefetch_flow(flow);
                    }
                }
                for flow in flows.iter_mut().flatten() {
                    l4.prefetch_entry(flow, &t, |_| true);
                }
                for (f, flow) in burst.iter_mut().zip(&flows) {
                    let flow = flow.as_ref().expect("fast class");
                    let hit = l4.fast_match(flow, 2, &t).expect("tracked");
                    l4.fast_commit(&hit, flow, f, &NEXT_HOP_MACS);
                }
                black_box(&burst);
            })
        });
        g.bench_function(BenchmarkId::new("slow", flows), |b| {
            b.iter(|| {
                fill(&mut burst, &mut next);
                for f in burst.iter_mut() {
                    black_box(l4.process(2, f, 60, 0, &t));
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);

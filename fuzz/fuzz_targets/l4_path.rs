//! A sequence of frames through one worker's L4 path, with a small table
//! of virtual servers: DNAT, SNAT automap and pool, an all-ports UDP VS and
//! IPv6. State carries from frame to frame (flows, SNAT records, resets),
//! so a frame can be the reply or the ICMP error of an earlier one.
//!
//! Input: records of `[ctl, len_lo, len_hi, frame...]`. `ctl` bits 0..2
//! advance the clock by that many seconds (so the SYN and idle timeouts
//! pass), bit 3 puts a VLAN tag's 4 bytes before the IP
//! header, bit 4 runs a sweep, and bit 5 tries the IPv4 fast path first
//! (classify, match, commit) as the worker does.
#![no_main]
use std::net::IpAddr;
use std::sync::OnceLock;

use dataplane::lb::{
    classify_v4, Backing, Classified, Classifier, Expired, L4Config, MemberSpec, Miss, Proto, Side,
    Snat, VsSpec, VsTable, L4,
};
use dataplane::wire::Mac;
use libfuzzer_sys::fuzz_target;

const MAC: Mac = Mac([2, 0, 0, 0, 0, 2]);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn member(a: &str, port: u16) -> MemberSpec {
    MemberSpec {
        addr: ip(a),
        port,
        weight: 1,
        healthy: true,
    }
}

fn vs(vip: &str, port: u16, proto: Proto, snat: Snat, members: Vec<MemberSpec>) -> VsSpec {
    VsSpec {
        name: format!("{vip}:{port}"),
        vip: ip(vip),
        port,
        proto,
        idle_timeout: 30,
        reset_on_timeout: true,
        snat,
        members,
    }
}

fn table() -> &'static VsTable {
    static T: OnceLock<VsTable> = OnceLock::new();
    T.get_or_init(|| {
        VsTable::build(&[
            vs(
                "192.168.77.128",
                80,
                Proto::Tcp,
                Snat::None,
                vec![member("10.1.0.10", 8080), member("10.1.0.11", 8080)],
            ),
            vs(
                "192.168.77.129",
                80,
                Proto::Tcp,
                Snat::Automap(ip("10.1.0.2")),
                vec![member("10.1.0.10", 8080)],
            ),
            vs(
                "192.168.77.130",
                53,
                Proto::Udp,
                Snat::Pool(vec![ip("10.1.0.50"), ip("10.1.0.51")]),
                vec![member("10.1.0.12", 5353)],
            ),
            vs(
                "192.168.77.131",
                0,
                Proto::Udp,
                Snat::None,
                vec![member("10.1.0.13", 0)],
            ),
            vs(
                "fd00:77::80",
                443,
                Proto::Tcp,
                Snat::None,
                vec![member("fd01::10", 443)],
            ),
            vs(
                "fd00:77::81",
                53,
                Proto::Udp,
                Snat::Automap(ip("fd01::2")),
                vec![member("fd01::11", 53)],
            ),
        ])
        .unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let t = table();
    let mut c = L4Config::new(256, 0, 1);
    c.seed = 1;
    c.snat_ports = (40000, 40007);
    c.conntrack.backing = Backing::Transparent;
    c.conntrack.new_flows_per_sec = 64;
    let mut l4 = L4::new(c).unwrap();
    l4.set_self_ips(&[ip("10.1.0.2"), ip("fd01::2")]);
    let mut now = 1u32;
    let mut rest = data;
    let mut buf = Vec::with_capacity(2048);
    let mut expired = [Expired::default(); 16];
    let mut reset = [0u8; 256];
    while let [ctl, lo, hi, tail @ ..] = rest {
        let n = usize::from(u16::from_le_bytes([*lo, *hi])).min(tail.len());
        let (frame, next) = tail.split_at(n);
        rest = next;
        now += u32::from(ctl & 7);
        let vlan = if ctl & 8 != 0 { 4 } else { 0 };
        // Room for an ICMP reply, as an mbuf's tailroom gives.
        buf.clear();
        buf.extend_from_slice(frame);
        buf.resize(frame.len() + 256, 0);
        if ctl & 0x10 != 0 {
            // Expiry, and the reset probes of timed-out flows, both ends.
            let n = l4.sweep(now, 64, &mut expired, t);
            for e in &expired[..n] {
                for side in [Side::Client, Side::Member] {
                    let _ = l4.build_reset(e, side, t, &mut reset);
                }
            }
        }
        l4.prefetch(&buf[..frame.len()], vlan);
        if ctl & 0x20 != 0 && l4.fast_ready(t) {
            if let Some(mut flow) = classify_v4(&buf[..frame.len()], &MAC, 1500, l4.hasher()) {
                l4.begin_probes();
                let pick = l4.prefetch_entry(&mut flow, t, |_| true);
                match l4.fast_match(&flow, now, t) {
                    Ok(hit) => {
                        // The next hop's MACs, as the worker writes them.
                        let macs = [0x02, 0, 0, 0, 0, 0x09, 0x02, 0, 0, 0, 0, 0x01];
                        l4.fast_commit(&hit, &flow, &mut buf[..frame.len()], &macs)
                    }
                    Err(miss) => {
                        // The new flows' stage first, as the worker.
                        let taken = match (miss, &pick) {
                            (Miss::Untracked, Some(pick)) => {
                                let f = (&mut buf[..], frame.len());
                                l4.fast_new(now, f, &flow, pick, t).is_some()
                            }
                            _ => false,
                        };
                        if !taken {
                            let f = (Classified::V4(&flow), miss, pick);
                            let _ = l4.process_classified(now, &mut buf, frame.len(), f, t);
                        }
                    }
                }
                continue;
            }
            let classifier = Classifier::new(&MAC, 1500, l4.hasher());
            if let Some(flow) = classifier.classify_v6(&buf[..frame.len()]) {
                match l4.fast_match_v6(&flow, now, t) {
                    Ok(hit) => l4.fast_commit_v6(&hit, &flow, &mut buf[..frame.len()], now),
                    Err(miss) => {
                        let f = (Classified::V6(&flow), miss, None);
                        let _ = l4.process_classified(now, &mut buf, frame.len(), f, t);
                    }
                }
                continue;
            }
        }
        let _ = l4.process(now, &mut buf, frame.len(), vlan, t);
    }
});

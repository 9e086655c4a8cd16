//! The data plane's ports and workers: `show interfaces`, `show stats`
//! and their metrics.

use dataplane::api::{Drop, PortStats, Stats};
use serde_json::{json, Map, Value};

use super::metrics::Encoder;
use crate::state::State;

fn pmd_json(s: &PortStats) -> Value {
    json!({
        "ipackets": s.ipackets, "opackets": s.opackets, "ibytes": s.ibytes, "obytes": s.obytes,
        "imissed": s.imissed, "ierrors": s.ierrors, "oerrors": s.oerrors, "rx_nombuf": s.rx_nombuf,
    })
}

/// `pollux show interfaces --json`.
pub fn interfaces_json(state: &State) -> Value {
    let Some((ifs, stats)) = state.with_dp(|dp| (dp.interfaces().to_vec(), dp.stats())) else {
        return json!({ "error": "the data plane is stopped" });
    };
    let list: Vec<Value> = ifs
        .iter()
        .zip(&stats.ports)
        .map(|(i, s)| {
            json!({
                "name": i.name, "device": i.device, "driver": i.driver, "port_id": i.port_id,
                "tap": i.name, "tap_port_id": i.tap_port_id, "mac": i.mac.to_string(),
                "vlan": i.vlan, "mtu": i.mtu,
                "self_ips": i.self_ips.iter().map(|s| format!("{}/{}", s.addr, s.len)).collect::<Vec<_>>(),
                "worker": { "lcore": i.worker.lcore, "cpu": i.worker.cpu },
                "queues": i.queues,
                "rx_ip_checksum": i.rx_ip_checksum,
                "rx_packets": s.counters.rx_packets, "tx_packets": s.counters.tx_packets,
                "link": { "up": s.pmd.link.up, "speed_mbps": s.pmd.link.speed_mbps, "full_duplex": s.pmd.link.full_duplex },
            })
        })
        .collect();
    json!({ "interfaces": list })
}

/// `pollux show stats --json`.
pub fn stats_json(state: &State) -> Value {
    let Some(stats) = state.stats() else {
        return json!({ "error": "the data plane is stopped" });
    };
    let ports: Vec<Value> = stats
        .ports
        .iter()
        .map(|p| {
            let c = &p.counters;
            let drops: Map<String, Value> = Drop::ALL.iter().map(|d| (d.name().to_string(), json!(c.dropped(*d)))).collect();
            json!({
                "name": p.name,
                "rx_packets": c.rx_packets, "rx_bytes": c.rx_bytes, "tx_packets": c.tx_packets,
                "to_tap": c.to_tap, "from_tap": c.from_tap,
                "arp_replies": c.arp_replies, "nd_replies": c.nd_replies, "echo_replies": c.echo_replies,
                "solicits": c.solicits,
                "drops": drops,
                "pmd": pmd_json(&p.pmd), "tap_pmd": pmd_json(&p.tap_pmd),
                "mbufs_free": p.mbufs_free,
            })
        })
        .collect();
    let workers: Vec<Value> = stats
        .workers
        .iter()
        .map(|w| {
            json!({
                "lcore": w.lcore, "cpu": w.cpu, "running": w.running,
                "busy_polls": w.counters.busy_polls, "idle_polls": w.counters.idle_polls, "sleeps": w.counters.sleeps, "max_gap_us": w.counters.max_gap_ns / 1000,
                "handoff": { "out": w.counters.handoff_out, "in": w.counters.handoff_in, "full": w.counters.handoff_full },
            })
        })
        .collect();
    let running = stats.workers.iter().all(|w| w.running);
    json!({
        "instance": state.config.load().name, "workers_running": running, "ports": ports, "workers": workers,
        "capture": state.captures.json(),
    })
}

/// The port and worker families of a scrape.
pub fn metrics(stats: &Stats, inst: &str, e: &mut Encoder) {
    type Get = fn(&dataplane::api::PortSnapshot) -> u64;
    let port_counters: [(&str, &str, Get); 9] = [
        (
            "port_rx_packets_total",
            "Frames received on the port.",
            |p| p.counters.rx_packets,
        ),
        ("port_rx_bytes_total", "Bytes received on the port.", |p| {
            p.counters.rx_bytes
        }),
        (
            "port_tx_packets_total",
            "Frames the port's TX ring accepted.",
            |p| p.counters.tx_packets,
        ),
        ("port_tx_bytes_total", "Bytes the PMD transmitted.", |p| {
            p.pmd.obytes
        }),
        (
            "port_to_tap_total",
            "Frames handed to the kernel through the TAP.",
            |p| p.counters.to_tap,
        ),
        (
            "port_from_tap_total",
            "Frames the kernel sent out of the TAP.",
            |p| p.counters.from_tap,
        ),
        (
            "port_arp_replies_total",
            "ARP replies sent by the data plane.",
            |p| p.counters.arp_replies,
        ),
        (
            "port_nd_replies_total",
            "Neighbor advertisements sent by the data plane.",
            |p| p.counters.nd_replies,
        ),
        (
            "port_echo_replies_total",
            "ICMP/ICMPv6 echo replies sent by the data plane.",
            |p| p.counters.echo_replies,
        ),
    ];
    for (name, help, get) in port_counters {
        e.family(name, "counter", help);
        for p in &stats.ports {
            e.sample(name, &[("instance", inst), ("port", &p.name)], get(p));
        }
    }
    e.family(
        "port_drops_total",
        "counter",
        "Frames dropped by the data plane, by reason.",
    );
    for p in &stats.ports {
        for d in Drop::ALL {
            e.sample(
                "port_drops_total",
                &[("instance", inst), ("port", &p.name), ("reason", d.name())],
                p.counters.dropped(*d),
            );
        }
    }
    e.family(
        "port_rx_missed_total",
        "counter",
        "Frames the PMD dropped because the RX ring was full.",
    );
    for p in &stats.ports {
        e.sample(
            "port_rx_missed_total",
            &[("instance", inst), ("port", &p.name)],
            p.pmd.imissed,
        );
    }
    e.family(
        "worker_polls_total",
        "counter",
        "Worker loop iterations, busy (moved packets) or idle.",
    );
    for w in &stats.workers {
        let lc = w.lcore.to_string();
        e.sample(
            "worker_polls_total",
            &[("instance", inst), ("lcore", &lc), ("result", "busy")],
            w.counters.busy_polls,
        );
        e.sample(
            "worker_polls_total",
            &[("instance", inst), ("lcore", &lc), ("result", "idle")],
            w.counters.idle_polls,
        );
    }
    e.family(
        "worker_sleeps_total",
        "counter",
        "Adaptive-mode sleeps of a worker.",
    );
    for w in &stats.workers {
        e.sample(
            "worker_sleeps_total",
            &[("instance", inst), ("lcore", &w.lcore.to_string())],
            w.counters.sleeps,
        );
    }
    e.family(
        "worker_handoffs_total",
        "counter",
        "Frames a worker handed to another (out: flows or ports it does not own), took from others (in), or lost to a full ring (full).",
    );
    for w in &stats.workers {
        let lc = w.lcore.to_string();
        let c = &w.counters;
        for (dir, n) in [
            ("out", c.handoff_out),
            ("in", c.handoff_in),
            ("full", c.handoff_full),
        ] {
            e.sample(
                "worker_handoffs_total",
                &[("instance", inst), ("lcore", &lc), ("direction", dir)],
                n,
            );
        }
    }
    e.family(
        "worker_running",
        "gauge",
        "1 while the worker is in its loop.",
    );
    for w in &stats.workers {
        e.sample(
            "worker_running",
            &[("instance", inst), ("lcore", &w.lcore.to_string())],
            u8::from(w.running),
        );
    }
    e.family(
        "port_link_up",
        "gauge",
        "1 while the port's link is up (as the PMD reports it).",
    );
    for p in &stats.ports {
        e.sample(
            "port_link_up",
            &[("instance", inst), ("port", &p.name)],
            u8::from(p.pmd.link.up),
        );
    }
    e.family(
        "port_link_speed_mbps",
        "gauge",
        "The port's link speed in Mbit/s (0: unknown).",
    );
    for p in &stats.ports {
        e.sample(
            "port_link_speed_mbps",
            &[("instance", inst), ("port", &p.name)],
            p.pmd.link.speed_mbps,
        );
    }
}

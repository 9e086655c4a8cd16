//! `show virtual-servers`, `show connections` and the L4 metrics, from
//! the workers' L4 snapshots laid out by the virtual-server table
//! (`crate::lb::Layout`) and the members' health.

use dataplane::api::{Dataplane, L4Drop, L4Snapshot, VsCounters};
use serde_json::{json, Value};

use super::metrics::Encoder;
use crate::config::Protocol;
use crate::health;
use crate::state::State;

/// One counter set summed over the workers' snapshots (`get` picks it).
fn sum<T: Copy + Default + std::ops::AddAssign>(
    snaps: &[L4Snapshot],
    get: impl Fn(&L4Snapshot) -> Option<T>,
) -> T {
    let mut acc = T::default();
    for v in snaps.iter().filter_map(get) {
        acc += v;
    }
    acc
}

/// `pollux show virtual-servers --json`: members with their health and,
/// summed over the workers, packets, bytes, new and active flows.
pub fn show_json(state: &State) -> Value {
    let Some(snaps) = state.with_dp(Dataplane::l4_snapshots) else {
        return json!({ "error": "the data plane is stopped" });
    };
    let cfg = state.config.load();
    let (layout, health) = state
        .ops
        .lock()
        .map(|o| (o.layout.clone(), o.served_health.clone()))
        .unwrap_or_default();
    let health = &health;
    let (disabled, drained) = crate::reload::overrides(state);
    let list: Vec<Value> = cfg
        .virtual_servers
        .iter()
        .enumerate()
        .map(|(v, vs)| {
            let slot = layout.vs_slot(v);
            let c = sum(&snaps, |s| s.vs.get(slot?).copied());
            let members: Vec<Value> = vs
                .members
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let ms = layout.member_slot(v, i);
                    let mc = sum(&snaps, |s| s.members.get(slot?).and_then(|x| x.get(ms?)).copied());
                    json!({
                        "address": m.address.to_string(), "port": m.port, "weight": m.weight,
                        "healthy": health::member_up(health, vs, m.address, m.port),
                        "disabled": disabled.contains(&(vs.name.clone(), m.address, m.port)),
                        "packets_in": mc.packets_in, "bytes_in": mc.bytes_in, "packets_out": mc.packets_out, "bytes_out": mc.bytes_out,
                        "new_flows": mc.new_flows, "active_flows": mc.active_flows,
                    })
                })
                .collect();
            json!({
                "name": vs.name, "address": vs.address.to_string(), "port": vs.port,
                "protocol": match vs.protocol { Protocol::Tcp => "tcp", Protocol::Udp => "udp" },
                "drained": drained.contains(&vs.name),
                "healthy_members": vs.members.iter().filter(|m| health::member_up(health, vs, m.address, m.port)).count(),
                "packets_in": c.packets_in, "bytes_in": c.bytes_in, "packets_out": c.packets_out, "bytes_out": c.bytes_out,
                "new_flows": c.new_flows, "active_flows": c.active_flows,
                "dropped_no_member": c.no_member, "untracked": c.untracked,
                "members": members,
            })
        })
        .collect();
    json!({ "virtual_servers": list })
}

/// `pollux show connections --json`: the connection tables of the workers.
pub fn connections_json(state: &State) -> Value {
    let Some(snaps) = state.with_dp(Dataplane::l4_snapshots) else {
        return json!({ "error": "the data plane is stopped" });
    };
    let workers: Vec<Value> = snaps
        .iter()
        .enumerate()
        .map(|(w, s)| {
            let l = &s.counters;
            let drops: serde_json::Map<String, Value> = L4Drop::ALL.iter().map(|d| (d.name().to_string(), json!(l.dropped(*d)))).collect();
            json!({
                "worker": w, "entries": s.table().entries, "capacity": s.table().capacity, "table_bytes": s.table().bytes, "table_hugepages": s.table_page_size.is_some(), "table_page_kib": s.table_page_size.map_or(0, |p| p >> 10),
                "ipv4": { "entries": s.ipv4.entries, "capacity": s.ipv4.capacity, "table_bytes": s.ipv4.bytes },
                "ipv6": { "entries": s.ipv6.entries, "capacity": s.ipv6.capacity, "table_bytes": s.ipv6.bytes },
                "new_flows": l.new_flows, "untracked": l.untracked, "forwarded": l.forwarded, "returned": l.returned,
                "redirected": l.redirected,
                "rst_sent": l.rst_sent, "unreachable_sent": l.unreachable_sent, "icmp_translated": l.icmp_translated,
                "resets_sent": l.resets_sent, "reset_probes": l.reset_probes,
                "insert_failed_full": s.conntrack.insert_failed_full, "insert_refused_flood": s.conntrack.insert_refused_flood,
                "expired": s.conntrack.expired,
                "drops": drops,
            })
        })
        .collect();
    json!({ "workers": workers })
}

/// L4 metrics, summed over the workers.
pub fn metrics(state: &State, e: &mut Encoder) {
    let cfg = state.config.load();
    let inst = cfg.name.as_str();
    let layout = state
        .ops
        .lock()
        .map(|o| o.layout.clone())
        .unwrap_or_default();
    let Some(snaps) = state.with_dp(Dataplane::l4_snapshots) else {
        return;
    };
    type Get = fn(&VsCounters) -> u64;
    let per_vs: [(&str, &str, Get); 6] = [
        (
            "vs_packets_in_total",
            "Packets from clients to the virtual server.",
            |c| c.packets_in,
        ),
        (
            "vs_bytes_in_total",
            "Bytes from clients to the virtual server.",
            |c| c.bytes_in,
        ),
        (
            "vs_packets_out_total",
            "Packets from members back to clients.",
            |c| c.packets_out,
        ),
        (
            "vs_new_flows_total",
            "Flows started on the virtual server.",
            |c| c.new_flows,
        ),
        (
            "vs_untracked_total",
            "New flows forwarded statelessly (table full or flood).",
            |c| c.untracked,
        ),
        (
            "vs_no_member_drops_total",
            "New flows dropped: no healthy member.",
            |c| c.no_member,
        ),
    ];
    for (name, help, get) in per_vs {
        e.family(name, "counter", help);
        for (v, vs) in cfg.virtual_servers.iter().enumerate() {
            let slot = layout.vs_slot(v);
            let total: u64 = snaps.iter().filter_map(|s| s.vs.get(slot?)).map(get).sum();
            e.sample(name, &[("instance", inst), ("vs", &vs.name)], total);
        }
    }
    e.family(
        "vs_active_flows",
        "gauge",
        "Tracked flows of the virtual server.",
    );
    for (v, vs) in cfg.virtual_servers.iter().enumerate() {
        let slot = layout.vs_slot(v);
        let total: u64 = snaps
            .iter()
            .filter_map(|s| s.vs.get(slot?))
            .map(|c| c.active_flows)
            .sum();
        e.sample(
            "vs_active_flows",
            &[("instance", inst), ("vs", &vs.name)],
            total,
        );
    }
    e.family(
        "member_new_flows_total",
        "counter",
        "Flows sent to the member.",
    );
    for (v, vs) in cfg.virtual_servers.iter().enumerate() {
        for (i, m) in vs.members.iter().enumerate() {
            let (slot, ms) = (layout.vs_slot(v), layout.member_slot(v, i));
            let total: u64 = snaps
                .iter()
                .filter_map(|s| s.members.get(slot?).and_then(|x| x.get(ms?)))
                .map(|c| c.new_flows)
                .sum();
            e.sample(
                "member_new_flows_total",
                &[
                    ("instance", inst),
                    ("vs", &vs.name),
                    ("member", &format!("{}:{}", m.address, m.port)),
                ],
                total,
            );
        }
    }
    e.family(
        "conntrack_entries",
        "gauge",
        "Connection-table entries in use (two per flow).",
    );
    for (w, s) in snaps.iter().enumerate() {
        e.sample(
            "conntrack_entries",
            &[("instance", inst), ("worker", &w.to_string())],
            s.table().entries,
        );
    }
    e.family(
        "l4_drops_total",
        "counter",
        "L4 packets dropped, by reason.",
    );
    for d in L4Drop::ALL {
        let total: u64 = snaps.iter().map(|s| s.counters.dropped(*d)).sum();
        e.sample(
            "l4_drops_total",
            &[("instance", inst), ("reason", d.name())],
            total,
        );
    }
}

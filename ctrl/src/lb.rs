//! Virtual servers as ctrl sees them: the data plane's [`VsTable`] built
//! from the configuration and the members' health, republished whole on
//! every health verdict; `show virtual-servers`, `show connections` and the
//! L4 metrics from the workers' counters.

use std::net::IpAddr;
use std::sync::Arc;

use dataplane::api::Dataplane;
use dataplane::lb::{MemberSpec, Proto, Snat as DpSnat, VsSpec, VsTable};
use dataplane::worker::L4Snapshot;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::config::{Config, Protocol, Snat, VirtualServer};
use crate::health::{self, Health};
use crate::metrics::Encoder;
use crate::state::State;

/// The self IP that `snat: automap` uses for `vs`: the one, of the VIP's
/// family, on the port through which its first member is reached.
fn automap(cfg: &Config, vs: &VirtualServer) -> Option<IpAddr> {
    let fib = cfg.dataplane.fib().ok()?;
    let (port, _) = fib.lookup(vs.members.first()?.address)?;
    cfg.dataplane.ports[port]
        .self_ips
        .iter()
        .map(|s| s.addr)
        .find(|a| a.is_ipv4() == vs.address.is_ipv4())
}

/// What the data plane needs of each virtual server, with health applied.
pub fn specs(cfg: &Config, health: &Health) -> Vec<VsSpec> {
    cfg.virtual_servers
        .iter()
        .map(|vs| VsSpec {
            name: vs.name.clone(),
            vip: vs.address,
            port: vs.port,
            proto: match vs.protocol {
                Protocol::Tcp => Proto::Tcp,
                Protocol::Udp => Proto::Udp,
            },
            // Validation keeps it within 1–65535.
            idle_timeout: u16::try_from(vs.idle_timeout).unwrap_or(u16::MAX),
            reset_on_timeout: vs.reset_on_timeout,
            snat: match &vs.snat {
                Snat::None => DpSnat::None,
                Snat::Automap => automap(cfg, vs).map_or(DpSnat::None, DpSnat::Automap),
                Snat::Pool(p) => DpSnat::Pool(p.clone()),
            },
            members: vs
                .members
                .iter()
                .map(|m| MemberSpec {
                    addr: m.address,
                    port: m.port,
                    weight: m.weight,
                    healthy: health::member_up(health, vs, m.address, m.port),
                })
                .collect(),
        })
        .collect()
}

/// The workers' table for the configuration and the members' health.
pub fn table(config: &Config, health: &Health) -> Result<VsTable, dataplane::lb::VsError> {
    VsTable::build(&specs(config, health))
}

/// Builds the table for the current health and hands it to the workers.
pub fn publish(state: &State, health: &Health) {
    match table(&state.config, health) {
        Ok(table) => {
            if let Ok(dp) = state.dataplane.lock() {
                if let Some(dp) = dp.as_ref() {
                    dp.publish_vs(table);
                }
            }
        }
        Err(e) => tracing::error!(error = %e, "virtual servers not published"),
    }
}

/// Republishes on every health verdict (until the channel closes).
pub async fn follow(state: Arc<State>, mut rx: watch::Receiver<Health>) {
    loop {
        let h = rx.borrow_and_update().clone();
        publish(&state, &h);
        if rx.changed().await.is_err() {
            return;
        }
    }
}

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
pub fn show_json(state: &State, health: Option<&Health>) -> Value {
    let Some(snaps) = state.with_dp(Dataplane::l4_snapshots) else {
        return json!({ "error": "the data plane is stopped" });
    };
    let empty = Health::default();
    let health = health.unwrap_or(&empty);
    let list: Vec<Value> = state
        .config
        .virtual_servers
        .iter()
        .enumerate()
        .map(|(v, vs)| {
            let c = sum(&snaps, |s| s.vs.get(v).copied());
            let members: Vec<Value> = vs
                .members
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let mc = sum(&snaps, |s| s.members.get(v).and_then(|ms| ms.get(i)).copied());
                    json!({
                        "address": m.address.to_string(), "port": m.port, "weight": m.weight,
                        "healthy": health::member_up(health, vs, m.address, m.port),
                        "packets_in": mc.packets_in, "bytes_in": mc.bytes_in, "packets_out": mc.packets_out, "bytes_out": mc.bytes_out,
                        "new_flows": mc.new_flows, "active_flows": mc.active_flows,
                    })
                })
                .collect();
            json!({
                "name": vs.name, "address": vs.address.to_string(), "port": vs.port,
                "protocol": match vs.protocol { Protocol::Tcp => "tcp", Protocol::Udp => "udp" },
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
            let drops: serde_json::Map<String, Value> = dataplane::lb::L4Drop::ALL.iter().map(|d| (d.name().to_string(), json!(l.dropped(*d)))).collect();
            json!({
                "worker": w, "entries": s.flows, "capacity": s.capacity, "table_bytes": s.table_bytes,
                "new_flows": l.new_flows, "untracked": l.untracked, "forwarded": l.forwarded, "returned": l.returned,
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
    let inst = state.config.name.as_str();
    let Some(snaps) = state.with_dp(Dataplane::l4_snapshots) else {
        return;
    };
    type Get = fn(&dataplane::lb::VsCounters) -> u64;
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
        for (v, vs) in state.config.virtual_servers.iter().enumerate() {
            let total: u64 = snaps.iter().filter_map(|s| s.vs.get(v)).map(get).sum();
            e.sample(name, &[("instance", inst), ("vs", &vs.name)], total);
        }
    }
    e.family(
        "vs_active_flows",
        "gauge",
        "Tracked flows of the virtual server.",
    );
    for (v, vs) in state.config.virtual_servers.iter().enumerate() {
        let total: u64 = snaps
            .iter()
            .filter_map(|s| s.vs.get(v))
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
    for (v, vs) in state.config.virtual_servers.iter().enumerate() {
        for (i, m) in vs.members.iter().enumerate() {
            let total: u64 = snaps
                .iter()
                .filter_map(|s| s.members.get(v).and_then(|ms| ms.get(i)))
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
            s.flows,
        );
    }
    e.family(
        "l4_drops_total",
        "counter",
        "L4 packets dropped, by reason.",
    );
    for d in dataplane::lb::L4Drop::ALL {
        let total: u64 = snaps.iter().map(|s| s.counters.dropped(*d)).sum();
        e.sample(
            "l4_drops_total",
            &[("instance", inst), ("reason", d.name())],
            total,
        );
    }
}

//! `show config` and the configuration's metrics: the running
//! configuration and the reloads' record (`crate::reload::Ops`).

use std::net::SocketAddr;

use serde_json::{json, Value};

use super::metrics::Encoder;
use crate::reload::lock;
use crate::state::State;

/// `pollux show config --json`.
pub fn show_json(state: &State) -> Value {
    let cfg = state.config.load();
    let ops = lock(state);
    json!({
        "instance": cfg.name,
        "path": ops.path.display().to_string(),
        "generation": ops.generation,
        "loaded_unix_ms": ops.loaded_unix_ms,
        "virtual_servers": cfg.virtual_servers.len(),
        "bgp_neighbors": cfg.bgp.as_ref().map_or(0, |b| b.neighbors.len()),
        "retired_slots": ops.layout.retired(),
        "disabled_members": ops.disabled.iter().map(|(n, a, p)| json!({ "vs": n, "member": SocketAddr::new(*a, *p).to_string() })).collect::<Vec<_>>(),
        "drained_virtual_servers": ops.drained.iter().collect::<Vec<_>>(),
        "reloads": { "applied": ops.reloads[0], "unchanged": ops.reloads[1], "refused": ops.reloads[2] },
        "last_reload": ops.last.as_ref().map(|(r, m, t)| json!({ "result": r, "message": m, "unix_ms": t })),
    })
}

/// The configuration's metrics.
pub fn metrics(state: &State, e: &mut Encoder) {
    let inst = state.config.load().name.clone();
    let ops = lock(state);
    e.family(
        "config_generation",
        "gauge",
        "Generation of the running configuration (1 at start, +1 per applied reload).",
    )
    .sample("config_generation", &[("instance", &inst)], ops.generation);
    e.family(
        "config_loaded_timestamp_seconds",
        "gauge",
        "When the running configuration was loaded (Unix time).",
    )
    .sample(
        "config_loaded_timestamp_seconds",
        &[("instance", &inst)],
        ops.loaded_unix_ms as f64 / 1e3,
    );
    e.family(
        "config_reloads_total",
        "counter",
        "Reload attempts by result.",
    );
    for (i, r) in ["applied", "unchanged", "refused"].iter().enumerate() {
        e.sample(
            "config_reloads_total",
            &[("instance", &inst), ("result", r)],
            ops.reloads[i],
        );
    }
}

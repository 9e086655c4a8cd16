//! Live operation: reloading the configuration (SIGHUP, a change of the
//! file, `pollux reload`) and the operator's overrides (`pollux member
//! disable|enable`, `pollux vs drain|undrain`).
//!
//! A reload reads and validates the whole file first; a bad one is refused
//! with the field's path and the running configuration stays. A good one is
//! compared with the running one ([`diff`]): what can only change with a
//! restart (ports, workers, EAL, the instance's name, the API socket…) is
//! refused and says so; the rest is applied by replacing the configuration
//! and republishing what derives from it ([`apply`]):
//!
//! ```text
//!  virtual servers, members,  ─► lb::Layout::sync (kept slots stay put) ─► VsTable ─► workers
//!  weights, SNAT, timeouts        health::Checker::set_targets (kept probes keep their verdict)
//!  health checks                  VIP set (watch) ─► BGP sessions announce / withdraw the difference
//!  routes                      ─► FIB ─► workers
//!  bgp.neighbors               ─► bgp::Speaker::sync (kept neighbors keep their session)
//!  bfd timers, BFD peers       ─► Dataplane::bfd_reconfigure ─► BfdCommand::Change ─► workers
//! ```
//!
//! Nothing that did not change is touched: flows of kept virtual servers
//! keep their member (slots do not move), BGP sessions and BFD sessions
//! not named by the change are not restarted (a BFD timer change is a Poll
//! Sequence: the session stays Up), and a VIP whose set of healthy members stays non-empty is
//! neither withdrawn nor re-announced.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::config::{self, Config, HostFacts, VirtualServer};
use crate::health::Health;
use crate::lb::{self, Disabled, Layout};
use crate::state::State;

/// What the operator and the reloads changed, beside the configuration.
#[derive(Debug, Default)]
pub struct Ops {
    /// The file the configuration comes from (SIGHUP and the watcher
    /// read it again).
    pub path: PathBuf,
    /// The host's facts as they were before the EAL pinned this thread
    /// (a reload validates the workers' cores against them, not against
    /// the control thread's own affinity).
    pub host: Option<HostFacts>,
    /// 1 at start, +1 for every reload that changed something.
    pub generation: u64,
    /// When the running configuration was loaded (ms since the epoch).
    pub loaded_unix_ms: u64,
    /// Where the virtual servers and members sit in the workers' table.
    pub layout: Layout,
    /// The members' health the published table was built from: what
    /// `show` tells, so that a verdict shows once the data plane has it
    /// (the checker's own map runs ahead of it until `apply` has run).
    pub served_health: Health,
    pub disabled: Disabled,
    /// Virtual servers whose VIP is withdrawn by `pollux vs drain`.
    pub drained: BTreeSet<String>,
    /// Reloads by result: applied, unchanged, refused.
    pub reloads: [u64; 3],
    /// The last reload: result, message, when.
    pub last: Option<(&'static str, String, u64)>,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Ops {
    pub fn new(path: PathBuf, host: HostFacts, cfg: &Config) -> Ops {
        Ops {
            path,
            host: Some(host),
            generation: 1,
            loaded_unix_ms: unix_ms(),
            layout: Layout::default().sync(&cfg.virtual_servers),
            ..Ops::default()
        }
    }
}

/// What a reload found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Applied: the new generation and what changed.
    Applied {
        generation: u64,
        changes: Vec<String>,
    },
    /// The file says what runs already.
    Unchanged { generation: u64 },
}

/// Why a reload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The file does not validate: the field's path and the reason.
    #[error("{0}")]
    Invalid(String),
    /// It changes what only a restart can change.
    #[error("{}", .0.join("; "))]
    NeedsRestart(Vec<String>),
}

/// How two configurations differ: what a reload applies live, or, in
/// `restart`, why it cannot.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Diff {
    pub changes: Vec<String>,
    pub restart: Vec<String>,
    pub routes: bool,
    /// BGP neighbors to sync ([`crate::bgp::Speaker::sync`]).
    pub bgp: bool,
    /// BFD sessions to add, remove or retime.
    pub bfd: bool,
}

fn describe(vs: &VirtualServer) -> String {
    let proto = match vs.protocol {
        config::Protocol::Tcp => "tcp",
        config::Protocol::Udp => "udp",
    };
    format!(
        "{} ({}/{proto})",
        vs.name,
        SocketAddr::new(vs.address, vs.port)
    )
}

/// Compares the running configuration with a new one.
pub fn diff(old: &Config, new: &Config) -> Diff {
    let mut d = Diff::default();
    let mut restart = |field: &str, same: bool| {
        if !same {
            d.restart.push(format!(
                "{field}: cannot change while running (restart needed)"
            ));
        }
    };
    let (o, n) = (&old.dataplane, &new.dataplane);
    restart("instance.name", old.name == new.name);
    restart("instance.nodeName", old.node_name == new.node_name);
    restart(
        "dataplane.workers",
        o.workers == n.workers && o.control_cpus == n.control_cpus,
    );
    restart("dataplane.pollMode", o.poll_mode == n.poll_mode);
    restart("dataplane.eal", o.eal == n.eal);
    restart("dataplane.ports", o.ports == n.ports);
    restart("dataplane.connections", o.connections == n.connections);
    restart(
        "dataplane.connectionsV6",
        o.connections_v6 == n.connections_v6,
    );
    restart(
        "dataplane.newFlowsPerSec",
        o.new_flows_per_sec == n.new_flows_per_sec,
    );
    restart("dataplane.snatPorts", o.snat_ports == n.snat_ports);
    restart("dataplane.mbufs", o.mbufs == n.mbufs);
    restart(
        "dataplane",
        o.instance == n.instance
            && o.panic_for_test == n.panic_for_test
            && o.hash_seed == n.hash_seed,
    );
    restart("api.socket", old.api.socket == new.api.socket);
    restart("api.metrics", old.api.metrics == new.api.metrics);
    restart(
        "api.metricsInterface",
        old.api.metrics_interface == new.api.metrics_interface,
    );
    match (&old.bgp, &new.bgp) {
        (None, None) => {}
        (Some(a), Some(b)) => {
            // Every session's OPEN carries these: changing them is a
            // restart of every session, which is what a restart does.
            restart("bgp.asn", a.asn == b.asn);
            restart("bgp.routerId", a.router_id == b.router_id);
            restart(
                "bgp.gracefulRestart",
                a.graceful_restart == b.graceful_restart,
            );
            if a.drain_delay != b.drain_delay {
                d.changes.push(format!(
                    "bgp.drainDelayMs: {} -> {}",
                    a.drain_delay.as_millis(),
                    b.drain_delay.as_millis()
                ));
            }
            if a.neighbors != b.neighbors {
                d.bgp = true;
            }
        }
        _ => restart("bgp", false),
    }
    // The sessions themselves are listed by what applies them; the
    // resolved peers (`dataplane.bfd`) are compared too: a nodeLookup
    // file may have changed.
    if old.bfd != new.bfd || o.bfd != n.bfd {
        d.bfd = true;
        if old.bfd != new.bfd {
            d.changes.push(format!(
                "bfd: {}/{}/{} -> {}/{}/{} (minTxMs/minRxMs/multiplier)",
                old.bfd.min_tx_ms,
                old.bfd.min_rx_ms,
                old.bfd.multiplier,
                new.bfd.min_tx_ms,
                new.bfd.min_rx_ms,
                new.bfd.multiplier
            ));
        }
    }
    if o.routes != n.routes {
        d.routes = true;
        d.changes.push(format!(
            "dataplane.routes: {} -> {} routes",
            o.routes.len(),
            n.routes.len()
        ));
    }
    let key = lb::vs_key;
    for vs in &old.virtual_servers {
        if !new.virtual_servers.iter().any(|x| key(x) == key(vs)) {
            d.changes
                .push(format!("virtual server {} removed", describe(vs)));
        }
    }
    for vs in &new.virtual_servers {
        let Some(was) = old.virtual_servers.iter().find(|x| key(x) == key(vs)) else {
            d.changes
                .push(format!("virtual server {} added", describe(vs)));
            continue;
        };
        if was == vs {
            continue;
        }
        let mut what = Vec::new();
        for m in &was.members {
            match vs
                .members
                .iter()
                .find(|x| (x.address, x.port) == (m.address, m.port))
            {
                None => what.push(format!(
                    "member {} removed",
                    SocketAddr::new(m.address, m.port)
                )),
                Some(x) if x.weight != m.weight => what.push(format!(
                    "member {} weight {} -> {}",
                    SocketAddr::new(m.address, m.port),
                    m.weight,
                    x.weight
                )),
                _ => {}
            }
        }
        for m in &vs.members {
            if !was
                .members
                .iter()
                .any(|x| (x.address, x.port) == (m.address, m.port))
            {
                what.push(format!(
                    "member {} added",
                    SocketAddr::new(m.address, m.port)
                ));
            }
        }
        if was.name != vs.name {
            what.push(format!("renamed from {}", was.name));
        }
        if was.health_check != vs.health_check {
            what.push("healthCheck".into());
        }
        if was.snat != vs.snat {
            what.push("snat".into());
        }
        if was.idle_timeout != vs.idle_timeout || was.reset_on_timeout != vs.reset_on_timeout {
            what.push("timeouts".into());
        }
        if what.is_empty() {
            what.push("member order".into());
        }
        d.changes.push(format!(
            "virtual server {}: {}",
            describe(vs),
            what.join(", ")
        ));
    }
    d
}

/// Reads and validates `path` as `pollux run` does.
pub fn load(path: &Path, host: &HostFacts) -> Result<Config, Refused> {
    let fail = |e: config::Error| Refused::Invalid(e.to_string());
    let mut cfg = config::load(path, host).map_err(fail)?;
    crate::pod::resolve(&mut cfg, &vfio::Context::from_env()).map_err(fail)?;
    cfg.dataplane.bfd =
        crate::bfd::peers(&cfg).map_err(|e| Refused::Invalid(format!("bgp.neighbors: {e}")))?;
    Ok(cfg)
}

/// Reloads from `path` (default: the file the instance runs from, which
/// `path` then becomes). Logs the outcome.
pub fn reload(state: &State, path: Option<&Path>, why: &str) -> Result<Outcome, Refused> {
    let path = match path {
        Some(p) => p.to_path_buf(),
        None => lock(state).path.clone(),
    };
    let r = try_reload(state, &path);
    let mut ops = lock(state);
    let (result, msg) = match &r {
        Ok(Outcome::Applied {
            generation,
            changes,
        }) => {
            tracing::info!(%why, file = %path.display(), generation, changes = %changes.join("; "), "configuration reloaded");
            ops.reloads[0] += 1;
            ("applied", changes.join("; "))
        }
        Ok(Outcome::Unchanged { generation }) => {
            tracing::info!(%why, file = %path.display(), generation, "configuration reloaded: unchanged");
            ops.reloads[1] += 1;
            ("unchanged", String::new())
        }
        Err(e) => {
            tracing::error!(%why, file = %path.display(), error = %e, "configuration refused; the running one stays");
            ops.reloads[2] += 1;
            ("refused", e.to_string())
        }
    };
    ops.last = Some((result, msg, unix_ms()));
    if r.is_ok() {
        ops.path = path;
    }
    r
}

/// The reloads' record and the operator's overrides (a poisoned lock is
/// still read: each update is one assignment).
pub fn lock(state: &State) -> std::sync::MutexGuard<'_, Ops> {
    state
        .ops
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn try_reload(state: &State, path: &Path) -> Result<Outcome, Refused> {
    let host = lock(state).host.clone().unwrap_or_else(HostFacts::probe);
    let new = load(path, &host)?;
    let old = state.config.load_full();
    let d = diff(&old, &new);
    if !d.restart.is_empty() {
        return Err(Refused::NeedsRestart(d.restart));
    }
    // The tables must build before anything is replaced.
    {
        let ops = lock(state);
        let layout = ops.layout.sync(&new.virtual_servers);
        lb::build(&new, &state.health.get(), &layout, &ops.disabled)
            .map_err(|e| Refused::Invalid(format!("virtualServers: {e}")))?;
    }
    let fib = if d.routes {
        Some(
            new.dataplane
                .fib()
                .map_err(|e| Refused::Invalid(format!("dataplane.routes: {e}")))?,
        )
    } else {
        None
    };
    if d.changes.is_empty() && !d.bgp && !d.bfd {
        return Ok(Outcome::Unchanged {
            generation: lock(state).generation,
        });
    }
    let mut changes = d.changes;
    // BFD first (it can still refuse: a peer no port reaches), then BGP,
    // whose new neighbors find their BFD sessions there.
    if d.bfd {
        let r = state.with_dp_mut(|dp| dp.bfd_reconfigure(&old.dataplane.bfd, &new.dataplane.bfd));
        match r {
            Some(Ok(c)) => changes.extend(c),
            Some(Err(e)) => return Err(Refused::Invalid(format!("bgp.neighbors: {e}"))),
            None => {}
        }
    }
    if let (true, Some(speaker), Some(bgp)) = (d.bgp, &state.bgp, &new.bgp) {
        changes.extend(speaker.sync(bgp, new.node_name.as_deref(), &new.dataplane.ports));
    }
    if changes.is_empty() {
        return Ok(Outcome::Unchanged {
            generation: lock(state).generation,
        });
    }
    let targets = crate::health::targets(&new.virtual_servers);
    state.config.store(Arc::new(new));
    if let Some(fib) = fib {
        state.with_dp(|dp| {
            let vs = dp.tables().vs.clone();
            dp.publish(dataplane::api::Tables { fib, vs });
        });
    }
    let generation = {
        let mut ops = lock(state);
        let cfg = state.config.load();
        let names: BTreeSet<&str> = cfg
            .virtual_servers
            .iter()
            .map(|v| v.name.as_str())
            .collect();
        ops.drained.retain(|n| names.contains(n.as_str()));
        ops.disabled.retain(|(n, a, p)| {
            cfg.virtual_servers
                .iter()
                .any(|v| v.name == *n && v.members.iter().any(|m| (m.address, m.port) == (*a, *p)))
        });
        ops.generation += 1;
        ops.loaded_unix_ms = unix_ms();
        ops.generation
    };
    state.health.set_targets(targets);
    apply(state);
    Ok(Outcome::Applied {
        generation,
        changes,
    })
}

/// Republishes what derives from the configuration, the health verdicts
/// and the operator's overrides: the workers' virtual-server table and the
/// VIP set that BGP announces.
pub fn apply(state: &State) {
    let cfg = state.config.load();
    let health = state.health.get();
    let mut ops = lock(state);
    ops.layout = ops.layout.sync(&cfg.virtual_servers);
    match lb::build(&cfg, &health, &ops.layout, &ops.disabled) {
        Ok(mut t) => {
            t.set_second_chance(state.scale_out.second_chance());
            state.with_dp(|dp| dp.publish_vs(t));
            ops.served_health = health.clone();
        }
        Err(e) => tracing::error!(error = %e, "virtual servers not published"),
    }
    let served: Vec<VirtualServer> = cfg
        .virtual_servers
        .iter()
        .filter(|v| !ops.drained.contains(&v.name))
        .cloned()
        .collect();
    drop(ops);
    let vips = crate::bgp::healthy_vips(&served, &health);
    state.vips.send_if_modified(|cur| {
        let changed = *cur != vips;
        if changed {
            tracing::info!(vips = vips.len(), "VIP set changed");
            *cur = vips;
        }
        changed
    });
}

/// Applies on every health verdict (reloads and operator commands apply
/// at once themselves).
pub async fn follow(state: Arc<State>) {
    let mut health = state.health.subscribe();
    loop {
        apply(&state);
        if health.changed().await.is_err() {
            return;
        }
    }
}

/// Reloads when the file's content changes (polled every second, through
/// symlinks: a Kubernetes ConfigMap update swaps the `..data` link). A
/// refused content is not retried until it changes again.
pub async fn watch_file(state: Arc<State>) {
    let read = |p: &Path| std::fs::read(p).ok();
    let mut seen = read(&lock(&state).path);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let path = lock(&state).path.clone();
        let now = read(&path);
        if now.is_some() && now != seen {
            seen = now;
            let _ = reload(&state, None, "file changed");
        }
    }
}

/// Parses `ADDRESS`, `ADDRESS:PORT` or `[V6]:PORT`.
pub fn parse_member(s: &str) -> Option<(IpAddr, Option<u16>)> {
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some((sa.ip(), Some(sa.port())));
    }
    s.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
        .map(|a| (a, None))
}

/// Operator commands (`{"do": ...}` requests on the API socket).
pub fn command(state: &State, req: &Value) -> Value {
    let what = req.get("do").and_then(Value::as_str).unwrap_or("");
    let vs_name = req.get("vs").and_then(Value::as_str);
    let r: Result<String, String> = match what {
        "reload" => {
            let path = req.get("config").and_then(Value::as_str).map(PathBuf::from);
            match reload(state, path.as_deref(), "pollux reload") {
                Ok(Outcome::Applied { generation, changes }) => {
                    return json!({ "ok": true, "result": "applied", "generation": generation, "changes": changes })
                }
                Ok(Outcome::Unchanged { generation }) => {
                    return json!({ "ok": true, "result": "unchanged", "generation": generation, "changes": [] })
                }
                Err(e) => Err(format!("configuration refused, the running one stays: {e}")),
            }
        }
        "member-disable" | "member-enable" => member(state, vs_name, req.get("member").and_then(Value::as_str), what == "member-disable"),
        "vs-drain" | "vs-undrain" => drain(state, vs_name, what == "vs-drain"),
        other => Err(format!(
            "unknown command {other:?} (reload, member-disable, member-enable, vs-drain, vs-undrain)"
        )),
    };
    match r {
        Ok(msg) => {
            tracing::info!(command = what, %msg, "operator command");
            apply(state);
            json!({ "ok": true, "message": msg })
        }
        Err(e) => json!({ "error": e }),
    }
}

fn member(
    state: &State,
    vs: Option<&str>,
    member: Option<&str>,
    disable: bool,
) -> Result<String, String> {
    let (Some(name), Some(m)) = (vs, member) else {
        return Err("expected \"vs\" and \"member\"".into());
    };
    let (addr, port) = parse_member(m).ok_or_else(|| format!("{m:?} is not ADDRESS[:PORT]"))?;
    let cfg = state.config.load();
    let vs = cfg
        .virtual_servers
        .iter()
        .find(|v| v.name == name)
        .ok_or_else(|| format!("no virtual server named {name:?}"))?;
    let hits: Vec<(IpAddr, u16)> = vs
        .members
        .iter()
        .filter(|x| x.address == addr && port.is_none_or(|p| p == x.port))
        .map(|x| (x.address, x.port))
        .collect();
    if hits.is_empty() {
        return Err(format!("virtual server {name:?} has no member {m}"));
    }
    let mut ops = lock(state);
    let mut out = String::new();
    for (a, p) in hits {
        let k = (name.to_string(), a, p);
        let changed = if disable {
            ops.disabled.insert(k)
        } else {
            ops.disabled.remove(&k)
        };
        let _ = write!(
            out,
            "{}member {} of {name} {}{}",
            if out.is_empty() { "" } else { "; " },
            SocketAddr::new(a, p),
            if disable { "disabled" } else { "enabled" },
            if changed { "" } else { " (already)" }
        );
    }
    Ok(out)
}

fn drain(state: &State, vs: Option<&str>, on: bool) -> Result<String, String> {
    let Some(name) = vs else {
        return Err("expected \"vs\"".into());
    };
    let cfg = state.config.load();
    let Some(v) = cfg.virtual_servers.iter().find(|v| v.name == name) else {
        return Err(format!("no virtual server named {name:?}"));
    };
    let mut ops = lock(state);
    let changed = if on {
        ops.drained.insert(name.to_string())
    } else {
        ops.drained.remove(name)
    };
    let shared = cfg
        .virtual_servers
        .iter()
        .filter(|x| x.address == v.address && x.name != v.name && !ops.drained.contains(&x.name))
        .count();
    let mut msg = format!(
        "virtual server {name} {}{}",
        if on {
            "drained (its VIP is withdrawn, its flows stay)"
        } else {
            "undrained"
        },
        if changed { "" } else { " (already)" }
    );
    if on && shared > 0 {
        let _ = write!(
            msg,
            "; {} stays announced: {shared} other virtual server(s) use it",
            v.address
        );
    }
    Ok(msg)
}

/// Whether member `(addr, port)` of `vs` is disabled, and whether `vs` is
/// drained (for `show virtual-servers`).
pub fn overrides(state: &State) -> (Disabled, BTreeSet<String>) {
    let ops = lock(state);
    (ops.disabled.clone(), ops.drained.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, HostFacts};

    fn cfg(text: &str) -> Config {
        let host = HostFacts {
            allowed_cpus: vec![0, 1],
            node_name: None,
        };
        config::validate(&config::parse(text).unwrap(), &host).unwrap()
    }

    const BASE: &str = "instance: { name: t }
dataplane:
  workers: 1
  eal: [\"--no-pci\"]
  ports:
    - { name: ext, device: net_null0, selfIps: [\"10.0.0.2/24\"] }
  routes: [{ prefix: 0.0.0.0/0, via: 10.0.0.1 }]
virtualServers:
  - { name: a, address: 10.9.0.1, port: 80, protocol: tcp, members: [{ address: 10.1.0.1, port: 80 }, { address: 10.1.0.2, port: 80 }] }
api: { socket: /tmp/t.sock }
";

    #[test]
    fn the_same_file_is_no_change() {
        let d = diff(&cfg(BASE), &cfg(BASE));
        assert_eq!(d, Diff::default());
    }

    #[test]
    fn live_changes_are_listed() {
        let new = BASE
            .replace(", { address: 10.1.0.2, port: 80 }", ", { address: 10.1.0.2, port: 80, weight: 3 }")
            .replace("api:", "  - { name: b, address: 10.9.0.2, port: 80, protocol: tcp, members: [{ address: 10.1.0.3, port: 80 }] }\napi:")
            .replace("via: 10.0.0.1", "via: 10.0.0.9");
        let d = diff(&cfg(BASE), &cfg(&new));
        assert!(d.restart.is_empty(), "{:?}", d.restart);
        assert!(d.routes);
        assert_eq!(
            d.changes,
            vec![
                "dataplane.routes: 1 -> 1 routes".to_string(),
                "virtual server a (10.9.0.1:80/tcp): member 10.1.0.2:80 weight 1 -> 3".into(),
                "virtual server b (10.9.0.2:80/tcp) added".into(),
            ]
        );
        let gone = BASE.replace(", { address: 10.1.0.2, port: 80 }", "");
        assert_eq!(
            diff(&cfg(BASE), &cfg(&gone)).changes,
            vec!["virtual server a (10.9.0.1:80/tcp): member 10.1.0.2:80 removed".to_string()]
        );
    }

    #[test]
    fn what_needs_a_restart_is_refused_by_name() {
        let new = BASE
            .replace("name: t", "name: u")
            .replace("net_null0", "net_null1")
            .replace("/tmp/t.sock", "/tmp/u.sock");
        let d = diff(&cfg(BASE), &cfg(&new));
        let all = d.restart.join("\n");
        for field in ["instance.name", "dataplane.ports", "api.socket"] {
            assert!(
                all.contains(&format!(
                    "{field}: cannot change while running (restart needed)"
                )),
                "{all}"
            );
        }
        assert!(!all.contains("dataplane.eal"), "{all}");
    }

    #[test]
    fn bgp_neighbors_and_bfd_timers_are_live_the_asn_is_not() {
        let with = |extra: &str| {
            BASE.replace(
                "api:",
                &format!("bgp:\n  asn: 65001\n  routerId: 10.0.0.2\n  neighbors:\n    - {{ address: 10.0.0.1, asn: 65000, bfd: true }}\n{extra}bfd: {{ minTxMs: 100, minRxMs: 100, multiplier: 3 }}\napi:"),
            )
        };
        let base = with("");
        assert_eq!(diff(&cfg(&base), &cfg(&base)), Diff::default());
        let more = with("    - { address: 10.0.0.3, asn: 65003 }\n")
            .replace("minTxMs: 100", "minTxMs: 300");
        let d = diff(&cfg(&base), &cfg(&more));
        assert!(d.restart.is_empty(), "{:?}", d.restart);
        assert!(d.bgp && d.bfd);
        assert_eq!(
            d.changes,
            vec!["bfd: 100/100/3 -> 300/100/3 (minTxMs/minRxMs/multiplier)".to_string()]
        );
        let d = diff(&cfg(&base), &cfg(&base.replace("asn: 65001", "asn: 65009")));
        assert_eq!(
            d.restart,
            vec!["bgp.asn: cannot change while running (restart needed)".to_string()]
        );
        let d = diff(&cfg(BASE), &cfg(&base));
        assert_eq!(
            d.restart,
            vec!["bgp: cannot change while running (restart needed)".to_string()]
        );
    }

    #[test]
    fn members_parse_with_and_without_port() {
        assert_eq!(
            parse_member("10.1.0.1:80"),
            Some(("10.1.0.1".parse().unwrap(), Some(80)))
        );
        assert_eq!(
            parse_member("10.1.0.1"),
            Some(("10.1.0.1".parse().unwrap(), None))
        );
        assert_eq!(
            parse_member("[fd00::1]:8080"),
            Some(("fd00::1".parse().unwrap(), Some(8080)))
        );
        assert_eq!(
            parse_member("fd00::1"),
            Some(("fd00::1".parse().unwrap(), None))
        );
        assert_eq!(parse_member("web"), None);
    }
}

//! `pollux run`: start the data plane, configure the kernel side, serve the
//! API and metrics, and stop cleanly on SIGTERM/SIGINT or a worker failure.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use dataplane::api::Dataplane;
use tokio::signal::unix::{signal, SignalKind};

use crate::config::Config;
use crate::state::State;
use crate::{api, kernel, metrics};

/// How `run` ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    /// SIGTERM/SIGINT: drained and stopped.
    Stopped,
    /// A worker died; the message says why.
    WorkerFailed(String),
}

pub fn run(mut config: Config) -> anyhow::Result<Exit> {
    config.dataplane.bfd =
        crate::bfd::peers(&config).map_err(|e| anyhow::anyhow!("BFD peers: {e}"))?;
    tracing::info!(instance = %config.name, dpdk = dataplane::dpdk::version(), eal = ?config.dataplane.eal_args(), "starting");
    // Health-checked members start down; the workers' first table says so.
    let vs = crate::lb::table(&config, &Default::default())
        .context("building the virtual-server table")?;
    // Before anything is started: a live instance on the same API socket
    // is running with these ports too.
    api::check_free(&config.api.socket)
        .with_context(|| format!("api.socket {}", config.api.socket.display()))?;
    check_tap_names(&config)?;
    let dp = Dataplane::start(&config.dataplane, vs).context("starting the data plane")?;
    kernel::configure(&config.dataplane)?;
    let mut state = State::new(config, dp);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let _rt = rt.enter();
    // The VIPs follow their members' health checks (without any check:
    // every virtual server with members). Targets start down, so a VIP is
    // first announced once a member proved itself.
    let targets = crate::health::targets(&state.config.virtual_servers);
    let health = (!targets.is_empty()).then(|| crate::health::spawn(targets));
    state.health = health.clone();
    if let Some(h) = &health {
        let vips = crate::bgp::healthy_vips(&state.config.virtual_servers, &h.borrow());
        state.vips.send_replace(vips);
    }
    if let Some(bgp) = &state.config.bgp {
        let speaker = crate::bgp::Speaker::start(
            bgp,
            state.config.node_name.as_deref(),
            &state.config.dataplane.ports,
            state.vips.subscribe(),
        );
        state.bfd.set_hook(speaker.coupling());
        state.bgp = Some(speaker);
    }
    let state = Arc::new(state);
    // The workers' virtual-server table follows the same verdicts (without
    // health checks the table they started with stays).
    if let Some(h) = &state.health {
        drop(tokio::spawn(crate::lb::follow(state.clone(), h.clone())));
    }
    if let Some(h) = health {
        let st = state.clone();
        tokio::spawn(crate::bgp::follow_health(
            h,
            state.config.virtual_servers.clone(),
            move |vips| {
                st.vips.send_if_modified(|cur| {
                    let changed = *cur != vips;
                    if changed {
                        tracing::info!(vips = vips.len(), "VIP set changed (health)");
                        *cur = vips;
                    }
                    changed
                });
            },
        ));
    }
    let exit = rt.block_on(control(state.clone()));
    // The drain's last segments (BGP's Cease, TCP FINs) leave the kernel
    // through the TAPs and the workers: let them out before stopping.
    rt.block_on(quiesce(&state));
    // Stop the workers, then release ports, TAPs, mempool and EAL.
    if let Ok(mut dp) = state.dataplane.lock() {
        if let Some(mut dp) = dp.take() {
            dp.stop();
            drop(dp);
        }
    }
    api::remove_socket(&state.config.api.socket);
    if let Some(dir) = state.config.dataplane.runtime_dir() {
        let _ = std::fs::remove_dir_all(dir);
    }
    tracing::info!("stopped");
    exit
}

/// Each port's TAP is a kernel interface named after the port, created in
/// this namespace by DPDK's net_tap. An interface already there under that
/// name makes net_tap fail, which DPDK reports only as a missing port
/// (`no DPDK port named "net_tap0"`): say what is wrong before EAL init.
pub fn check_tap_names(config: &Config) -> anyhow::Result<()> {
    for (i, p) in config.dataplane.ports.iter().enumerate() {
        if nix::net::if_::if_nametoindex(p.name.as_str()).is_ok() {
            anyhow::bail!(
                "dataplane.ports[{i}].name: interface {:?} already exists in this network \
                 namespace: the port's TAP (named after the port) cannot be created; rename \
                 the port or remove the interface",
                p.name
            );
        }
    }
    Ok(())
}

async fn control(state: Arc<State>) -> anyhow::Result<Exit> {
    let listener = api::bind(&state.config.api.socket)
        .with_context(|| format!("api.socket {}", state.config.api.socket.display()))?;
    tokio::spawn(api::serve(listener, state.clone()));
    tokio::spawn(crate::bfd::watch(state.clone()));
    if let Some(addr) = state.config.api.metrics {
        metrics::serve(addr, state.clone())
            .await
            .with_context(|| format!("api.metrics {addr}"))?;
    }
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tracing::info!(socket = %state.config.api.socket.display(), "running");
    loop {
        tokio::select! {
            _ = term.recv() => {
                tracing::info!("SIGTERM: draining");
                drain_bgp(&state, true).await;
                return Ok(Exit::Stopped)
            }
            _ = int.recv() => {
                tracing::info!("SIGINT: stopping");
                drain_bgp(&state, false).await;
                return Ok(Exit::Stopped)
            }
            _ = tick.tick() => {
                let failure = state.dataplane.lock().ok().and_then(|d| d.as_ref().and_then(Dataplane::failure));
                if let Some(msg) = failure {
                    tracing::error!(%msg, "a worker failed: stopping");
                    return Ok(Exit::WorkerFailed(msg));
                }
            }
        }
    }
}

/// Waits until the kernel has sent nothing through the TAPs for 50 ms
/// (bounded: 1 s).
async fn quiesce(state: &State) {
    let from_tap = || {
        state
            .stats()
            .map(|s| s.ports.iter().map(|p| p.counters.from_tap).sum::<u64>())
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    let mut last = from_tap();
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = from_tap();
        if now == last {
            return;
        }
        last = now;
    }
}

/// The drain, while the data plane still forwards: GRACEFUL_SHUTDOWN, the
/// configured delay (none on SIGINT), withdraw, BFD AdminDown (peers do not
/// count it as a failure), Cease.
async fn drain_bgp(state: &State, wait: bool) {
    match (&state.bgp, &state.config.bgp) {
        (Some(speaker), Some(cfg)) => {
            let delay = if wait {
                cfg.drain_delay
            } else {
                Duration::ZERO
            };
            speaker
                .drain_then(delay, crate::bfd::admin_down(state))
                .await;
        }
        _ => crate::bfd::admin_down(state).await,
    }
}

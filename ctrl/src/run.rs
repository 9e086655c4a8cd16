//! `pollux run`: start the data plane, configure the kernel side, serve the
//! API and metrics, reload on SIGHUP or a change of the file
//! ([`crate::reload`]), and stop cleanly on SIGTERM/SIGINT or a worker
//! failure.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use dataplane::api::Dataplane;
use tokio::signal::unix::{signal, SignalKind};

use crate::config::Config;
use crate::kernel;
use crate::render::{api, metrics};
use crate::state::State;

/// How `run` ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    /// SIGTERM/SIGINT: drained and stopped.
    Stopped,
    /// A worker died; the message says why.
    WorkerFailed(String),
}

/// `path`: the file `config` came from (SIGHUP, `pollux reload` and the
/// file watcher read it again).
pub fn run(mut config: Config, path: PathBuf) -> anyhow::Result<Exit> {
    // Before the EAL pins this thread to the control CPUs.
    let host = crate::config::HostFacts::probe();
    config.dataplane.bfd =
        crate::bfd::peers(&config).map_err(|e| anyhow::anyhow!("BFD peers: {e}"))?;
    tracing::info!(instance = %config.name, dpdk = dataplane::api::dpdk_version(), eal = ?config.dataplane.eal_args(), "starting");
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
    let mut state = State::new(config, dp, path, host);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let _rt = rt.enter();
    // The VIPs follow their members' health checks (without any check:
    // every virtual server with members). Targets start down, so a VIP is
    // first announced once a member proved itself.
    let cfg = state.config.load_full();
    state
        .health
        .set_targets(crate::health::targets(&cfg.virtual_servers));
    let vips = crate::bgp::healthy_vips(&cfg.virtual_servers, &state.health.get());
    state.vips.send_replace(vips);
    if let Some(bgp) = &cfg.bgp {
        let speaker = crate::bgp::Speaker::start(
            bgp,
            cfg.node_name.as_deref(),
            &cfg.dataplane.ports,
            state.vips.subscribe(),
        );
        state.bgp = Some(speaker);
    }
    // The workers' BFD changes, as messages to BGP and the BFD history.
    let mut events = crate::events::Subscribers::default();
    state.bfd.follow(events.bfd());
    if let Some(speaker) = &state.bgp {
        speaker.follow_bfd(events.bfd());
    }
    if let Some(ring) = state.with_dp(|dp| dp.bfd_events()) {
        drop(tokio::spawn(crate::events::pump(ring, events)));
    }
    let state = Arc::new(state);
    // The workers' table and the VIP set follow the health verdicts, the
    // reloads and the operator's overrides.
    drop(tokio::spawn(crate::reload::follow(state.clone())));
    drop(tokio::spawn(crate::reload::watch_file(state.clone())));
    drop(tokio::spawn(crate::scaleout::listen(state.clone())));
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
    let cfg = state.config.load();
    api::remove_socket(&cfg.api.socket);
    if let Some(dir) = cfg.dataplane.runtime_dir() {
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
    let cfg = state.config.load_full();
    let listener = api::bind(&cfg.api.socket)
        .with_context(|| format!("api.socket {}", cfg.api.socket.display()))?;
    tokio::spawn(api::serve(listener, state.clone()));
    if let Some(addr) = cfg.api.metrics {
        metrics::serve(addr, cfg.api.metrics_interface.as_deref(), state.clone())
            .await
            .with_context(|| format!("api.metrics {addr}"))?;
    }
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tracing::info!(socket = %cfg.api.socket.display(), "running");
    loop {
        tokio::select! {
            _ = term.recv() => {
                tracing::info!("SIGTERM: draining");
                // Peers first (they redirect this instance's flows to it
                // once the router moves them), then BGP.
                let draining = crate::scaleout::drain_start(&state).await;
                drain_bgp(&state, true).await;
                crate::scaleout::drain_end(draining).await;
                return Ok(Exit::Stopped)
            }
            _ = int.recv() => {
                tracing::info!("SIGINT: stopping");
                drain_bgp(&state, false).await;
                return Ok(Exit::Stopped)
            }
            _ = hup.recv() => {
                // Refusals are logged by reload (the running config stays).
                let _ = crate::reload::reload(&state, None, "SIGHUP");
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
    let cfg = state.config.load_full();
    match (&state.bgp, &cfg.bgp) {
        (Some(speaker), Some(cfg)) => {
            let delay = if wait {
                cfg.drain_delay
            } else {
                Duration::ZERO
            };
            speaker
                .drain_then(delay, crate::bfd::admin_down(&state.dataplane))
                .await;
        }
        _ => crate::bfd::admin_down(&state.dataplane).await,
    }
}

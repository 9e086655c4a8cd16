//! What the control thread knows, shared by the API, the metrics endpoint
//! and the main task. Its rendering (JSON, tables, metrics) is
//! `crate::render`'s.

use std::sync::Mutex;

use dataplane::api::{Dataplane, Stats};

use crate::config::Config;

#[derive(Debug)]
pub struct State {
    /// The running configuration: replaced whole by a reload.
    pub config: arc_swap::ArcSwap<Config>,
    /// `None` once shut down.
    pub dataplane: Mutex<Option<Dataplane>>,
    /// The BFD sessions' history (fed by `crate::events`).
    pub bfd: crate::bfd::Monitor,
    /// The VIPs to advertise (those with at least one healthy member):
    /// whoever judges health replaces the set; BGP sessions follow it.
    pub vips: tokio::sync::watch::Sender<crate::bgp::VipSet>,
    /// The BGP speaker, when `bgp` is configured (set by `run`).
    pub bgp: Option<crate::bgp::Speaker>,
    /// The members' health checks and verdicts.
    pub health: crate::health::Checker,
    /// Reloads and the operator's overrides.
    pub ops: Mutex<crate::reload::Ops>,
    /// Whether this instance and its peers drain (second chance).
    pub scale_out: crate::scaleout::ScaleOut,
    /// The packet capture that runs, if one does.
    pub captures: crate::capture::Captures,
}

impl State {
    /// `path`: the file `config` was loaded from (reloads read it again);
    /// `host`: the facts it was validated against.
    pub fn new(
        config: Config,
        dataplane: Dataplane,
        path: std::path::PathBuf,
        host: crate::config::HostFacts,
    ) -> State {
        // Until health checks feed it: every virtual server with members.
        let vips = crate::bgp::configured_vips(&config.virtual_servers);
        let ops = crate::reload::Ops::new(path, host, &config);
        State {
            config: arc_swap::ArcSwap::from_pointee(config),
            dataplane: Mutex::new(Some(dataplane)),
            bfd: Default::default(),
            vips: tokio::sync::watch::channel(vips).0,
            bgp: None,
            health: Default::default(),
            ops: Mutex::new(ops),
            scale_out: Default::default(),
            captures: Default::default(),
        }
    }

    pub(crate) fn with_dp<T>(&self, f: impl FnOnce(&Dataplane) -> T) -> Option<T> {
        self.dataplane.lock().ok()?.as_ref().map(f)
    }

    pub(crate) fn with_dp_mut<T>(&self, f: impl FnOnce(&mut Dataplane) -> T) -> Option<T> {
        self.dataplane.lock().ok()?.as_mut().map(f)
    }

    pub fn stats(&self) -> Option<Stats> {
        self.with_dp(Dataplane::stats)
    }
}

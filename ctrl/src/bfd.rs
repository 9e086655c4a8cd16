//! BFD as ctrl sees it: which peers get a session (every BGP neighbor with
//! `bfd: true`), the sessions' history from the workers' events, and the
//! drain (`show bfd sessions` and the metrics: `crate::render`). The
//! sessions themselves run in the workers (the data plane's `bfd` module).
//!
//! RFC 5882 coupling: the changes reach BGP as typed messages
//! (`crate::events`); a path failure tears the BGP session down without
//! waiting for its hold timer, the session coming Up lets BGP connect
//! again.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dataplane::api::{BfdPeer, BfdState as State, BfdTimers as Timers, Dataplane};
use tokio::sync::mpsc;

use crate::config::{Config, PeerAddress};
use crate::events::BfdChange;

/// The BFD peers of a configuration (nodeLookup resolved for this node).
pub fn peers(cfg: &Config) -> Result<Vec<BfdPeer>, String> {
    let Some(bgp) = &cfg.bgp else {
        return Ok(vec![]);
    };
    let b = &cfg.bfd;
    let timers = Timers {
        desired_min_tx_us: b.min_tx_ms * 1000,
        required_min_rx_us: b.min_rx_ms * 1000,
        detect_mult: b.multiplier,
    };
    let mut out = Vec::new();
    for n in bgp.neighbors.iter().filter(|n| n.bfd) {
        let addrs = match &n.address {
            PeerAddress::Fixed(a) => vec![*a],
            PeerAddress::NodeLookup(f) => crate::bgp::lookup_peers(f, cfg.node_name.as_deref())?,
        };
        // RFC 5883: a multihop peer's packets may arrive with a TTL lowered
        // by up to ebgpMultihop - 1 hops.
        let multihop = (n.ebgp_multihop > 1).then(|| 255u8.saturating_sub(n.ebgp_multihop - 1));
        out.extend(addrs.into_iter().map(|addr| BfdPeer {
            addr,
            timers,
            multihop,
        }));
    }
    Ok(out)
}

/// What ctrl remembers of each session's history.
#[derive(Debug, Default, Clone)]
pub struct History {
    pub up: u64,
    pub down: u64,
}

/// The sessions' history, kept from the BFD changes ([`Monitor::follow`]).
#[derive(Debug, Default)]
pub struct Monitor {
    history: Arc<Mutex<HashMap<IpAddr, History>>>,
}

impl Monitor {
    /// Counts each session's transitions to Up and its path failures
    /// (RFC 5882), from `changes`, in a task of its own.
    pub fn follow(&self, mut changes: mpsc::UnboundedReceiver<BfdChange>) {
        let history = self.history.clone();
        tokio::spawn(async move {
            while let Some(c) = changes.recv().await {
                if let Ok(mut h) = history.lock() {
                    let e = h.entry(c.peer).or_default();
                    e.up += u64::from(c.up);
                    e.down += u64::from(c.down);
                }
            }
        });
    }

    /// What happened to `peer`'s session so far.
    pub fn history(&self, peer: IpAddr) -> History {
        self.history
            .lock()
            .ok()
            .and_then(|h| h.get(&peer).cloned())
            .unwrap_or_default()
    }
}

/// Drain (RFC 5882 §3.2): every session AdminDown, so peers do not take
/// the shutdown for a failure. Returns once each session has sent two
/// AdminDown packets — the peer has certainly processed the first before
/// BGP's Cease — bounded by 2 s.
pub async fn admin_down(dataplane: &Mutex<Option<Dataplane>>) {
    fn with_dp<T>(dp: &Mutex<Option<Dataplane>>, f: impl FnOnce(&Dataplane) -> T) -> Option<T> {
        dp.lock().ok()?.as_ref().map(f)
    }
    let sent = |dp: &Dataplane| -> Vec<u64> {
        dp.bfd_sessions()
            .iter()
            .map(|s| s.info.as_ref().map_or(0, |i| i.stats.tx_packets))
            .collect()
    };
    let Some(before) = with_dp(dataplane, |dp| {
        dp.bfd_admin_down_all();
        sent(dp)
    }) else {
        return;
    };
    if before.is_empty() {
        return;
    }
    tracing::info!(sessions = before.len(), "BFD: AdminDown (drain)");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while tokio::time::Instant::now() < deadline {
        let done = with_dp(dataplane, |dp| {
            dp.bfd_sessions().iter().zip(&before).all(|(s, b)| {
                s.info
                    .as_ref()
                    .is_some_and(|i| i.state == State::AdminDown && i.stats.tx_packets >= *b + 2)
            })
        });
        if done != Some(false) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tracing::warn!("BFD: not every AdminDown was sent within 2 s");
}

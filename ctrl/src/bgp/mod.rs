//! The BGP speaker: a thin tokio driver over the sans-IO core (crate
//! `pollux-bgp`, `bgp::peer::Peer`), the VIP advertisement policy, and what
//! the rest of ctrl sees of it ([`Speaker`]).
//!
//! ```text
//!            config::Bgp, self IPs, nodeLookup
//!                        │ Speaker::start
//!   watch<VipSet> ──┬────▼──────────────┬──────────────────────┐
//!   (VIPs with ≥ 1  │ neighbor task     │ neighbor task  …     │ one per peer
//!   healthy member) │ (span bgp{peer})  │                      │ address
//!                   └──▲──────────▲─────┴──────────────────────┘
//!      listener task   │Incoming  │Command: GracefulShutdown, Stop,
//!      (self IP:179) ──┘          │         PeerDown/PeerUp (BFD)
//!                                 │
//!   Speaker: neighbors (+ Status), vips (read by crate::render), drain,
//!            peer_down, peer_up; follow_bfd (a task: BfdChange → PeerDown/PeerUp)
//! ```
//!
//! Sessions are kernel TCP sockets bound to the port's self IP in the
//! neighbor's subnet (the TAP carries it; the data plane's exception path
//! carries the segments). Each neighbor both listens (one listener per
//! self IP, dispatching by peer address) and connects, as RFC 4271's FSM
//! does; collisions are the core's business.

pub mod gtsm;
mod live;
pub mod md5;
mod neighbor;
pub mod policy;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bgp::fsm::{self, GracefulRestartConfig, State};
use dataplane::api::PortSpec;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::{Bgp, Neighbor};
use crate::events::BfdChange;
use neighbor::Command;
pub use neighbor::Status;
pub use policy::{configured_vips, follow_health, healthy_vips, VipSet};

/// The BGP port.
pub const PORT: u16 = 179;

/// ConnectRetryTime (RFC 4271 §10 suggests 120 s; a data plane that
/// restarts wants its sessions back sooner).
const CONNECT_RETRY_SECS: u16 = 30;

/// The RFC 8203 shutdown communication sent on drain.
const SHUTDOWN_MESSAGE: &str = "pollux is shutting down";

/// Knobs that only tests turn.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The TCP port of every session ([`PORT`]).
    pub port: u16,
    /// The first delay before a failed session restarts (1 s).
    pub restart_min: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            port: PORT,
            restart_min: neighbor::RESTART_MIN,
        }
    }
}

/// A configured neighbor as `show` and the metrics name it.
#[derive(Debug, Clone)]
pub struct NeighborView {
    /// The peer's address, or the `nodeLookup` text when unresolved.
    pub name: String,
    pub remote_as: u32,
    /// Why it does not run, when it does not.
    pub error: Option<String>,
}

/// One configured neighbor: running, or why it is not.
#[derive(Debug, Clone)]
struct Entry {
    /// The peer's address, or the `nodeLookup` text when unresolved.
    name: String,
    peer: Option<IpAddr>,
    remote_as: u32,
    commands: Option<mpsc::UnboundedSender<Command>>,
    status: Option<Arc<Mutex<Status>>>,
    error: Option<String>,
    /// What it was started from (a reload restarts it when they change).
    neighbor: Neighbor,
    key: Option<md5::Key>,
    /// The self IP whose listener accepts it.
    local: Option<IpAddr>,
}

/// The running neighbors and listeners (replaced by [`Speaker::sync`]).
#[derive(Debug, Default)]
struct Inner {
    entries: Vec<Entry>,
    listeners: BTreeMap<IpAddr, live::Listening>,
}

/// The running speaker. Dropping it stops every session abruptly (no
/// NOTIFICATION); [`Speaker::drain`] is the graceful way.
#[derive(Debug)]
pub struct Speaker {
    local_as: u32,
    router_id: Ipv4Addr,
    vips: watch::Receiver<VipSet>,
    options: Options,
    /// Shared with the task that follows BFD ([`Speaker::follow_bfd`]).
    inner: Arc<Mutex<Inner>>,
}

fn entries(inner: &Mutex<Inner>) -> Vec<Entry> {
    inner.lock().map(|i| i.entries.clone()).unwrap_or_default()
}

/// Sends `c()` to every running neighbor at `peer`; false when none.
fn to_peer(inner: &Mutex<Inner>, peer: IpAddr, c: impl Fn() -> Command) -> bool {
    let mut found = false;
    for e in entries(inner) {
        if e.peer == Some(peer) {
            if let Some(tx) = &e.commands {
                found |= tx.send(c()).is_ok();
            }
        }
    }
    found
}

/// Reads a `nodeLookup` file (YAML: node name → list of peer addresses)
/// and returns the addresses of `node`.
pub fn lookup_peers(path: &Path, node: Option<&str>) -> Result<Vec<IpAddr>, String> {
    let node = node.ok_or_else(|| {
        format!(
            "nodeLookup {} needs the node's name: set instance.nodeName or $NODE_NAME",
            path.display()
        )
    })?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read nodeLookup {}: {e}", path.display()))?;
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Peers {
        One(String),
        Many(Vec<String>),
    }
    let map: BTreeMap<String, Peers> = serde_yaml_ng::from_str(&text)
        .map_err(|e| format!("nodeLookup {}: {e}", path.display()))?;
    let peers = match map.get(node) {
        Some(Peers::One(s)) => vec![s.clone()],
        Some(Peers::Many(v)) => v.clone(),
        None => {
            return Err(format!(
                "nodeLookup {} has no entry for node {node:?}",
                path.display()
            ))
        }
    };
    peers
        .iter()
        .map(|s| {
            s.trim().parse().map_err(|_| {
                format!(
                    "nodeLookup {}: node {node:?}: {s:?} is not an IP address",
                    path.display()
                )
            })
        })
        .collect()
}

/// The self IP a session with `peer` uses, and the next hops it announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Local {
    /// Bound before connecting, and where we listen.
    pub addr: IpAddr,
    /// True when `peer` is on a connected subnet of `addr`.
    pub connected: bool,
    /// NEXT_HOP for IPv4 routes.
    pub next_hop_v4: Option<Ipv4Addr>,
    /// Global IPv6 next hop.
    pub next_hop_v6: Option<Ipv6Addr>,
}

fn is_link_local(a: &Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

/// Picks the self IP in `peer`'s subnet (else the first of its family:
/// a multihop peer) and the next hops of that port.
pub fn local_for(peer: IpAddr, ports: &[PortSpec]) -> Option<Local> {
    let on_subnet = ports.iter().find_map(|p| {
        p.self_ips
            .iter()
            .find(|s| s.addr.is_ipv4() == peer.is_ipv4() && s.prefix().contains(peer))
            .map(|s| (p, s.addr, true))
    });
    let (port, addr, connected) = on_subnet.or_else(|| {
        ports.iter().find_map(|p| {
            p.self_ips
                .iter()
                .find(|s| s.addr.is_ipv4() == peer.is_ipv4())
                .map(|s| (p, s.addr, false))
        })
    })?;
    let next_hop_v4 = match addr {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => port.self_ips.iter().find_map(|s| match s.addr {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        }),
    };
    let next_hop_v6 = match addr {
        IpAddr::V6(a) if !is_link_local(&a) => Some(a),
        _ => port.self_ips.iter().find_map(|s| match s.addr {
            IpAddr::V6(a) if !is_link_local(&a) => Some(a),
            _ => None,
        }),
    };
    Some(Local {
        addr,
        connected,
        next_hop_v4,
        next_hop_v6,
    })
}

/// The FSM configuration of one neighbor.
fn fsm_config(cfg: &Bgp, n: &Neighbor, session_is_v6: bool) -> fsm::Config {
    let mut c = fsm::Config::new(cfg.asn, n.asn, cfg.router_id);
    c.hold_time = n.hold_time;
    c.min_hold_time = n.min_hold_time;
    c.connect_retry_time = CONNECT_RETRY_SECS;
    c.families = policy::families((n.advertise_ipv4, n.advertise_ipv6), session_is_v6);
    c.graceful_restart = cfg.graceful_restart.map(|t| GracefulRestartConfig {
        restart_time: t,
        restarting: false,
        // The data plane forwards to the VIPs while ctrl restarts.
        forwarding_state: true,
    });
    c
}

impl Speaker {
    /// Starts one task per neighbor address and one listener per self IP
    /// in use. Must run inside a tokio runtime. Neighbors that cannot run
    /// (unresolved `nodeLookup`, unreadable password, no self IP of the
    /// peer's family) are logged and shown with their error.
    pub fn start(
        cfg: &Bgp,
        node: Option<&str>,
        ports: &[PortSpec],
        vips: watch::Receiver<VipSet>,
    ) -> Speaker {
        Self::start_with(cfg, node, ports, vips, Options::default())
    }

    /// [`Speaker::start`] with non-default [`Options`] (tests).
    pub fn start_with(
        cfg: &Bgp,
        node: Option<&str>,
        ports: &[PortSpec],
        vips: watch::Receiver<VipSet>,
        options: Options,
    ) -> Speaker {
        let speaker = Speaker {
            local_as: cfg.asn,
            router_id: cfg.router_id,
            vips,
            options,
            inner: Arc::default(),
        };
        speaker.sync(cfg, node, ports);
        speaker
    }

    fn entries(&self) -> Vec<Entry> {
        entries(&self.inner)
    }

    fn commands(&self) -> Vec<mpsc::UnboundedSender<Command>> {
        self.entries()
            .into_iter()
            .filter_map(|e| e.commands)
            .collect()
    }

    fn statuses(&self) -> Vec<(Entry, Option<Status>)> {
        self.entries()
            .into_iter()
            .map(|e| {
                let s = e
                    .status
                    .as_ref()
                    .and_then(|s| s.lock().ok().map(|s| s.clone()));
                (e, s)
            })
            .collect()
    }

    /// Drains every session (RFC 8326): re-announce with GRACEFUL_SHUTDOWN,
    /// wait `delay` (when a session was Established), withdraw, Cease /
    /// Administrative Shutdown, close. Sessions stay down afterwards.
    pub async fn drain(&self, delay: Duration) {
        self.drain_then(delay, async {}).await;
    }

    /// [`Speaker::drain`] with `before_close` run after the withdrawal and
    /// before the Cease (the drain sends BFD AdminDown there: a peer that
    /// answers AdminDown by closing BGP, as FRR 8.4 does, has the
    /// withdrawal already).
    pub async fn drain_then(
        &self,
        delay: Duration,
        before_close: impl std::future::Future<Output = ()>,
    ) {
        let mut acks = Vec::new();
        for c in self.commands() {
            let (tx, rx) = oneshot::channel();
            if c.send(Command::GracefulShutdown(tx)).is_ok() {
                acks.push(rx);
            }
        }
        let mut any_up = false;
        for a in acks {
            if let Ok(Ok(up)) = tokio::time::timeout(Duration::from_secs(5), a).await {
                any_up |= up;
            }
        }
        if any_up && !delay.is_zero() {
            tracing::info!(
                delay_ms = delay.as_millis() as u64,
                "BGP drain: waiting before the withdrawal"
            );
            tokio::time::sleep(delay).await;
        }
        self.each(Command::Withdraw).await;
        before_close.await;
        self.each(|tx| Command::Stop(SHUTDOWN_MESSAGE.into(), tx))
            .await;
        tracing::info!("BGP drained");
    }

    /// Sends every neighbor the command `make` builds and waits (5 s at
    /// most each) for their answers.
    async fn each(&self, make: impl Fn(oneshot::Sender<()>) -> Command) {
        let mut acks = Vec::new();
        for c in self.commands() {
            let (tx, rx) = oneshot::channel();
            if c.send(make(tx)).is_ok() {
                acks.push(rx);
            }
        }
        for a in acks {
            let _ = tokio::time::timeout(Duration::from_secs(5), a).await;
        }
    }

    fn to_peer(&self, peer: IpAddr, c: impl Fn() -> Command) -> bool {
        to_peer(&self.inner, peer, c)
    }

    /// BFD says `peer` is down: its session goes down at once, without a
    /// NOTIFICATION, and stays down until [`Speaker::peer_up`]. Returns
    /// false when no running neighbor has that address.
    pub fn peer_down(&self, peer: IpAddr) -> bool {
        self.to_peer(peer, || Command::PeerDown)
    }

    /// BFD says `peer` is up again: its session may be re-established.
    pub fn peer_up(&self, peer: IpAddr) -> bool {
        self.to_peer(peer, || Command::PeerUp)
    }

    /// The RFC 5882 coupling: a path failure of a peer's BFD session is
    /// [`Speaker::peer_down`], the session coming Up [`Speaker::peer_up`],
    /// for the neighbors running when the change arrives (a reload's
    /// included). A task follows `changes` until the channel closes.
    pub fn follow_bfd(&self, mut changes: mpsc::UnboundedReceiver<BfdChange>) {
        let inner = self.inner.clone();
        tokio::spawn(async move {
            while let Some(c) = changes.recv().await {
                if c.down {
                    to_peer(&inner, c.peer, || Command::PeerDown);
                } else if c.up {
                    to_peer(&inner, c.peer, || Command::PeerUp);
                }
            }
        });
    }

    /// Every configured neighbor with its session's status (`None`: not
    /// running; the view's `error` says why), for `show` and the metrics.
    pub fn neighbors(&self) -> Vec<(NeighborView, Option<Status>)> {
        self.statuses()
            .into_iter()
            .map(|(e, s)| {
                let view = NeighborView {
                    name: e.name,
                    remote_as: e.remote_as,
                    error: e.error,
                };
                (view, s)
            })
            .collect()
    }

    pub fn router_id(&self) -> Ipv4Addr {
        self.router_id
    }

    pub fn local_as(&self) -> u32 {
        self.local_as
    }

    /// The VIPs advertised (those with a healthy member).
    pub fn vips(&self) -> VipSet {
        self.vips.borrow().clone()
    }

    /// True while at least one session is Established.
    pub fn any_established(&self) -> bool {
        self.statuses()
            .iter()
            .any(|(_, s)| s.as_ref().is_some_and(|s| s.state == State::Established))
    }

    /// The number of VIPs in the set.
    pub fn vip_count(&self) -> usize {
        self.vips.borrow().len()
    }
}

/// What the listener of one self IP knows of a peer.
#[derive(Debug, Clone)]
struct ListenPeer {
    tx: mpsc::UnboundedSender<Command>,
    key: Option<md5::Key>,
    /// GTSM: the smallest TTL accepted from the peer.
    min_ttl: Option<u8>,
}

type Routes = HashMap<IpAddr, ListenPeer>;

/// The listening socket of one self IP, with the MD5 key of every peer
/// that has one, and the peers whose key the kernel refused.
fn listener(
    addr: SocketAddr,
    routes: &Routes,
) -> std::io::Result<(tokio::net::TcpListener, Vec<(IpAddr, std::io::Error)>)> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    let mut failed = Vec::new();
    for (peer, p) in routes {
        if let Some(k) = &p.key {
            if let Err(e) = install_key(&s, *peer, k) {
                failed.push((*peer, e));
            }
        }
    }
    // GTSM on the listener drops a low-TTL SYN before any socket exists;
    // only possible when every peer of this address asks for it (each
    // accepted socket gets its peer's floor in `accept_loop`).
    if let Some(min) = routes.values().map(|p| p.min_ttl).min().flatten() {
        gtsm::set_min_ttl(&s, addr.is_ipv6(), min)?;
    }
    s.bind(&addr.into())?;
    s.listen(64)?;
    s.set_nonblocking(true)?;
    Ok((
        tokio::net::TcpListener::from_std(std::net::TcpListener::from(s))?,
        failed,
    ))
}

/// Peers whose listener key install fails on purpose (unit tests).
#[cfg(test)]
pub(crate) static MD5_FAIL: std::sync::Mutex<Vec<IpAddr>> = std::sync::Mutex::new(Vec::new());

/// [`md5::set_key`] (or, in unit tests, a simulated failure for the peers
/// in [`MD5_FAIL`]).
fn install_key(s: &socket2::Socket, peer: IpAddr, k: &md5::Key) -> std::io::Result<()> {
    #[cfg(test)]
    if MD5_FAIL.lock().is_ok_and(|v| v.contains(&peer)) {
        return Err(std::io::Error::other("simulated TCP_MD5SIG failure"));
    }
    md5::set_key(s, peer, k)
}

/// Accepts connections for the peers in `routes` (which a reload changes
/// while it runs).
async fn accept_loop(l: Arc<tokio::net::TcpListener>, routes: Arc<Mutex<Routes>>) {
    tracing::info!(peers = routes.lock().map_or(0, |r| r.len()), "listening");
    loop {
        match l.accept().await {
            Ok((stream, from)) => match routes
                .lock()
                .ok()
                .and_then(|r| r.get(&md5::peer_of(from)).cloned())
            {
                Some(p) => {
                    if let Some(min) = p.min_ttl {
                        if let Err(e) = gtsm::set_min_ttl_for(&stream, from.ip(), min) {
                            tracing::error!(%from, error = %e, "cannot set the GTSM minimum TTL: refusing the connection");
                            continue;
                        }
                    }
                    let _ = p.tx.send(Command::Incoming(stream));
                }
                None => tracing::info!(%from, "refusing a BGP connection from an unknown peer"),
            },
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests;

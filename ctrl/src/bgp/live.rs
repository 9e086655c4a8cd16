//! Neighbors added, removed and changed while the speaker runs (a reload).
//!
//! [`Speaker::sync`] moves the running neighbors to a configuration: a
//! neighbor whose settings (and MD5 key, read again from its file) are the
//! same keeps its task and its session; one that is gone is stopped
//! (withdraw, Cease, close); a changed one is stopped and started anew; a
//! new one is started. The listener of each self IP stays open and learns
//! its new peers (their MD5 keys are installed on it, the GTSM floor is
//! recomputed), so an Established session on it is never disturbed.
//! Start-up is the first sync, from nothing.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use dataplane::api::PortSpec;
use tokio::sync::mpsc;
use tracing::Instrument;

use super::neighbor::{self, Command, Spec, Status};
use super::{
    accept_loop, fsm_config, gtsm, install_key, listener, local_for, lookup_peers, md5, Entry,
    Inner, ListenPeer, Routes, Speaker,
};
use crate::config::{Bgp, Neighbor, PeerAddress};

/// The RFC 8203 message sent to a neighbor removed or changed by a reload.
const DECONFIGURED: &str = "neighbor removed or changed by a configuration reload";

/// The listening socket of one self IP and the peers it accepts.
#[derive(Debug)]
pub(super) struct Listening {
    sock: Arc<tokio::net::TcpListener>,
    routes: Arc<Mutex<Routes>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One neighbor address the configuration asks for.
struct Wanted<'a> {
    name: String,
    peer: Result<IpAddr, String>,
    n: &'a Neighbor,
}

fn wanted<'a>(cfg: &'a Bgp, node: Option<&str>) -> Vec<Wanted<'a>> {
    let mut out = Vec::new();
    for (i, n) in cfg.neighbors.iter().enumerate() {
        let peers = match &n.address {
            PeerAddress::Fixed(a) => Ok(vec![*a]),
            PeerAddress::NodeLookup(f) => lookup_peers(f, node),
        };
        match peers {
            Ok(peers) => out.extend(peers.into_iter().map(|p| Wanted {
                name: p.to_string(),
                peer: Ok(p),
                n,
            })),
            Err(e) => {
                tracing::error!(neighbor = i, error = %e, "BGP neighbor not started");
                let name = match &n.address {
                    PeerAddress::NodeLookup(f) => format!("nodeLookup:{}", f.display()),
                    PeerAddress::Fixed(a) => a.to_string(),
                };
                out.push(Wanted {
                    name,
                    peer: Err(e),
                    n,
                });
            }
        }
    }
    out
}

/// The key of a neighbor's password file (`Err`: why it cannot be read).
fn key_of(n: &Neighbor) -> Result<Option<md5::Key>, String> {
    n.password_file
        .as_ref()
        .map(|f| md5::Key::from_file(f).map_err(|e| e.to_string()))
        .transpose()
}

impl Speaker {
    /// Moves the running neighbors to `cfg` (whose ASN, router id and
    /// graceful-restart settings are the running ones) and returns what
    /// changed, one line per neighbor.
    pub fn sync(&self, cfg: &Bgp, node: Option<&str>, ports: &[PortSpec]) -> Vec<String> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut old: Vec<Option<Entry>> = std::mem::take(&mut inner.entries)
            .into_iter()
            .map(Some)
            .collect();
        let mut entries = Vec::new();
        let mut changes = Vec::new();
        // New peers per self IP.
        let mut added: BTreeMap<IpAddr, Routes> = BTreeMap::new();
        for w in wanted(cfg, node) {
            let key = key_of(w.n);
            let same = old.iter().position(|e| {
                e.as_ref().is_some_and(|e| {
                    e.name == w.name && e.neighbor == *w.n && key.as_ref().ok() == Some(&e.key)
                })
            });
            if let Some(i) = same.and_then(|i| old[i].take()) {
                entries.push(i);
                continue;
            }
            let was = old
                .iter()
                .any(|e| e.as_ref().is_some_and(|e| e.name == w.name));
            changes.push(format!(
                "BGP neighbor {} {}",
                w.name,
                if was { "changed" } else { "added" }
            ));
            let peer = match w.peer {
                Ok(p) => p,
                Err(e) => {
                    entries.push(Entry::failed(w.name, None, w.n, e));
                    continue;
                }
            };
            let Some(local) = local_for(peer, ports) else {
                let e = format!("no self IP of the peer's family ({peer})");
                tracing::error!(%peer, error = %e, "BGP neighbor not started");
                entries.push(Entry::failed(w.name, Some(peer), w.n, e));
                continue;
            };
            let key = match key {
                Ok(k) => k,
                Err(e) => {
                    tracing::error!(%peer, error = %e, "BGP neighbor not started");
                    entries.push(Entry::failed(w.name, Some(peer), w.n, e));
                    continue;
                }
            };
            let n = w.n;
            let fsm = fsm_config(cfg, n, peer.is_ipv6());
            // eBGP: TTL = ebgpMultihop (1 = directly connected, as FRR
            // and BIRD send); iBGP: the usual 64.
            // GTSM: 255 whatever the distance (RFC 5082 §3).
            let ttl = if n.ttl_security {
                gtsm::TTL
            } else if fsm.is_ebgp() {
                u32::from(n.ebgp_multihop)
            } else {
                64
            };
            let min_ttl = n.ttl_security.then(|| gtsm::min_ttl(n.ebgp_multihop));
            if !local.connected && fsm.is_ebgp() && n.ebgp_multihop == 1 {
                tracing::warn!(%peer, local = %local.addr, "eBGP peer is not on a connected subnet and ebgpMultihop is 1");
            }
            let spec = Spec {
                peer,
                port: self.options.port,
                local: local.addr,
                next_hops: (local.next_hop_v4, local.next_hop_v6),
                ttl,
                md5: key.clone(),
                min_ttl,
                max_prefixes: n.max_prefixes as usize,
                advertise: (n.advertise_ipv4, n.advertise_ipv6),
                fsm,
                restart_min: self.options.restart_min,
            };
            let status = Arc::new(Mutex::new(Status::new(&spec)));
            let (tx, rx) = mpsc::unbounded_channel();
            let span = tracing::info_span!("bgp", peer = %peer);
            tokio::spawn(
                neighbor::Neighbor::run(spec, self.vips.clone(), rx, status.clone())
                    .instrument(span),
            );
            added.entry(local.addr).or_default().insert(
                peer,
                ListenPeer {
                    tx: tx.clone(),
                    key: key.clone(),
                    min_ttl,
                },
            );
            entries.push(Entry {
                name: w.name,
                peer: Some(peer),
                remote_as: n.asn,
                commands: Some(tx),
                status: Some(status),
                error: None,
                neighbor: n.clone(),
                key,
                local: Some(local.addr),
            });
        }
        // What is left of the old entries is gone or changed: stop it and
        // forget it on its listener (its task ends once it has sent the
        // Cease and its command channel closes).
        for e in old.into_iter().flatten() {
            if !changes
                .iter()
                .any(|c| c.starts_with(&format!("BGP neighbor {} ", e.name)))
            {
                changes.push(format!("BGP neighbor {} removed", e.name));
            }
            if let (Some(peer), Some(local)) = (e.peer, e.local) {
                if let Some(l) = inner.listeners.get(&local) {
                    if let Ok(mut r) = l.routes.lock() {
                        r.remove(&peer);
                    }
                }
            }
            if let Some(tx) = &e.commands {
                let (ack, _) = tokio::sync::oneshot::channel();
                let _ = tx.send(Command::Stop(DECONFIGURED.into(), ack));
            }
        }
        inner.entries = entries;
        for (local, routes) in added {
            let addr = SocketAddr::new(local, self.options.port);
            match inner.listeners.get(&local) {
                Some(l) => l.learn(addr, routes),
                None => {
                    if let Some(l) = Listening::open(addr, routes) {
                        inner.listeners.insert(local, l);
                    }
                }
            }
        }
        // A listener that no configured neighbor uses any more closes
        // (one whose peers are held down stays: it refuses them).
        let Inner {
            entries, listeners, ..
        } = &mut *inner;
        listeners.retain(|local, _| entries.iter().any(|e| e.local == Some(*local)));
        changes
    }
}

impl Entry {
    fn failed(name: String, peer: Option<IpAddr>, n: &Neighbor, error: String) -> Entry {
        Entry {
            name,
            peer,
            remote_as: n.asn,
            commands: None,
            status: None,
            error: Some(error),
            neighbor: n.clone(),
            key: None,
            local: None,
        }
    }
}

/// Holds down a peer whose MD5 key the listener could not take: never
/// accept a session without the signature the operator asked for.
fn hold(peer: IpAddr, p: &ListenPeer, e: &std::io::Error) {
    let why = format!(
        "cannot install the TCP MD5 key for {peer} on the listener ({e}): the neighbor is held down"
    );
    tracing::error!(%peer, error = %e, "{why}");
    let _ = p.tx.send(Command::Hold(why));
}

impl Listening {
    fn open(addr: SocketAddr, mut routes: Routes) -> Option<Listening> {
        match listener(addr, &routes) {
            Ok((l, failed)) => {
                for (peer, e) in failed {
                    if let Some(p) = routes.remove(&peer) {
                        hold(peer, &p, &e);
                    }
                }
                let sock = Arc::new(l);
                let routes = Arc::new(Mutex::new(routes));
                let task = tokio::spawn(
                    accept_loop(sock.clone(), routes.clone())
                        .instrument(tracing::info_span!("bgp-listen", %addr)),
                );
                Some(Listening { sock, routes, task })
            }
            Err(e) => {
                tracing::error!(%addr, error = %e, "cannot listen for BGP: only outgoing connections will be made");
                None
            }
        }
    }

    /// Adds peers to a listener that is open (its other peers' sessions
    /// are not touched).
    fn learn(&self, addr: SocketAddr, new: Routes) {
        let sock = socket2::SockRef::from(&*self.sock);
        let Ok(mut routes) = self.routes.lock() else {
            return;
        };
        for (peer, p) in new {
            if let Some(k) = &p.key {
                if let Err(e) = install_key(&sock, peer, k) {
                    hold(peer, &p, &e);
                    continue;
                }
            }
            routes.insert(peer, p);
        }
        // GTSM on the listener only while every peer asks for it.
        let floor = routes.values().map(|p| p.min_ttl).min().flatten();
        if let Err(e) = gtsm::set_min_ttl(&*self.sock, addr.is_ipv6(), floor.unwrap_or(0)) {
            tracing::warn!(%addr, error = %e, "cannot update the listener's GTSM minimum TTL");
        }
    }
}

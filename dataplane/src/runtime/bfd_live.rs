//! BFD sessions changed while the data plane runs (a reload): ctrl hands
//! the old and the new peer lists, and each worker gets orders
//! ([`bfd::Change`]) for only the sessions that differ. Sessions not named
//! keep running untouched (an Up session stays Up; a timer change is a
//! Poll Sequence, RFC 5880 §6.8.3).

use std::sync::atomic::Ordering::Relaxed;

use super::Runtime;
use crate::api::{BfdChanges, BfdPeer, Error};
use crate::bfd::{self, Change, PeerKey, SessionConfig};
use crate::shared::{BfdCommand, BfdSessionStatus};

/// The session configuration of `peer` with local discriminator `discr`.
pub(super) fn session_config(discr: u32, peer: &BfdPeer) -> SessionConfig {
    let mut sc = SessionConfig::single_hop(discr, peer.timers);
    if let Some(min_ttl) = peer.multihop {
        sc.hop = bfd::Hop::Multi { min_ttl };
    }
    sc.jitter_seed = crate::dpdk::tsc() ^ u64::from(discr);
    sc
}

impl Runtime {
    /// [`Dataplane::bfd_reconfigure`](crate::api::Dataplane::bfd_reconfigure):
    /// moves the BFD sessions from `old` (what runs) to `new`: a peer in
    /// `new` only is added, one in `old` only is removed, one whose
    /// timers changed gets them, one whose hop changed is replaced. The
    /// rest are not touched. Orders are queued to the workers, which apply
    /// them within about 10 ms; [`Runtime::bfd_rejected_changes`] counts
    /// the ones a worker could not apply (its table full).
    pub fn bfd_reconfigure(
        &mut self,
        old: &[BfdPeer],
        new: &[BfdPeer],
    ) -> Result<BfdChanges, Error> {
        let fib = self.tables.load().fib.clone();
        let port_of = |p: &BfdPeer| {
            fib.lookup(p.addr).map(|(port, _)| port).ok_or_else(|| {
                Error::Routes(format!(
                    "BFD peer {} is not reachable through any port",
                    p.addr
                ))
            })
        };
        // Validate everything before ordering anything.
        let new_ports: Vec<usize> = new.iter().map(port_of).collect::<Result<_, _>>()?;
        for p in new {
            session_config(1, p)
                .validate()
                .map_err(|e| Error::Routes(format!("BFD peer {}: {e:?}", p.addr)))?;
        }
        let mut out = Vec::new();
        let was = |addr| old.iter().find(|o: &&BfdPeer| o.addr == addr);
        // Removed, or replaced (hop or port changed).
        let sessions = self.bfd_sessions_list();
        for (i, s) in sessions.iter().enumerate().rev() {
            let keep = new.iter().zip(&new_ports).any(|(n, &port)| {
                n.addr == s.peer
                    && port == s.port
                    && was(n.addr).is_some_and(|o| o.multihop == n.multihop)
            });
            if keep {
                continue;
            }
            let peer = PeerKey {
                addr: s.peer,
                iface: s.port as u32,
            };
            self.bfd_order(s.port, Change::Remove { peer });
            // One step for a reader of the events (discriminators first).
            let mut discrs = super::lock(&self.bfd_discrs);
            discrs.retire(i);
            if let Ok(mut list) = self.bfd_shared.sessions.lock() {
                list.remove(i);
            }
            drop(discrs);
            out.push(format!("BFD session {} removed", s.peer));
        }
        for (n, &port) in new.iter().zip(&new_ports) {
            let running = self
                .bfd_sessions_list()
                .iter()
                .any(|s| s.peer == n.addr && s.port == port);
            let peer = PeerKey {
                addr: n.addr,
                iface: port as u32,
            };
            if running {
                if let Some(o) = was(n.addr).filter(|o| o.timers != n.timers) {
                    self.bfd_order(
                        port,
                        Change::SetTimers {
                            peer,
                            timers: n.timers,
                        },
                    );
                    out.push(format!(
                        "BFD session {}: timers {}/{}/{} -> {}/{}/{}",
                        n.addr,
                        o.timers.desired_min_tx_us / 1000,
                        o.timers.required_min_rx_us / 1000,
                        o.timers.detect_mult,
                        n.timers.desired_min_tx_us / 1000,
                        n.timers.required_min_rx_us / 1000,
                        n.timers.detect_mult
                    ));
                }
                continue;
            }
            let index = self.bfd_sessions_list().len();
            let mut discrs = super::lock(&self.bfd_discrs);
            let discr = discrs.fresh(index);
            if let Ok(mut list) = self.bfd_shared.sessions.lock() {
                list.push(BfdSessionStatus {
                    peer: n.addr,
                    port,
                    info: None,
                    last_change_unix_ns: None,
                });
            }
            drop(discrs);
            self.bfd_order(
                port,
                Change::Add {
                    peer,
                    config: session_config(discr, n),
                },
            );
            out.push(format!("BFD session {} added", n.addr));
        }
        Ok(out)
    }

    /// Changes the workers could not apply (a full session table).
    pub fn bfd_rejected_changes(&self) -> u64 {
        self.bfd_shared.rejected_changes.load(Relaxed)
    }

    fn bfd_sessions_list(&self) -> Vec<BfdSessionStatus> {
        self.bfd_shared
            .sessions
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// Queues `change` to the worker that polls `port`.
    fn bfd_order(&self, port: usize, change: Change) {
        let worker = self
            .interfaces
            .get(port)
            .and_then(|i| self.workers.iter().position(|(spec, ..)| *spec == i.worker));
        let queued = worker
            .and_then(|w| self.bfd_commands.get(w))
            .is_some_and(|q| q.push(BfdCommand::Change(change)).is_ok());
        if !queued {
            self.bfd_shared.rejected_changes.fetch_add(1, Relaxed);
        }
    }
}

//! The data plane's events as typed tokio messages. One task ([`pump`])
//! owns the workers' BFD event ring: it drains it every millisecond (the
//! workers cannot wake a tokio task; the ring is lock-free and the task
//! takes no lock on the data plane), logs each change, and sends it to
//! every subscriber: the BGP speaker (RFC 5882 coupling) and the BFD
//! history (`show bfd sessions`, metrics).

use std::net::IpAddr;
use std::time::Duration;

use dataplane::api::{BfdEvents, BfdState};
use tokio::sync::mpsc;

/// A BFD session changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BfdChange {
    pub peer: IpAddr,
    pub from: BfdState,
    pub to: BfdState,
    /// It came Up: BGP may connect again.
    pub up: bool,
    /// A path failure (RFC 5882; AdminDown is none, see
    /// `BfdStateChange::went_down`): BGP tears its session down at once.
    pub down: bool,
}

/// Who hears of the data plane's events.
#[derive(Debug, Default)]
pub struct Subscribers {
    bfd: Vec<mpsc::UnboundedSender<BfdChange>>,
}

impl Subscribers {
    /// A new subscriber to the BFD changes.
    pub fn bfd(&mut self) -> mpsc::UnboundedReceiver<BfdChange> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.bfd.push(tx);
        rx
    }
}

/// Drains `ring` every millisecond into typed messages for `to`, until
/// every subscriber is gone.
pub async fn pump(ring: BfdEvents, mut to: Subscribers) {
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    while !to.bfd.is_empty() {
        tick.tick().await;
        for (peer, ev) in ring.drain() {
            tracing::info!(%peer, from = ?ev.old, to = ?ev.new, diag = ?ev.diag, remote = ?ev.remote_state, "BFD session");
            let change = BfdChange {
                peer,
                from: ev.old,
                to: ev.new,
                up: ev.went_up(),
                down: ev.went_down(),
            };
            to.bfd.retain(|tx| tx.send(change).is_ok());
        }
    }
}

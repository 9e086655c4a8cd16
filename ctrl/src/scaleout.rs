//! Instances that share the VIPs cooperate on a drain (docs/scale-out.md).
//!
//! A draining instance announces its routes with GRACEFUL_SHUTDOWN, and
//! the router at once sends every packet, those of the established flows
//! included, to the other instances. Before that announcement the drainer
//! tells its peers (`scaleOut.peers`) that it drains, with a small UDP
//! notice between the control threads (through the TAPs and the data
//! plane, like BGP), and waits for their acknowledgements. A peer that
//! drains is put in the workers' table ([`SecondChance`]): they redirect
//! the mid-flow TCP packets they have no entry for to it, at L2 and
//! unchanged, and it forwards them by its connection table (second
//! chance, as GitHub's GLB Director does).
//!
//! Notices (ASCII, one datagram each):
//!
//! ```text
//! pollux-scaleout 1 drain <instance> <ttl-ms>   "I drain; believe it for ttl-ms"
//! pollux-scaleout 1 done <instance>             "I have stopped"
//! pollux-scaleout 1 ack <instance>              the answer to either
//! ```
//!
//! The drainer repeats its notice every [`REFRESH`] with a TTL of
//! [`NOTICE_TTL`], so a drainer that dies mid-drain stops getting
//! redirects within the TTL. Only datagrams from a configured peer count.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dataplane::api::SecondChance;
use tokio::net::UdpSocket;
use tokio::time::Instant;

use crate::state::State;

const MAGIC: &str = "pollux-scaleout 1";
/// How long a drain notice holds without a refresh.
pub const NOTICE_TTL: Duration = Duration::from_millis(1500);
/// How often a drainer repeats its notice.
pub const REFRESH: Duration = Duration::from_millis(300);
/// How long a drainer waits for its peers' acknowledgements before it
/// announces GRACEFUL_SHUTDOWN anyway (a dead peer does not hold it up).
pub const ACK_WAIT: Duration = Duration::from_secs(1);

/// This instance's view: whether it drains, and which peers drain.
#[derive(Debug, Default)]
pub struct ScaleOut {
    draining: AtomicBool,
    /// Draining peers and when their last notice runs out.
    peers: Mutex<HashMap<IpAddr, Instant>>,
    /// Drain notices taken, and datagrams refused (not from a peer, not a
    /// notice).
    pub notices: AtomicU64,
    pub refused: AtomicU64,
}

impl ScaleOut {
    /// What the workers' table says about redirects now.
    pub fn second_chance(&self) -> SecondChance {
        let mut peers: Vec<IpAddr> = self
            .peers
            .lock()
            .map(|p| p.keys().copied().collect())
            .unwrap_or_default();
        peers.sort();
        SecondChance {
            draining: self.draining.load(Ordering::Relaxed),
            peers,
        }
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Takes a notice from `from`; true if the set of draining peers
    /// changed.
    fn take(&self, from: IpAddr, msg: &Notice, now: Instant) -> bool {
        let Ok(mut peers) = self.peers.lock() else {
            return false;
        };
        match msg {
            Notice::Drain(ttl) => peers
                .insert(from, now + (*ttl).min(NOTICE_TTL * 4))
                .is_none(),
            Notice::Done => peers.remove(&from).is_some(),
            Notice::Ack => false,
        }
    }

    /// Forgets notices that ran out; true if any did.
    fn expire(&self, now: Instant) -> bool {
        let Ok(mut peers) = self.peers.lock() else {
            return false;
        };
        let before = peers.len();
        peers.retain(|_, until| *until > now);
        peers.len() != before
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Notice {
    Drain(Duration),
    Done,
    Ack,
}

fn parse(b: &[u8]) -> Option<Notice> {
    let s = std::str::from_utf8(b).ok()?;
    let rest = s.strip_prefix(MAGIC)?.trim();
    let mut w = rest.split_ascii_whitespace();
    let n = match (w.next()?, w.next()?) {
        ("drain", _) => Notice::Drain(Duration::from_millis(w.next()?.parse().ok()?)),
        ("done", _) => Notice::Done,
        ("ack", _) => Notice::Ack,
        _ => return None,
    };
    w.next().is_none().then_some(n)
}

fn encode(n: &Notice, instance: &str) -> String {
    match n {
        Notice::Drain(ttl) => format!("{MAGIC} drain {instance} {}", ttl.as_millis()),
        Notice::Done => format!("{MAGIC} done {instance}"),
        Notice::Ack => format!("{MAGIC} ack {instance}"),
    }
}

/// Binds the notices' port: dual-stack where the kernel has IPv6, else
/// IPv4 only.
async fn bind(port: u16) -> std::io::Result<UdpSocket> {
    match UdpSocket::bind((Ipv6Addr::UNSPECIFIED, port)).await {
        Ok(s) => Ok(s),
        Err(_) => UdpSocket::bind(("0.0.0.0", port)).await,
    }
}

/// `peer`'s socket address as `sock` can send to it.
fn dest(sock: &UdpSocket, peer: IpAddr, port: u16) -> SocketAddr {
    match (sock.local_addr().map(|a| a.is_ipv6()), peer) {
        (Ok(true), IpAddr::V4(v4)) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), port),
        _ => SocketAddr::new(peer, port),
    }
}

/// Answers the peers' notices and keeps the workers' table in step with
/// them (runs for the life of the instance; nothing to do without peers).
pub async fn listen(state: Arc<State>) {
    let cfg = state.config.load_full();
    let so = &cfg.scale_out;
    if so.peers.is_empty() {
        return;
    }
    let sock = match bind(so.port).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(port = so.port, error = %e, "scaleOut.port: cannot bind: peers' drains will not be followed");
            return;
        }
    };
    tracing::info!(port = so.port, peers = ?so.peers, "scale-out: listening for peers' drain notices");
    let mut buf = [0u8; 256];
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            r = sock.recv_from(&mut buf) => {
                let Ok((n, from)) = r else { continue };
                let from_ip = from.ip().to_canonical();
                let cfg = state.config.load();
                let notice = parse(&buf[..n]);
                match notice {
                    Some(notice) if cfg.scale_out.peers.contains(&from_ip) => {
                        if notice == Notice::Ack {
                            continue;
                        }
                        state.scale_out.notices.fetch_add(1, Ordering::Relaxed);
                        if state.scale_out.take(from_ip, &notice, Instant::now()) {
                            tracing::info!(peer = %from_ip, notice = ?notice, "scale-out: peer drain state changed");
                            crate::reload::apply(&state);
                        }
                        // Acknowledged once the workers' table says so.
                        let ack = encode(&Notice::Ack, &cfg.name);
                        let _ = sock.send_to(ack.as_bytes(), from).await;
                    }
                    _ => {
                        state.scale_out.refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            _ = tick.tick() => {
                if state.scale_out.expire(Instant::now()) {
                    tracing::info!("scale-out: a peer's drain notice ran out");
                    crate::reload::apply(&state);
                }
            }
        }
    }
}

/// A drain in progress: stop it with [`drain_end`].
#[derive(Debug)]
pub struct Draining {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// Starts this instance's drain: it stops redirecting, tells its peers
/// and waits (at most [`ACK_WAIT`]) until each has acknowledged, then
/// keeps the notice fresh until [`drain_end`].
pub async fn drain_start(state: &Arc<State>) -> Option<Draining> {
    state.scale_out.draining.store(true, Ordering::Relaxed);
    crate::reload::apply(state);
    let cfg = state.config.load_full();
    if cfg.scale_out.peers.is_empty() {
        return None;
    }
    // An ephemeral port: the listener keeps the configured one.
    let sock = match bind(0).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "scale-out: cannot send drain notices");
            return None;
        }
    };
    let notice = encode(&Notice::Drain(NOTICE_TTL), &cfg.name);
    let port = cfg.scale_out.port;
    let mut unacked: Vec<IpAddr> = cfg.scale_out.peers.clone();
    let deadline = Instant::now() + ACK_WAIT;
    let mut buf = [0u8; 256];
    while !unacked.is_empty() && Instant::now() < deadline {
        for p in &unacked {
            let _ = sock.send_to(notice.as_bytes(), dest(&sock, *p, port)).await;
        }
        let round = Instant::now() + Duration::from_millis(50);
        while let Ok(Ok((n, from))) = tokio::time::timeout_at(round, sock.recv_from(&mut buf)).await
        {
            if parse(&buf[..n]) == Some(Notice::Ack) {
                let ip = from.ip().to_canonical();
                unacked.retain(|p| *p != ip);
            }
        }
    }
    if unacked.is_empty() {
        tracing::info!("scale-out: every peer knows this instance drains");
    } else {
        tracing::warn!(peers = ?unacked, "scale-out: no acknowledgement from these peers (down?): draining anyway");
    }
    let (stop, mut stopped) = tokio::sync::oneshot::channel();
    let peers = cfg.scale_out.peers.clone();
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(REFRESH);
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                _ = tick.tick() => {
                    for p in &peers {
                        let _ = sock.send_to(notice.as_bytes(), dest(&sock, *p, port)).await;
                    }
                }
            }
        }
        let done = encode(&Notice::Done, &cfg.name);
        // Twice: a lost "done" only costs the TTL.
        for _ in 0..2 {
            for p in &peers {
                let _ = sock.send_to(done.as_bytes(), dest(&sock, *p, port)).await;
            }
        }
    });
    Some(Draining { stop, task })
}

/// Ends the drain: the peers stop redirecting.
pub async fn drain_end(d: Option<Draining>) {
    if let Some(d) = d {
        let _ = d.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(1), d.task).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_round_trip_and_junk_is_refused() {
        for n in [
            Notice::Drain(Duration::from_millis(1500)),
            Notice::Done,
            Notice::Ack,
        ] {
            assert_eq!(parse(encode(&n, "pollux-a").as_bytes()), Some(n));
        }
        for junk in [
            &b""[..],
            b"pollux-scaleout 2 drain a 10",
            b"pollux-scaleout 1 drain a",
            b"pollux-scaleout 1 drain a x",
            b"pollux-scaleout 1 drain a 10 extra",
            b"pollux-scaleout 1 stop a",
            b"\xff\xfe",
        ] {
            assert_eq!(parse(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn drain_notices_hold_for_their_ttl_and_done_ends_them() {
        let so = ScaleOut::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.3".parse().unwrap(), "10.0.0.4".parse().unwrap());
        let t0 = Instant::now();
        assert!(so.take(a, &Notice::Drain(NOTICE_TTL), t0));
        assert!(
            !so.take(a, &Notice::Drain(NOTICE_TTL), t0),
            "a refresh changes nothing"
        );
        assert!(so.take(b, &Notice::Drain(Duration::from_millis(100)), t0));
        assert_eq!(so.second_chance().peers, vec![a, b]);
        assert!(so.expire(t0 + Duration::from_millis(200)));
        assert_eq!(so.second_chance().peers, vec![a]);
        assert!(so.take(a, &Notice::Done, t0));
        assert!(so.second_chance().peers.is_empty());
        // A huge TTL is capped: a peer cannot pin redirects forever.
        assert!(so.take(a, &Notice::Drain(Duration::from_secs(3600)), t0));
        assert!(so.expire(t0 + NOTICE_TTL * 5));
        so.draining.store(true, Ordering::Relaxed);
        assert!(so.second_chance().draining);
    }
}

//! Health checks of virtual-server members, from the control thread through
//! the exception path (kernel sockets in pollux's namespace).
//!
//! Probes are deduplicated by (member address, port, check): 100 000 virtual
//! servers over one pool cost one probe set. Each target runs its own task:
//! probe every `intervalMs`, a probe fails after `timeoutMs`; `rise`
//! successes in a row mark it up, `fall` failures in a row mark it down.
//! A target starts down (no traffic before it proved itself). Members of a
//! virtual server without `healthCheck` are always up. Every transition
//! publishes a new [`Health`] map on a `watch` channel.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::config::{HealthCheck, HealthCheckKind, VirtualServer};

/// What is probed: a member address and port with one check.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target {
    pub addr: IpAddr,
    pub port: u16,
    pub kind: Kind,
    pub interval_ms: u32,
    pub timeout_ms: u32,
    pub rise: u32,
    pub fall: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Tcp,
    Http { path: String, expect_status: u16 },
}

impl Target {
    pub fn new(addr: IpAddr, port: u16, hc: &HealthCheck) -> Target {
        let kind = match hc.kind {
            HealthCheckKind::Tcp => Kind::Tcp,
            HealthCheckKind::Http => Kind::Http {
                path: hc.path.clone(),
                expect_status: hc.expect_status,
            },
        };
        Target {
            addr,
            port,
            kind,
            interval_ms: hc.interval_ms,
            timeout_ms: hc.timeout_ms,
            rise: hc.rise,
            fall: hc.fall,
        }
    }
}

/// Up/down of every probed target.
pub type Health = Arc<BTreeMap<Target, bool>>;

/// The distinct targets of a configuration.
pub fn targets(vss: &[VirtualServer]) -> Vec<Target> {
    let mut t: Vec<Target> = vss
        .iter()
        .filter_map(|vs| vs.health_check.as_ref().map(|hc| (vs, hc)))
        .flat_map(|(vs, hc)| {
            vs.members
                .iter()
                .map(move |m| Target::new(m.address, hc.probe_port(vs.port, m.port), hc))
        })
        .collect();
    t.sort();
    t.dedup();
    t
}

/// Whether a member is up: probed targets from `health`, unchecked members
/// always.
pub fn member_up(health: &Health, vs: &VirtualServer, addr: IpAddr, port: u16) -> bool {
    match &vs.health_check {
        None => true,
        Some(hc) => health
            .get(&Target::new(addr, hc.probe_port(vs.port, port), hc))
            .copied()
            .unwrap_or(false),
    }
}

/// The running probes, changed in place by a reload: targets that stay
/// keep their task and verdict, removed ones stop, new ones start down
/// (or with the verdict of the target they replace: same member and
/// kind of check, other timers).
#[derive(Debug)]
pub struct Checker {
    tx: Arc<watch::Sender<Health>>,
    tasks: std::sync::Mutex<BTreeMap<Target, tokio::task::AbortHandle>>,
}

impl Default for Checker {
    fn default() -> Checker {
        Checker {
            tx: Arc::new(watch::channel(Health::default()).0),
            tasks: Default::default(),
        }
    }
}

impl Checker {
    pub fn subscribe(&self) -> watch::Receiver<Health> {
        self.tx.subscribe()
    }

    /// The current verdicts.
    pub fn get(&self) -> Health {
        self.tx.borrow().clone()
    }

    /// Makes the probed set `targets` (needs a tokio runtime when a target
    /// is added).
    pub fn set_targets(&self, mut targets: Vec<Target>) {
        targets.sort();
        targets.dedup();
        let Ok(mut tasks) = self.tasks.lock() else {
            return;
        };
        let old = self.get();
        let removed: Vec<Target> = tasks
            .keys()
            .filter(|t| targets.binary_search(t).is_err())
            .cloned()
            .collect();
        let mut next: BTreeMap<Target, bool> = BTreeMap::new();
        for t in &targets {
            let up = old.get(t).copied().unwrap_or_else(|| {
                removed.iter().any(|r| {
                    r.addr == t.addr
                        && r.port == t.port
                        && r.kind == t.kind
                        && old.get(r) == Some(&true)
                })
            });
            next.insert(t.clone(), up);
        }
        for r in &removed {
            if let Some(task) = tasks.remove(r) {
                task.abort();
            }
        }
        for t in &targets {
            if !tasks.contains_key(t) {
                let up = next.get(t).copied().unwrap_or(false);
                let task = tokio::spawn(run(t.clone(), up, self.tx.clone()));
                tasks.insert(t.clone(), task.abort_handle());
            }
        }
        self.tx.send_if_modified(|h| {
            let changed = **h != next;
            if changed {
                *h = Arc::new(next);
            }
            changed
        });
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        if let Ok(tasks) = self.tasks.get_mut() {
            for t in tasks.values() {
                t.abort();
            }
        }
    }
}

/// Counts consecutive results and says when the verdict flips.
#[derive(Debug, Default)]
pub struct Verdict {
    up: bool,
    streak: u32,
}

impl Verdict {
    /// Feeds one probe result; returns the new state when it changed.
    pub fn observe(&mut self, ok: bool, rise: u32, fall: u32) -> Option<bool> {
        if ok == self.up {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        if self.streak >= if ok { rise } else { fall } {
            self.up = ok;
            self.streak = 0;
            return Some(ok);
        }
        None
    }
}

async fn run(t: Target, up: bool, tx: Arc<watch::Sender<Health>>) {
    let mut tick = tokio::time::interval(Duration::from_millis(u64::from(t.interval_ms)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Down counts as "failed once already": a target that never answers
    // stays down, one that answers rises after `rise` probes.
    let mut verdict = Verdict { up, streak: 0 };
    loop {
        tick.tick().await;
        let ok = tokio::time::timeout(Duration::from_millis(u64::from(t.timeout_ms)), probe(&t))
            .await
            .unwrap_or(false);
        if let Some(up) = verdict.observe(ok, t.rise, t.fall) {
            tracing::info!(member = %SocketAddr::new(t.addr, t.port), up, "health check verdict");
            // Only while the target is still probed (a reload may have
            // removed it while this probe ran).
            tx.send_if_modified(|h| match h.get(&t) {
                Some(&cur) if cur != up => {
                    Arc::make_mut(h).insert(t.clone(), up);
                    true
                }
                _ => false,
            });
        }
    }
}

async fn probe(t: &Target) -> bool {
    let Ok(mut s) = TcpStream::connect(SocketAddr::new(t.addr, t.port)).await else {
        return false;
    };
    match &t.kind {
        Kind::Tcp => true,
        Kind::Http {
            path,
            expect_status,
        } => {
            let host = SocketAddr::new(t.addr, t.port);
            let req = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: pollux-health\r\nConnection: close\r\n\r\n");
            if s.write_all(req.as_bytes()).await.is_err() {
                return false;
            }
            let mut buf = [0u8; 64];
            let mut n = 0;
            while n < 12 {
                match s.read(&mut buf[n..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(k) => n += k,
                }
            }
            // "HTTP/1.x NNN"
            std::str::from_utf8(&buf[..n])
                .ok()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|c| c.parse::<u16>().ok())
                == Some(*expect_status)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Member, Protocol, Snat};

    fn hc() -> HealthCheck {
        HealthCheck {
            kind: HealthCheckKind::Tcp,
            interval_ms: 100,
            timeout_ms: 50,
            rise: 2,
            fall: 3,
            path: "/".into(),
            expect_status: 200,
            port: None,
        }
    }

    fn vs(name: &str, members: &[(&str, u16)]) -> VirtualServer {
        VirtualServer {
            name: name.into(),
            address: "192.0.2.1".parse().unwrap(),
            port: 80,
            protocol: Protocol::Tcp,
            idle_timeout: 300,
            reset_on_timeout: true,
            snat: Snat::None,
            health_check: Some(hc()),
            members: members
                .iter()
                .map(|(a, p)| Member {
                    address: a.parse().unwrap(),
                    port: *p,
                    weight: 1,
                })
                .collect(),
        }
    }

    #[test]
    fn targets_are_deduplicated_across_virtual_servers() {
        let many: Vec<VirtualServer> = (0..1000)
            .map(|i| vs(&format!("vs{i}"), &[("10.0.0.1", 8080), ("10.0.0.2", 8080)]))
            .collect();
        assert_eq!(targets(&many).len(), 2);
    }

    #[test]
    fn rise_and_fall_need_consecutive_results() {
        let mut v = Verdict::default();
        assert_eq!(v.observe(true, 2, 3), None);
        assert_eq!(
            v.observe(false, 2, 3),
            None,
            "a failure resets the rise streak"
        );
        assert_eq!(v.observe(true, 2, 3), None);
        assert_eq!(v.observe(true, 2, 3), Some(true));
        assert_eq!(v.observe(false, 2, 3), None);
        assert_eq!(v.observe(false, 2, 3), None);
        assert_eq!(
            v.observe(true, 2, 3),
            None,
            "a success resets the fall streak"
        );
        assert_eq!(
            (
                v.observe(false, 2, 3),
                v.observe(false, 2, 3),
                v.observe(false, 2, 3)
            ),
            (None, None, Some(false))
        );
    }

    #[tokio::test]
    async fn a_listening_member_rises_and_a_closed_one_stays_down() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let _ = l.accept().await;
            }
        });
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let cfg = vs("v", &[("127.0.0.1", open), ("127.0.0.1", closed)]);
        let checker = Checker::default();
        checker.set_targets(targets(std::slice::from_ref(&cfg)));
        let mut rx = checker.subscribe();
        let up = tokio::time::timeout(
            Duration::from_secs(5),
            rx.wait_for(|h| member_up(h, &cfg, "127.0.0.1".parse().unwrap(), open)),
        )
        .await
        .is_ok();
        assert!(up, "the open member never rose");
        assert!(!member_up(
            &rx.borrow(),
            &cfg,
            "127.0.0.1".parse().unwrap(),
            closed
        ));
    }

    #[tokio::test]
    async fn set_targets_keeps_verdicts_of_targets_that_stay() {
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let checker = Checker::default();
        let a = vs("a", &[("127.0.0.1", closed)]);
        let b = vs("b", &[("127.0.0.2", closed)]);
        let ta = targets(std::slice::from_ref(&a));
        checker.set_targets(ta.clone());
        // Pretend a's member proved itself.
        checker.tx.send_modify(|h| {
            Arc::make_mut(h).insert(ta[0].clone(), true);
        });
        checker.set_targets(targets(&[a.clone(), b.clone()]));
        let h = checker.get();
        assert_eq!(h.get(&ta[0]), Some(&true), "a kept its verdict");
        assert_eq!(h.len(), 2);
        // A changed interval on the same member and check inherits it.
        let mut a2 = a.clone();
        a2.health_check.as_mut().unwrap().interval_ms = 250;
        checker.set_targets(targets(&[a2.clone()]));
        let h = checker.get();
        assert_eq!(h.len(), 1, "b's target was removed");
        assert!(member_up(&h, &a2, "127.0.0.1".parse().unwrap(), closed));
        assert_eq!(checker.tasks.lock().unwrap().len(), 1);
    }
}

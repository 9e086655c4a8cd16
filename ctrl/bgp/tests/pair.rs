//! Two speakers wired back to back through in-memory queues under a
//! virtual clock (quinn-proto's `Pair::drive` pattern): they reach
//! Established, exchange routes, and the hold timer behaves.

mod common;

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use bgp::advertise::{self, RouteAttributes};
use bgp::fsm::{Config, DownReason, Input, Output, Session, State, Timer};
use bgp::*;
use common::*;

/// One side: its session, its inbox, what it saw.
struct Side {
    s: Session,
    inbox: VecDeque<Vec<u8>>,
    seen: Vec<Output>,
}

/// Two sessions, a link between them, a virtual clock in ms.
struct Pair {
    now: u64,
    a: Side,
    b: Side,
    /// While false, sent bytes vanish (a silent blackhole).
    link_up: bool,
}

impl Pair {
    fn new(a: Config, b: Config) -> Self {
        let side = |c| Side {
            s: Session::new(c),
            inbox: VecDeque::new(),
            seen: Vec::new(),
        };
        Pair {
            now: 0,
            a: side(a),
            b: side(b),
            link_up: true,
        }
    }

    /// Feeds one input to a side and routes its outputs.
    fn input(&mut self, to_a: bool, input: Input<'_>) {
        let mut out = Vec::new();
        let (me, other) = if to_a {
            (&mut self.a, &mut self.b)
        } else {
            (&mut self.b, &mut self.a)
        };
        me.s.process(self.now, input, &mut out);
        let mut connect = false;
        for o in &out {
            match o {
                Output::Send { bytes, .. } if self.link_up => other.inbox.push_back(bytes.clone()),
                Output::Connect => connect = true,
                _ => {}
            }
        }
        me.seen.extend(out);
        if connect && self.link_up {
            // The TCP handshake: we connected, the other side accepted.
            self.input(to_a, Input::TcpCrAcked);
            self.input(!to_a, Input::TcpConnectionConfirmed);
        }
    }

    /// Delivers queued messages and fires due timers until nothing moves or
    /// `until` (ms) is reached; the clock jumps to the next deadline.
    fn drive(&mut self, until: u64) {
        loop {
            while let Some(m) = self.a.inbox.pop_front() {
                self.input(true, Input::Received(&m));
            }
            while let Some(m) = self.b.inbox.pop_front() {
                self.input(false, Input::Received(&m));
            }
            if !self.a.inbox.is_empty() || !self.b.inbox.is_empty() {
                continue;
            }
            let next = [
                (true, self.a.s.next_deadline()),
                (false, self.b.s.next_deadline()),
            ]
            .into_iter()
            .filter_map(|(side, d)| d.map(|(t, d)| (d, side, t)))
            .min_by_key(|(d, _, _)| *d);
            match next {
                Some((d, side, t)) if d <= until => {
                    self.now = self.now.max(d);
                    self.input(side, Input::Timer(t));
                }
                _ => {
                    self.now = until;
                    return;
                }
            }
        }
    }
}

fn configs() -> (Config, Config) {
    let mut a = local_config();
    let mut b = peer_config();
    a.hold_time = 9;
    b.hold_time = 30;
    b.passive = true;
    (a, b)
}

fn up_pair() -> Pair {
    let (a, b) = configs();
    let mut p = Pair::new(a, b);
    p.input(false, Input::ManualStart);
    p.input(true, Input::ManualStart);
    p.drive(10);
    p
}

#[test]
fn active_and_passive_reach_established() {
    let p = up_pair();
    assert_eq!(p.a.s.state(), State::Established);
    assert_eq!(p.b.s.state(), State::Established);
}

#[test]
fn both_sides_negotiate_the_smaller_hold_time() {
    let p = up_pair();
    for side in [&p.a, &p.b] {
        let up = side
            .seen
            .iter()
            .find_map(|o| match o {
                Output::SessionUp(n) => Some(n.clone()),
                _ => None,
            })
            .expect("SessionUp");
        assert_eq!((up.hold_time, up.keepalive_time), (9, 3));
        assert_eq!(
            up.families,
            vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]
        );
        assert!(up.four_octet_as && up.route_refresh && up.ebgp);
        assert_eq!(
            up.graceful_restart.as_ref().map(|g| g.restart_time),
            Some(120)
        );
    }
}

#[test]
fn keepalives_keep_the_session_up_for_a_minute() {
    let mut p = up_pair();
    p.drive(60_000);
    assert_eq!(p.a.s.state(), State::Established);
    assert_eq!(p.b.s.state(), State::Established);
    // About one KEEPALIVE every 3 s from each side.
    let ka = p.a.s.counters().sent[3];
    assert!((19..=22).contains(&ka), "{ka} keepalives");
}

#[test]
fn routes_announced_by_one_side_arrive_at_the_other() {
    let mut p = up_pair();
    let mut attrs = RouteAttributes::new(65000, true);
    attrs.next_hop_v4 = Some(Ipv4Addr::new(192, 0, 2, 1));
    attrs.next_hop_v6 = Some("2001:db8::1".parse().unwrap());
    let vips: Vec<Prefix> = (0..2000u32)
        .map(|i| Prefix::V4(Ipv4Prefix::host(Ipv4Addr::from(0x0a00_0000 + i))))
        .chain(
            (0..500u128).map(|i| Prefix::V6(Ipv6Prefix::host((0x2001_0db8_u128 << 96 | i).into()))),
        )
        .collect();
    let ctx = p.a.s.context();
    let mut ups = advertise::announce(&attrs, &vips, &ctx).unwrap();
    ups.extend(advertise::end_of_rib(&[
        Family::IPV4_UNICAST,
        Family::IPV6_UNICAST,
    ]));
    let mut out = Vec::new();
    for u in &ups {
        p.a.s
            .send(p.now, &Message::Update(u.clone()), &mut out)
            .unwrap();
    }
    for o in out {
        if let Output::Send { bytes, .. } = o {
            p.b.inbox.push_back(bytes);
        }
    }
    p.drive(p.now + 1);
    let mut got: Vec<Prefix> = Vec::new();
    let mut eors = Vec::new();
    for o in &p.b.seen {
        if let Output::UpdateReceived(u) = o {
            got.extend(u.announced());
            eors.extend(u.is_end_of_rib());
        }
    }
    got.sort();
    let mut want = vips.clone();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(eors, vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]);
}

#[test]
fn withdrawals_arrive_as_withdrawn_prefixes() {
    let mut p = up_pair();
    let gone = [
        Prefix::V4(Ipv4Prefix::host(Ipv4Addr::new(10, 0, 0, 1))),
        Prefix::V6(Ipv6Prefix::host("2001:db8::5".parse().unwrap())),
    ];
    let mut out = Vec::new();
    for u in advertise::withdraw(&gone) {
        p.a.s.send(p.now, &Message::Update(u), &mut out).unwrap();
    }
    for o in out {
        if let Output::Send { bytes, .. } = o {
            p.b.inbox.push_back(bytes);
        }
    }
    p.drive(p.now + 1);
    let got: Vec<Prefix> =
        p.b.seen
            .iter()
            .filter_map(|o| match o {
                Output::UpdateReceived(u) => Some(u.withdrawn_prefixes()),
                _ => None,
            })
            .flatten()
            .collect();
    assert_eq!(got, gone.to_vec());
}

#[test]
fn hold_timer_expires_9s_after_the_link_goes_silent() {
    let mut p = up_pair();
    p.drive(20_000);
    p.link_up = false;
    let cut = p.now;
    p.drive(cut + 20_000);
    let down_at = |side: &Side| {
        side.seen.iter().any(|o| {
            matches!(
                o,
                Output::SessionDown {
                    reason: DownReason::HoldTimerExpired,
                    was_established: true
                }
            )
        })
    };
    assert!(down_at(&p.a) && down_at(&p.b));
    // The NOTIFICATION (Hold Timer Expired) was sent on the dead link.
    assert_eq!(p.a.s.counters().sent[2], 1);
    // Nobody is left Established; they try again after the idle hold.
    assert_ne!(p.a.s.state(), State::Established);
    assert_ne!(p.b.s.state(), State::Established);
}

#[test]
fn hold_timer_fires_no_earlier_than_the_negotiated_hold_time() {
    let mut p = up_pair();
    p.link_up = false;
    let cut = p.now;
    // The last message received before the cut re-armed the hold timer.
    let deadline = p.a.s.deadline(Timer::Hold).unwrap();
    assert!(
        deadline <= cut + 9_000 && deadline > cut + 5_000,
        "{deadline} vs cut {cut}"
    );
    p.drive(deadline - 1);
    assert_eq!(p.a.s.state(), State::Established);
    p.drive(deadline);
    assert_eq!(p.a.s.state(), State::Idle);
}

#[test]
fn sessions_come_back_after_the_link_returns() {
    let mut p = up_pair();
    p.link_up = false;
    p.drive(p.now + 15_000);
    p.link_up = true;
    p.drive(p.now + 30_000);
    assert_eq!(p.a.s.state(), State::Established);
    assert_eq!(p.b.s.state(), State::Established);
}

#[test]
fn manual_stop_sends_cease_with_the_shutdown_message() {
    let mut p = up_pair();
    p.input(true, Input::ManualStop("maintenance"));
    p.drive(p.now + 1);
    let n =
        p.b.seen
            .iter()
            .find_map(|o| match o {
                Output::SessionDown {
                    reason: DownReason::NotificationReceived(n),
                    ..
                } => Some(n.clone()),
                _ => None,
            })
            .expect("peer saw the NOTIFICATION");
    assert_eq!(n.shutdown_message().as_deref(), Some("maintenance"));
    assert_eq!(p.a.s.state(), State::Idle);
    // ManualStop leaves it down: no automatic restart.
    assert_eq!(p.a.s.deadline(Timer::IdleHold), None);
}

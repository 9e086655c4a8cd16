//! Session and table behaviour under a virtual clock: timed scripts and two
//! peers wired back to back (STYLE.md §5, "Tests").

use std::net::{IpAddr, Ipv4Addr};

use super::packet::{field, Auth, AuthType, HEADER_LEN};
use super::session::{SessionStats, NEVER, SLOW_TX_US};
use super::*;

const US: u64 = 1_000;
const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;

// ---- helpers ----------------------------------------------------------------

fn timers(tx_us: u32, rx_us: u32, mult: u8) -> Timers {
    Timers {
        desired_min_tx_us: tx_us,
        required_min_rx_us: rx_us,
        detect_mult: mult,
    }
}

fn cfg(discr: u32, t: Timers) -> SessionConfig {
    SessionConfig {
        jitter_seed: u64::from(discr) * 31,
        ..SessionConfig::single_hop(discr, t)
    }
}

fn session(discr: u32, t: Timers) -> Session {
    Session::new(SessionId(discr), cfg(discr, t), 0).unwrap()
}

/// A packet from a remote with discriminator 99 to local discriminator 1.
fn from_remote(state: State, your_discr: u32) -> Repr<'static> {
    Repr {
        version: 1,
        diag: Diag::None,
        state,
        poll: false,
        final_: false,
        control_plane_independent: false,
        demand: false,
        multipoint: false,
        detect_mult: 3,
        my_discr: 99,
        your_discr,
        desired_min_tx: 10_000,
        required_min_rx: 10_000,
        required_min_echo_rx: 0,
        auth: None,
    }
}

fn sent(s: &mut Session, now: u64) -> Option<[u8; HEADER_LEN]> {
    let mut buf = [0u8; HEADER_LEN];
    s.poll_transmit(now, &mut buf).map(|n| {
        assert_eq!(n, HEADER_LEN);
        buf
    })
}

fn parse(b: &[u8]) -> Repr<'_> {
    Repr::parse_bytes(b).unwrap()
}

/// One end of a simulated link.
struct Side {
    s: Session,
    /// (time, packet) for every packet sent.
    sent: Vec<(u64, [u8; HEADER_LEN])>,
    /// Times of packets accepted.
    rx_times: Vec<u64>,
    rx_errors: Vec<RxError>,
    events: Vec<StateChange>,
}

impl Side {
    fn new(s: Session) -> Side {
        Side {
            s,
            sent: Vec::new(),
            rx_times: Vec::new(),
            rx_errors: Vec::new(),
            events: Vec::new(),
        }
    }

    fn transitions(&self) -> Vec<(State, State)> {
        self.events.iter().map(|e| (e.old, e.new)).collect()
    }

    /// Gaps between consecutive periodic (non-Final) packets sent in
    /// `[from, to)`.
    fn periodic_gaps(&self, from: u64, to: u64) -> Vec<u64> {
        let times: Vec<u64> = self
            .sent
            .iter()
            .filter(|(t, p)| *t >= from && *t < to && !parse(p).final_)
            .map(|(t, _)| *t)
            .collect();
        times.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

/// Two sessions wired back to back through a link with a fixed delay,
/// under a virtual clock that jumps from deadline to deadline.
struct Pair {
    a: Side,
    b: Side,
    now: u64,
    delay: u64,
    /// (arrival, to_b, bytes)
    flight: Vec<(u64, bool, [u8; HEADER_LEN])>,
    drop_to_a: bool,
    drop_to_b: bool,
}

impl Pair {
    fn new(a: SessionConfig, b: SessionConfig, delay: u64) -> Pair {
        Pair {
            a: Side::new(Session::new(SessionId(1), a, 0).unwrap()),
            b: Side::new(Session::new(SessionId(2), b, 0).unwrap()),
            now: 0,
            delay,
            flight: Vec::new(),
            drop_to_a: false,
            drop_to_b: false,
        }
    }

    fn next_time(&self) -> u64 {
        let mut t = self.a.s.next_deadline().min(self.b.s.next_deadline());
        for (arrival, _, _) in &self.flight {
            t = t.min(*arrival);
        }
        t
    }

    fn step(&mut self) {
        let t = self.next_time();
        assert!(t != NEVER, "nothing left to happen");
        self.now = self.now.max(t);
        let now = self.now;
        // Deliveries first, in sending order.
        let mut i = 0;
        while i < self.flight.len() {
            if self.flight[i].0 <= now {
                let (_, to_b, bytes) = self.flight.remove(i);
                let side = if to_b { &mut self.b } else { &mut self.a };
                match side.s.on_packet(now, &parse(&bytes), 255) {
                    Ok(ev) => {
                        side.rx_times.push(now);
                        side.events.extend(ev);
                    }
                    Err(e) => side.rx_errors.push(e),
                }
            } else {
                i += 1;
            }
        }
        for side in [&mut self.a, &mut self.b] {
            side.events.extend(side.s.check_timeout(now));
        }
        for (side, to_b, dropped) in [
            (&mut self.a, true, self.drop_to_b),
            (&mut self.b, false, self.drop_to_a),
        ] {
            while let Some(bytes) = sent(&mut side.s, now) {
                side.sent.push((now, bytes));
                if !dropped {
                    self.flight.push((now + self.delay, to_b, bytes));
                }
            }
        }
    }

    fn run_until(&mut self, t: u64) {
        let mut guard = 0u64;
        while self.next_time() <= t {
            self.step();
            guard += 1;
            assert!(guard < 10_000_000, "runaway simulation");
        }
        self.now = self.now.max(t);
    }

    /// Step until side A has sent one more packet; returns it.
    fn until_a_sends(&mut self) -> (u64, Repr<'static>) {
        let before = self.a.sent.len();
        while self.a.sent.len() == before {
            self.step();
        }
        let (t, b) = self.a.sent[before];
        let bytes: &'static [u8] = Box::leak(Box::new(b));
        (t, parse(bytes))
    }

    /// Step until side B has accepted one more packet.
    fn until_b_receives(&mut self) {
        let before = self.b.rx_times.len();
        while self.b.rx_times.len() == before {
            self.step();
        }
    }
}

fn up_pair(a: Timers, b: Timers, delay: u64) -> Pair {
    let mut p = Pair::new(cfg(1, a), cfg(2, b), delay);
    p.run_until(5 * S);
    assert_eq!(p.a.s.state(), State::Up);
    assert_eq!(p.b.s.state(), State::Up);
    assert!(!p.a.s.poll_active() && !p.b.s.poll_active());
    p
}

// ---- bring-up -----------------------------------------------------------------

#[test]
fn simultaneous_start_goes_down_init_up_on_both_sides() {
    let t = timers(10_000, 10_000, 3);
    let mut p = Pair::new(cfg(1, t), cfg(2, t), 50 * US);
    p.run_until(5 * S);
    use State::*;
    assert_eq!(p.a.transitions(), [(Down, Init), (Init, Up)]);
    assert_eq!(p.b.transitions(), [(Down, Init), (Init, Up)]);
    assert_eq!(p.a.s.remote_discr(), 2);
    assert_eq!(p.b.s.remote_discr(), 1);
    // Negotiated: 10 ms each way, 3 × 10 ms detection.
    for side in [&p.a, &p.b] {
        assert_eq!(side.s.tx_interval_ns(), 10 * MS);
        assert_eq!(side.s.detection_time_ns(), 30 * MS);
        assert!(side.rx_errors.is_empty());
    }
    let ev = p.a.events[1];
    assert_eq!(
        (ev.session, ev.local_discr, ev.diag),
        (SessionId(1), 1, Diag::None)
    );
    assert!(matches!(ev.remote_state, Init | Up));
}

#[test]
fn passive_side_waits_then_goes_down_init_up_while_active_goes_down_up() {
    let t = timers(10_000, 10_000, 3);
    let passive = SessionConfig {
        passive: true,
        ..cfg(2, t)
    };
    let mut p = Pair::new(cfg(1, t), passive, 0);
    // The passive side sends nothing before it hears from the remote.
    assert_eq!(p.b.s.next_tx_deadline(), NEVER);
    p.run_until(5 * S);
    use State::*;
    // A: Down, receives Init → Up directly. B: Down→Init on A's Down.
    assert_eq!(p.a.transitions(), [(Down, Up)]);
    assert_eq!(p.b.transitions(), [(Down, Init), (Init, Up)]);
    // B's first packet went out only after A's first arrived.
    assert!(p.b.sent[0].0 >= p.a.sent[0].0);
}

#[test]
fn slow_rate_of_one_second_while_not_up() {
    // Configured 10 ms, but nobody answers: packets advertise and use >= 1 s.
    let mut s = session(1, timers(10_000, 10_000, 3));
    let mut times = Vec::new();
    let mut now = 0;
    for _ in 0..50 {
        now = s.next_deadline();
        let b = sent(&mut s, now).expect("due");
        let r = parse(&b);
        assert_eq!((r.state, r.your_discr), (State::Down, 0));
        assert_eq!(r.desired_min_tx, SLOW_TX_US);
        assert_eq!(r.required_min_rx, 10_000);
        times.push(now);
    }
    assert!(now > 30 * S);
    for w in times.windows(2) {
        let gap = w[1] - w[0];
        assert!((750 * MS..=S).contains(&gap), "gap {gap}");
    }
    assert_eq!(s.stats().tx_packets, 50);
}

// ---- detection ------------------------------------------------------------------

#[test]
fn loss_from_one_side_detected_exactly_mult_times_interval_after_last_packet() {
    let t = timers(10_000, 10_000, 3);
    let mut p = up_pair(t, t, 80 * US);
    let cut = 7 * S + 3 * MS;
    p.run_until(cut);
    p.drop_to_a = true;
    p.run_until(cut + S);
    let last_rx = *p.a.rx_times.iter().rev().find(|&&t| t <= cut).unwrap();
    let down = p.a.events.last().unwrap();
    assert_eq!((down.old, down.new), (State::Up, State::Down));
    assert_eq!(down.diag, Diag::ControlDetectionTimeExpired);
    // Exactly remote mult (3) × max(local required rx, remote desired tx).
    assert_eq!(down.at, last_rx + 30 * MS);
    assert_eq!(p.a.s.remote_discr(), 0, "remote forgotten (§6.8.1)");
    // B hears A's Down (diag 1) and follows with Neighbor Signaled Down
    // (then Down→Init on A's next Down, which A never hears).
    let b_down = p.b.events.iter().find(|e| e.went_down()).unwrap();
    assert_eq!((b_down.old, b_down.new), (State::Up, State::Down));
    assert_eq!(b_down.diag, Diag::NeighborSignaledDown);
    assert_eq!(b_down.remote_diag, Diag::ControlDetectionTimeExpired);
    assert!(b_down.at > down.at);
    // Only one down transition each.
    assert_eq!(p.a.s.stats().down_transitions, 1);
    assert_eq!(p.b.s.stats().down_transitions, 1);
}

#[test]
fn asymmetric_timers_negotiate_per_direction() {
    // A: tx 10 ms, rx 20 ms, mult 3. B: tx 15 ms, rx 10 ms, mult 5.
    let mut p = up_pair(timers(10_000, 20_000, 3), timers(15_000, 10_000, 5), 0);
    // tx interval = max(own desired tx, remote required rx).
    assert_eq!(p.a.s.tx_interval_ns(), 10 * MS);
    assert_eq!(p.b.s.tx_interval_ns(), 20 * MS);
    // detection = remote mult × max(own required rx, remote desired tx).
    assert_eq!(p.a.s.detection_time_ns(), 5 * 20 * MS);
    assert_eq!(p.b.s.detection_time_ns(), 3 * 10 * MS);
    let cut = 6 * S;
    p.run_until(cut);
    p.drop_to_b = true;
    p.run_until(cut + S);
    let last_rx = *p.b.rx_times.iter().rev().find(|&&t| t <= cut).unwrap();
    let ev = p.b.events.last().unwrap();
    assert_eq!(ev.diag, Diag::ControlDetectionTimeExpired);
    assert_eq!(ev.at, last_rx + 30 * MS);
}

#[test]
fn total_cut_both_sides_detect() {
    let t = timers(50_000, 50_000, 3);
    let mut p = up_pair(t, t, 0);
    let cut = 6 * S;
    p.run_until(cut);
    p.drop_to_a = true;
    p.drop_to_b = true;
    p.run_until(cut + S);
    for side in [&p.a, &p.b] {
        let last_rx = *side.rx_times.last().unwrap();
        let ev = side.events.last().unwrap();
        assert_eq!(
            (ev.new, ev.diag),
            (State::Down, Diag::ControlDetectionTimeExpired)
        );
        assert_eq!(ev.at, last_rx + 150 * MS);
    }
}

#[test]
fn detection_expiry_in_init_goes_down_and_forgets_remote() {
    let mut s = session(1, timers(10_000, 10_000, 3));
    let ev = s
        .on_packet(100, &from_remote(State::Down, 0), 255)
        .unwrap()
        .unwrap();
    assert_eq!((ev.old, ev.new), (State::Down, State::Init));
    // Detection: 3 × max(10 ms, remote tx 10 ms) after the packet.
    assert_eq!(s.detect_deadline(), 100 + 30 * MS);
    assert_eq!(s.check_timeout(100 + 30 * MS - 1), None);
    let ev = s.check_timeout(100 + 30 * MS).unwrap();
    assert_eq!((ev.old, ev.new), (State::Init, State::Down));
    assert_eq!(ev.diag, Diag::ControlDetectionTimeExpired);
    assert_eq!(s.remote_discr(), 0);
    assert_eq!(s.detect_deadline(), NEVER);
    let b = sent(&mut s, 100 + 30 * MS).unwrap();
    let r = parse(&b);
    assert_eq!(
        (r.state, r.your_discr, r.diag),
        (State::Down, 0, Diag::ControlDetectionTimeExpired)
    );
}

#[test]
fn detection_expiry_in_down_changes_no_state() {
    let mut s = session(1, timers(10_000, 10_000, 3));
    // Remote says Up while we are Down: no change, but the remote is learned.
    assert_eq!(s.on_packet(0, &from_remote(State::Up, 1), 255), Ok(None));
    assert_eq!(s.remote_discr(), 99);
    assert_eq!(s.check_timeout(30 * MS), None);
    assert_eq!(s.remote_discr(), 0);
    assert_eq!(s.state(), State::Down);
}

// ---- poll sequences ---------------------------------------------------------------

#[test]
fn tx_increase_waits_for_final() {
    let t = timers(10_000, 10_000, 3);
    let mut p = up_pair(t, t, 100 * US);
    p.run_until(6 * S);
    p.a.s.set_timers(timers(50_000, 10_000, 3)).unwrap();
    assert!(p.a.s.poll_active());
    assert_eq!(p.a.s.tx_interval_ns(), 10 * MS, "held until the Final");

    let (_, pkt) = p.until_a_sends();
    assert!(pkt.poll && !pkt.final_);
    assert_eq!(pkt.desired_min_tx, 50_000);
    assert_eq!(p.a.s.tx_interval_ns(), 10 * MS);

    // B takes the new value into its detection time at once and answers
    // with a Final in the same instant.
    let b_sent = p.b.sent.len();
    p.until_b_receives();
    assert_eq!(p.b.s.detection_time_ns(), 3 * 50 * MS);
    let fin = parse(&p.b.sent[b_sent].1);
    assert!(fin.final_ && !fin.poll);
    assert_eq!(p.b.sent[b_sent].0, p.now, "Final sent on receipt");

    // Until the Final reaches A, A still polls at 10 ms.
    assert!(p.a.s.poll_active());
    let arrival = p.now + 100 * US;
    p.run_until(arrival);
    assert!(!p.a.s.poll_active());
    assert_eq!(p.a.s.tx_interval_ns(), 50 * MS);

    // Afterwards: no P, 50 ms jittered gaps.
    let from = p.now + 60 * MS;
    p.run_until(from + 2 * S);
    for (t, b) in &p.a.sent {
        if *t >= from {
            assert!(!parse(b).poll);
        }
    }
    let gaps = p.a.periodic_gaps(from, from + 2 * S);
    assert!(gaps.len() > 30);
    assert!(
        gaps.iter().all(|g| (37_500 * US..=50 * MS).contains(g)),
        "{gaps:?}"
    );
    assert_eq!(p.a.s.state(), State::Up);
    assert_eq!(p.b.s.state(), State::Up);
}

#[test]
fn rx_decrease_waits_for_final_in_detection_time() {
    // B sends every 10 ms; A asks for 50 ms, then lowers it to 10 ms.
    let mut p = up_pair(
        timers(10_000, 50_000, 3),
        timers(10_000, 10_000, 3),
        100 * US,
    );
    assert_eq!(p.b.s.tx_interval_ns(), 50 * MS);
    assert_eq!(p.a.s.detection_time_ns(), 150 * MS);
    p.run_until(6 * S);
    p.a.s.set_timers(timers(10_000, 10_000, 3)).unwrap();
    assert!(p.a.s.poll_active());
    assert_eq!(p.a.s.detection_time_ns(), 150 * MS, "held until the Final");
    let (_, pkt) = p.until_a_sends();
    assert!(pkt.poll);
    assert_eq!(pkt.required_min_rx, 10_000);
    // B speeds up as soon as it sees the new Required Min RX.
    p.until_b_receives();
    assert_eq!(p.b.s.tx_interval_ns(), 10 * MS);
    // The Final brings A's detection time down.
    while p.a.s.poll_active() {
        p.step();
        assert_eq!(p.a.s.state(), State::Up);
    }
    assert_eq!(p.a.s.detection_time_ns(), 30 * MS);
}

#[test]
fn tx_decrease_and_rx_increase_apply_at_once() {
    let t = timers(50_000, 10_000, 3);
    let mut s_pair = up_pair(t, timers(10_000, 10_000, 3), 0);
    let a = &mut s_pair.a.s;
    assert_eq!(a.tx_interval_ns(), 50 * MS);
    a.set_timers(timers(10_000, 40_000, 3)).unwrap();
    assert!(a.poll_active());
    assert_eq!(a.tx_interval_ns(), 10 * MS);
    assert_eq!(a.detection_time_ns(), 3 * 40 * MS);
}

#[test]
fn coming_up_starts_a_poll_for_the_fast_rate() {
    let t = timers(10_000, 10_000, 3);
    let mut p = Pair::new(cfg(1, t), cfg(2, t), 100 * US);
    while p.a.s.state() != State::Up {
        p.step();
    }
    // Up: the fast rate applies at once (a decrease); a Poll announces it.
    assert!(p.a.s.poll_active());
    assert_eq!(p.a.s.tx_interval_ns(), 10 * MS);
    let (_, pkt) = p.until_a_sends();
    assert!(pkt.poll);
    assert_eq!(pkt.desired_min_tx, 10_000);
    p.run_until(p.now + 100 * MS);
    assert!(!p.a.s.poll_active());
}

#[test]
fn poll_gets_exactly_one_final_and_final_ignores_timer() {
    let mut s = session(1, timers(10_000, 10_000, 3));
    s.on_packet(0, &from_remote(State::Init, 1), 255).unwrap();
    assert_eq!(s.state(), State::Up);
    let _ = sent(&mut s, 0); // periodic, due since creation
    let next_periodic = s.next_tx_deadline();
    assert!(next_periodic > 5 * MS);
    let poll = Repr {
        poll: true,
        ..from_remote(State::Up, 1)
    };
    s.on_packet(5 * MS, &poll, 255).unwrap();
    assert_eq!(s.next_deadline(), 5 * MS);
    let b = sent(&mut s, 5 * MS).unwrap();
    let r = parse(&b);
    assert!(r.final_ && !r.poll);
    assert_eq!(sent(&mut s, 5 * MS), None, "one Final, periodic unchanged");
    assert_eq!(s.next_tx_deadline(), next_periodic);
}

// ---- jitter and fast intervals -------------------------------------------------------

fn assert_steady(t: Timers, lo_pct: u64, hi_pct: u64) {
    let mut p = up_pair(t, t, 20 * US);
    let from = 5 * S;
    p.run_until(from + 10 * S);
    assert_eq!(p.a.s.stats().down_transitions, 0);
    assert_eq!(p.b.s.stats().down_transitions, 0);
    let interval = u64::from(t.desired_min_tx_us) * US;
    let gaps = p.a.periodic_gaps(from, from + 10 * S);
    assert!(
        gaps.len() as u64 > 10 * S / interval,
        "{} packets",
        gaps.len()
    );
    let (lo, hi) = (interval * lo_pct / 100, interval * hi_pct / 100);
    for g in &gaps {
        assert!((lo..=hi).contains(g), "gap {g} outside [{lo}, {hi}]");
    }
    // Uniform reduction: the mean sits in the middle of the band.
    let mean = gaps.iter().sum::<u64>() / gaps.len() as u64;
    let mid = (lo + hi) / 2;
    assert!(
        mean.abs_diff(mid) < interval / 100,
        "mean {mean}, mid {mid}"
    );
}

#[test]
fn ten_ms_stays_up_with_jitter_within_75_to_100_percent() {
    assert_steady(timers(10_000, 10_000, 3), 75, 100);
}

#[test]
fn three_point_three_ms_stays_up() {
    assert_steady(timers(3_300, 3_300, 3), 75, 100);
}

#[test]
fn detect_mult_one_jitters_within_75_to_90_percent() {
    assert_steady(timers(10_000, 10_000, 1), 75, 90);
}

#[test]
fn jitter_is_deterministic_per_seed() {
    let draw = |seed: u64| {
        let c = SessionConfig {
            jitter_seed: seed,
            ..cfg(1, timers(10_000, 10_000, 3))
        };
        let mut s = Session::new(SessionId(0), c, 0).unwrap();
        (0..20)
            .map(|_| {
                let now = s.next_deadline();
                sent(&mut s, now).unwrap();
                now
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(draw(7), draw(7));
    assert_ne!(draw(7), draw(8));
}

// ---- AdminDown, local down, C bit -----------------------------------------------------

#[test]
fn admin_down_received_takes_peer_down_with_neighbor_signaled_down() {
    let t = timers(10_000, 10_000, 3);
    let mut p = up_pair(t, t, 0);
    p.run_until(6 * S);
    let ev = p.b.s.set_admin_down(p.now, true).unwrap();
    assert_eq!(
        (ev.old, ev.new, ev.diag),
        (State::Up, State::AdminDown, Diag::AdministrativelyDown)
    );
    // The AdminDown packet goes out at the already scheduled (fast) time.
    let at = p.now;
    let scheduled = p.b.s.next_tx_deadline();
    assert!(scheduled <= at + 10 * MS);
    p.run_until(at + 10 * S);
    let first = p.b.sent.iter().find(|(t, _)| *t >= at).unwrap();
    assert_eq!(first.0, scheduled);
    let r = parse(&first.1);
    assert_eq!(
        (r.state, r.diag),
        (State::AdminDown, Diag::AdministrativelyDown)
    );
    assert_eq!(r.desired_min_tx, SLOW_TX_US, "slow rate while not Up");
    // A: Up → Down, Neighbor Signaled Session Down, and stays Down.
    let a_ev: Vec<_> = p.a.events.iter().filter(|e| e.at >= at).collect();
    assert_eq!(a_ev.len(), 1);
    assert_eq!((a_ev[0].old, a_ev[0].new), (State::Up, State::Down));
    assert_eq!(a_ev[0].diag, Diag::NeighborSignaledDown);
    assert_eq!(a_ev[0].remote_state, State::AdminDown);
    // B keeps sending AdminDown at ~1 s, discards A's packets, never detects.
    let later = p.b.periodic_gaps(at + 1, at + 10 * S);
    assert!(
        later.iter().all(|g| (750 * MS..=S).contains(g)),
        "{later:?}"
    );
    assert!(p.b.rx_errors.iter().all(|e| *e == RxError::AdminDown));
    assert!(!p.b.rx_errors.is_empty());
    assert_eq!(p.b.s.detect_deadline(), NEVER);
    assert_eq!(p.b.events.len(), 2, "only Down→Init, Init→Up from packets");
    // Re-enabled: back to Down, then Up again.
    let ev = p.b.s.set_admin_down(p.now, false).unwrap();
    assert_eq!((ev.old, ev.new), (State::AdminDown, State::Down));
    p.run_until(p.now + 5 * S);
    assert_eq!(p.a.s.state(), State::Up);
    assert_eq!(p.b.s.state(), State::Up);
    assert_eq!(p.a.s.local_diag(), Diag::None);
}

#[test]
fn admin_down_is_idempotent_and_start_admin_down_sends_admin_down() {
    let c = SessionConfig {
        admin_down: true,
        ..cfg(1, timers(10_000, 10_000, 3))
    };
    let mut s = Session::new(SessionId(1), c, 0).unwrap();
    assert_eq!(s.state(), State::AdminDown);
    assert_eq!(s.set_admin_down(0, true), None);
    let r = parse(&sent(&mut s, 0).unwrap()).state;
    assert_eq!(r, State::AdminDown);
    assert_eq!(
        s.on_packet(1, &from_remote(State::Down, 0), 255),
        Err(RxError::AdminDown)
    );
    assert_eq!(s.state(), State::AdminDown);
}

#[test]
fn force_down_with_path_down() {
    let mut s = session(1, timers(10_000, 10_000, 3));
    s.on_packet(0, &from_remote(State::Init, 1), 255).unwrap();
    assert_eq!(s.state(), State::Up);
    let ev = s.force_down(MS, Diag::PathDown).unwrap();
    assert_eq!(
        (ev.old, ev.new, ev.diag),
        (State::Up, State::Down, Diag::PathDown)
    );
    assert_eq!(s.stats().down_transitions, 1);
    assert_eq!(s.force_down(MS, Diag::PathDown), None);
}

#[test]
fn c_bit_is_the_callers_choice() {
    let mut s = session(1, timers(10_000, 10_000, 3));
    assert!(parse(&sent(&mut s, 0).unwrap()).control_plane_independent);
    s.set_control_plane_independent(false);
    s.on_packet(0, &from_remote(State::Down, 0), 255).unwrap();
    let now = s.next_tx_deadline();
    assert!(!parse(&sent(&mut s, now).unwrap()).control_plane_independent);
    let c = SessionConfig {
        control_plane_independent: false,
        ..cfg(2, timers(10_000, 10_000, 3))
    };
    let mut s = Session::new(SessionId(2), c, 0).unwrap();
    assert!(!parse(&sent(&mut s, 0).unwrap()).control_plane_independent);
}

// ---- transmission limits ----------------------------------------------------------------

#[test]
fn remote_min_rx_zero_stops_periodic_tx_but_not_final() {
    let mut s = session(1, timers(10_000, 10_000, 3));
    let _ = sent(&mut s, 0);
    let quiet = Repr {
        required_min_rx: 0,
        poll: true,
        ..from_remote(State::Down, 0)
    };
    s.on_packet(MS, &quiet, 255).unwrap();
    assert_eq!(s.next_tx_deadline(), NEVER);
    // The Final is still owed (§6.8.7: "without respect to ... any other
    // transmission limitation").
    assert!(parse(&sent(&mut s, MS).unwrap()).final_);
    assert_eq!(sent(&mut s, 10 * S), None);
}

#[test]
fn remote_demand_mode_stops_periodic_tx_while_both_up() {
    let mut s = session(1, timers(10_000, 10_000, 3));
    s.on_packet(0, &from_remote(State::Init, 1), 255).unwrap();
    assert_eq!(s.state(), State::Up);
    // Let the coming-up Poll finish.
    s.on_packet(
        MS,
        &Repr {
            final_: true,
            ..from_remote(State::Up, 1)
        },
        255,
    )
    .unwrap();
    assert!(!s.poll_active());
    let demand = Repr {
        demand: true,
        ..from_remote(State::Up, 1)
    };
    s.on_packet(2 * MS, &demand, 255).unwrap();
    assert_eq!(s.next_tx_deadline(), NEVER);
    // A Poll Sequence is still transmitted.
    s.set_timers(timers(20_000, 10_000, 3)).unwrap();
    assert_ne!(s.next_tx_deadline(), NEVER);
}

// ---- reception checks that need a session --------------------------------------------------

#[test]
fn single_hop_requires_ttl_255_multihop_a_configured_minimum() {
    let mut s = session(1, timers(10_000, 10_000, 3));
    let p = from_remote(State::Down, 0);
    assert_eq!(s.on_packet(0, &p, 254), Err(RxError::BadTtl));
    assert_eq!(s.on_packet(0, &p, 1), Err(RxError::BadTtl));
    assert_eq!(s.remote_discr(), 0, "a dropped packet teaches nothing");
    assert!(s.on_packet(0, &p, 255).is_ok());

    let c = SessionConfig {
        hop: Hop::Multi { min_ttl: 250 },
        ..cfg(2, timers(10_000, 10_000, 3))
    };
    let mut m = Session::new(SessionId(2), c, 0).unwrap();
    assert_eq!(m.on_packet(0, &p, 249), Err(RxError::BadTtl));
    assert!(m.on_packet(0, &p, 250).is_ok());
    assert_eq!(Hop::Multi { min_ttl: 0 }.dest_port(), 4784);
    assert_eq!(Hop::Single.dest_port(), 3784);
    assert!(Hop::Multi { min_ttl: 0 }.ttl_ok(1));
}

#[test]
fn auth_section_is_dropped_when_no_auth_in_use() {
    let mut s = session(1, timers(10_000, 10_000, 3));
    let p = Repr {
        auth: Some(Auth {
            auth_type: AuthType::SimplePassword,
            data: b"\x01pw",
        }),
        ..from_remote(State::Down, 0)
    };
    assert_eq!(s.on_packet(0, &p, 255), Err(RxError::AuthMismatch));
    assert_eq!(s.state(), State::Down);
}

#[test]
fn wrong_your_discr_on_a_standalone_session_is_dropped() {
    let mut s = session(1, timers(10_000, 10_000, 3));
    assert_eq!(
        s.on_packet(0, &from_remote(State::Up, 7), 255),
        Err(RxError::UnknownDiscr)
    );
}

#[test]
fn config_errors() {
    let ok = cfg(1, timers(10_000, 10_000, 3));
    let bad = |c: SessionConfig| Session::new(SessionId(0), c, 0).err();
    assert_eq!(
        bad(SessionConfig {
            local_discr: 0,
            ..ok
        }),
        Some(ConfigError::ZeroLocalDiscr)
    );
    assert_eq!(
        bad(cfg(1, timers(0, 10_000, 3))),
        Some(ConfigError::ZeroDesiredMinTx)
    );
    assert_eq!(
        bad(cfg(1, timers(10_000, 10_000, 0))),
        Some(ConfigError::ZeroDetectMult)
    );
    let mut s = session(1, timers(10_000, 10_000, 3));
    assert_eq!(
        s.set_timers(timers(10_000, 0, 0)),
        Err(ConfigError::ZeroDetectMult)
    );
    assert_eq!(s.config().timers.detect_mult, 3);
}

#[test]
fn info_snapshot_reports_negotiated_values() {
    let p = up_pair(timers(10_000, 20_000, 3), timers(15_000, 10_000, 5), 0);
    let i = p.a.s.info();
    assert_eq!((i.state, i.remote_state), (State::Up, State::Up));
    assert_eq!((i.local_discr, i.remote_discr), (1, 2));
    assert_eq!(i.tx_interval_ns, 10 * MS);
    assert_eq!(i.detection_time_ns, 100 * MS);
    assert_eq!(
        (i.desired_min_tx_us, i.required_min_rx_us, i.detect_mult),
        (10_000, 20_000, 3)
    );
    assert_eq!(
        (
            i.remote_desired_min_tx_us,
            i.remote_min_rx_us,
            i.remote_detect_mult
        ),
        (15_000, 10_000, 5)
    );
    assert!(i.remote_control_plane_independent);
    let SessionStats {
        up_transitions,
        rx_packets,
        tx_packets,
        ..
    } = i.stats;
    assert_eq!(up_transitions, 1);
    assert!(rx_packets > 100 && tx_packets > 100);
}

// ---- the table ------------------------------------------------------------------------------

fn addr(net: u8, i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, net, (i >> 8) as u8, i as u8))
}

/// Two tables of `n` sessions each, back to back. Session i of table A talks
/// to session i of table B; A's address for it is 10.0.x.x, B's 10.1.x.x.
struct TablePair {
    a: SessionTable,
    b: SessionTable,
    now: u64,
    /// (arrival, to_b, src, bytes)
    flight: Vec<(u64, bool, IpAddr, [u8; HEADER_LEN])>,
    events_a: Vec<StateChange>,
    events_b: Vec<StateChange>,
    rx_errors: Vec<RxError>,
    last_rx_a: Vec<u64>,
    /// Drop B→A packets of sessions for which this returns true.
    drop_to_a: fn(u32) -> bool,
}

fn index_of(a: IpAddr) -> u32 {
    match a {
        IpAddr::V4(v) => {
            let o = v.octets();
            u32::from(o[2]) << 8 | u32::from(o[3])
        }
        IpAddr::V6(_) => unreachable!(),
    }
}

impl TablePair {
    fn new(n: u32, t: Timers) -> TablePair {
        let mut a = SessionTable::with_capacity(n as usize);
        let mut b = SessionTable::with_capacity(n as usize);
        for i in 0..n {
            let pa = PeerKey {
                addr: addr(1, i),
                iface: 0,
            };
            let pb = PeerKey {
                addr: addr(0, i),
                iface: 0,
            };
            // Discriminators deliberately unrelated to slot numbers.
            assert_eq!(
                a.add(0, pa, cfg(1_000_000 + 7 * i, t)).unwrap(),
                SessionId(i)
            );
            assert_eq!(b.add(0, pb, cfg(5_000 + 13 * i, t)).unwrap(), SessionId(i));
        }
        TablePair {
            a,
            b,
            now: 0,
            flight: Vec::new(),
            events_a: Vec::new(),
            events_b: Vec::new(),
            rx_errors: Vec::new(),
            last_rx_a: vec![0; n as usize],
            drop_to_a: |_| false,
        }
    }

    fn step(&mut self) {
        let mut t = self.a.next_deadline().min(self.b.next_deadline());
        for f in &self.flight {
            t = t.min(f.0);
        }
        self.now = self.now.max(t);
        let now = self.now;
        let (due, rest): (Vec<_>, Vec<_>) = self.flight.drain(..).partition(|f| f.0 <= now);
        self.flight = rest;
        for (_, to_b, src, bytes) in due {
            let meta = RxMeta {
                peer: PeerKey {
                    addr: src,
                    iface: 0,
                },
                ttl: 255,
                multihop: false,
            };
            let r = if to_b {
                self.b.handle_rx(now, &meta, &bytes)
            } else {
                self.a.handle_rx(now, &meta, &bytes)
            };
            match r {
                Ok(ev) if to_b => self.events_b.extend(ev),
                Ok(ev) => {
                    self.events_a.extend(ev);
                    self.last_rx_a[index_of(src) as usize] = now;
                }
                Err(e) => self.rx_errors.push(e),
            }
        }
        let mut out_a = Vec::new();
        self.a.poll_timers(now, &mut |o| match o {
            Output::Transmit(tx) => {
                out_a.push((tx.peer.addr, *<&[u8; 24]>::try_from(tx.payload).unwrap()))
            }
            Output::StateChange(ev) => self.events_a.push(ev),
        });
        let mut out_b = Vec::new();
        self.b.poll_timers(now, &mut |o| match o {
            Output::Transmit(tx) => {
                out_b.push((tx.peer.addr, *<&[u8; 24]>::try_from(tx.payload).unwrap()))
            }
            Output::StateChange(ev) => self.events_b.push(ev),
        });
        for (dst, bytes) in out_a {
            self.flight
                .push((now + 30 * US, true, addr(0, index_of(dst)), bytes));
        }
        for (dst, bytes) in out_b {
            let i = index_of(dst);
            if !(self.drop_to_a)(i) {
                self.flight.push((now + 30 * US, false, addr(1, i), bytes));
            }
        }
    }

    fn run_until(&mut self, t: u64) {
        loop {
            let mut next = self.a.next_deadline().min(self.b.next_deadline());
            for f in &self.flight {
                next = next.min(f.0);
            }
            if next > t {
                break;
            }
            self.step();
        }
        self.now = t;
    }
}

#[test]
fn two_tables_of_200_sessions_come_up_and_detect_loss_per_session() {
    let n = 200;
    let mut p = TablePair::new(n, timers(10_000, 10_000, 3));
    p.run_until(5 * S);
    for (_, s) in p.a.iter().chain(p.b.iter()) {
        assert_eq!(s.state(), State::Up, "{:?}", s.id());
        assert_eq!(s.tx_interval_ns(), 10 * MS);
    }
    assert_eq!(p.a.drops().total() + p.b.drops().total(), 0);
    assert!(p.rx_errors.is_empty());
    // Sessions with an even index lose B→A.
    let cut = 6 * S;
    p.run_until(cut);
    p.drop_to_a = |i| i % 2 == 0;
    let before = p.events_a.len();
    p.run_until(cut + S);
    let downs = &p.events_a[before..];
    assert_eq!(downs.len(), n as usize / 2);
    for ev in downs {
        assert_eq!(ev.session.0 % 2, 0);
        assert_eq!(ev.diag, Diag::ControlDetectionTimeExpired);
        assert_eq!(ev.at, p.last_rx_a[ev.session.0 as usize] + 30 * MS);
        assert_eq!(ev.local_discr, 1_000_000 + 7 * ev.session.0);
    }
    // Odd ones stayed up on both sides.
    for i in (1..n).step_by(2) {
        assert_eq!(p.a.get(SessionId(i)).unwrap().state(), State::Up);
        assert_eq!(p.b.get(SessionId(i)).unwrap().state(), State::Up);
    }
}

#[test]
fn table_poll_is_quiet_when_nothing_is_due() {
    let mut p = TablePair::new(50, timers(10_000, 10_000, 3));
    p.run_until(3 * S);
    // Nothing due before the earliest deadline: no output at all.
    let next = p.a.next_deadline();
    assert!(next > p.now);
    let mut outputs = 0;
    p.a.poll_timers(next - 1, &mut |_| outputs += 1);
    assert_eq!(outputs, 0);
    // At the deadline something is due.
    p.a.poll_timers(next, &mut |_| outputs += 1);
    assert!(outputs > 0);
}

#[test]
fn table_demuxes_by_your_discr_then_by_peer() {
    let mut t = SessionTable::with_capacity(4);
    let p1 = PeerKey {
        addr: addr(9, 1),
        iface: 1,
    };
    let p2 = PeerKey {
        addr: addr(9, 1),
        iface: 2,
    }; // same address, other port
    let id1 = t.add(0, p1, cfg(11, timers(10_000, 10_000, 3))).unwrap();
    let id2 = t.add(0, p2, cfg(22, timers(10_000, 10_000, 3))).unwrap();
    let mut buf = [0u8; HEADER_LEN];
    let meta = |peer| RxMeta {
        peer,
        ttl: 255,
        multihop: false,
    };
    // Your Discriminator 0 in Down: by (address, interface).
    from_remote(State::Down, 0).emit(&mut buf).unwrap();
    let ev = t.handle_rx(0, &meta(p2), &buf).unwrap().unwrap();
    assert_eq!((ev.session, ev.new), (id2, State::Init));
    assert_eq!(t.get(id1).unwrap().state(), State::Down);
    // Your Discriminator set: by discriminator, and only from the
    // session's peer (address and, single hop, port).
    from_remote(State::Init, 11).emit(&mut buf).unwrap();
    let stranger = PeerKey {
        addr: addr(9, 77),
        iface: 1,
    };
    assert_eq!(
        t.handle_rx(0, &meta(stranger), &buf),
        Err(RxError::WrongSource)
    );
    assert_eq!(t.handle_rx(0, &meta(p2), &buf), Err(RxError::WrongSource));
    assert_eq!(t.drops().get(RxError::WrongSource), 2);
    assert_eq!(t.get(id1).unwrap().state(), State::Down);
    let ev = t.handle_rx(0, &meta(p1), &buf).unwrap().unwrap();
    assert_eq!((ev.session, ev.new), (id1, State::Up));
    assert_eq!(t.rx_accepted(), 2);
    // Add / remove / reuse.
    assert_eq!(
        t.add(0, p1, cfg(33, timers(10_000, 10_000, 3))),
        Err(TableError::DuplicatePeer)
    );
    let p3 = PeerKey {
        addr: addr(9, 3),
        iface: 1,
    };
    assert_eq!(
        t.add(0, p3, cfg(11, timers(10_000, 10_000, 3))),
        Err(TableError::DuplicateDiscr)
    );
    assert_eq!(
        t.add(0, p3, cfg(0, timers(10_000, 10_000, 3))),
        Err(TableError::Config(ConfigError::ZeroLocalDiscr))
    );
    assert!(t.remove(id1).is_some());
    assert!(t.remove(id1).is_none());
    from_remote(State::Init, 11).emit(&mut buf).unwrap();
    assert_eq!(t.handle_rx(0, &meta(p1), &buf), Err(RxError::UnknownDiscr));
    let id3 = t.add(0, p3, cfg(11, timers(10_000, 10_000, 3))).unwrap();
    assert_eq!(id3, id1, "slot reused");
    t.add(
        0,
        PeerKey {
            addr: addr(9, 4),
            iface: 1,
        },
        cfg(44, timers(10_000, 10_000, 3)),
    )
    .unwrap();
    t.add(
        0,
        PeerKey {
            addr: addr(9, 5),
            iface: 1,
        },
        cfg(55, timers(10_000, 10_000, 3)),
    )
    .unwrap();
    assert_eq!(t.len(), 4);
    assert_eq!(
        t.add(
            0,
            PeerKey {
                addr: addr(9, 6),
                iface: 1
            },
            cfg(66, timers(10_000, 10_000, 3))
        ),
        Err(TableError::Full)
    );
    assert_eq!(
        t.set_timers(SessionId(9), timers(1, 1, 1)),
        Err(TableError::NoSuchSession)
    );
}

#[test]
fn table_transmits_carry_ports_and_peer() {
    let mut t = SessionTable::with_capacity(2);
    let p1 = PeerKey {
        addr: addr(9, 1),
        iface: 3,
    };
    let p2 = PeerKey {
        addr: addr(9, 2),
        iface: 3,
    };
    t.add(0, p1, cfg(70_000, timers(10_000, 10_000, 3)))
        .unwrap();
    let multi = SessionConfig {
        hop: Hop::Multi { min_ttl: 254 },
        ..cfg(2, timers(10_000, 10_000, 3))
    };
    t.add(0, p2, multi).unwrap();
    let mut seen = Vec::new();
    t.poll_timers(0, &mut |o| {
        if let Output::Transmit(tx) = o {
            assert!((49152..=65535).contains(&tx.src_port));
            let r = parse(tx.payload);
            seen.push((tx.peer, tx.hop.dest_port(), r.my_discr, r.state));
        }
    });
    seen.sort_by_key(|s| s.2);
    assert_eq!(
        seen,
        [(p2, 4784, 2, State::Down), (p1, 3784, 70_000, State::Down)]
    );
    // The same source port every time for a session (RFC 5881 §4).
    let port = |t: &mut SessionTable, now| {
        let mut ports = Vec::new();
        t.poll_timers(now, &mut |o| {
            if let Output::Transmit(tx) = o {
                ports.push(tx.src_port)
            }
        });
        ports.sort();
        ports
    };
    let a = port(&mut t, 2 * S);
    let b = port(&mut t, 4 * S);
    assert_eq!(a.len(), 2);
    assert_eq!(a, b);
}

#[test]
fn malformed_packets_are_dropped_and_counted_by_reason() {
    let mut t = SessionTable::with_capacity(4);
    let peer = PeerKey {
        addr: addr(9, 1),
        iface: 0,
    };
    let id = t.add(0, peer, cfg(1, timers(10_000, 10_000, 3))).unwrap();
    let admin_peer = PeerKey {
        addr: addr(9, 2),
        iface: 0,
    };
    let admin = SessionConfig {
        admin_down: true,
        ..cfg(2, timers(10_000, 10_000, 3))
    };
    t.add(0, admin_peer, admin).unwrap();
    let good = from_remote(State::Down, 0);
    let bytes = |r: Repr<'_>| {
        let mut b = [0u8; 64];
        let n = r.emit(&mut b).unwrap();
        b[..n].to_vec()
    };
    let patched = |f: fn(&mut Vec<u8>)| {
        let mut b = bytes(good);
        f(&mut b);
        b
    };
    let single = RxMeta {
        peer,
        ttl: 255,
        multihop: false,
    };
    let cases: Vec<(&str, Vec<u8>, RxMeta, RxError)> = vec![
        ("truncated", vec![0x20, 0x40, 3], single, RxError::Truncated),
        (
            "version 0",
            bytes(Repr { version: 0, ..good }),
            single,
            RxError::BadVersion,
        ),
        (
            "length 20",
            patched(|b| b[field::LENGTH] = 20),
            single,
            RxError::BadLength,
        ),
        (
            "length 30 > 24",
            patched(|b| b[field::LENGTH] = 30),
            single,
            RxError::LengthExceedsPayload,
        ),
        (
            "auth len 40",
            {
                let mut b = bytes(Repr {
                    auth: Some(Auth {
                        auth_type: AuthType::KeyedMd5,
                        data: &[0; 22],
                    }),
                    ..good
                });
                b[field::AUTH_LEN] = 40;
                b
            },
            single,
            RxError::BadAuthLength,
        ),
        (
            "multiplier 0",
            bytes(Repr {
                detect_mult: 0,
                ..good
            }),
            single,
            RxError::ZeroDetectMult,
        ),
        (
            "M bit",
            bytes(Repr {
                multipoint: true,
                ..good
            }),
            single,
            RxError::Multipoint,
        ),
        (
            "my discr 0",
            bytes(Repr {
                my_discr: 0,
                ..good
            }),
            single,
            RxError::ZeroMyDiscr,
        ),
        (
            "your discr 0 in Up",
            bytes(Repr {
                state: State::Up,
                ..good
            }),
            single,
            RxError::ZeroYourDiscr,
        ),
        (
            "your discr 0 in Init",
            bytes(Repr {
                state: State::Init,
                ..good
            }),
            single,
            RxError::ZeroYourDiscr,
        ),
        (
            "P and F",
            bytes(Repr {
                poll: true,
                final_: true,
                ..good
            }),
            single,
            RxError::PollAndFinal,
        ),
        (
            "unknown your discr",
            bytes(Repr {
                your_discr: 4242,
                state: State::Up,
                ..good
            }),
            single,
            RxError::UnknownDiscr,
        ),
        (
            "no session for peer",
            bytes(good),
            RxMeta {
                peer: PeerKey {
                    addr: addr(9, 200),
                    iface: 0,
                },
                ..single
            },
            RxError::NoSession,
        ),
        (
            "same address, other interface",
            bytes(good),
            RxMeta {
                peer: PeerKey {
                    addr: addr(9, 1),
                    iface: 5,
                },
                ..single
            },
            RxError::NoSession,
        ),
        (
            "multihop port for single hop",
            bytes(good),
            RxMeta {
                multihop: true,
                ..single
            },
            RxError::WrongHop,
        ),
        (
            "right your discr from another address",
            bytes(Repr {
                your_discr: 1,
                state: State::Up,
                ..good
            }),
            RxMeta {
                peer: PeerKey {
                    addr: addr(9, 66),
                    iface: 0,
                },
                ..single
            },
            RxError::WrongSource,
        ),
        (
            "right your discr from the peer through another port",
            bytes(Repr {
                your_discr: 1,
                state: State::Up,
                ..good
            }),
            RxMeta {
                peer: PeerKey {
                    addr: addr(9, 1),
                    iface: 3,
                },
                ..single
            },
            RxError::WrongSource,
        ),
        (
            "TTL 254 on single hop",
            bytes(good),
            RxMeta { ttl: 254, ..single },
            RxError::BadTtl,
        ),
        (
            "TTL 64 on single hop",
            bytes(good),
            RxMeta { ttl: 64, ..single },
            RxError::BadTtl,
        ),
        (
            "A bit without auth in use",
            bytes(Repr {
                auth: Some(Auth {
                    auth_type: AuthType::SimplePassword,
                    data: b"\x01x",
                }),
                ..good
            }),
            single,
            RxError::AuthMismatch,
        ),
        (
            "local AdminDown",
            bytes(good),
            RxMeta {
                peer: admin_peer,
                ..single
            },
            RxError::AdminDown,
        ),
    ];
    for (what, b, meta, want) in &cases {
        assert_eq!(t.handle_rx(MS, meta, b), Err(*want), "{what}");
    }
    let d = t.drops();
    assert_eq!(d.total(), cases.len() as u64);
    for r in RxError::ALL {
        let want = cases.iter().filter(|c| c.3 == r).count() as u64;
        assert_eq!(d.get(r), want, "{r}");
    }
    // Nothing reached the session: still Down, no remote learned, no detection.
    let s = t.get(id).unwrap();
    assert_eq!((s.state(), s.remote_discr()), (State::Down, 0));
    assert_eq!(s.detect_deadline(), NEVER);
    assert_eq!(t.rx_accepted(), 0);
    // And the good packet is accepted.
    assert!(t.handle_rx(MS, &single, &bytes(good)).is_ok());
}

#[test]
fn admin_down_all_drains_every_session_at_once() {
    let mut p = TablePair::new(20, timers(10_000, 10_000, 3));
    p.run_until(4 * S);
    let now = p.now;
    let mut evs = Vec::new();
    p.a.admin_down_all(now, &mut |ev| evs.push(ev));
    assert_eq!(evs.len(), 20);
    assert!(evs
        .iter()
        .all(|e| e.new == State::AdminDown && e.diag == Diag::AdministrativelyDown));
    // Every AdminDown leaves within one (10 ms) transmit interval: all 20
    // peers are Down (Neighbor Signaled Session Down) 10 ms + 30 µs later.
    let before = p.events_b.len();
    p.run_until(now + 10 * MS + 30 * US);
    let b_downs = &p.events_b[before..];
    assert_eq!(b_downs.len(), 20);
    assert!(b_downs
        .iter()
        .all(|e| e.diag == Diag::NeighborSignaledDown && e.remote_state == State::AdminDown));
    assert!(p.rx_errors.iter().all(|e| *e == RxError::AdminDown));
    // A second drain changes nothing.
    p.a.admin_down_all(now, &mut |_| panic!("already AdminDown"));
}

#[test]
fn table_set_timers_and_force_down_reschedule() {
    let mut p = TablePair::new(2, timers(10_000, 10_000, 3));
    p.run_until(4 * S);
    p.a.set_timers(SessionId(0), timers(20_000, 10_000, 3))
        .unwrap();
    assert!(p.a.get(SessionId(0)).unwrap().poll_active());
    p.run_until(p.now + 200 * MS);
    let s = p.a.get(SessionId(0)).unwrap();
    assert!(!s.poll_active());
    assert_eq!(s.tx_interval_ns(), 20 * MS);
    let ev = p.a.force_down(p.now, SessionId(1), Diag::PathDown).unwrap();
    assert_eq!((ev.new, ev.diag), (State::Down, Diag::PathDown));
    p.a.set_control_plane_independent(SessionId(1), false);
    assert!(
        !p.a.get(SessionId(1))
            .unwrap()
            .config()
            .control_plane_independent
    );
    assert_eq!(p.a.peer(SessionId(1)).unwrap().addr, addr(1, 1));
}

// ---- vectors from independent implementations ------------------------------------------
//
// Captured on a veth between FRR 8.4.4 bfdd (10.0.0.1, discriminator
// 0x2d2de156, UDP source port 49152) and BIRD 2.0.12 (10.0.0.2,
// 0xff9f9059, source port 36710), both at 50 ms × 3, TTL 255 both ways
// (tcpdump on udp port 3784, 2026-11-24).

/// BIRD's first packet: Down, Your Discriminator still 0, 1 s slow rate.
#[rustfmt::skip]
const BIRD_DOWN_FIRST: [u8; 24] = [
    0x20,                   // Vers 1 | Diag 0
    0x40,                   // Sta Down | no flags (BIRD sets no C bit)
    0x03,                   // Detect Mult 3
    0x18,                   // Length 24
    0xff, 0x9f, 0x90, 0x59, // My Discriminator (BIRD)
    0x00, 0x00, 0x00, 0x00, // Your Discriminator 0
    0x00, 0x0f, 0x42, 0x40, // Desired Min TX 1 s (not Up)
    0x00, 0x00, 0xc3, 0x50, // Required Min RX 50 ms
    0x00, 0x00, 0x00, 0x00, // Required Min Echo RX 0
];

/// FRR answers BIRD's Down with Init; FRR slows its Required Min RX to 1 s
/// too while not Up, and advertises Echo RX 50 ms.
#[rustfmt::skip]
const FRR_INIT: [u8; 24] = [
    0x20,                   // Vers 1 | Diag 0
    0x80,                   // Sta Init | no flags
    0x03, 0x18,             // Detect Mult 3, Length 24
    0x2d, 0x2d, 0xe1, 0x56, // My Discriminator (FRR)
    0xff, 0x9f, 0x90, 0x59, // Your Discriminator (BIRD)
    0x00, 0x0f, 0x42, 0x40, // Desired Min TX 1 s
    0x00, 0x0f, 0x42, 0x40, // Required Min RX 1 s
    0x00, 0x00, 0xc3, 0x50, // Required Min Echo RX 50 ms
];

/// BIRD, just Up: a Poll announcing the fast timers.
#[rustfmt::skip]
const BIRD_UP_POLL: [u8; 24] = [
    0x20,                   // Vers 1 | Diag 0
    0xe0,                   // Sta Up | P
    0x03, 0x18,
    0xff, 0x9f, 0x90, 0x59, // My Discriminator (BIRD)
    0x2d, 0x2d, 0xe1, 0x56, // Your Discriminator (FRR)
    0x00, 0x00, 0xc3, 0x50, // Desired Min TX 50 ms
    0x00, 0x00, 0xc3, 0x50, // Required Min RX 50 ms
    0x00, 0x00, 0x00, 0x00,
];

/// FRR, Up: its own Poll for the fast timers.
#[rustfmt::skip]
const FRR_UP_POLL: [u8; 24] = [
    0x20, 0xe0,             // Vers 1 | Diag 0; Sta Up | P
    0x03, 0x18,
    0x2d, 0x2d, 0xe1, 0x56,
    0xff, 0x9f, 0x90, 0x59,
    0x00, 0x00, 0xc3, 0x50, // Desired Min TX 50 ms
    0x00, 0x00, 0xc3, 0x50, // Required Min RX 50 ms
    0x00, 0x00, 0xc3, 0x50, // Required Min Echo RX 50 ms
];

/// FRR's Final to BIRD's Poll.
#[rustfmt::skip]
const FRR_UP_FINAL: [u8; 24] = [
    0x20, 0xd0,             // Sta Up | F
    0x03, 0x18,
    0x2d, 0x2d, 0xe1, 0x56,
    0xff, 0x9f, 0x90, 0x59,
    0x00, 0x00, 0xc3, 0x50,
    0x00, 0x00, 0xc3, 0x50,
    0x00, 0x00, 0xc3, 0x50,
];

/// BIRD's Final to FRR's Poll, then its steady-state packet (no flags).
#[rustfmt::skip]
const BIRD_UP_FINAL: [u8; 24] = [
    0x20, 0xd0,             // Sta Up | F
    0x03, 0x18,
    0xff, 0x9f, 0x90, 0x59,
    0x2d, 0x2d, 0xe1, 0x56,
    0x00, 0x00, 0xc3, 0x50,
    0x00, 0x00, 0xc3, 0x50,
    0x00, 0x00, 0x00, 0x00,
];
#[rustfmt::skip]
const BIRD_UP: [u8; 24] = [
    0x20, 0xc0,             // Sta Up
    0x03, 0x18,
    0xff, 0x9f, 0x90, 0x59,
    0x2d, 0x2d, 0xe1, 0x56,
    0x00, 0x00, 0xc3, 0x50,
    0x00, 0x00, 0xc3, 0x50,
    0x00, 0x00, 0x00, 0x00,
];

/// FRR after `receive-interval 100`: a Poll with Required Min RX 100 ms.
#[rustfmt::skip]
const FRR_POLL_RX_100: [u8; 24] = [
    0x20, 0xe0,             // Sta Up | P
    0x03, 0x18,
    0x2d, 0x2d, 0xe1, 0x56,
    0xff, 0x9f, 0x90, 0x59,
    0x00, 0x00, 0xc3, 0x50, // Desired Min TX 50 ms
    0x00, 0x01, 0x86, 0xa0, // Required Min RX 100 ms
    0x00, 0x00, 0xc3, 0x50,
];

/// FRR after `shutdown`: AdminDown -- with Diag 0, not 7.
#[rustfmt::skip]
const FRR_ADMIN_DOWN: [u8; 24] = [
    0x20,                   // Vers 1 | Diag 0 (FRR 8.4 sends no diag here)
    0x00,                   // Sta AdminDown
    0x03, 0x18,
    0x2d, 0x2d, 0xe1, 0x56,
    0xff, 0x9f, 0x90, 0x59,
    0x00, 0x00, 0xc3, 0x50,
    0x00, 0x01, 0x86, 0xa0,
    0x00, 0x00, 0xc3, 0x50,
];

/// BIRD's answer to that: Down, Diag 3 (Neighbor Signaled Session Down),
/// with a Poll for its 1 s slow rate (BIRD polls outside Up too).
#[rustfmt::skip]
const BIRD_DOWN_NSD_POLL: [u8; 24] = [
    0x23,                   // Vers 1 | Diag 3
    0x60,                   // Sta Down | P
    0x03, 0x18,
    0xff, 0x9f, 0x90, 0x59,
    0x2d, 0x2d, 0xe1, 0x56,
    0x00, 0x0f, 0x42, 0x40, // Desired Min TX 1 s
    0x00, 0x00, 0xc3, 0x50,
    0x00, 0x00, 0x00, 0x00,
];

/// FRR after BIRD went silent (`disable`): Down, Diag 1, remote forgotten.
#[rustfmt::skip]
const FRR_DOWN_EXPIRED: [u8; 24] = [
    0x21,                   // Vers 1 | Diag 1 (Control Detection Time Expired)
    0x40,                   // Sta Down
    0x03, 0x18,
    0x2d, 0x2d, 0xe1, 0x56,
    0x00, 0x00, 0x00, 0x00, // Your Discriminator 0
    0x00, 0x0f, 0x42, 0x40,
    0x00, 0x0f, 0x42, 0x40,
    0x00, 0x00, 0xc3, 0x50,
];

#[test]
fn captured_frr_and_bird_packets_parse_and_re_emit_identically() {
    // (what, bytes, state, diag, P, F)
    type Row = (&'static str, &'static [u8; 24], State, Diag, bool, bool);
    let all: [Row; 11] = [
        (
            "bird down",
            &BIRD_DOWN_FIRST,
            State::Down,
            Diag::None,
            false,
            false,
        ),
        ("frr init", &FRR_INIT, State::Init, Diag::None, false, false),
        (
            "bird up poll",
            &BIRD_UP_POLL,
            State::Up,
            Diag::None,
            true,
            false,
        ),
        (
            "frr up poll",
            &FRR_UP_POLL,
            State::Up,
            Diag::None,
            true,
            false,
        ),
        (
            "frr up final",
            &FRR_UP_FINAL,
            State::Up,
            Diag::None,
            false,
            true,
        ),
        (
            "bird up final",
            &BIRD_UP_FINAL,
            State::Up,
            Diag::None,
            false,
            true,
        ),
        ("bird up", &BIRD_UP, State::Up, Diag::None, false, false),
        (
            "frr poll rx 100",
            &FRR_POLL_RX_100,
            State::Up,
            Diag::None,
            true,
            false,
        ),
        (
            "frr admin down",
            &FRR_ADMIN_DOWN,
            State::AdminDown,
            Diag::None,
            false,
            false,
        ),
        (
            "bird down nsd",
            &BIRD_DOWN_NSD_POLL,
            State::Down,
            Diag::NeighborSignaledDown,
            true,
            false,
        ),
        (
            "frr down expired",
            &FRR_DOWN_EXPIRED,
            State::Down,
            Diag::ControlDetectionTimeExpired,
            false,
            false,
        ),
    ];
    for (what, bytes, state, diag, poll, final_) in all {
        let r = parse(bytes);
        assert_eq!(
            (r.state, r.diag, r.poll, r.final_),
            (state, diag, poll, final_),
            "{what}"
        );
        assert_eq!(r.detect_mult, 3, "{what}");
        assert!(
            !r.control_plane_independent && !r.demand && r.auth.is_none(),
            "{what}"
        );
        let mut out = [0u8; HEADER_LEN];
        r.emit(&mut out).unwrap();
        assert_eq!(&out, bytes, "{what}: re-emitted bytes differ");
    }
    assert_eq!(parse(&FRR_POLL_RX_100).required_min_rx, 100_000);
    assert_eq!(parse(&FRR_INIT).my_discr, 0x2d2d_e156);
    assert_eq!(parse(&BIRD_DOWN_FIRST).my_discr, 0xff9f_9059);
}

/// Our session takes BIRD's place opposite FRR's recorded packets and must
/// send what BIRD sent, byte for byte, where the RFC leaves no choice.
#[test]
fn session_replays_the_bird_side_against_recorded_frr() {
    let c = SessionConfig {
        control_plane_independent: false, // BIRD sets no C bit
        ..SessionConfig::single_hop(0xff9f_9059, Timers::symmetric_us(50_000, 3))
    };
    let mut s = Session::new(SessionId(0), c, 0).unwrap();
    assert_eq!(sent(&mut s, 0).unwrap(), BIRD_DOWN_FIRST);

    // FRR's Init (848 ms later): Down → Up; the fast rate applies at once and
    // a Poll announces it.
    let t = 848 * MS;
    let ev = s.on_packet(t, &parse(&FRR_INIT), 255).unwrap().unwrap();
    assert_eq!((ev.old, ev.new), (State::Down, State::Up));
    assert_eq!(sent(&mut s, t).unwrap(), BIRD_UP_POLL);

    // FRR's own Poll: we owe a Final, exactly BIRD's.
    s.on_packet(t + MS, &parse(&FRR_UP_POLL), 255).unwrap();
    assert_eq!(sent(&mut s, t + MS).unwrap(), BIRD_UP_FINAL);
    // FRR's Final ends our Poll; then the steady-state packet.
    s.on_packet(t + MS, &parse(&FRR_UP_FINAL), 255).unwrap();
    assert!(!s.poll_active());
    let next = s.next_tx_deadline();
    assert_eq!(sent(&mut s, next).unwrap(), BIRD_UP);
    assert_eq!(s.tx_interval_ns(), 50 * MS);
    assert_eq!(s.detection_time_ns(), 150 * MS);

    // FRR asks for 100 ms: a Final at once, and we slow down to 100 ms.
    let t = 5 * S;
    s.on_packet(t, &parse(&FRR_POLL_RX_100), 255).unwrap();
    assert_eq!(sent(&mut s, t).unwrap(), BIRD_UP_FINAL);
    assert_eq!(s.tx_interval_ns(), 100 * MS);

    // FRR's AdminDown: Down with Neighbor Signaled Session Down. BIRD also
    // set P here (it polls for the slow rate even when not Up); we do not,
    // so our packet is BIRD's without the P bit.
    let t = 7 * S;
    let ev = s
        .on_packet(t, &parse(&FRR_ADMIN_DOWN), 255)
        .unwrap()
        .unwrap();
    assert_eq!(
        (ev.old, ev.new, ev.diag),
        (State::Up, State::Down, Diag::NeighborSignaledDown)
    );
    assert_eq!(ev.remote_state, State::AdminDown);
    let next = s.next_tx_deadline();
    let mut want = BIRD_DOWN_NSD_POLL;
    want[1] = 0x40; // Sta Down, no P
    assert_eq!(sent(&mut s, next).unwrap(), want);

    // A packet BIRD would have sent to the multihop port or with TTL 64 is
    // dropped; FRR's TTL was 255 throughout the capture.
    assert_eq!(
        s.on_packet(t, &parse(&FRR_DOWN_EXPIRED), 64),
        Err(RxError::BadTtl)
    );
}

// ---- the worker's loop, replayed --------------------------------------------

/// BIRD's discriminator in the lab recording below; ours was 65538 (worker
/// 0, peer 1).
const LAB_BIRD_DISCR: u32 = 2_622_982_581;
const LAB_OUR_DISCR: u32 = (1 << 16) | 2;

/// Every packet pollux's worker accepted from BIRD in a lab run
/// (tests/integration/test_bfd.py: 50 ms × 3, `pollMode: adaptive`, two CPU
/// hogs then still in pytest's session), from start-up to the flap: µs on
/// the worker's clock, State, P, F, Desired Min TX (ms), Your Discriminator.
/// Required Min RX was 50 ms and Detect Mult 3 throughout. The worker went
/// Down (diag 1) at [`LAB_DOWN_AT_US`]. The hogs started at about 1.95 s.
#[rustfmt::skip]
const LAB_BIRD_RX: [(u64, State, bool, bool, u32, u32); 29] = [
    (114_603, State::Down, false, false, 1000, 0),
    (952_442, State::Down, false, false, 1000, 0),
    (967_935, State::Up, true, false, 50, LAB_OUR_DISCR),
    (1_006_126, State::Up, false, false, 50, LAB_OUR_DISCR),
    (1_007_979, State::Up, false, true, 50, LAB_OUR_DISCR),
    (1_049_032, State::Up, false, false, 50, LAB_OUR_DISCR),
    (1_093_066, State::Up, false, false, 50, LAB_OUR_DISCR),
    (1_131_127, State::Up, false, false, 50, LAB_OUR_DISCR),
    (1_174_437, State::Up, false, false, 50, LAB_OUR_DISCR),
    (1_214_801, State::Up, false, false, 50, LAB_OUR_DISCR),
    (1_256_517, State::Up, false, false, 50, LAB_OUR_DISCR),
    (1_294_438, State::Up, false, false, 50, LAB_OUR_DISCR),
    (1_334_805, State::Up, false, false, 50, LAB_OUR_DISCR),
    (1_375_155, State::Up, false, false, 50, LAB_OUR_DISCR),
    (1_418_337, State::Up, false, false, 50, LAB_OUR_DISCR),
    (1_453_244, State::Up, false, false, 50, LAB_OUR_DISCR),
    (1_496_340, State::Up, false, false, 50, LAB_OUR_DISCR),
    (1_539_327, State::Up, false, false, 50, LAB_OUR_DISCR),
    (1_581_855, State::Up, false, false, 50, LAB_OUR_DISCR),
    (1_619_774, State::Up, false, false, 50, LAB_OUR_DISCR),
    (1_658_912, State::Up, false, false, 50, LAB_OUR_DISCR),
    (1_703_533, State::Up, false, false, 50, LAB_OUR_DISCR),
    (1_741_578, State::Up, false, false, 50, LAB_OUR_DISCR),
    (1_783_989, State::Up, false, false, 50, LAB_OUR_DISCR),
    (1_827_118, State::Up, false, false, 50, LAB_OUR_DISCR),
    (1_868_070, State::Up, false, false, 50, LAB_OUR_DISCR),
    (1_908_939, State::Up, false, false, 50, LAB_OUR_DISCR),
    (1_954_004, State::Up, false, false, 50, LAB_OUR_DISCR),
    // 81.8 ms, then 167 ms of silence: BIRD's own capture on its interface
    // shows the same gaps. It was runnable but not scheduled (ftrace).
    (2_035_782, State::Up, false, false, 50, LAB_OUR_DISCR),
];
const LAB_DOWN_AT_US: u64 = 2_185_847;

fn bird_packet(state: State, poll: bool, final_: bool, tx_ms: u32, your: u32) -> [u8; HEADER_LEN] {
    let r = Repr {
        version: 1,
        diag: Diag::None,
        state,
        poll,
        final_,
        control_plane_independent: false,
        demand: false,
        multipoint: false,
        detect_mult: 3,
        my_discr: LAB_BIRD_DISCR,
        your_discr: your,
        desired_min_tx: tx_ms * 1000,
        required_min_rx: 50_000,
        required_min_echo_rx: 0,
        auth: None,
    };
    let mut b = [0u8; HEADER_LEN];
    assert_eq!(r.emit(&mut b), Ok(HEADER_LEN));
    b
}

/// The BFD part of one iteration of the worker's loop (`worker.rs`): the
/// burst's payloads through `handle_rx`, then `poll_timers` only if the
/// table's earliest deadline has come, all with the iteration's `now`.
struct WorkerLoop {
    table: SessionTable,
    peer: PeerKey,
    events: Vec<StateChange>,
    /// The iterations' `now`s, and when the last payload was accepted.
    iterations: Vec<u64>,
    last_rx: u64,
}

impl WorkerLoop {
    fn new(now: u64) -> WorkerLoop {
        let mut table = SessionTable::with_capacity(2);
        let peer = PeerKey {
            addr: IpAddr::V4(Ipv4Addr::new(10, 60, 0, 1)),
            iface: 1,
        };
        let c = SessionConfig::single_hop(LAB_OUR_DISCR, Timers::symmetric_us(50_000, 3));
        table.add(now, peer, c).unwrap();
        WorkerLoop {
            table,
            peer,
            events: Vec::new(),
            iterations: Vec::new(),
            last_rx: 0,
        }
    }

    fn iteration(&mut self, now: u64, burst: &[[u8; HEADER_LEN]]) {
        let WorkerLoop {
            table,
            peer,
            events,
            ..
        } = self;
        let meta = RxMeta {
            peer: *peer,
            ttl: 255,
            multihop: false,
        };
        for payload in burst {
            events.extend(table.handle_rx(now, &meta, payload).unwrap());
            self.last_rx = now;
        }
        if table.next_deadline() <= now {
            table.poll_timers(now, &mut |o| {
                if let Output::StateChange(ev) = o {
                    events.push(ev);
                }
            });
        }
        // The adaptive sleep is capped by the table's earliest deadline: it
        // may be early (lazy heap keys), never later than the session's.
        let (_, s) = table.iter().next().unwrap();
        assert!(table.next_deadline() <= s.next_deadline());
        assert!(s.next_deadline() > now, "a due deadline left behind");
        self.iterations.push(now);
    }

    fn session(&self) -> &Session {
        self.table.iter().next().unwrap().1
    }
}

/// The lab flap replayed through the loop as adaptive mode runs it (an
/// iteration every 100 to 200 µs; the recorded receptions are iterations):
/// the session comes up through BIRD's Poll, stays Up across every gap the
/// peer left, up to 81.8 ms, and goes Down at the first iteration after
/// BIRD's last packet + 150 ms, as it did in the lab. The flap is the
/// detection of a silent peer, not a timing slip of the session or table.
#[test]
fn lab_flap_replayed_is_the_detection_of_a_silent_peer() {
    let mut rng = super::session::Xorshift::new(7);
    let mut w = WorkerLoop::new(0);
    let mut now = 0;
    let mut rx = LAB_BIRD_RX.iter().peekable();
    while now < 2_300 * MS {
        let mut next = now + 100 * US + u64::from(rng.next_u32() % 101) * US;
        if let Some(&&(t, ..)) = rx.peek() {
            next = next.min(t * US);
        }
        now = next;
        let mut burst = Vec::new();
        while let Some(&&(t, state, p, f, tx_ms, your)) = rx.peek() {
            if t * US > now {
                break;
            }
            burst.push(bird_packet(state, p, f, tx_ms, your));
            rx.next();
        }
        w.iteration(now, &burst);
        if w.session().state() == State::Up {
            // From BIRD's Poll on: 3 × 50 ms.
            assert_eq!(w.session().detection_time_ns(), 150 * MS);
        }
    }
    let deadline = 2_035_782 * US + 150 * MS;
    let first_after = *w.iterations.iter().find(|&&t| t >= deadline).unwrap();
    let got: Vec<_> = w
        .events
        .iter()
        .map(|e| (e.at, e.old, e.new, e.diag))
        .collect();
    assert_eq!(
        got,
        [
            (114_603 * US, State::Down, State::Init, Diag::None),
            (967_935 * US, State::Init, State::Up, Diag::None),
            (
                first_after,
                State::Up,
                State::Down,
                Diag::ControlDetectionTimeExpired
            ),
        ]
    );
    // The lab's worker went Down at its own first iteration after the same
    // deadline (65 µs after it).
    assert!((deadline..deadline + 200 * US).contains(&(LAB_DOWN_AT_US * US)));
}

mod worker_loop_props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever the loop's pace (iterations 10 µs to 8 ms apart, as
        /// adaptive sleeping and a loaded CPU give) and however the peer's
        /// packets fall (gaps up to 140 ms, so < 150 ms even after waiting
        /// for an iteration), the session stays Up until the peer goes
        /// silent, then goes Down at the first iteration at or after its
        /// last reception + 150 ms, unless the next packet is handled first
        /// (an iteration takes its burst before its timers). Sessions are
        /// added on the loop's clock 3 ms before its first iteration, as
        /// `build_worker` does.
        #[test]
        fn adaptive_loop_pace_detects_exactly_the_silence(
            seed in any::<u64>(),
            gaps in prop::collection::vec(prop_oneof![37_500u64..=50_000, 50_000u64..=140_000], 1..80),
            silence in 140_000u64..=400_000,
        ) {
            let mut rng = super::super::session::Xorshift::new(seed);
            let mut w = WorkerLoop::new(0);
            // Arrivals (µs): BIRD's start-up sequence, the gaps, and one
            // packet after the silence.
            let up = bird_packet(State::Up, false, false, 50, LAB_OUR_DISCR);
            let mut arrivals = vec![
                (20_000, bird_packet(State::Down, false, false, 1000, 0)),
                (30_000, bird_packet(State::Up, true, false, 50, LAB_OUR_DISCR)),
                (31_000, bird_packet(State::Up, false, true, 50, LAB_OUR_DISCR)),
            ];
            let mut t = 31_000;
            for g in &gaps {
                t += g;
                arrivals.push((t, up));
            }
            arrivals.push((t + silence, up));
            // The iteration that handled each arrival.
            let mut handled_at = Vec::new();
            let mut now = 3 * MS;
            while handled_at.len() < arrivals.len() || now < handled_at[arrivals.len() - 1] + 10 * MS {
                let mut burst = Vec::new();
                while handled_at.len() < arrivals.len() && arrivals[handled_at.len()].0 * US <= now {
                    burst.push(arrivals[handled_at.len()].1);
                    handled_at.push(now);
                }
                w.iteration(now, &burst);
                now += 10 * US + u64::from(rng.next_u32()) % (8 * MS - 10 * US);
            }
            let n = arrivals.len();
            let (last, next) = (handled_at[n - 2], handled_at[n - 1]);
            let want = match w.iterations.iter().find(|&&t| t >= last + 150 * MS) {
                Some(&t) if t < next => vec![(t, Diag::ControlDetectionTimeExpired)],
                _ => vec![],
            };
            let downs: Vec<_> = w.events.iter().filter(|e| e.old == State::Up).map(|e| (e.at, e.diag)).collect();
            prop_assert_eq!(downs, want);
            let ups: Vec<_> = w.events.iter().filter(|e| e.new == State::Up).map(|e| e.at).collect();
            prop_assert_eq!(ups, vec![handled_at[1]]);
        }
    }
}

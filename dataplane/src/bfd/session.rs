//! One BFD session in asynchronous mode (RFC 5880), sans IO.
//!
//! The session owns protocol state and nothing else. Time is `now: u64`,
//! monotonic nanoseconds supplied by the caller (the worker converts its TSC
//! reading once per burst); intervals are microseconds, as on the wire.
//! Inputs are method calls; outputs are return values and bytes written into
//! a caller buffer:
//!
//! | input                                   | output                              |
//! |-----------------------------------------|-------------------------------------|
//! | [`Session::on_packet`] (parsed Repr, TTL)| `Option<StateChange>` or a drop reason |
//! | [`Session::check_timeout`]              | `Option<StateChange>` (Down, diag 1)|
//! | [`Session::poll_transmit`]              | a control packet in the caller buffer|
//! | [`Session::set_admin_down`], [`Session::set_timers`], [`Session::force_down`] | `Option<StateChange>` |
//! | [`Session::next_deadline`]              | when to call again                  |
//!
//! Nothing here allocates, locks, or reads a clock.
//!
//! ## Timers
//!
//! * Transmit interval (§6.8.7): the larger of bfd.DesiredMinTxInterval
//!   (ours) and bfd.RemoteMinRxInterval, reduced per packet by a random 0–25 %
//!   (10–25 % when our Detect Mult is 1), from a xorshift generator seeded by
//!   the caller.
//! * Detection time (§6.8.4): the remote's Detect Mult × max(our
//!   bfd.RequiredMinRxInterval, the remote's last Desired Min TX), counted
//!   from the last valid packet received. Jitter only affects transmission,
//!   so expiry is exact: `last_rx + detection_time`.
//! * While not Up, bfd.DesiredMinTxInterval is at least 1 s (§6.8.3).
//! * A change of bfd.DesiredMinTxInterval or bfd.RequiredMinRxInterval while
//!   Up starts a Poll Sequence (P set on every packet until a packet with F
//!   comes back). The two changes the RFC holds back are held back until the
//!   Final: a larger transmit interval, and a smaller receive interval in the
//!   detection time. The two others (faster transmission, a longer detection
//!   time) are safe at once and must be: the remote computes its detection
//!   time from the values in our P packets as soon as it sees them.
//!
//! ## What is not here
//!
//! Demand mode is never requested (D is never set; a remote in Demand mode is
//! honoured by ceasing periodic transmission, §6.6). The Echo function is not
//! implemented (Required Min Echo RX is sent as 0). Authentication (§6.7) is
//! parsed but not implemented: packets with the A bit are dropped, as the RFC
//! requires when no authentication is in use.

use super::events::{transition, Action, SessionId, StateChange};
use super::packet::{Diag, Repr, RxError, State, HEADER_LEN, VERSION};

/// ns per µs: wire intervals are µs, `now` is ns.
pub const NS_PER_US: u64 = 1_000;
/// §6.8.3: "When bfd.SessionState is not Up, the system MUST set
/// bfd.DesiredMinTxInterval to a value of not less than one second
/// (1,000,000 microseconds)."
pub const SLOW_TX_US: u32 = 1_000_000;
/// RFC 5881 §4: "BFD Control packets MUST be transmitted in UDP packets with
/// destination port 3784".
pub const PORT_SINGLE_HOP: u16 = 3784;
/// RFC 5883 §5: "BFD Control packets MUST be transmitted in UDP packets with
/// destination port 4784".
pub const PORT_MULTIHOP: u16 = 4784;
/// RFC 5881 §4: "The source port MUST be in the range 49152 through 65535.
/// The same UDP source port number MUST be used for all BFD Control packets
/// associated with a particular session." The caller picks it, e.g. with
/// [`source_port_for`].
pub const SOURCE_PORTS: core::ops::RangeInclusive<u16> = 49152..=65535;
/// RFC 5881 §5: "all BFD Control packets for the session MUST be sent with a
/// TTL or Hop Limit value of 255." Used for multihop too.
pub const TX_TTL: u8 = 255;
/// A deadline that never comes.
pub const NEVER: u64 = u64::MAX;

/// A stable source port in [`SOURCE_PORTS`] for a local discriminator.
pub const fn source_port_for(local_discr: u32) -> u16 {
    49152 + (local_discr % 16384) as u16
}

/// Single hop (RFC 5881) or multihop (RFC 5883): a session property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hop {
    /// Port 3784; received TTL must be 255.
    Single,
    /// Port 4784; received TTL must be at least `min_ttl` (RFC 5883 §5:
    /// "a receiver MAY ... discard ... TTL ... less than a configured
    /// value"; 0 or 1 accepts any).
    Multi { min_ttl: u8 },
}

impl Hop {
    /// UDP destination port for this kind of session.
    pub const fn dest_port(self) -> u16 {
        match self {
            Hop::Single => PORT_SINGLE_HOP,
            Hop::Multi { .. } => PORT_MULTIHOP,
        }
    }

    /// Whether a packet received with this TTL / Hop Limit is acceptable.
    #[inline]
    pub const fn ttl_ok(self, ttl: u8) -> bool {
        match self {
            // RFC 5881 §5: "All received BFD Control packets that are
            // demultiplexed to the session MUST be discarded if the received
            // TTL or Hop Limit is not equal to 255."
            Hop::Single => ttl == 255,
            Hop::Multi { min_ttl } => ttl >= min_ttl,
        }
    }

    /// Whether this is a multihop session.
    pub const fn is_multi(self) -> bool {
        matches!(self, Hop::Multi { .. })
    }
}

/// The three negotiated parameters, as configured (µs, µs, count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timers {
    /// bfd.DesiredMinTxInterval while Up. Non-zero.
    pub desired_min_tx_us: u32,
    /// bfd.RequiredMinRxInterval. Zero asks the remote not to send.
    pub required_min_rx_us: u32,
    /// bfd.DetectMult. Non-zero.
    pub detect_mult: u8,
}

impl Timers {
    /// Convenience: `ms` × `mult` both ways.
    pub const fn symmetric_us(interval_us: u32, detect_mult: u8) -> Timers {
        Timers {
            desired_min_tx_us: interval_us,
            required_min_rx_us: interval_us,
            detect_mult,
        }
    }
}

/// Everything needed to create a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionConfig {
    /// bfd.LocalDiscr: non-zero and unique among the sessions of a table;
    /// chosen by the caller.
    pub local_discr: u32,
    pub timers: Timers,
    pub hop: Hop,
    /// The C bit: set it when BFD runs independently of the control plane
    /// (true for pollux: it runs in the workers), so that a peer doing
    /// graceful restart can keep forwarding through a ctrl restart (RFC 5880
    /// §4.1, RFC 5882 §4.3). The caller decides.
    pub control_plane_independent: bool,
    /// §6.1 Passive role: "A system MUST NOT transmit BFD Control packets if
    /// bfd.RemoteDiscr is zero and the system is taking the Passive role."
    pub passive: bool,
    /// Start in AdminDown instead of Down.
    pub admin_down: bool,
    /// Seed for the jitter generator (mixed with the discriminator).
    pub jitter_seed: u64,
}

impl SessionConfig {
    /// An active single-hop session with the C bit set.
    pub const fn single_hop(local_discr: u32, timers: Timers) -> SessionConfig {
        SessionConfig {
            local_discr,
            timers,
            hop: Hop::Single,
            control_plane_independent: true,
            passive: false,
            admin_down: false,
            jitter_seed: 0,
        }
    }

    /// Reject values the RFC forbids.
    pub const fn validate(&self) -> Result<(), ConfigError> {
        if self.local_discr == 0 {
            // §6.8.1: bfd.LocalDiscr "MUST be nonzero".
            return Err(ConfigError::ZeroLocalDiscr);
        }
        self.timers.validate()
    }
}

impl Timers {
    /// Reject values the RFC forbids.
    pub const fn validate(&self) -> Result<(), ConfigError> {
        // §4.1 Desired Min TX Interval: "The value zero is reserved."
        if self.desired_min_tx_us == 0 {
            return Err(ConfigError::ZeroDesiredMinTx);
        }
        if self.detect_mult == 0 {
            return Err(ConfigError::ZeroDetectMult);
        }
        Ok(())
    }
}

/// A configuration the RFC does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    ZeroLocalDiscr,
    ZeroDesiredMinTx,
    ZeroDetectMult,
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            ConfigError::ZeroLocalDiscr => "local discriminator must be non-zero",
            ConfigError::ZeroDesiredMinTx => "desired min tx interval must be non-zero",
            ConfigError::ZeroDetectMult => "detect multiplier must be non-zero",
        })
    }
}

/// Per-session counters, for `show bfd sessions` and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SessionStats {
    /// Valid packets accepted by this session.
    pub rx_packets: u64,
    /// Packets written by [`Session::poll_transmit`].
    pub tx_packets: u64,
    /// Transitions into Up.
    pub up_transitions: u64,
    /// Transitions out of Up.
    pub down_transitions: u64,
    /// `now` of the last state change (0: never changed).
    pub last_change_at: u64,
}

/// A snapshot of one session for ctrl (`pollux show bfd sessions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionInfo {
    pub id: SessionId,
    pub state: State,
    pub remote_state: State,
    pub local_diag: Diag,
    pub remote_diag: Diag,
    pub local_discr: u32,
    pub remote_discr: u32,
    pub hop: Hop,
    /// Transmit interval in use (before jitter), ns; 0 when not sending.
    pub tx_interval_ns: u64,
    /// Detection time in use, ns; 0 before the first packet.
    pub detection_time_ns: u64,
    /// What we advertise (µs).
    pub desired_min_tx_us: u32,
    pub required_min_rx_us: u32,
    pub detect_mult: u8,
    /// What the remote advertised (µs; mult).
    pub remote_desired_min_tx_us: u32,
    pub remote_min_rx_us: u32,
    pub remote_detect_mult: u8,
    pub remote_control_plane_independent: bool,
    pub poll_active: bool,
    pub stats: SessionStats,
}

/// xorshift64*: enough randomness for jitter, no state beyond a `u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Xorshift(u64);

impl Xorshift {
    /// Seed (splitmix64-scrambled so that nearby seeds diverge; never 0).
    pub const fn new(seed: u64) -> Xorshift {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        Xorshift(if z == 0 { 0x2545_f491_4f6c_dd1d } else { z })
    }

    /// Next 32 random bits.
    #[inline]
    pub fn next_u32(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    }
}

/// One BFD session. See the module documentation for the model.
#[derive(Debug, Clone)]
pub struct Session {
    id: SessionId,
    cfg: SessionConfig,

    // §6.8.1 state variables.
    state: State,
    remote_state: State,
    remote_discr: u32,
    local_diag: Diag,
    remote_diag: Diag,
    remote_demand: bool,
    remote_cpi: bool,
    /// bfd.RemoteMinRxInterval: "This variable MUST be initialized to 1."
    remote_min_rx_us: u32,
    /// Desired Min TX of the last packet received (0: none yet).
    remote_desired_min_tx_us: u32,
    /// Detect Mult of the last packet received (0: none yet).
    remote_detect_mult: u8,

    /// bfd.DesiredMinTxInterval / bfd.RequiredMinRxInterval: what we send.
    adv_tx_us: u32,
    adv_rx_us: u32,
    /// The values our own timing uses; they lag `adv_*` during a Poll
    /// Sequence where §6.8.3 says so.
    use_tx_us: u32,
    use_rx_us: u32,
    /// A Poll Sequence is being transmitted.
    poll_active: bool,
    /// The parameters changed again during the Poll Sequence: the next Final
    /// may answer a P carrying older values, so poll once more.
    poll_again: bool,
    /// A Final is owed (`final_at` is when it became due).
    final_pending: bool,
    final_at: u64,

    /// Transmission schedule.
    tx_interval_ns: u64,
    next_tx: u64,
    last_tx: u64,
    sent_any: bool,

    /// Detection: armed by the first valid packet, disarmed by expiry and
    /// AdminDown.
    detect_armed: bool,
    last_rx: u64,
    detect_deadline: u64,

    rng: Xorshift,
    stats: SessionStats,
}

impl Session {
    /// A new session in Down (or AdminDown), due to send its first packet at
    /// `now` (unless passive).
    pub fn new(id: SessionId, cfg: SessionConfig, now: u64) -> Result<Session, ConfigError> {
        cfg.validate()?;
        let (state, diag) = if cfg.admin_down {
            (State::AdminDown, Diag::AdministrativelyDown)
        } else {
            (State::Down, Diag::None)
        };
        let adv_tx_us = cfg.timers.desired_min_tx_us.max(SLOW_TX_US);
        let adv_rx_us = cfg.timers.required_min_rx_us;
        let mut s = Session {
            id,
            cfg,
            state,
            remote_state: State::Down,
            remote_discr: 0,
            local_diag: diag,
            remote_diag: Diag::None,
            remote_demand: false,
            remote_cpi: false,
            remote_min_rx_us: 1,
            remote_desired_min_tx_us: 0,
            remote_detect_mult: 0,
            adv_tx_us,
            adv_rx_us,
            use_tx_us: adv_tx_us,
            use_rx_us: adv_rx_us,
            poll_active: false,
            poll_again: false,
            final_pending: false,
            final_at: NEVER,
            tx_interval_ns: 0,
            next_tx: now,
            last_tx: 0,
            sent_any: false,
            detect_armed: false,
            last_rx: 0,
            detect_deadline: NEVER,
            rng: Xorshift::new(cfg.jitter_seed ^ u64::from(cfg.local_discr).rotate_left(32)),
            stats: SessionStats::default(),
        };
        s.retime();
        Ok(s)
    }

    // ---- inputs -------------------------------------------------------

    /// A control packet for this session, already parsed and demultiplexed
    /// (see [`super::table::SessionTable::handle_rx`]), with the TTL / Hop
    /// Limit it arrived with. Implements the rest of RFC 5880 §6.8.6.
    pub fn on_packet(
        &mut self,
        now: u64,
        pkt: &Repr<'_>,
        rx_ttl: u8,
    ) -> Result<Option<StateChange>, RxError> {
        if !self.cfg.hop.ttl_ok(rx_ttl) {
            return Err(RxError::BadTtl);
        }
        // "If the Your Discriminator field is nonzero, it MUST be used to
        // select the session with which this BFD packet is associated. If no
        // session is found, the packet MUST be discarded." (A table has
        // done this; checked again for a stand-alone session.)
        if pkt.your_discr != 0 && pkt.your_discr != self.cfg.local_discr {
            return Err(RxError::UnknownDiscr);
        }
        // "If the A bit is set and no authentication is in use (bfd.AuthType
        // is zero), the packet MUST be discarded."
        if pkt.auth.is_some() {
            return Err(RxError::AuthMismatch);
        }
        debug_assert!(pkt.version == VERSION && pkt.detect_mult != 0 && pkt.my_discr != 0);

        // "Set bfd.RemoteDiscr to the value of My Discriminator.
        //  Set bfd.RemoteState to the value of the State (Sta) field.
        //  Set bfd.RemoteDemandMode to the value of the Demand (D) bit.
        //  Set bfd.RemoteMinRxInterval to the value of Required Min RX
        //  Interval."
        self.remote_discr = pkt.my_discr;
        self.remote_state = pkt.state;
        self.remote_demand = pkt.demand;
        self.remote_min_rx_us = pkt.required_min_rx;
        self.remote_diag = pkt.diag;
        self.remote_cpi = pkt.control_plane_independent;
        self.remote_desired_min_tx_us = pkt.desired_min_tx;
        self.remote_detect_mult = pkt.detect_mult;

        // "If a Poll Sequence is being transmitted by the local system and
        // the Final (F) bit in the received packet is set, the Poll Sequence
        // MUST be terminated."
        if self.poll_active && pkt.final_ {
            if self.poll_again {
                self.poll_again = false;
            } else {
                self.poll_active = false;
                // §6.8.3: the held-back values take effect now.
                self.use_tx_us = self.adv_tx_us;
                self.use_rx_us = self.adv_rx_us;
            }
        }

        // "If bfd.SessionState is AdminDown: Discard the packet."
        let change = match transition(self.state, pkt.state) {
            Action::Discard => {
                self.retime();
                return Err(RxError::AdminDown);
            }
            Action::Stay => None,
            Action::Goto { to, diag } => Some(self.goto(now, to, diag)),
        };

        // "If the Poll (P) bit is set, send a BFD Control packet to the
        // remote system with the Poll (P) bit clear, and the Final (F) bit
        // set (see section 6.8.7)."
        if pkt.poll && !self.final_pending {
            self.final_pending = true;
            self.final_at = now;
        }

        // "If the packet was not discarded, it has been received for purposes
        // of the Detection Time expiration rules in section 6.8.4."
        self.stats.rx_packets += 1;
        self.detect_armed = true;
        self.last_rx = now;
        // "Update the transmit interval as described in section 6.8.2.
        //  Update the Detection Time as described in section 6.8.4."
        self.retime();
        Ok(change)
    }

    /// Detection-time expiry (§6.8.4). Call when `now` reaches
    /// [`Session::next_deadline`]; harmless at any other time.
    pub fn check_timeout(&mut self, now: u64) -> Option<StateChange> {
        if !self.detect_armed || now < self.detect_deadline {
            return None;
        }
        self.detect_armed = false;
        // §6.8.1 bfd.RemoteDiscr: "If a period of a Detection Time passes
        // without the receipt of a valid, authenticated BFD packet from the
        // remote system, this variable MUST be set to zero." The rest of
        // what we knew of the remote goes with it.
        self.remote_discr = 0;
        self.remote_state = State::Down;
        self.remote_demand = false;
        self.remote_min_rx_us = 1;
        self.remote_desired_min_tx_us = 0;
        self.remote_detect_mult = 0;
        // §6.8.4: "If Demand mode is not active, and a period of time equal
        // to the Detection Time passes without receiving a BFD Control
        // packet from the remote system, and bfd.SessionState is Init or Up,
        // the session has gone down -- the local system MUST set
        // bfd.SessionState to Down and bfd.LocalDiag to 1 (Control Detection
        // Time Expired)."
        let change = match self.state {
            State::Init | State::Up => {
                Some(self.goto(now, State::Down, Some(Diag::ControlDetectionTimeExpired)))
            }
            State::AdminDown | State::Down => None,
        };
        self.retime();
        change
    }

    /// Write the next control packet into `buf` if one is due at `now`;
    /// returns its length. Call until it returns `None` (at most two: a
    /// Final and a periodic packet). `buf` must hold [`HEADER_LEN`] bytes.
    pub fn poll_transmit(&mut self, now: u64, buf: &mut [u8]) -> Option<usize> {
        if buf.len() < HEADER_LEN {
            debug_assert!(false, "BFD tx buffer of {} bytes", buf.len());
            return None;
        }
        // §6.8.7: "...the receiving system MUST transmit a BFD Control packet
        // with the Poll (P) bit clear and the Final (F) bit set as soon as
        // practicable, without respect to the transmission timer or any
        // other transmission limitation". Outside the periodic schedule.
        if self.final_pending && now >= self.final_at {
            self.final_pending = false;
            self.final_at = NEVER;
            return Some(self.emit(buf, false, true));
        }
        if self.periodic_allowed() && now >= self.next_tx {
            // "A system MUST NOT set the Poll (P) bit ... Final" both: a Poll
            // rides on periodic packets only.
            let n = self.emit(buf, self.poll_active, false);
            self.last_tx = now;
            self.sent_any = true;
            self.next_tx = now + self.jittered(self.tx_interval_ns);
            return Some(n);
        }
        None
    }

    /// Take the session administratively down (§6.8.16: "Set
    /// bfd.SessionState to AdminDown; Set bfd.LocalDiag to an appropriate
    /// value") or bring it back to Down. While AdminDown, detection stops and
    /// AdminDown packets keep going at the slow rate ("BFD Control packets
    /// SHOULD be transmitted for at least a Detection Time after
    /// transitioning to AdminDown state ... MAY be transmitted
    /// indefinitely"). The first goes out at the already scheduled time, so
    /// an Up peer sees the drain within one transmit interval.
    pub fn set_admin_down(&mut self, now: u64, down: bool) -> Option<StateChange> {
        let change = match (down, self.state) {
            (true, State::AdminDown) | (false, State::Down | State::Init | State::Up) => None,
            (true, _) => {
                self.detect_armed = false;
                Some(self.goto(now, State::AdminDown, Some(Diag::AdministrativelyDown)))
            }
            // §6.8.16: "If enabling session: Set bfd.SessionState to Down".
            (false, State::AdminDown) => Some(self.goto(now, State::Down, None)),
        };
        self.retime();
        change
    }

    /// Take an Init or Up session Down for a local reason, e.g.
    /// [`Diag::PathDown`] when the port loses its link, or
    /// [`Diag::ForwardingPlaneReset`] (§6.8.17).
    pub fn force_down(&mut self, now: u64, diag: Diag) -> Option<StateChange> {
        let change = match self.state {
            State::Init | State::Up => Some(self.goto(now, State::Down, Some(diag))),
            State::Down => {
                self.local_diag = diag;
                None
            }
            State::AdminDown => None,
        };
        self.retime();
        change
    }

    /// New intervals / multiplier. While Up this starts a Poll Sequence
    /// (§6.8.3: "If either bfd.DesiredMinTxInterval is changed or
    /// bfd.RequiredMinRxInterval is changed, a Poll Sequence MUST be
    /// initiated").
    pub fn set_timers(&mut self, timers: Timers) -> Result<(), ConfigError> {
        timers.validate()?;
        self.cfg.timers = timers;
        self.refresh_advertised();
        self.retime();
        Ok(())
    }

    /// Set or clear the C bit on the packets we send.
    pub fn set_control_plane_independent(&mut self, on: bool) {
        self.cfg.control_plane_independent = on;
    }

    // ---- outputs / queries ----------------------------------------------

    /// The earliest time at which [`Session::poll_transmit`] or
    /// [`Session::check_timeout`] has something to do; [`NEVER`] if none.
    /// A value at or before `now` means "now".
    pub fn next_deadline(&self) -> u64 {
        self.next_tx_deadline()
            .min(self.detect_deadline)
            .min(self.final_at)
    }

    /// When the next periodic packet is due ([`NEVER`] if transmission is
    /// suppressed).
    pub fn next_tx_deadline(&self) -> u64 {
        if self.periodic_allowed() {
            self.next_tx
        } else {
            NEVER
        }
    }

    /// When the detection time runs out ([`NEVER`] if not armed).
    pub fn detect_deadline(&self) -> u64 {
        self.detect_deadline
    }

    pub fn id(&self) -> SessionId {
        self.id
    }
    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }
    pub fn state(&self) -> State {
        self.state
    }
    pub fn remote_state(&self) -> State {
        self.remote_state
    }
    pub fn local_diag(&self) -> Diag {
        self.local_diag
    }
    pub fn local_discr(&self) -> u32 {
        self.cfg.local_discr
    }
    pub fn remote_discr(&self) -> u32 {
        self.remote_discr
    }
    pub fn poll_active(&self) -> bool {
        self.poll_active
    }
    pub fn stats(&self) -> &SessionStats {
        &self.stats
    }

    /// Transmit interval in use, before jitter (ns): the larger of our
    /// bfd.DesiredMinTxInterval in use and bfd.RemoteMinRxInterval (§6.8.7).
    pub fn tx_interval_ns(&self) -> u64 {
        self.tx_interval_ns
    }

    /// Detection time (ns), §6.8.4: "the Detection Time calculated in the
    /// local system is equal to the value of Detect Mult received from the
    /// remote system, multiplied by the agreed transmit interval of the
    /// remote system (the greater of bfd.RequiredMinRxInterval and the last
    /// received Desired Min TX Interval)." Zero before any packet.
    pub fn detection_time_ns(&self) -> u64 {
        u64::from(self.remote_detect_mult)
            * u64::from(self.use_rx_us.max(self.remote_desired_min_tx_us))
            * NS_PER_US
    }

    /// Snapshot for ctrl.
    pub fn info(&self) -> SessionInfo {
        SessionInfo {
            id: self.id,
            state: self.state,
            remote_state: self.remote_state,
            local_diag: self.local_diag,
            remote_diag: self.remote_diag,
            local_discr: self.cfg.local_discr,
            remote_discr: self.remote_discr,
            hop: self.cfg.hop,
            tx_interval_ns: if self.periodic_allowed() {
                self.tx_interval_ns
            } else {
                0
            },
            detection_time_ns: self.detection_time_ns(),
            desired_min_tx_us: self.adv_tx_us,
            required_min_rx_us: self.adv_rx_us,
            detect_mult: self.cfg.timers.detect_mult,
            remote_desired_min_tx_us: self.remote_desired_min_tx_us,
            remote_min_rx_us: self.remote_min_rx_us,
            remote_detect_mult: self.remote_detect_mult,
            remote_control_plane_independent: self.remote_cpi,
            poll_active: self.poll_active,
            stats: self.stats,
        }
    }

    /// The packet this session would send now (P/F as given).
    pub fn repr(&self, poll: bool, final_: bool) -> Repr<'static> {
        Repr {
            version: VERSION,
            diag: self.local_diag,
            state: self.state,
            poll,
            final_,
            control_plane_independent: self.cfg.control_plane_independent,
            demand: false,
            multipoint: false,
            detect_mult: self.cfg.timers.detect_mult,
            my_discr: self.cfg.local_discr,
            your_discr: self.remote_discr,
            desired_min_tx: self.adv_tx_us,
            required_min_rx: self.adv_rx_us,
            required_min_echo_rx: 0,
            auth: None,
        }
    }

    // ---- internals ------------------------------------------------------

    fn emit(&mut self, buf: &mut [u8], poll: bool, final_: bool) -> usize {
        self.stats.tx_packets += 1;
        // Cannot fail: no auth section and buf.len() >= HEADER_LEN.
        self.repr(poll, final_).emit(buf).unwrap_or(0)
    }

    /// §6.8.7 conditions on periodic transmission.
    fn periodic_allowed(&self) -> bool {
        // "A system MUST NOT transmit BFD Control packets if bfd.RemoteDiscr
        // is zero and the system is taking the Passive role."
        if self.cfg.passive && self.remote_discr == 0 {
            return false;
        }
        // "A system MUST NOT periodically transmit BFD Control packets if
        // bfd.RemoteMinRxInterval is zero."
        if self.remote_min_rx_us == 0 {
            return false;
        }
        // "A system MUST NOT periodically transmit BFD Control packets if
        // Demand mode is active on the remote system (bfd.RemoteDemandMode
        // is 1, bfd.SessionState is Up, and bfd.RemoteSessionState is Up)
        // and a Poll Sequence is not being transmitted."
        !(self.remote_demand
            && self.state == State::Up
            && self.remote_state == State::Up
            && !self.poll_active)
    }

    /// §6.8.7: "The periodic transmission of BFD Control packets MUST be
    /// jittered on a per-packet basis by up to 25%, that is, the interval
    /// MUST be reduced by a random value of 0 to 25% ... If bfd.DetectMult
    /// is equal to 1, the interval between transmitted BFD Control packets
    /// MUST be no more than 90% of the negotiated transmission interval, and
    /// MUST be no less than 75% of the negotiated transmission interval."
    fn jittered(&mut self, interval_ns: u64) -> u64 {
        const PPM: u64 = 1_000_000;
        let (lo, hi) = if self.cfg.timers.detect_mult == 1 {
            (100_000, 250_000)
        } else {
            (0, 250_000)
        };
        let cut = lo + u64::from(self.rng.next_u32()) % (hi - lo + 1);
        interval_ns - (u128::from(interval_ns) * u128::from(cut) / u128::from(PPM)) as u64
    }

    /// Change state; the single place that does.
    fn goto(&mut self, now: u64, to: State, diag: Option<Diag>) -> StateChange {
        let old = self.state;
        self.state = to;
        if let Some(d) = diag {
            self.local_diag = d;
        }
        if old == State::Up && to != State::Up {
            self.stats.down_transitions += 1;
            // Timers only matter to the peer while Up: drop any Poll
            // Sequence and stop holding values back.
            self.poll_active = false;
            self.poll_again = false;
            self.use_tx_us = self.adv_tx_us;
            self.use_rx_us = self.adv_rx_us;
        }
        if to == State::Up && old != State::Up {
            self.stats.up_transitions += 1;
        }
        self.stats.last_change_at = now;
        // Entering or leaving Up moves bfd.DesiredMinTxInterval across the
        // 1 s floor.
        self.refresh_advertised();
        StateChange {
            session: self.id,
            local_discr: self.cfg.local_discr,
            at: now,
            old,
            new: to,
            diag: self.local_diag,
            remote_state: self.remote_state,
            remote_diag: self.remote_diag,
        }
    }

    /// Recompute bfd.DesiredMinTxInterval / bfd.RequiredMinRxInterval from
    /// the configuration and the state; start a Poll Sequence if they change
    /// while Up (§6.8.3).
    fn refresh_advertised(&mut self) {
        let up = self.state == State::Up;
        let tx = if up {
            self.cfg.timers.desired_min_tx_us
        } else {
            // "When bfd.SessionState is not Up, the system MUST set
            // bfd.DesiredMinTxInterval to a value of not less than one
            // second (1,000,000 microseconds)."
            self.cfg.timers.desired_min_tx_us.max(SLOW_TX_US)
        };
        let rx = self.cfg.timers.required_min_rx_us;
        if tx == self.adv_tx_us && rx == self.adv_rx_us {
            return;
        }
        self.adv_tx_us = tx;
        self.adv_rx_us = rx;
        if !up {
            self.use_tx_us = tx;
            self.use_rx_us = rx;
            return;
        }
        // "If either bfd.DesiredMinTxInterval is changed or
        // bfd.RequiredMinRxInterval is changed, a Poll Sequence MUST be
        // initiated (see section 6.5)."
        if self.poll_active {
            self.poll_again = true;
        }
        self.poll_active = true;
        // "If bfd.DesiredMinTxInterval is increased and bfd.SessionState is
        // Up, the actual transmission interval used MUST NOT change until the
        // Poll Sequence described above has terminated." A decrease applies
        // at once.
        if tx < self.use_tx_us {
            self.use_tx_us = tx;
        }
        // "If bfd.RequiredMinRxInterval is reduced and bfd.SessionState is
        // Up, the previous value of bfd.RequiredMinRxInterval MUST be used
        // when calculating the Detection Time for the remote system until the
        // Poll Sequence described above has terminated." An increase applies
        // at once.
        if rx > self.use_rx_us {
            self.use_rx_us = rx;
        }
    }

    /// Bring the schedule in line with the values in use. Idempotent.
    ///
    /// A shorter transmit interval re-draws the next transmission from the
    /// last one, so faster timers take effect at once. A longer one leaves
    /// the transmission already drawn where it is and applies from the one
    /// after: that packet is what tells the remote about the change (the
    /// Down after a failure, AdminDown on a drain, a P with new values), and
    /// it goes out at the pace the remote still expects, never earlier than
    /// §6.8.7 allows. The detection deadline follows the last reception.
    fn retime(&mut self) {
        let interval = u64::from(self.use_tx_us.max(self.remote_min_rx_us)) * NS_PER_US;
        if interval != self.tx_interval_ns {
            let shorter = interval < self.tx_interval_ns;
            self.tx_interval_ns = interval;
            if shorter && self.sent_any {
                self.next_tx = self.last_tx + self.jittered(interval);
            }
        }
        self.detect_deadline = if self.detect_armed {
            self.last_rx + self.detection_time_ns()
        } else {
            NEVER
        };
    }
}

//! One BGP connection's finite state machine (RFC 4271 §8), sans I/O.
//!
//! # Model
//!
//! A [`Session`] owns protocol state only. The driver feeds it [`Input`]s
//! (administrative events, timer expiries, TCP events, whole received
//! messages) together with `now`, and carries out the [`Output`]s it
//! writes into a caller-owned `Vec`: connect, send these bytes, close,
//! arm/cancel a timer, session up/down, routes received.
//!
//! ```text
//!   Idle ──ManualStart──► Connect ──Tcp_CR_Acked──► OpenSent ──BGPOpen──►
//!    ▲  ──ManualStart     │  ▲ConnectRetry          OpenConfirm ──KeepAliveMsg──►
//!    │    (passive)──► Active◄┘  expires            Established
//!    └────────── errors, NOTIFICATION, hold timer, ManualStop ◄──────────┘
//! ```
//!
//! Time is a `u64` count of milliseconds on any monotonic clock the driver
//! chooses; the FSM never reads a clock. Timers are data: the FSM orders
//! `ArmTimer { timer, deadline }` and `CancelTimer(timer)`, keeps the
//! deadlines itself ([`Session::next_deadline`]), and ignores a
//! `Input::Timer` that arrives before its deadline or after cancellation,
//! so a driver racing a re-armed timer cannot fire it early.
//!
//! Simplifications of the optional parts of §8.1.1: no DelayOpen, no
//! peer-oscillation damping (a fixed IdleHold delay restarts a session that
//! failed, as event 13 IdleHoldTimer_Expires → event 3 AutomaticStart), no
//! SendNOTIFICATIONwithoutOPEN. A refused outgoing connection goes to
//! Active and keeps listening (the §8.2.2 Connect-state branch for event
//! 18 with DelayOpen running), as FRR and BIRD do.

use std::net::Ipv4Addr;

use crate::codec::{decode, Context};
use crate::error::{EncodeError, Reaction};
use crate::message::*;

/// Per-session configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Our AS.
    pub local_as: u32,
    /// The AS the peer must announce (RFC 4271 §6.2 Bad Peer AS).
    pub peer_as: u32,
    /// Our BGP identifier.
    pub local_id: Ipv4Addr,
    /// Hold time we propose, seconds: 0 (no keepalives) or at least 3.
    pub hold_time: u16,
    /// The smallest hold time we accept from the peer, seconds (RFC 4271
    /// §6.2: "An implementation MAY reject connections on the basis of
    /// the Hold Time"). A peer's 0 (no hold timer, no keepalives: a dead
    /// peer is never noticed) is refused unless this is 0.
    pub min_hold_time: u16,
    /// ConnectRetryTime, seconds (RFC 4271 §10 suggests 120).
    pub connect_retry_time: u16,
    /// Delay before a session that went down restarts itself
    /// (AutomaticStart), milliseconds; 0 leaves it Idle.
    pub idle_hold_time_ms: u64,
    /// Never initiate the TCP connection; only accept.
    pub passive: bool,
    /// Families announced with the Multiprotocol capability.
    pub families: Vec<Family>,
    /// Announce route refresh (RFC 2918).
    pub route_refresh: bool,
    /// Announce graceful restart (RFC 4724).
    pub graceful_restart: Option<GracefulRestartConfig>,
}

impl Config {
    /// A configuration with the usual defaults: hold 90 s, connect retry
    /// 120 s, restart after 5 s, IPv4 and IPv6 unicast, route refresh,
    /// graceful restart with a 120 s restart time (DESIGN §3).
    pub fn new(local_as: u32, peer_as: u32, local_id: Ipv4Addr) -> Self {
        Self {
            local_as,
            peer_as,
            local_id,
            hold_time: 90,
            min_hold_time: 3,
            connect_retry_time: 120,
            idle_hold_time_ms: 5_000,
            passive: false,
            families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
            route_refresh: true,
            graceful_restart: Some(GracefulRestartConfig::default()),
        }
    }

    /// True when the peer is in another AS.
    pub fn is_ebgp(&self) -> bool {
        self.local_as != self.peer_as
    }

    /// The OPEN this configuration sends (RFC 4271 §4.2; capabilities of
    /// RFC 4760, 2918, 6793, 4724).
    pub fn open(&self) -> Open {
        let mut capabilities: Vec<Capability> = self
            .families
            .iter()
            .map(|f| Capability::Multiprotocol(*f))
            .collect();
        if self.route_refresh {
            capabilities.push(Capability::RouteRefresh);
        }
        // RFC 6793 §3: always announced; the real AS goes here.
        capabilities.push(Capability::FourOctetAs(self.local_as));
        if let Some(gr) = &self.graceful_restart {
            capabilities.push(Capability::GracefulRestart(GracefulRestart {
                flags: if gr.restarting {
                    GracefulRestart::RESTART_STATE
                } else {
                    0
                },
                restart_time: gr.restart_time.min(0x0fff),
                families: self
                    .families
                    .iter()
                    .map(|f| GracefulRestartFamily {
                        family: *f,
                        forwarding_state: gr.forwarding_state,
                    })
                    .collect(),
            }));
        }
        Open {
            version: BGP_VERSION,
            // RFC 6793 §4.1: AS_TRANS when our AS needs 4 octets.
            my_as: u16::try_from(self.local_as).unwrap_or(AS_TRANS),
            hold_time: self.hold_time,
            bgp_id: self.local_id,
            capabilities,
        }
    }
}

/// Graceful restart as we announce it (RFC 4724 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GracefulRestartConfig {
    /// Restart Time, seconds (at most 4095).
    pub restart_time: u16,
    /// R bit: we have just restarted (set on the first session after a
    /// restart, so the peer keeps our routes until our End-of-RIB).
    pub restarting: bool,
    /// F bit for every family: our forwarding state survived the restart.
    pub forwarding_state: bool,
}

impl Default for GracefulRestartConfig {
    fn default() -> Self {
        Self {
            restart_time: 120,
            restarting: false,
            forwarding_state: true,
        }
    }
}

/// RFC 4271 §8.2.2 states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Refuses connections; waits for a start event.
    Idle,
    /// Waiting for our outgoing TCP connection to complete.
    Connect,
    /// Listening for the peer's TCP connection.
    Active,
    /// OPEN sent, waiting for the peer's.
    OpenSent,
    /// OPENs exchanged, waiting for a KEEPALIVE.
    OpenConfirm,
    /// UPDATEs flow.
    Established,
}

/// The FSM's timers (RFC 4271 §8.1.3, §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// ConnectRetryTimer.
    ConnectRetry,
    /// HoldTimer.
    Hold,
    /// KeepaliveTimer.
    Keepalive,
    /// IdleHoldTimer (§8.1.1 optional attribute; restarts a failed
    /// session).
    IdleHold,
}

impl Timer {
    const ALL: [Timer; 4] = [
        Timer::ConnectRetry,
        Timer::Hold,
        Timer::Keepalive,
        Timer::IdleHold,
    ];

    fn index(self) -> usize {
        match self {
            Timer::ConnectRetry => 0,
            Timer::Hold => 1,
            Timer::Keepalive => 2,
            Timer::IdleHold => 3,
        }
    }
}

/// Which side opened the TCP connection (for collision resolution).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// We connected (event 16, Tcp_CR_Acked).
    Outgoing,
    /// The peer connected (event 17, TcpConnectionConfirmed).
    Incoming,
}

/// Events the driver reports (RFC 4271 §8.1 event numbers in comments).
/// Message events (19–28) are derived by the FSM from [`Input::Received`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input<'a> {
    /// Event 1: ManualStart.
    ManualStart,
    /// Event 2: ManualStop. Sends Cease / Administrative Shutdown with this
    /// shutdown communication (RFC 8203; empty for none).
    ManualStop(&'a str),
    /// Event 3: AutomaticStart.
    AutomaticStart,
    /// Event 4: ManualStart_with_PassiveTcpEstablishment.
    ManualStartPassive,
    /// Event 5: AutomaticStart_with_PassiveTcpEstablishment.
    AutomaticStartPassive,
    /// Event 8: AutomaticStop (Cease / Other Configuration Change).
    AutomaticStop,
    /// Events 9 ConnectRetryTimer_Expires, 10 HoldTimer_Expires, 11
    /// KeepaliveTimer_Expires, 13 IdleHoldTimer_Expires.
    Timer(Timer),
    /// Event 16: Tcp_CR_Acked — our connection attempt succeeded.
    TcpCrAcked,
    /// Event 17: TcpConnectionConfirmed — we accepted the peer's
    /// connection.
    TcpConnectionConfirmed,
    /// Event 18: TcpConnectionFails (refused, reset, closed by the peer).
    TcpConnectionFails,
    /// One whole received message (framed with `codec::split_message`):
    /// events 19 BGPOpen, 21 BGPHeaderErr, 22 BGPOpenMsgErr, 24
    /// NotifMsgVerErr, 25 NotifMsg, 26 KeepAliveMsg, 27 UpdateMsg, 28
    /// UpdateMsgErr, and ROUTE-REFRESH (RFC 2918).
    Received(&'a [u8]),
}

/// Why a session went down (to Idle).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    /// Event 2, ManualStop.
    ManualStop,
    /// Event 8, AutomaticStop.
    AutomaticStop,
    /// Event 10: we sent Hold Timer Expired.
    HoldTimerExpired,
    /// The peer sent this NOTIFICATION.
    NotificationReceived(Notification),
    /// We found an error and sent this NOTIFICATION.
    NotificationSent(Notification),
    /// Event 18: the TCP connection failed or closed.
    TcpFailed,
    /// Event 23 OpenCollisionDump: lost connection collision resolution.
    Collision,
    /// The peer reconnected while this session was Established and graceful
    /// restart was negotiated (RFC 4724 §4.2): this connection is dropped.
    PeerRestarted,
}

/// What the session negotiated (RFC 4271 §4.2, RFC 5492).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Peer AS (4-octet capability value, else My AS).
    pub peer_as: u32,
    /// Peer BGP identifier.
    pub peer_id: Ipv4Addr,
    /// Peer is external.
    pub ebgp: bool,
    /// Both sides announced 4-octet AS (we always do).
    pub four_octet_as: bool,
    /// min(ours, theirs), seconds; 0 = no hold timer and no keepalives.
    pub hold_time: u16,
    /// hold_time / 3, seconds.
    pub keepalive_time: u16,
    /// Families both sides announced (IPv4 unicast implied for a peer with
    /// no Multiprotocol capability, RFC 4760 §8).
    pub families: Vec<Family>,
    /// Both sides announced route refresh: we may send ROUTE-REFRESH, and
    /// must answer one.
    pub route_refresh: bool,
    /// The peer's graceful-restart capability, when both sides announced
    /// one.
    pub graceful_restart: Option<GracefulRestart>,
    /// Everything the peer announced, unknown capabilities included.
    pub peer_capabilities: Vec<Capability>,
}

impl Negotiated {
    /// The codec context of this session.
    pub fn context(&self) -> Context {
        Context {
            four_octet_as: self.four_octet_as,
            ebgp: self.ebgp,
        }
    }
}

/// An order for the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Open a TCP connection to the peer (port 179), then report
    /// `TcpCrAcked` or `TcpConnectionFails`.
    Connect,
    /// Write these bytes (one whole message of this type) to the
    /// connection.
    Send {
        /// Message type, for counters.
        kind: MessageType,
        /// Wire bytes.
        bytes: Vec<u8>,
    },
    /// Close the connection (after writing what was queued), or abandon
    /// the connection attempt.
    CloseTcp,
    /// (Re)arm a timer to fire at `deadline` (ms, the driver's clock).
    ArmTimer {
        /// Which timer.
        timer: Timer,
        /// When.
        deadline: u64,
    },
    /// Disarm a timer.
    CancelTimer(Timer),
    /// The state changed.
    StateChange {
        /// Old state.
        from: State,
        /// New state.
        to: State,
    },
    /// Established: what was negotiated.
    SessionUp(Box<Negotiated>),
    /// The session left OpenSent, OpenConfirm or Established for Idle or
    /// Active (`was_established` tells whether routes were exchanged).
    SessionDown {
        /// Why.
        reason: DownReason,
        /// The session had been Established.
        was_established: bool,
    },
    /// A valid UPDATE from the peer (Established only).
    UpdateReceived(Update),
    /// RFC 7606 treat-as-withdraw: withdraw these prefixes learned from the
    /// peer; the session stays up.
    TreatAsWithdraw {
        /// Prefixes to withdraw.
        prefixes: Vec<Prefix>,
        /// What was malformed.
        reason: &'static str,
    },
    /// The peer asked us to re-advertise a family (RFC 2918 §4).
    RouteRefreshRequested(Family),
}

/// Messages in and out by type (index: `MessageType::code() - 1`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Sent, by type.
    pub sent: [u64; 5],
    /// Received (whole messages, decoded or not), by type.
    pub received: [u64; 5],
}

/// Why [`Session::send`] refused a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// UPDATE and ROUTE-REFRESH go out in Established only.
    #[error("session is {0:?}, not Established")]
    NotEstablished(State),
    /// The message cannot be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// "set the HoldTimer to a large value ... A HoldTimer value of 4 minutes
/// is suggested" (RFC 4271 §8.2.2, Connect state, event 16/17).
const LARGE_HOLD_MS: u64 = 240_000;

/// One BGP connection's state machine.
#[derive(Debug, Clone)]
pub struct Session {
    config: Config,
    state: State,
    /// RFC 4271 §8.1.1 ConnectRetryCounter.
    connect_retry_counter: u32,
    deadlines: [Option<u64>; 4],
    negotiated: Option<Negotiated>,
    peer_open: Option<Open>,
    direction: Option<Direction>,
    /// Start was passive (events 4/5), so retries listen first.
    passive_start: bool,
    /// A start event was received and no ManualStop since.
    started: bool,
    counters: Counters,
}

impl Session {
    /// A session in Idle.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            state: State::Idle,
            connect_retry_counter: 0,
            deadlines: [None; 4],
            negotiated: None,
            peer_open: None,
            direction: None,
            passive_start: false,
            started: false,
            counters: Counters::default(),
        }
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Replaces the configuration (takes effect at the next connection).
    pub fn set_config(&mut self, config: Config) {
        self.config = config;
    }

    /// What was negotiated, once an OPEN was accepted.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// The peer's OPEN, once received.
    pub fn peer_open(&self) -> Option<&Open> {
        self.peer_open.as_ref()
    }

    /// Which side opened the current connection.
    pub fn direction(&self) -> Option<Direction> {
        self.direction
    }

    /// RFC 4271 §8.1.1 ConnectRetryCounter.
    pub fn connect_retry_counter(&self) -> u32 {
        self.connect_retry_counter
    }

    /// Message counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The deadline of a timer, if armed.
    pub fn deadline(&self, timer: Timer) -> Option<u64> {
        self.deadlines[timer.index()]
    }

    /// The earliest armed deadline: the driver may sleep until then and
    /// feed `Input::Timer` for each timer due.
    pub fn next_deadline(&self) -> Option<(Timer, u64)> {
        Timer::ALL
            .iter()
            .filter_map(|t| self.deadline(*t).map(|d| (*t, d)))
            .min_by_key(|(_, d)| *d)
    }

    /// The codec context for this session (defaults before OPEN).
    pub fn context(&self) -> Context {
        self.negotiated
            .as_ref()
            .map(Negotiated::context)
            .unwrap_or(Context {
                four_octet_as: false,
                ebgp: self.config.is_ebgp(),
            })
    }

    /// Handles one input at `now` (ms), appending orders to `out`.
    pub fn process(&mut self, now: u64, input: Input<'_>, out: &mut Vec<Output>) {
        match input {
            Input::ManualStart | Input::AutomaticStart => {
                self.on_start(now, self.config.passive, out)
            }
            Input::ManualStartPassive | Input::AutomaticStartPassive => {
                self.on_start(now, true, out)
            }
            Input::ManualStop(message) => self.on_manual_stop(now, message, out),
            Input::AutomaticStop => self.on_automatic_stop(now, out),
            Input::Timer(t) => {
                // Ignore stale or cancelled timers.
                match self.deadline(t) {
                    Some(d) if d <= now => {
                        self.deadlines[t.index()] = None;
                        self.on_timer(now, t, out);
                    }
                    _ => {}
                }
            }
            Input::TcpCrAcked => self.on_tcp_up(now, Direction::Outgoing, out),
            Input::TcpConnectionConfirmed => self.on_tcp_up(now, Direction::Incoming, out),
            Input::TcpConnectionFails => self.on_tcp_fails(now, out),
            Input::Received(bytes) => self.on_received(now, bytes, out),
        }
    }

    /// Sends an UPDATE or ROUTE-REFRESH (Established only); restarts the
    /// KeepaliveTimer after an UPDATE (RFC 4271 §8.2.2: "Each time the
    /// local system sends a KEEPALIVE or UPDATE message, it restarts its
    /// KeepaliveTimer").
    pub fn send(
        &mut self,
        now: u64,
        message: &Message,
        out: &mut Vec<Output>,
    ) -> Result<(), SendError> {
        if self.state != State::Established {
            return Err(SendError::NotEstablished(self.state));
        }
        let bytes = message.to_bytes(&self.context())?;
        self.emit(message.message_type(), bytes, out);
        if matches!(message, Message::Update(_)) {
            self.restart_keepalive(now, out);
        }
        Ok(())
    }

    /// Event 23, OpenCollisionDump: the peer layer decided this connection
    /// loses a collision (RFC 4271 §6.8): Cease / Connection Collision
    /// Resolution, then Idle.
    pub fn collision_dump(&mut self, now: u64, out: &mut Vec<Output>) {
        if matches!(
            self.state,
            State::OpenSent | State::OpenConfirm | State::Established
        ) {
            let n = Notification::new(
                error_code::CEASE,
                cease_subcode::CONNECTION_COLLISION_RESOLUTION,
            );
            self.send_notification(&n, out);
        }
        self.go_idle(now, DownReason::Collision, false, out);
    }

    /// Ends the session with this Cease NOTIFICATION (RFC 4486), e.g.
    /// subcode 1 when the peer sent more prefixes than allowed; the
    /// session restarts as after any error.
    pub fn cease(&mut self, now: u64, n: Notification, out: &mut Vec<Output>) {
        if matches!(
            self.state,
            State::OpenSent | State::OpenConfirm | State::Established
        ) {
            self.send_notification(&n, out);
        }
        self.connect_retry_counter = self.connect_retry_counter.saturating_add(1);
        self.go_idle(now, DownReason::NotificationSent(n), true, out);
    }

    /// Drops the connection without a NOTIFICATION (RFC 4724 §4.2: the
    /// peer restarted and opened a new connection).
    pub fn drop_for_restart(&mut self, now: u64, out: &mut Vec<Output>) {
        self.go_idle(now, DownReason::PeerRestarted, false, out);
    }

    // -- events --------------------------------------------------------

    /// Events 1, 3, 4, 5 (and 13 via IdleHold).
    fn on_start(&mut self, now: u64, passive: bool, out: &mut Vec<Output>) {
        self.started = true;
        self.passive_start = passive;
        if self.state != State::Idle {
            // §8.2.2: start events are ignored outside Idle.
            return;
        }
        self.cancel(Timer::IdleHold, out);
        // §8.2.2 Idle, event 1/3: "initializes all BGP resources for the
        // peer connection, sets ConnectRetryCounter to zero, starts the
        // ConnectRetryTimer with the initial value, initiates a TCP
        // connection to the other BGP peer, listens for a connection that
        // may be initiated by the remote BGP peer, and changes its state
        // to Connect." Events 4/5: the same without initiating, to Active.
        self.connect_retry_counter = 0;
        self.arm_connect_retry(now, out);
        if passive {
            self.set_state(State::Active, out);
        } else {
            out.push(Output::Connect);
            self.set_state(State::Connect, out);
        }
    }

    /// Event 2.
    fn on_manual_stop(&mut self, now: u64, message: &str, out: &mut Vec<Output>) {
        self.started = false;
        // §8.2.2 OpenSent/OpenConfirm/Established, event 2: "sends the
        // NOTIFICATION with a Cease", "sets the ConnectRetryCounter to
        // zero".
        if matches!(
            self.state,
            State::OpenSent | State::OpenConfirm | State::Established
        ) {
            let n = Notification::administrative_shutdown(message);
            self.send_notification(&n, out);
        }
        self.connect_retry_counter = 0;
        self.go_idle(now, DownReason::ManualStop, false, out);
        self.cancel(Timer::IdleHold, out);
    }

    /// Event 8.
    fn on_automatic_stop(&mut self, now: u64, out: &mut Vec<Output>) {
        if self.state == State::Idle {
            return;
        }
        if matches!(
            self.state,
            State::OpenSent | State::OpenConfirm | State::Established
        ) {
            let n = Notification::new(error_code::CEASE, cease_subcode::OTHER_CONFIGURATION_CHANGE);
            self.send_notification(&n, out);
        }
        self.connect_retry_counter = self.connect_retry_counter.saturating_add(1);
        self.started = false;
        self.go_idle(now, DownReason::AutomaticStop, false, out);
    }

    /// Events 9, 10, 11, 13.
    fn on_timer(&mut self, now: u64, timer: Timer, out: &mut Vec<Output>) {
        match (self.state, timer) {
            // Event 13 → event 3 (AutomaticStart).
            (State::Idle, Timer::IdleHold) => {
                self.on_start(now, self.passive_start || self.config.passive, out)
            }
            // §8.2.2 Connect, event 9: "drops the TCP connection, restarts
            // the ConnectRetryTimer, ... initiates a TCP connection to the
            // other BGP peer, continues to listen ..., and stays in the
            // Connect state."
            (State::Connect, Timer::ConnectRetry) => {
                out.push(Output::CloseTcp);
                self.arm_connect_retry(now, out);
                out.push(Output::Connect);
            }
            // §8.2.2 Active, event 9: "restarts the ConnectRetryTimer,
            // initiates a TCP connection ..., and changes its state to
            // Connect." A passive-only peer keeps listening.
            (State::Active, Timer::ConnectRetry) => {
                self.arm_connect_retry(now, out);
                if !self.config.passive {
                    out.push(Output::Connect);
                    self.set_state(State::Connect, out);
                }
            }
            // §8.2.2 OpenSent/OpenConfirm/Established, event 10: "sends a
            // NOTIFICATION message with the Error Code Hold Timer Expired",
            // ConnectRetryCounter + 1, Idle.
            (State::OpenSent | State::OpenConfirm | State::Established, Timer::Hold) => {
                let n = Notification::new(error_code::HOLD_TIMER_EXPIRED, 0);
                self.send_notification(&n, out);
                self.connect_retry_counter = self.connect_retry_counter.saturating_add(1);
                self.go_idle(now, DownReason::HoldTimerExpired, true, out);
            }
            // §8.2.2 OpenConfirm/Established, event 11: "sends a KEEPALIVE
            // message, and restarts the KeepaliveTimer".
            (State::OpenConfirm | State::Established, Timer::Keepalive) => {
                self.emit(MessageType::Keepalive, keepalive_bytes(), out);
                self.restart_keepalive(now, out);
            }
            // A timer that cannot run in this state: the FSM error rule.
            (_, t) => self.fsm_error(now, &format_timer(t), out),
        }
    }

    /// Events 16, 17.
    fn on_tcp_up(&mut self, now: u64, direction: Direction, out: &mut Vec<Output>) {
        match self.state {
            // §8.2.2 Connect/Active, events 16/17: "stops the
            // ConnectRetryTimer ..., completes BGP initialization, sends an
            // OPEN message to its peer, sets the HoldTimer to a large
            // value, and changes its state to OpenSent."
            State::Connect | State::Active => {
                self.direction = Some(direction);
                self.negotiated = None;
                self.peer_open = None;
                self.cancel(Timer::ConnectRetry, out);
                let open = Message::Open(self.config.open());
                match open.to_bytes(&self.context()) {
                    Ok(bytes) => self.emit(MessageType::Open, bytes, out),
                    Err(_) => {
                        // Unencodable configuration (over-long OPEN): give
                        // up on this connection rather than send garbage.
                        out.push(Output::CloseTcp);
                        self.go_idle(now, DownReason::AutomaticStop, true, out);
                        return;
                    }
                }
                self.arm(Timer::Hold, now.saturating_add(LARGE_HOLD_MS), out);
                self.set_state(State::OpenSent, out);
            }
            // Idle refuses connections; later states have one already (a
            // second connection is the peer layer's business).
            _ => out.push(Output::CloseTcp),
        }
    }

    /// Event 18.
    fn on_tcp_fails(&mut self, now: u64, out: &mut Vec<Output>) {
        match self.state {
            State::Idle => {}
            // See the module doc: keep listening, retry on ConnectRetry.
            State::Connect => {
                self.arm_connect_retry(now, out);
                self.set_state(State::Active, out);
            }
            // §8.2.2 Active, event 18: "restarts the ConnectRetryTimer ...,
            // increments the ConnectRetryCounter by 1, ... changes its
            // state to Idle."
            State::Active => {
                self.connect_retry_counter = self.connect_retry_counter.saturating_add(1);
                self.go_idle(now, DownReason::TcpFailed, true, out);
            }
            // §8.2.2 OpenSent, event 18: "closes the BGP connection,
            // restarts the ConnectRetryTimer, continues to listen for a
            // connection ..., and changes its state to Active."
            State::OpenSent => {
                out.push(Output::CloseTcp);
                self.clear_timers(out);
                self.arm_connect_retry(now, out);
                out.push(Output::SessionDown {
                    reason: DownReason::TcpFailed,
                    was_established: false,
                });
                self.direction = None;
                self.set_state(State::Active, out);
            }
            // §8.2.2 OpenConfirm/Established, event 18: ConnectRetryCounter
            // + 1, Idle.
            State::OpenConfirm | State::Established => {
                self.connect_retry_counter = self.connect_retry_counter.saturating_add(1);
                self.go_idle(now, DownReason::TcpFailed, true, out);
            }
        }
    }

    /// Events 19–28 and ROUTE-REFRESH.
    fn on_received(&mut self, now: u64, bytes: &[u8], out: &mut Vec<Output>) {
        if let Some(kind) = bytes.get(18).and_then(|t| MessageType::from_code(*t)) {
            let i = usize::from(kind.code() - 1);
            self.counters.received[i] = self.counters.received[i].saturating_add(1);
        }
        if matches!(self.state, State::Idle | State::Connect | State::Active) {
            // No BGP connection: nothing should arrive. §8.2.2 Connect /
            // Active, events 19–28: drop the connection, Idle.
            self.connect_retry_counter = self.connect_retry_counter.saturating_add(1);
            self.go_idle(now, DownReason::TcpFailed, true, out);
            return;
        }
        let message = match decode(bytes, &self.context()) {
            Ok(m) => m,
            Err(e) => match e.reaction {
                // RFC 7606 treat-as-withdraw: the session stays up. Before
                // Established an UPDATE is an FSM error anyway.
                Reaction::TreatAsWithdraw(prefixes) => {
                    if self.state == State::Established {
                        self.restart_hold(now, out);
                        out.push(Output::TreatAsWithdraw {
                            prefixes,
                            reason: e.reason,
                        });
                    } else {
                        self.fsm_error(now, "UPDATE before Established", out);
                    }
                    return;
                }
                // Events 21, 22, 28: "sends a NOTIFICATION message with the
                // appropriate error code", ConnectRetryCounter + 1, Idle. A
                // malformed NOTIFICATION is not answered with one (§6.1).
                Reaction::SessionReset(n) => {
                    if bytes.get(18) != Some(&MessageType::Notification.code()) {
                        self.send_notification(&n, out);
                    }
                    self.connect_retry_counter = self.connect_retry_counter.saturating_add(1);
                    self.go_idle(now, DownReason::NotificationSent(n), true, out);
                    return;
                }
            },
        };
        match (self.state, message) {
            // Events 24/25 in any connected state: "drops the TCP
            // connection", Idle; never answer a NOTIFICATION with one.
            (_, Message::Notification(n)) => {
                self.connect_retry_counter = self.connect_retry_counter.saturating_add(1);
                self.go_idle(now, DownReason::NotificationReceived(n), true, out);
            }
            (State::OpenSent, Message::Open(open)) => self.on_open(now, open, out),
            // §8.2.2 OpenConfirm, event 26: "restarts the HoldTimer and
            // changes its state to Established."
            (State::OpenConfirm, Message::Keepalive) => {
                self.restart_hold(now, out);
                self.set_state(State::Established, out);
                if let Some(n) = &self.negotiated {
                    out.push(Output::SessionUp(Box::new(n.clone())));
                }
            }
            // §8.2.2 Established, event 26: "restarts its HoldTimer".
            (State::Established, Message::Keepalive) => self.restart_hold(now, out),
            // §8.2.2 Established, event 27: "processes the message,
            // restarts its HoldTimer".
            (State::Established, Message::Update(u)) => {
                self.restart_hold(now, out);
                out.push(Output::UpdateReceived(u));
            }
            // RFC 2918 §4: re-advertise the family; "If a BGP speaker
            // receives from its peer a ROUTE-REFRESH message with the
            // <AFI, SAFI> that the speaker didn't advertise to the peer at
            // the session establishment time via capability advertisement,
            // the speaker shall ignore such a message."
            (State::Established, Message::RouteRefresh(rr)) => {
                self.restart_hold(now, out);
                let ok = self
                    .negotiated
                    .as_ref()
                    .is_some_and(|n| n.route_refresh && n.families.contains(&rr.family));
                if ok && rr.subtype == 0 {
                    out.push(Output::RouteRefreshRequested(rr.family));
                }
            }
            // Everything else is an FSM error (RFC 6608 subcodes).
            (_, m) => {
                let what = match m.message_type() {
                    MessageType::Open => "unexpected OPEN",
                    MessageType::Update => "unexpected UPDATE",
                    MessageType::Keepalive => "unexpected KEEPALIVE",
                    _ => "unexpected message",
                };
                self.fsm_error(now, what, out)
            }
        }
    }

    /// Event 19 in OpenSent.
    fn on_open(&mut self, now: u64, open: Open, out: &mut Vec<Output>) {
        // Event 22 (BGPOpenMsgErr) for the checks needing configuration.
        if let Err(n) = validate_open(&self.config, &open) {
            self.send_notification(&n, out);
            self.connect_retry_counter = self.connect_retry_counter.saturating_add(1);
            self.go_idle(now, DownReason::NotificationSent(n), true, out);
            return;
        }
        let negotiated = negotiate(&self.config, &open);
        // §8.2.2 OpenSent, event 19: "sends a KEEPALIVE message, sets a
        // KeepaliveTimer ..., sets the HoldTimer according to the
        // negotiated value, and changes its state to OpenConfirm." §4.2:
        // "If the value of the Hold Time field is zero, then ... the Hold
        // Timer and the KeepAlive Timer are not started."
        self.emit(MessageType::Keepalive, keepalive_bytes(), out);
        let hold = negotiated.hold_time;
        self.negotiated = Some(negotiated);
        self.peer_open = Some(open);
        if hold == 0 {
            self.cancel(Timer::Hold, out);
        } else {
            self.restart_hold(now, out);
            self.restart_keepalive(now, out);
        }
        self.set_state(State::OpenConfirm, out);
    }

    // -- helpers -------------------------------------------------------

    fn fsm_error(&mut self, now: u64, _what: &str, out: &mut Vec<Output>) {
        // RFC 6608 §4: the subcode names the state the error happened in.
        let subcode = match self.state {
            State::OpenSent => fsm_subcode::UNEXPECTED_IN_OPEN_SENT,
            State::OpenConfirm => fsm_subcode::UNEXPECTED_IN_OPEN_CONFIRM,
            State::Established => fsm_subcode::UNEXPECTED_IN_ESTABLISHED,
            _ => fsm_subcode::UNSPECIFIED,
        };
        let n = Notification::new(error_code::FSM, subcode);
        if matches!(
            self.state,
            State::OpenSent | State::OpenConfirm | State::Established
        ) {
            self.send_notification(&n, out);
        }
        self.connect_retry_counter = self.connect_retry_counter.saturating_add(1);
        self.go_idle(now, DownReason::NotificationSent(n), true, out);
    }

    fn emit(&mut self, kind: MessageType, bytes: Vec<u8>, out: &mut Vec<Output>) {
        let i = usize::from(kind.code() - 1);
        self.counters.sent[i] = self.counters.sent[i].saturating_add(1);
        out.push(Output::Send { kind, bytes });
    }

    fn send_notification(&mut self, n: &Notification, out: &mut Vec<Output>) {
        let mut n = n.clone();
        // Data is cut to fit the 4096-octet maximum.
        n.data.truncate(MAX_MESSAGE_LEN - 21);
        if let Ok(bytes) = Message::Notification(n).to_bytes(&self.context()) {
            self.emit(MessageType::Notification, bytes, out);
        }
    }

    fn set_state(&mut self, to: State, out: &mut Vec<Output>) {
        if self.state != to {
            out.push(Output::StateChange {
                from: self.state,
                to,
            });
            self.state = to;
        }
    }

    fn arm(&mut self, timer: Timer, deadline: u64, out: &mut Vec<Output>) {
        self.deadlines[timer.index()] = Some(deadline);
        out.push(Output::ArmTimer { timer, deadline });
    }

    fn cancel(&mut self, timer: Timer, out: &mut Vec<Output>) {
        if self.deadlines[timer.index()].take().is_some() {
            out.push(Output::CancelTimer(timer));
        }
    }

    fn clear_timers(&mut self, out: &mut Vec<Output>) {
        for t in Timer::ALL {
            self.cancel(t, out);
        }
    }

    fn arm_connect_retry(&mut self, now: u64, out: &mut Vec<Output>) {
        let d = u64::from(self.config.connect_retry_time).max(1) * 1000;
        self.arm(Timer::ConnectRetry, now.saturating_add(d), out);
    }

    fn restart_hold(&mut self, now: u64, out: &mut Vec<Output>) {
        if let Some(n) = &self.negotiated {
            if n.hold_time > 0 {
                let d = u64::from(n.hold_time) * 1000;
                self.arm(Timer::Hold, now.saturating_add(d), out);
            }
        }
    }

    fn restart_keepalive(&mut self, now: u64, out: &mut Vec<Output>) {
        if let Some(n) = &self.negotiated {
            if n.keepalive_time > 0 {
                let d = u64::from(n.keepalive_time) * 1000;
                self.arm(Timer::Keepalive, now.saturating_add(d), out);
            }
        }
    }

    /// Leaves for Idle: "releases all BGP resources, drops the TCP
    /// connection" (§8.2.2), and schedules an automatic restart when
    /// configured and `restart` is set.
    fn go_idle(&mut self, now: u64, reason: DownReason, restart: bool, out: &mut Vec<Output>) {
        let from = self.state;
        if from == State::Idle {
            return;
        }
        self.clear_timers(out);
        if from != State::Active {
            out.push(Output::CloseTcp);
        }
        if matches!(
            from,
            State::OpenSent | State::OpenConfirm | State::Established
        ) {
            out.push(Output::SessionDown {
                reason,
                was_established: from == State::Established,
            });
        }
        self.direction = None;
        self.set_state(State::Idle, out);
        if restart && self.started && self.config.idle_hold_time_ms > 0 {
            let d = self.config.idle_hold_time_ms;
            self.arm(Timer::IdleHold, now.saturating_add(d), out);
        }
    }
}

fn format_timer(t: Timer) -> String {
    format!("{t:?} timer in a state where it cannot run")
}

fn keepalive_bytes() -> Vec<u8> {
    let mut v = MARKER.to_vec();
    v.extend_from_slice(&[0, 19, MessageType::Keepalive.code()]);
    v
}

/// The OPEN checks that need the configuration (RFC 4271 §6.2, RFC 6793
/// §4.1, RFC 6286 §2.2). Version, hold time 1–2 s and a zero identifier
/// were already rejected by the decoder.
pub fn validate_open(config: &Config, open: &Open) -> Result<(), Notification> {
    // §6.2: "If the Autonomous System field of the OPEN message is
    // unacceptable, then the Error Subcode MUST be set to Bad Peer AS."
    // RFC 6793 §4.1: with the capability, the AS is the capability's; a
    // peer without it announces its AS in My AS (AS_TRANS is then a real,
    // if odd, AS number).
    // RFC 6793 §4.1: a NEW speaker "MUST also carry its own two-octet AS
    // number ... in the My Autonomous System field", AS_TRANS when its AS
    // needs four octets. A capability that disagrees with My AS (or names
    // AS 0, RFC 7607) means the peer's AS is not what either field says.
    if let Some(four) = open.four_octet_as() {
        let consistent = if open.my_as == crate::message::AS_TRANS {
            four != 0
        } else {
            four == u32::from(open.my_as)
        };
        if !consistent {
            return Err(Notification::new(
                error_code::OPEN_MESSAGE,
                open_subcode::BAD_PEER_AS,
            ));
        }
    }
    if open.asn() != config.peer_as {
        return Err(Notification::new(
            error_code::OPEN_MESSAGE,
            open_subcode::BAD_PEER_AS,
        ));
    }
    // RFC 6286 §2.2: "If the BGP Identifier field of the OPEN message is
    // zero, or if it is the same as the BGP Identifier of the local BGP
    // speaker and the message is from an internal peer, then the Error
    // Subcode is set to 'Bad BGP Identifier'."
    if open.bgp_id.is_unspecified() || (!config.is_ebgp() && open.bgp_id == config.local_id) {
        return Err(Notification::new(
            error_code::OPEN_MESSAGE,
            open_subcode::BAD_BGP_IDENTIFIER,
        ));
    }
    // §6.2 "An implementation MUST reject Hold Time values of one or two
    // seconds." (checked again for OPENs built by hand).
    // and §6.2 "MAY reject connections on the basis of the Hold Time":
    // below the configured floor (a 0 turns liveness off altogether).
    if open.hold_time == 1 || open.hold_time == 2 || open.hold_time < config.min_hold_time {
        return Err(Notification::new(
            error_code::OPEN_MESSAGE,
            open_subcode::UNACCEPTABLE_HOLD_TIME,
        ));
    }
    Ok(())
}

/// Capability and timer negotiation (RFC 4271 §4.2, §10; RFC 5492).
pub fn negotiate(config: &Config, open: &Open) -> Negotiated {
    // §4.2: "the calculated value ... MUST be the smaller of its
    // configured Hold Time and the Hold Time received in the OPEN".
    let hold_time = config.hold_time.min(open.hold_time);
    // §10: "a reasonable maximum time between KEEPALIVE messages would be
    // one third of the Hold Time interval."
    let keepalive_time = hold_time / 3;
    let mut peer_families = open.families();
    if peer_families.is_empty() {
        // RFC 4760 §8 / RFC 4271: without the capability, IPv4 unicast.
        peer_families.push(Family::IPV4_UNICAST);
    }
    let families = config
        .families
        .iter()
        .copied()
        .filter(|f| peer_families.contains(f))
        .collect();
    Negotiated {
        peer_as: open.asn(),
        peer_id: open.bgp_id,
        ebgp: config.is_ebgp(),
        four_octet_as: open.four_octet_as().is_some(),
        hold_time,
        keepalive_time,
        families,
        route_refresh: config.route_refresh && open.route_refresh(),
        graceful_restart: config
            .graceful_restart
            .and(open.graceful_restart().cloned()),
        peer_capabilities: open.capabilities.clone(),
    }
}

#[cfg(test)]
mod tests {
    //! One behaviour per test (rustybgp's fsm.rs style): state and outputs
    //! after one input.

    use super::*;

    fn cfg() -> Config {
        let mut c = Config::new(65000, 65001, Ipv4Addr::new(192, 0, 2, 1));
        c.hold_time = 9;
        c.connect_retry_time = 5;
        c
    }

    fn peer_open(hold: u16) -> Vec<u8> {
        let mut p = Config::new(65001, 65000, Ipv4Addr::new(192, 0, 2, 2));
        p.hold_time = hold;
        Message::Open(p.open())
            .to_bytes(&Context::default())
            .unwrap()
    }

    fn keepalive() -> Vec<u8> {
        keepalive_bytes()
    }

    fn run(s: &mut Session, now: u64, i: Input<'_>) -> Vec<Output> {
        let mut out = Vec::new();
        s.process(now, i, &mut out);
        out
    }

    fn sent_types(out: &[Output]) -> Vec<MessageType> {
        out.iter()
            .filter_map(|o| match o {
                Output::Send { kind, .. } => Some(*kind),
                _ => None,
            })
            .collect()
    }

    fn notification(out: &[Output]) -> Option<Notification> {
        out.iter().find_map(|o| match o {
            Output::Send {
                kind: MessageType::Notification,
                bytes,
            } => match decode(bytes, &Context::default()) {
                Ok(Message::Notification(n)) => Some(n),
                _ => None,
            },
            _ => None,
        })
    }

    fn in_state(state: State) -> Session {
        let mut s = Session::new(cfg());
        if state == State::Idle {
            return s;
        }
        if state == State::Active {
            run(&mut s, 0, Input::ManualStartPassive);
            return s;
        }
        run(&mut s, 0, Input::ManualStart);
        if state == State::Connect {
            return s;
        }
        run(&mut s, 0, Input::TcpCrAcked);
        if state == State::OpenSent {
            return s;
        }
        run(&mut s, 0, Input::Received(&peer_open(90)));
        if state == State::OpenConfirm {
            return s;
        }
        run(&mut s, 0, Input::Received(&keepalive()));
        assert_eq!(s.state(), State::Established);
        s
    }

    #[test]
    fn idle_manual_start_connects_and_arms_connect_retry() {
        let mut s = Session::new(cfg());
        let out = run(&mut s, 1000, Input::ManualStart);
        assert_eq!(s.state(), State::Connect);
        assert!(out.contains(&Output::Connect));
        assert!(out.contains(&Output::ArmTimer {
            timer: Timer::ConnectRetry,
            deadline: 6000
        }));
    }

    #[test]
    fn idle_passive_start_listens_in_active() {
        let mut s = Session::new(cfg());
        let out = run(&mut s, 0, Input::ManualStartPassive);
        assert_eq!(s.state(), State::Active);
        assert!(!out.contains(&Output::Connect));
    }

    #[test]
    fn idle_refuses_incoming_connections() {
        let mut s = Session::new(cfg());
        let out = run(&mut s, 0, Input::TcpConnectionConfirmed);
        assert_eq!(s.state(), State::Idle);
        assert_eq!(out, vec![Output::CloseTcp]);
    }

    #[test]
    fn connect_retry_expiry_in_connect_retries() {
        let mut s = in_state(State::Connect);
        let out = run(&mut s, 5000, Input::Timer(Timer::ConnectRetry));
        assert_eq!(s.state(), State::Connect);
        assert!(out.contains(&Output::Connect));
        assert_eq!(s.deadline(Timer::ConnectRetry), Some(10_000));
    }

    #[test]
    fn early_timer_is_ignored() {
        let mut s = in_state(State::Connect);
        let out = run(&mut s, 4999, Input::Timer(Timer::ConnectRetry));
        assert!(out.is_empty());
        assert_eq!(s.state(), State::Connect);
    }

    #[test]
    fn connect_refused_goes_active() {
        let mut s = in_state(State::Connect);
        run(&mut s, 100, Input::TcpConnectionFails);
        assert_eq!(s.state(), State::Active);
        assert_eq!(s.deadline(Timer::ConnectRetry), Some(5100));
    }

    #[test]
    fn active_connect_retry_expiry_initiates_connect() {
        let mut s = in_state(State::Active);
        let out = run(&mut s, 5000, Input::Timer(Timer::ConnectRetry));
        assert_eq!(s.state(), State::Connect);
        assert!(out.contains(&Output::Connect));
    }

    #[test]
    fn passive_only_peer_keeps_listening_on_connect_retry() {
        let mut c = cfg();
        c.passive = true;
        let mut s = Session::new(c);
        run(&mut s, 0, Input::ManualStart);
        let out = run(&mut s, 5000, Input::Timer(Timer::ConnectRetry));
        assert_eq!(s.state(), State::Active);
        assert!(!out.contains(&Output::Connect));
    }

    #[test]
    fn tcp_up_sends_open_and_arms_a_4_minute_hold_timer() {
        let mut s = in_state(State::Connect);
        let out = run(&mut s, 0, Input::TcpCrAcked);
        assert_eq!(s.state(), State::OpenSent);
        assert_eq!(sent_types(&out), vec![MessageType::Open]);
        assert_eq!(s.deadline(Timer::Hold), Some(240_000));
        assert_eq!(s.deadline(Timer::ConnectRetry), None);
        assert_eq!(s.direction(), Some(Direction::Outgoing));
    }

    #[test]
    fn open_sent_valid_open_sends_keepalive_and_goes_open_confirm() {
        let mut s = in_state(State::OpenSent);
        let out = run(&mut s, 1000, Input::Received(&peer_open(90)));
        assert_eq!(s.state(), State::OpenConfirm);
        assert_eq!(sent_types(&out), vec![MessageType::Keepalive]);
        assert_eq!(s.deadline(Timer::Hold), Some(10_000));
        assert_eq!(s.deadline(Timer::Keepalive), Some(4000));
    }

    #[test]
    fn hold_time_zero_disables_hold_and_keepalive_timers() {
        let mut s = in_state(State::OpenSent);
        let mut c = s.config().clone();
        c.min_hold_time = 0;
        s.set_config(c);
        run(&mut s, 0, Input::Received(&peer_open(0)));
        assert_eq!(s.negotiated().unwrap().hold_time, 0);
        assert_eq!(s.deadline(Timer::Hold), None);
        assert_eq!(s.deadline(Timer::Keepalive), None);
    }

    #[test]
    fn hold_time_below_the_floor_gets_unacceptable_hold_time() {
        // The default floor (3 s) refuses a peer's 0: liveness off.
        let mut s = in_state(State::OpenSent);
        let out = run(&mut s, 0, Input::Received(&peer_open(0)));
        let n = notification(&out).unwrap();
        assert_eq!((n.code, n.subcode), (2, 6));
        assert_eq!(s.state(), State::Idle);
        // A floor of 30 s refuses 9 and accepts 30.
        let mut c = cfg();
        c.min_hold_time = 30;
        c.hold_time = 90;
        let open = |h| {
            let mut s = Session::new(c.clone());
            run(&mut s, 0, Input::ManualStart);
            run(&mut s, 0, Input::TcpCrAcked);
            let out = run(&mut s, 0, Input::Received(&peer_open(h)));
            (notification(&out), s.state())
        };
        let (n, st) = open(9);
        assert_eq!(n.map(|n| (n.code, n.subcode)), Some((2, 6)));
        assert_eq!(st, State::Idle);
        assert_eq!(open(30), (None, State::OpenConfirm));
    }

    #[test]
    fn four_octet_capability_must_agree_with_my_as() {
        let check = |my_as: u16, four: u32| {
            let mut p = Config::new(65001, 65000, Ipv4Addr::new(192, 0, 2, 2)).open();
            p.my_as = my_as;
            p.capabilities
                .retain(|c| !matches!(c, Capability::FourOctetAs(_)));
            p.capabilities.push(Capability::FourOctetAs(four));
            let mut c = cfg();
            c.peer_as = four;
            validate_open(&c, &p).map_err(|n| (n.code, n.subcode))
        };
        assert_eq!(check(65001, 65001), Ok(()));
        assert_eq!(check(AS_TRANS, 4_200_000_001), Ok(()));
        assert_eq!(check(65003, 65001), Err((2, 2)), "My AS differs");
        assert_eq!(check(65003, 4_200_000_001), Err((2, 2)), "not AS_TRANS");
        assert_eq!(check(AS_TRANS, 0), Err((2, 2)), "AS 0 (RFC 7607)");
    }

    #[test]
    fn open_in_established_gets_fsm_error_subcode_3() {
        let mut s = in_state(State::Established);
        let out = run(&mut s, 0, Input::Received(&peer_open(9)));
        let n = notification(&out).unwrap();
        assert_eq!((n.code, n.subcode), (5, 3));
        assert!(out.contains(&Output::CloseTcp));
        assert_eq!(s.state(), State::Idle);
    }

    #[test]
    fn open_from_the_wrong_as_gets_bad_peer_as() {
        let mut s = in_state(State::OpenSent);
        let mut p = Config::new(65002, 65000, Ipv4Addr::new(192, 0, 2, 2));
        p.hold_time = 90;
        let bytes = Message::Open(p.open())
            .to_bytes(&Context::default())
            .unwrap();
        let out = run(&mut s, 0, Input::Received(&bytes));
        let n = notification(&out).unwrap();
        assert_eq!((n.code, n.subcode), (2, 2));
        assert_eq!(s.state(), State::Idle);
    }

    #[test]
    fn ibgp_open_with_our_identifier_gets_bad_bgp_identifier() {
        let mut c = cfg();
        c.peer_as = 65000;
        let mut s = Session::new(c.clone());
        run(&mut s, 0, Input::ManualStart);
        run(&mut s, 0, Input::TcpCrAcked);
        let bytes = Message::Open(c.open())
            .to_bytes(&Context::default())
            .unwrap();
        let n = notification(&run(&mut s, 0, Input::Received(&bytes))).unwrap();
        assert_eq!((n.code, n.subcode), (2, 3));
    }

    #[test]
    fn ebgp_open_with_our_identifier_is_accepted() {
        let mut s = in_state(State::OpenSent);
        let mut p = Config::new(65001, 65000, Ipv4Addr::new(192, 0, 2, 1));
        p.hold_time = 90;
        let bytes = Message::Open(p.open())
            .to_bytes(&Context::default())
            .unwrap();
        run(&mut s, 0, Input::Received(&bytes));
        assert_eq!(s.state(), State::OpenConfirm);
    }

    #[test]
    fn four_octet_peer_as_is_matched_through_the_capability() {
        let mut c = cfg();
        c.peer_as = 4_200_000_000;
        let mut s = Session::new(c);
        run(&mut s, 0, Input::ManualStart);
        run(&mut s, 0, Input::TcpCrAcked);
        let mut p = Config::new(4_200_000_000, 65000, Ipv4Addr::new(192, 0, 2, 2));
        p.hold_time = 90;
        let open = p.open();
        assert_eq!(open.my_as, AS_TRANS);
        let bytes = Message::Open(open).to_bytes(&Context::default()).unwrap();
        run(&mut s, 0, Input::Received(&bytes));
        assert_eq!(s.state(), State::OpenConfirm);
        assert_eq!(s.negotiated().unwrap().peer_as, 4_200_000_000);
    }

    #[test]
    fn peer_without_mp_capability_gets_ipv4_unicast_only() {
        let mut s = in_state(State::OpenSent);
        let mut p = Config::new(65001, 65000, Ipv4Addr::new(192, 0, 2, 2));
        p.families.clear();
        let bytes = Message::Open(p.open())
            .to_bytes(&Context::default())
            .unwrap();
        run(&mut s, 0, Input::Received(&bytes));
        assert_eq!(s.negotiated().unwrap().families, vec![Family::IPV4_UNICAST]);
    }

    #[test]
    fn keepalive_in_open_sent_is_an_fsm_error() {
        let mut s = in_state(State::OpenSent);
        let n = notification(&run(&mut s, 0, Input::Received(&keepalive()))).unwrap();
        assert_eq!(
            (n.code, n.subcode),
            (error_code::FSM, fsm_subcode::UNEXPECTED_IN_OPEN_SENT)
        );
        assert_eq!(s.state(), State::Idle);
    }

    #[test]
    fn tcp_failure_in_open_sent_goes_back_to_active() {
        let mut s = in_state(State::OpenSent);
        run(&mut s, 0, Input::TcpConnectionFails);
        assert_eq!(s.state(), State::Active);
        assert!(s.deadline(Timer::ConnectRetry).is_some());
    }

    #[test]
    fn open_confirm_keepalive_goes_established_with_session_up() {
        let mut s = in_state(State::OpenConfirm);
        let out = run(&mut s, 0, Input::Received(&keepalive()));
        assert_eq!(s.state(), State::Established);
        assert!(out
            .iter()
            .any(|o| matches!(o, Output::SessionUp(n) if n.peer_as == 65001)));
    }

    #[test]
    fn update_in_open_confirm_is_an_fsm_error() {
        let mut s = in_state(State::OpenConfirm);
        let eor = Message::Update(Update::default())
            .to_bytes(&Context::default())
            .unwrap();
        let n = notification(&run(&mut s, 0, Input::Received(&eor))).unwrap();
        assert_eq!(
            (n.code, n.subcode),
            (error_code::FSM, fsm_subcode::UNEXPECTED_IN_OPEN_CONFIRM)
        );
    }

    #[test]
    fn open_confirm_keepalive_timer_sends_keepalive() {
        let mut s = in_state(State::OpenConfirm);
        let out = run(&mut s, 3000, Input::Timer(Timer::Keepalive));
        assert_eq!(sent_types(&out), vec![MessageType::Keepalive]);
        assert_eq!(s.deadline(Timer::Keepalive), Some(6000));
    }

    #[test]
    fn hold_timer_expiry_sends_hold_timer_expired() {
        let mut s = in_state(State::Established);
        let out = run(&mut s, 9000, Input::Timer(Timer::Hold));
        let n = notification(&out).unwrap();
        assert_eq!((n.code, n.subcode), (error_code::HOLD_TIMER_EXPIRED, 0));
        assert_eq!(s.state(), State::Idle);
        assert!(out.iter().any(|o| matches!(
            o,
            Output::SessionDown {
                reason: DownReason::HoldTimerExpired,
                was_established: true
            }
        )));
    }

    #[test]
    fn session_that_failed_restarts_after_idle_hold() {
        let mut s = in_state(State::Established);
        run(&mut s, 9000, Input::Timer(Timer::Hold));
        assert_eq!(s.deadline(Timer::IdleHold), Some(14_000));
        let out = run(&mut s, 14_000, Input::Timer(Timer::IdleHold));
        assert_eq!(s.state(), State::Connect);
        assert!(out.contains(&Output::Connect));
    }

    #[test]
    fn established_update_restarts_hold_timer_and_is_delivered() {
        let mut s = in_state(State::Established);
        let eor = Message::Update(Update::default())
            .to_bytes(&Context::default())
            .unwrap();
        let out = run(&mut s, 5000, Input::Received(&eor));
        assert_eq!(s.deadline(Timer::Hold), Some(14_000));
        assert!(out.contains(&Output::UpdateReceived(Update::default())));
    }

    #[test]
    fn established_notification_goes_idle_without_answering() {
        let mut s = in_state(State::Established);
        let n = Notification::administrative_shutdown("bye");
        let bytes = Message::Notification(n.clone())
            .to_bytes(&Context::default())
            .unwrap();
        let out = run(&mut s, 0, Input::Received(&bytes));
        assert!(sent_types(&out).is_empty());
        assert!(out.contains(&Output::SessionDown {
            reason: DownReason::NotificationReceived(n),
            was_established: true,
        }));
    }

    #[test]
    fn route_refresh_for_a_negotiated_family_is_passed_on() {
        let mut s = in_state(State::Established);
        let rr = Message::RouteRefresh(RouteRefresh {
            family: Family::IPV6_UNICAST,
            subtype: 0,
        });
        let out = run(
            &mut s,
            0,
            Input::Received(&rr.to_bytes(&Context::default()).unwrap()),
        );
        assert!(out.contains(&Output::RouteRefreshRequested(Family::IPV6_UNICAST)));
    }

    #[test]
    fn route_refresh_for_another_family_is_ignored() {
        let mut s = in_state(State::Established);
        let rr = Message::RouteRefresh(RouteRefresh {
            family: Family {
                afi: Afi(25),
                safi: Safi(70),
            },
            subtype: 0,
        });
        let out = run(
            &mut s,
            0,
            Input::Received(&rr.to_bytes(&Context::default()).unwrap()),
        );
        assert!(!out
            .iter()
            .any(|o| matches!(o, Output::RouteRefreshRequested(_))));
        assert_eq!(s.state(), State::Established);
    }

    #[test]
    fn sending_an_update_restarts_the_keepalive_timer() {
        let mut s = in_state(State::Established);
        let mut out = Vec::new();
        s.send(2000, &Message::Update(Update::default()), &mut out)
            .unwrap();
        assert_eq!(s.deadline(Timer::Keepalive), Some(5000));
    }

    #[test]
    fn sending_before_established_is_refused() {
        let mut s = in_state(State::OpenConfirm);
        let mut out = Vec::new();
        let e = s
            .send(0, &Message::Update(Update::default()), &mut out)
            .unwrap_err();
        assert_eq!(e, SendError::NotEstablished(State::OpenConfirm));
        assert!(out.is_empty());
    }

    #[test]
    fn manual_stop_in_connect_closes_without_notification() {
        let mut s = in_state(State::Connect);
        let out = run(&mut s, 0, Input::ManualStop(""));
        assert!(sent_types(&out).is_empty());
        assert!(out.contains(&Output::CloseTcp));
        assert_eq!(s.state(), State::Idle);
    }

    #[test]
    fn automatic_stop_sends_cease_other_configuration_change() {
        let mut s = in_state(State::Established);
        let n = notification(&run(&mut s, 0, Input::AutomaticStop)).unwrap();
        assert_eq!(
            (n.code, n.subcode),
            (6, cease_subcode::OTHER_CONFIGURATION_CHANGE)
        );
    }

    #[test]
    fn message_counters_count_by_type() {
        let s = in_state(State::Established);
        assert_eq!(s.counters().sent, [1, 0, 0, 1, 0]);
        assert_eq!(s.counters().received, [1, 0, 0, 1, 0]);
    }

    #[test]
    fn error_display_names_reason_and_reaction() {
        let e = decode(&[0u8; 19], &Context::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "marker is not all ones: session reset, send message-header-error(1)/1"
        );
    }
}

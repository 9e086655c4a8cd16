//! One neighbor's task: the thin tokio driver around [`bgp::peer::Peer`].
//!
//! ```text
//!   listener task ──Incoming(stream)──┐        ┌── reader task (per TCP):
//!   Speaker ──Command────────────────►│        │   split_message → Event::Message
//!   watch<VipSet> ──changed──────────►│ run()  │◄─ Event::Closed
//!   sleep_until(next deadline) ──────►│  Peer  │◄─ connect task: Event::Connected
//!                                     └──┬─────┘
//!            Output::Send ──► writer task (per TCP) ──► socket
//!            Output::Connect ──► connect task (TTL, MD5, bind self IP)
//!            Output::CloseTcp ──► drop the writer's queue (flush, FIN)
//! ```
//!
//! The task owns everything of its neighbor; other tasks only talk to it
//! through channels, and it publishes a [`Status`] snapshot for `show` and
//! metrics. Timers are the FSM's own deadlines (`Peer::next_deadline`, the
//! same instants its `ArmTimer`/`CancelTimer` orders name): one
//! `sleep_until` on the earliest, then `Input::Timer` for each one due. The
//! FSM's automatic restart is off (`idle_hold_time_ms = 0`): this task
//! restarts an Idle session itself after a delay that grows with the
//! failures in a row (1 s three times, then doubling up to 60 s; back to
//! 1 s once Established), the peer oscillation damping of RFC 4271 §8.1.1.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bgp::fsm::{self, DownReason, Input, Negotiated, Output, State};
use bgp::peer::{Peer, PeerInput, SessionId};
use bgp::{Family, Message, MessageType, Prefix, Update};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::sleep_until;

use super::policy::{self, Scope, VipSet};
use super::{gtsm, md5};

/// How long one connection attempt may take before it counts as failed.
/// A peer with a different MD5 password never answers (its kernel drops
/// our SYNs), so this is also how soon that is noticed.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The usual first delay before an Idle session restarts, and the largest.
pub(crate) const RESTART_MIN: Duration = Duration::from_secs(1);
const RESTART_MAX: Duration = Duration::from_secs(60);

/// How long a closing connection may take to flush (NOTIFICATION, FIN).
const FLUSH_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a closing connection's reader keeps draining what the peer
/// still sends, waiting for its FIN (a slow path, a peer with a backlog of
/// UPDATEs): then the socket closes regardless.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The delay before the next restart after `failures` failed sessions in
/// a row (peer oscillation damping): `min` three times, then doubling up
/// to 60 s.
pub(crate) fn restart_delay(failures: u32, min: Duration) -> Duration {
    min.saturating_mul(1u32 << failures.saturating_sub(2).min(6))
        .min(RESTART_MAX)
}

/// Everything the task needs to know about its neighbor.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    /// The peer's address.
    pub peer: IpAddr,
    /// Its BGP port (179; tests use another).
    pub port: u16,
    /// Our self IP the session uses (bound before connecting).
    pub local: IpAddr,
    /// Next hops for our announcements.
    pub next_hops: (Option<Ipv4Addr>, Option<Ipv6Addr>),
    /// IP TTL / hop limit of our segments (eBGP multihop).
    pub ttl: u32,
    /// RFC 2385 key.
    pub md5: Option<md5::Key>,
    /// GTSM (RFC 5082): the smallest TTL accepted from the peer.
    pub min_ttl: Option<u8>,
    /// Received prefixes above which the session ends (RFC 4486).
    pub max_prefixes: usize,
    /// `advertiseIPv4`, `advertiseIPv6`.
    pub advertise: (bool, bool),
    /// The FSM's configuration.
    pub fsm: fsm::Config,
    /// First restart delay ([`RESTART_MIN`]; shorter in tests).
    pub restart_min: Duration,
}

/// Orders for the task.
#[derive(Debug)]
pub(crate) enum Command {
    /// The listener accepted a connection from this neighbor.
    Incoming(TcpStream),
    /// The neighbor cannot run safely (its MD5 key could not be installed
    /// on the listener): stay down, showing why.
    Hold(String),
    /// Re-announce everything with GRACEFUL_SHUTDOWN; answers whether a
    /// session was Established.
    GracefulShutdown(oneshot::Sender<bool>),
    /// Withdraw everything and announce nothing more, keeping the session
    /// (drain: the withdrawal must reach the peer before anything that may
    /// close the session); answers when the bytes are out.
    Withdraw(oneshot::Sender<()>),
    /// Withdraw everything, send Cease / Administrative Shutdown with this
    /// message, close, stay down; answers when the bytes are out.
    Stop(String, oneshot::Sender<()>),
    /// BFD went down: drop the session at once (no NOTIFICATION, RFC 5882
    /// §3.2) and stay down until `Up`.
    PeerDown,
    /// BFD is up: the session may come up again.
    PeerUp,
}

/// Messages from the socket tasks.
#[derive(Debug)]
enum Event {
    /// One whole message (or a bad 19-octet header, after which the reader
    /// stops).
    Message(SessionId, u64, Vec<u8>),
    /// The connection ended.
    Closed(SessionId, u64, Option<io::Error>),
    /// A connection attempt finished.
    Connected(SessionId, u64, io::Result<TcpStream>),
}

/// What `show` and metrics read; the task replaces it as things change.
#[derive(Debug, Clone)]
pub struct Status {
    pub local: IpAddr,
    pub state: State,
    pub established_at: Option<Instant>,
    pub last_change: Instant,
    pub established_transitions: u64,
    pub last_error: Option<String>,
    pub sent: [u64; 5],
    pub received: [u64; 5],
    /// What the session carries (shared: a snapshot is cheap to take).
    pub advertised: Arc<BTreeSet<Prefix>>,
    pub attributes: Option<bgp::advertise::RouteAttributes>,
    pub received_prefixes: usize,
    pub treat_as_withdraw: u64,
    /// Routes dropped for carrying our own AS on their path.
    pub as_path_loops: u64,
    pub negotiated: Option<Negotiated>,
    pub md5: bool,
    pub ttl: u32,
    pub bfd_up: bool,
    pub draining: bool,
    pub stopped: bool,
    /// Why the neighbor is held down (it will not start), if it is.
    pub held_down: Option<String>,
    /// GTSM's minimum TTL, when on.
    pub min_ttl: Option<u8>,
    /// The `maxPrefixes` limit and how often the peer went past it.
    pub max_prefixes: usize,
    pub max_prefixes_reached: u64,
}

impl Status {
    pub(crate) fn new(spec: &Spec) -> Status {
        Status {
            local: spec.local,
            state: State::Idle,
            established_at: None,
            last_change: Instant::now(),
            established_transitions: 0,
            last_error: None,
            sent: [0; 5],
            received: [0; 5],
            advertised: Arc::default(),
            attributes: None,
            received_prefixes: 0,
            treat_as_withdraw: 0,
            as_path_loops: 0,
            negotiated: None,
            md5: spec.md5.is_some(),
            ttl: spec.ttl,
            held_down: None,
            min_ttl: spec.min_ttl,
            max_prefixes: spec.max_prefixes,
            max_prefixes_reached: 0,
            bfd_up: true,
            draining: false,
            stopped: false,
        }
    }
}

/// One TCP connection of a session.
#[derive(Debug)]
struct Conn {
    gen: u64,
    tx: mpsc::UnboundedSender<Vec<u8>>,
    /// Dropped (or fired) to tell the reader to stop framing and drain.
    stop: oneshot::Sender<()>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

/// The task's state.
#[derive(Debug)]
pub(crate) struct Neighbor {
    spec: Spec,
    peer: Peer,
    epoch: tokio::time::Instant,
    conns: HashMap<SessionId, Conn>,
    attempts: HashMap<SessionId, (u64, JoinHandle<()>)>,
    closing: Vec<JoinHandle<()>>,
    gen: u64,
    events: mpsc::Sender<Event>,
    vips: VipSet,
    /// The Established session and what it negotiated.
    established: Option<(SessionId, Negotiated)>,
    /// What the Established session carries (Adj-RIB-Out).
    adj_out: BTreeSet<Prefix>,
    received: BTreeSet<Prefix>,
    draining: bool,
    stopped: bool,
    bfd_up: bool,
    started: bool,
    failures: u32,
    restart_at: Option<u64>,
    status: Status,
    shared: Arc<Mutex<Status>>,
}

impl Neighbor {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn at(&self, ms: u64) -> tokio::time::Instant {
        self.epoch + Duration::from_millis(ms)
    }

    fn admin_up(&self) -> bool {
        !self.stopped && self.bfd_up
    }

    fn publish(&mut self) {
        self.status.state = self.peer.state();
        self.status.draining = self.draining;
        self.status.stopped = self.stopped;
        self.status.bfd_up = self.bfd_up;
        self.status.received_prefixes = self.received.len();
        if let Ok(mut s) = self.shared.lock() {
            s.clone_from(&self.status);
        }
    }

    fn feed(&mut self, input: PeerInput<'_>) {
        let now = self.now();
        let mut out = Vec::new();
        self.peer.process(now, input, &mut out);
        self.execute(out);
    }

    /// Carries out the FSM's orders.
    fn execute(&mut self, out: Vec<(SessionId, Output)>) {
        for (id, o) in out {
            match o {
                Output::Connect => self.connect(id),
                Output::Send { kind, bytes } => {
                    self.status.sent[usize::from(kind.code() - 1)] += 1;
                    if kind == MessageType::Notification {
                        if let Ok(Message::Notification(n)) =
                            bgp::decode(&bytes, &bgp::Context::default())
                        {
                            tracing::warn!(session = id.0, notification = %n, "sending NOTIFICATION");
                            self.status.last_error = Some(format!("sent {n}"));
                        }
                    }
                    match self.conns.get(&id) {
                        Some(c) => {
                            let _ = c.tx.send(bytes);
                        }
                        None => tracing::debug!(session = id.0, ?kind, "no connection to send on"),
                    }
                }
                Output::CloseTcp => self.close(id),
                // Timers are read back from the FSM (`next_deadline`).
                Output::ArmTimer { .. } | Output::CancelTimer(_) => {}
                Output::StateChange { from, to } => {
                    tracing::info!(session = id.0, ?from, ?to, "BGP state");
                    self.status.last_change = Instant::now();
                }
                Output::SessionUp(n) => self.on_session_up(id, *n),
                Output::SessionDown {
                    reason,
                    was_established,
                } => self.on_session_down(id, reason, was_established),
                Output::UpdateReceived(u) => {
                    for p in u.withdrawn_prefixes() {
                        self.received.remove(&p);
                    }
                    if u.path_contains(self.spec.fsm.local_as) {
                        // Our own AS on the path: a loop (RFC 4271 §9.1.2),
                        // e.g. our VIPs reflected back by an eBGP peer.
                        // Not kept and not counted against maxPrefixes; it
                        // replaces (withdraws) an earlier route, as any
                        // new route for the prefix would.
                        let looped = u.announced();
                        self.status.as_path_loops += looped.len() as u64;
                        for p in looped {
                            self.received.remove(&p);
                        }
                        continue;
                    }
                    for p in u.announced() {
                        self.received.insert(p);
                        if self.received.len() > self.spec.max_prefixes {
                            self.max_prefixes_reached(id, family_of(&p));
                            break;
                        }
                    }
                }
                Output::TreatAsWithdraw { prefixes, reason } => {
                    tracing::warn!(
                        session = id.0,
                        reason,
                        prefixes = prefixes.len(),
                        "malformed UPDATE treated as withdraw (RFC 7606)"
                    );
                    self.status.treat_as_withdraw += 1;
                    for p in prefixes {
                        self.received.remove(&p);
                    }
                }
                Output::RouteRefreshRequested(family) => {
                    tracing::info!(session = id.0, %family, "route refresh requested");
                    let routes: Vec<Prefix> = self
                        .adj_out
                        .iter()
                        .filter(|p| family_of(p) == family)
                        .copied()
                        .collect();
                    self.announce(&routes);
                }
            }
        }
        self.schedule_restart();
    }

    /// RFC 4486: more prefixes than `maxPrefixes` ends the session with
    /// Cease / Maximum Number of Prefixes Reached, whose data is the
    /// family, and the limit (§4 of RFC 4486). Nothing is kept past it.
    fn max_prefixes_reached(&mut self, id: SessionId, family: Family) {
        let limit = u32::try_from(self.spec.max_prefixes).unwrap_or(u32::MAX);
        tracing::warn!(
            session = id.0,
            limit,
            "the peer sent more prefixes than maxPrefixes"
        );
        self.status.max_prefixes_reached = self.status.max_prefixes_reached.saturating_add(1);
        self.received.clear();
        let mut data = family.afi.0.to_be_bytes().to_vec();
        data.push(family.safi.0);
        data.extend_from_slice(&limit.to_be_bytes());
        let n = bgp::Notification {
            code: bgp::message::error_code::CEASE,
            subcode: bgp::message::cease_subcode::MAX_PREFIXES,
            data,
        };
        let now = self.now();
        let mut out = Vec::new();
        self.peer.cease(now, id, n, &mut out);
        self.execute(out);
    }

    fn schedule_restart(&mut self) {
        if self.started
            && self.admin_up()
            && self.restart_at.is_none()
            && self.peer.state() == State::Idle
        {
            let d = restart_delay(self.failures, self.spec.restart_min);
            self.failures = self.failures.saturating_add(1);
            self.restart_at = Some(self.now() + d.as_millis() as u64);
            tracing::debug!(
                delay_ms = d.as_millis() as u64,
                "session restarts after a delay"
            );
        }
    }

    fn on_session_up(&mut self, id: SessionId, n: Negotiated) {
        tracing::info!(
            session = id.0,
            peer_as = n.peer_as,
            peer_id = %n.peer_id,
            hold = n.hold_time,
            families = ?n.families.iter().map(ToString::to_string).collect::<Vec<_>>(),
            graceful_restart = n.graceful_restart.is_some(),
            "BGP session Established"
        );
        self.failures = 0;
        self.status.established_transitions += 1;
        self.status.established_at = Some(Instant::now());
        self.status.last_error = None;
        self.status.negotiated = Some(n.clone());
        self.established = Some((id, n.clone()));
        self.adj_out.clear();
        self.received.clear();
        // The initial table, then End-of-RIB for every family (RFC 4724
        // §2: "including the case when there is no update to send").
        let wanted = policy::desired(&self.vips, self.scope());
        self.adj_out = wanted.clone();
        self.announce(&wanted.into_iter().collect::<Vec<_>>());
        for u in bgp::advertise::end_of_rib(&n.families) {
            self.send_update(u);
        }
        self.status.advertised = Arc::new(self.adj_out.clone());
    }

    fn on_session_down(&mut self, id: SessionId, reason: DownReason, was_established: bool) {
        let why = match &reason {
            DownReason::NotificationReceived(n) => format!("received {n}"),
            DownReason::NotificationSent(n) => format!("sent {n}"),
            other => format!("{other:?}"),
        };
        if was_established {
            tracing::warn!(session = id.0, reason = %why, "BGP session down");
        } else {
            tracing::info!(session = id.0, reason = %why, "BGP connection closed before Established");
        }
        self.status.last_error = Some(why);
        if self.established.as_ref().is_some_and(|(e, _)| *e == id) {
            self.established = None;
            self.adj_out.clear();
            self.received.clear();
            self.status.established_at = None;
            self.status.advertised = Arc::default();
            self.status.attributes = None;
        }
    }

    fn scope(&self) -> Scope {
        match &self.established {
            Some((_, n)) => Scope::new(&n.families, self.spec.advertise, self.spec.next_hops),
            None => Scope {
                v4: false,
                v6: false,
            },
        }
    }

    fn attributes(&self) -> Option<bgp::advertise::RouteAttributes> {
        let (_, n) = self.established.as_ref()?;
        Some(policy::attributes(
            self.spec.fsm.local_as,
            n.ebgp,
            self.spec.next_hops,
            self.draining,
        ))
    }

    fn send_update(&mut self, u: Update) {
        let now = self.now();
        let mut out = Vec::new();
        match self.peer.send(now, &Message::Update(u), &mut out) {
            Ok(_) => self.execute(out),
            Err(e) => tracing::warn!(error = %e, "cannot send UPDATE"),
        }
    }

    fn announce(&mut self, routes: &[Prefix]) {
        let Some(attrs) = self.attributes() else {
            return;
        };
        if routes.is_empty() {
            return;
        }
        let ctx = self
            .established
            .as_ref()
            .map(|(_, n)| n.context())
            .unwrap_or_default();
        match bgp::advertise::announce(&attrs, routes, &ctx) {
            Ok(updates) => {
                tracing::info!(
                    routes = routes.len(),
                    messages = updates.len(),
                    draining = self.draining,
                    "announcing"
                );
                for u in updates {
                    self.send_update(u);
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot build announcements"),
        }
        self.status.attributes = Some(attrs);
    }

    fn withdraw(&mut self, routes: &[Prefix]) {
        if routes.is_empty() {
            return;
        }
        tracing::info!(routes = routes.len(), "withdrawing");
        for u in bgp::advertise::withdraw(routes) {
            self.send_update(u);
        }
    }

    /// The VIP set changed: send the difference.
    fn sync_routes(&mut self) {
        if self.established.is_none() || self.stopped {
            return;
        }
        let wanted = policy::desired(&self.vips, self.scope());
        let d = policy::diff(&self.adj_out, &wanted);
        if d.is_empty() {
            return;
        }
        self.withdraw(&d.withdraw);
        self.announce(&d.announce);
        self.adj_out = wanted;
        self.status.advertised = Arc::new(self.adj_out.clone());
    }

    // -- sockets ---------------------------------------------------------

    fn connect(&mut self, id: SessionId) {
        if let Some((_, h)) = self.attempts.remove(&id) {
            h.abort();
        }
        self.gen += 1;
        let gen = self.gen;
        let spec = self.spec.clone();
        let events = self.events.clone();
        let h = tokio::spawn(async move {
            let r = match tokio::time::timeout(CONNECT_TIMEOUT, connect(&spec)).await {
                Ok(r) => r,
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection attempt timed out",
                )),
            };
            let _ = events.send(Event::Connected(id, gen, r)).await;
        });
        self.attempts.insert(id, (gen, h));
    }

    fn install(&mut self, id: SessionId, stream: TcpStream) {
        self.close(id);
        let _ = stream.set_nodelay(true);
        self.gen += 1;
        let gen = self.gen;
        let (rd, wr) = stream.into_split();
        let (tx, rx) = mpsc::unbounded_channel();
        let (stop, stop_rx) = oneshot::channel();
        let reader = tokio::spawn(read_loop(id, gen, rd, self.events.clone(), stop_rx));
        let writer = tokio::spawn(write_loop(wr, rx));
        self.conns.insert(
            id,
            Conn {
                gen,
                tx,
                stop,
                reader,
                writer,
            },
        );
    }

    fn close(&mut self, id: SessionId) {
        if let Some((_, h)) = self.attempts.remove(&id) {
            h.abort();
        }
        if let Some(c) = self.conns.remove(&id) {
            // Dropping the queue lets the writer flush (a NOTIFICATION) and
            // send FIN; the reader keeps reading until the peer's FIN. The
            // socket is closed when both are done: closing it with unread
            // data would send a RST, which can overtake or discard what we
            // wrote (RFC 4271 §6: the NOTIFICATION goes *before* the close).
            drop(c.tx);
            drop(c.stop);
            self.closing.retain(|h| !h.is_finished());
            self.closing.push(c.writer);
            self.closing.push(c.reader);
        }
    }

    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Message(id, gen, bytes) => {
                if self.conns.get(&id).map(|c| c.gen) != Some(gen) {
                    return;
                }
                if let Some(k) = bytes.get(18).and_then(|t| MessageType::from_code(*t)) {
                    self.status.received[usize::from(k.code() - 1)] += 1;
                    if k == MessageType::Notification {
                        if let Ok(Message::Notification(n)) =
                            bgp::decode(&bytes, &bgp::Context::default())
                        {
                            tracing::warn!(session = id.0, notification = %n, "received NOTIFICATION");
                        }
                    }
                }
                self.feed(PeerInput::Session(id, Input::Received(&bytes)));
            }
            Event::Closed(id, gen, err) => {
                if self.conns.get(&id).map(|c| c.gen) != Some(gen) {
                    return;
                }
                tracing::debug!(session = id.0, error = ?err, "connection closed");
                self.conns.remove(&id);
                self.feed(PeerInput::Session(id, Input::TcpConnectionFails));
            }
            Event::Connected(id, gen, r) => {
                if self.attempts.get(&id).map(|a| a.0) != Some(gen) {
                    return;
                }
                self.attempts.remove(&id);
                match r {
                    Ok(stream) => {
                        tracing::debug!(session = id.0, "connected");
                        self.install(id, stream);
                        self.feed(PeerInput::Session(id, Input::TcpCrAcked));
                    }
                    Err(e) => {
                        self.on_connect_error(&e);
                        self.feed(PeerInput::Session(id, Input::TcpConnectionFails));
                    }
                }
            }
        }
    }

    fn on_connect_error(&mut self, e: &io::Error) {
        let dst = SocketAddr::new(self.spec.peer, self.spec.port);
        let (serious, message) = connect_error(self.spec.md5.is_some(), e);
        if serious {
            tracing::error!(peer = %dst, error = %e, "{message}");
        } else {
            tracing::info!(peer = %dst, error = %e, "{message}");
        }
        self.status.last_error = Some(message);
    }

    fn on_incoming(&mut self, stream: TcpStream) {
        let from = stream.peer_addr().ok();
        if !self.admin_up() {
            tracing::info!(
                ?from,
                "refusing a connection: the neighbor is administratively down"
            );
            return;
        }
        set_stream_ttl(&stream, self.spec.peer, self.spec.ttl);
        let now = self.now();
        let mut out = Vec::new();
        match self.peer.incoming(now, &mut out) {
            Some(id) => {
                tracing::debug!(?from, session = id.0, "accepted a connection");
                self.install(id, stream);
            }
            None => {
                tracing::info!(?from, state = ?self.peer.state(), "refusing a connection (collision rules)")
            }
        }
        self.execute(out);
    }

    fn on_timers(&mut self) {
        let now = self.now();
        for _ in 0..16 {
            match self.peer.next_deadline() {
                Some((id, t, d)) if d <= now => {
                    self.feed(PeerInput::Session(id, Input::Timer(t)));
                }
                _ => break,
            }
        }
        if self.restart_at.is_some_and(|r| r <= now) {
            self.restart_at = None;
            if self.admin_up() && self.peer.state() == State::Idle {
                tracing::debug!("restarting the session");
                self.feed(PeerInput::AutomaticStart);
            }
        }
    }

    fn next_wake(&self) -> Option<tokio::time::Instant> {
        let d = self.peer.next_deadline().map(|(_, _, d)| d);
        let w = match (d, self.restart_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        w.map(|ms| self.at(ms))
    }

    async fn flush_closing(&mut self) {
        let hs: Vec<JoinHandle<()>> = self.closing.drain(..).collect();
        for h in hs {
            let abort = h.abort_handle();
            if tokio::time::timeout(FLUSH_TIMEOUT, h).await.is_err() {
                abort.abort();
            }
        }
    }

    async fn on_command(&mut self, c: Command) {
        match c {
            Command::Incoming(s) => self.on_incoming(s),
            Command::Hold(why) => {
                self.stopped = true;
                self.restart_at = None;
                self.feed(PeerInput::ManualStop(""));
                self.status.held_down = Some(why.clone());
                self.status.last_error = Some(why);
            }
            Command::GracefulShutdown(reply) => {
                self.draining = true;
                let up = self.established.is_some();
                if up {
                    tracing::info!(
                        "graceful shutdown: re-announcing with GRACEFUL_SHUTDOWN (RFC 8326)"
                    );
                    let routes: Vec<Prefix> = self.adj_out.iter().copied().collect();
                    self.announce(&routes);
                }
                let _ = reply.send(up);
            }
            Command::Withdraw(reply) => {
                self.draining = true;
                let routes: Vec<Prefix> = self.adj_out.iter().copied().collect();
                self.withdraw(&routes);
                self.adj_out.clear();
                self.status.advertised = Arc::default();
                self.publish();
                self.flush_closing().await;
                let _ = reply.send(());
            }
            Command::Stop(msg, reply) => {
                self.stopped = true;
                self.restart_at = None;
                let routes: Vec<Prefix> = self.adj_out.iter().copied().collect();
                self.withdraw(&routes);
                self.adj_out.clear();
                self.status.advertised = Arc::default();
                self.feed(PeerInput::ManualStop(&msg));
                self.publish();
                self.flush_closing().await;
                let _ = reply.send(());
            }
            Command::PeerDown => {
                if !self.bfd_up {
                    return;
                }
                tracing::warn!("BFD down: dropping the BGP session at once");
                self.bfd_up = false;
                self.restart_at = None;
                let ids: Vec<SessionId> = self.peer.sessions().map(|(id, _)| id).collect();
                for id in ids {
                    self.feed(PeerInput::Session(id, Input::TcpConnectionFails));
                }
                // Stop the restart machinery (no NOTIFICATION: nothing is
                // connected any more).
                self.feed(PeerInput::ManualStop(""));
                self.status.last_error = Some("BFD down".into());
            }
            Command::PeerUp => {
                if self.bfd_up {
                    return;
                }
                tracing::info!("BFD up: the BGP session may come up");
                self.bfd_up = true;
                self.failures = 0;
                if !self.stopped && self.started {
                    self.feed(PeerInput::ManualStart);
                }
            }
        }
    }

    /// The task: runs until the command channel closes.
    pub(crate) async fn run(
        spec: Spec,
        mut vips: watch::Receiver<VipSet>,
        mut commands: mpsc::UnboundedReceiver<Command>,
        shared: Arc<Mutex<Status>>,
    ) {
        let (events, mut event_rx) = mpsc::channel(256);
        let mut cfg = spec.fsm.clone();
        cfg.idle_hold_time_ms = 0;
        let status = Status::new(&spec);
        let snapshot = vips.borrow_and_update().clone();
        let mut n = Neighbor {
            peer: Peer::new(cfg),
            spec,
            epoch: tokio::time::Instant::now(),
            conns: HashMap::new(),
            attempts: HashMap::new(),
            closing: Vec::new(),
            gen: 0,
            events,
            vips: snapshot,
            established: None,
            adj_out: BTreeSet::new(),
            received: BTreeSet::new(),
            draining: false,
            stopped: false,
            bfd_up: true,
            started: true,
            failures: 0,
            restart_at: None,
            status,
            shared,
        };
        tracing::info!(local = %n.spec.local, ttl = n.spec.ttl, md5 = n.spec.md5.is_some(), "neighbor starting");
        n.feed(PeerInput::ManualStart);
        n.publish();
        let mut vips_open = true;
        loop {
            let wake = n.next_wake();
            tokio::select! {
                Some(ev) = event_rx.recv() => n.on_event(ev),
                c = commands.recv() => match c {
                    Some(c) => n.on_command(c).await,
                    None => break,
                },
                _ = sleep_until(wake.unwrap_or_else(tokio::time::Instant::now)), if wake.is_some() => n.on_timers(),
                r = vips.changed(), if vips_open => match r {
                    Ok(()) => {
                        n.vips = vips.borrow_and_update().clone();
                        n.sync_routes();
                    }
                    Err(_) => vips_open = false,
                },
            }
            n.publish();
        }
        for (_, c) in n.conns.drain() {
            c.reader.abort();
            c.writer.abort();
        }
        for (_, (_, h)) in n.attempts.drain() {
            h.abort();
        }
    }
}

/// What a failed connection attempt means: whether it deserves an error
/// log, and the sentence for the log and `show`.
pub(crate) fn connect_error(md5: bool, e: &io::Error) -> (bool, String) {
    match e.kind() {
        // Linux drops segments whose MD5 signature is missing or wrong
        // without a word: the only symptom is silence.
        io::ErrorKind::TimedOut if md5 => (
            true,
            "no BGP session came up with TCP MD5 configured: the peer does not answer; \
             it may have a different password (its kernel logs \"MD5 Hash mismatch\" \
             or \"MD5 Hash failed\")"
                .into(),
        ),
        io::ErrorKind::Unsupported => (true, format!("cannot connect: {e}")),
        _ => (false, format!("connection attempt failed: {e}")),
    }
}

fn family_of(p: &Prefix) -> Family {
    match p {
        Prefix::V4(_) => Family::IPV4_UNICAST,
        Prefix::V6(_) => Family::IPV6_UNICAST,
    }
}

fn set_stream_ttl(stream: &TcpStream, peer: IpAddr, ttl: u32) {
    let r = if peer.is_ipv4() {
        stream.set_ttl(ttl)
    } else {
        socket2::SockRef::from(stream).set_unicast_hops_v6(ttl)
    };
    if let Err(e) = r {
        tracing::warn!(error = %e, ttl, "cannot set the TTL");
    }
}

/// One outgoing connection: TTL and MD5 before the SYN, bound to our self
/// IP.
async fn connect(spec: &Spec) -> io::Result<TcpStream> {
    use socket2::{Domain, Protocol, Socket, Type};
    let dst = SocketAddr::new(spec.peer, spec.port);
    let s = Socket::new(Domain::for_address(dst), Type::STREAM, Some(Protocol::TCP))?;
    s.set_nonblocking(true)?;
    if dst.is_ipv4() {
        s.set_ttl_v4(spec.ttl)?;
    } else {
        s.set_unicast_hops_v6(spec.ttl)?;
    }
    if let Some(k) = &spec.md5 {
        md5::set_key(&s, spec.peer, k)?;
    }
    if let Some(min) = spec.min_ttl {
        gtsm::set_min_ttl_for(&s, spec.peer, min)?;
    }
    s.bind(&SocketAddr::new(spec.local, 0).into())?;
    let sock = TcpSocket::from_std_stream(std::net::TcpStream::from(s));
    sock.connect(dst).await
}

/// Frames messages off the stream. A header error ends framing: the header
/// goes to the FSM, which answers it and closes. Once framing ends (or
/// `stop` fires: the connection is closing) the reader drains what the
/// peer still sends until its FIN, for at most [`DRAIN_TIMEOUT`], so that
/// our close is a FIN after the NOTIFICATION and not a RST.
async fn read_loop(
    id: SessionId,
    gen: u64,
    mut rd: OwnedReadHalf,
    tx: mpsc::Sender<Event>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut chunk = vec![0u8; 16384];
    if frame(id, gen, &mut rd, &tx, &mut stop, &mut chunk).await {
        let drain = async {
            while let Ok(n) = rd.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, drain).await;
    }
}

/// [`read_loop`]'s framing; true when the connection should be drained
/// (still open on the peer's side).
async fn frame(
    id: SessionId,
    gen: u64,
    rd: &mut OwnedReadHalf,
    tx: &mpsc::Sender<Event>,
    stop: &mut oneshot::Receiver<()>,
    chunk: &mut [u8],
) -> bool {
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    loop {
        let mut start = 0;
        loop {
            match bgp::split_message(&buf[start..]) {
                Ok(Some((msg, _))) => {
                    let n = msg.len();
                    if tx
                        .send(Event::Message(id, gen, msg.to_vec()))
                        .await
                        .is_err()
                    {
                        return true;
                    }
                    start += n;
                }
                Ok(None) => break,
                Err(_) => {
                    let header = buf[start..start + bgp::HEADER_LEN].to_vec();
                    let _ = tx.send(Event::Message(id, gen, header)).await;
                    return true;
                }
            }
        }
        buf.drain(..start);
        // Closing wins over more data: what follows is only drained.
        let r = tokio::select! {
            biased;
            _ = &mut *stop => return true,
            r = rd.read(chunk) => r,
        };
        match r {
            Ok(0) => {
                let _ = tx.send(Event::Closed(id, gen, None)).await;
                return false;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => {
                let _ = tx.send(Event::Closed(id, gen, Some(e))).await;
                return false;
            }
        }
    }
}

/// Writes queued messages, coalescing what is ready; on the queue's end
/// flushes and sends FIN.
async fn write_loop(mut wr: OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<Vec<u8>>) {
    let mut batch = Vec::with_capacity(65536);
    while let Some(first) = rx.recv().await {
        batch.clear();
        batch.extend_from_slice(&first);
        while batch.len() < 65536 {
            match rx.try_recv() {
                Ok(more) => batch.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        if wr.write_all(&batch).await.is_err() {
            return;
        }
    }
    let _ = wr.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_with_md5_says_the_password_may_differ() {
        let timeout = io::Error::new(io::ErrorKind::TimedOut, "connection attempt timed out");
        let (serious, m) = connect_error(true, &timeout);
        assert!(serious);
        assert!(
            m.contains("different password") && m.contains("MD5 Hash mismatch"),
            "{m}"
        );
        let (serious, m) = connect_error(false, &timeout);
        assert!(!serious && !m.contains("password"), "{m}");
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert!(!connect_error(true, &refused).1.contains("password"));
        let (serious, _) = connect_error(true, &io::Error::from(io::ErrorKind::Unsupported));
        assert!(serious);
    }

    #[test]
    fn restart_delay_doubles_after_three_failures_up_to_a_minute() {
        let d: Vec<u64> = (0..11)
            .map(|f| restart_delay(f, RESTART_MIN).as_secs())
            .collect();
        assert_eq!(d, vec![1, 1, 1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(restart_delay(u32::MAX, RESTART_MIN), RESTART_MAX);
    }
}

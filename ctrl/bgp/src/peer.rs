//! Connection collision detection (RFC 4271 §6.8): the second pure layer.
//!
//! # Model
//!
//! A [`Peer`] is one configured neighbor. It owns one [`Session`] per TCP
//! connection to that neighbor, at most two: normally one; two while a
//! connection we opened and one the peer opened race each other. Each
//! session has a stable [`SessionId`]; the driver tags every TCP
//! connection, timer and output with it.
//!
//! ```text
//!   driver ── PeerInput(id, …) ──► Peer ──► Session id=1 (outgoing)
//!          ◄─ (id, Output) ───────      └─► Session id=2 (incoming)
//!   Peer::incoming() → Some(id) | None (refuse the connection)
//! ```
//!
//! When one session learns the peer's BGP identifier (its OPEN, entering
//! OpenConfirm) while the other is in OpenConfirm, the collision is
//! resolved: "If the value of the local BGP Identifier is less than the
//! remote one, the local system closes the BGP connection that already
//! exists ... and accepts the BGP connection initiated by the remote
//! system. Otherwise, the local system closes the newly created BGP
//! connection" — that is, the connection opened by the speaker with the
//! higher identifier survives. With equal identifiers (eBGP, RFC 6286
//! §2.3) the speaker with the larger AS number wins. The loser sends Cease
//! / Connection Collision Resolution (event 23, OpenCollisionDump).
//!
//! "a connection collision with an existing BGP connection that is in the
//! Established state causes closing of the newly created connection" —
//! except when graceful restart was negotiated: then the peer has restarted
//! and the new connection replaces the old one (RFC 4724 §4.2).

use crate::fsm::{Config, Direction, Input, Output, SendError, Session, State};
use crate::message::Message;

/// A driver-visible handle of one session (one TCP connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u32);

/// Inputs of the peer layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerInput<'a> {
    /// Event 1 (or 4 when the configuration is passive).
    ManualStart,
    /// Event 2, with an RFC 8203 shutdown communication.
    ManualStop(&'a str),
    /// Event 3.
    AutomaticStart,
    /// Event 8.
    AutomaticStop,
    /// An input for one session (timers, TCP events, received messages).
    Session(SessionId, Input<'a>),
}

/// One neighbor: up to two sessions and collision resolution between them.
#[derive(Debug, Clone)]
pub struct Peer {
    config: Config,
    sessions: Vec<(SessionId, Session)>,
    next_id: u32,
}

impl Peer {
    /// A neighbor with one Idle session.
    pub fn new(config: Config) -> Self {
        Self {
            sessions: vec![(SessionId(1), Session::new(config.clone()))],
            config,
            next_id: 2,
        }
    }

    /// The sessions (one or two).
    pub fn sessions(&self) -> impl Iterator<Item = (SessionId, &Session)> {
        self.sessions.iter().map(|(id, s)| (*id, s))
    }

    /// The session carrying routes, if one is Established.
    pub fn established(&self) -> Option<(SessionId, &Session)> {
        self.sessions()
            .find(|(_, s)| s.state() == State::Established)
    }

    /// The most advanced session's state (for `show bgp summary`).
    pub fn state(&self) -> State {
        let rank = |s: State| match s {
            State::Idle => 0,
            State::Active => 1,
            State::Connect => 2,
            State::OpenSent => 3,
            State::OpenConfirm => 4,
            State::Established => 5,
        };
        self.sessions
            .iter()
            .map(|(_, s)| s.state())
            .max_by_key(|s| rank(*s))
            .unwrap_or(State::Idle)
    }

    /// The earliest timer deadline over all sessions.
    pub fn next_deadline(&self) -> Option<(SessionId, crate::fsm::Timer, u64)> {
        self.sessions
            .iter()
            .filter_map(|(id, s)| s.next_deadline().map(|(t, d)| (*id, t, d)))
            .min_by_key(|(_, _, d)| *d)
    }

    /// Handles one input.
    pub fn process(&mut self, now: u64, input: PeerInput<'_>, out: &mut Vec<(SessionId, Output)>) {
        match input {
            PeerInput::ManualStart => {
                let i = if self.config.passive {
                    Input::ManualStartPassive
                } else {
                    Input::ManualStart
                };
                self.start_first(now, i, out)
            }
            PeerInput::AutomaticStart => self.start_first(now, Input::AutomaticStart, out),
            PeerInput::ManualStop(msg) => self.broadcast(now, Input::ManualStop(msg), out),
            PeerInput::AutomaticStop => self.broadcast(now, Input::AutomaticStop, out),
            PeerInput::Session(id, input) => {
                let mut buf = Vec::new();
                if let Some((_, s)) = self.sessions.iter_mut().find(|(i, _)| *i == id) {
                    s.process(now, input, &mut buf);
                }
                let up = buf.iter().any(|o| {
                    matches!(
                        o,
                        Output::StateChange {
                            to: State::Established,
                            ..
                        }
                    )
                });
                out.extend(buf.into_iter().map(|o| (id, o)));
                self.after(now, id, up, out);
            }
        }
    }

    /// The peer opened a TCP connection to us. Returns the session that
    /// takes it (after which the driver feeds it bytes), or `None`: refuse
    /// (close) the connection.
    pub fn incoming(&mut self, now: u64, out: &mut Vec<(SessionId, Output)>) -> Option<SessionId> {
        // A session listening in Active takes it (§8.2.2 Active, event 17).
        if let Some((id, s)) = self
            .sessions
            .iter_mut()
            .find(|(_, s)| s.state() == State::Active)
        {
            let id = *id;
            let mut buf = Vec::new();
            s.process(now, Input::TcpConnectionConfirmed, &mut buf);
            out.extend(buf.into_iter().map(|o| (id, o)));
            return Some(id);
        }
        if self.sessions.len() >= 2 {
            return None;
        }
        let first = self.sessions.first().map(|(_, s)| s)?;
        let accept = match first.state() {
            // Not started: refuse.
            State::Idle => false,
            // Our own attempt is in flight, or we await the peer's OPEN or
            // KEEPALIVE: race the two connections (§6.8).
            State::Connect | State::OpenSent | State::OpenConfirm => true,
            // §6.8: a collision with Established closes the new connection,
            // unless the peer restarted (graceful restart negotiated).
            State::Established => first
                .negotiated()
                .is_some_and(|n| n.graceful_restart.is_some()),
            State::Active => true,
        };
        if !accept {
            return None;
        }
        let id = SessionId(self.next_id);
        self.next_id = self.next_id.wrapping_add(1);
        // The second session only listens and never restarts by itself.
        let mut cfg = self.config.clone();
        cfg.passive = true;
        cfg.idle_hold_time_ms = 0;
        let mut s = Session::new(cfg);
        let mut buf = Vec::new();
        s.process(now, Input::ManualStartPassive, &mut buf);
        s.process(now, Input::TcpConnectionConfirmed, &mut buf);
        // Its ConnectRetry arming and state changes are internal to the
        // race; pass them on anyway so the driver's view stays complete.
        out.extend(buf.into_iter().map(|o| (id, o)));
        self.sessions.push((id, s));
        Some(id)
    }

    /// Sends an UPDATE or ROUTE-REFRESH on the Established session.
    pub fn send(
        &mut self,
        now: u64,
        message: &Message,
        out: &mut Vec<(SessionId, Output)>,
    ) -> Result<SessionId, SendError> {
        let Some((id, s)) = self
            .sessions
            .iter_mut()
            .find(|(_, s)| s.state() == State::Established)
        else {
            return Err(SendError::NotEstablished(self.state()));
        };
        let id = *id;
        let mut buf = Vec::new();
        s.send(now, message, &mut buf)?;
        out.extend(buf.into_iter().map(|o| (id, o)));
        Ok(id)
    }

    /// Ends session `id` with a Cease NOTIFICATION (RFC 4486), e.g.
    /// Maximum Number of Prefixes Reached.
    pub fn cease(
        &mut self,
        now: u64,
        id: SessionId,
        n: crate::message::Notification,
        out: &mut Vec<(SessionId, Output)>,
    ) {
        self.with(id, out, |s, buf| s.cease(now, n, buf));
        self.prune();
    }

    fn start_first(&mut self, now: u64, input: Input<'_>, out: &mut Vec<(SessionId, Output)>) {
        if let Some((id, s)) = self.sessions.first_mut() {
            let id = *id;
            let mut buf = Vec::new();
            s.process(now, input, &mut buf);
            out.extend(buf.into_iter().map(|o| (id, o)));
        }
    }

    fn broadcast(&mut self, now: u64, input: Input<'_>, out: &mut Vec<(SessionId, Output)>) {
        for (id, s) in &mut self.sessions {
            let mut buf = Vec::new();
            s.process(now, input, &mut buf);
            out.extend(buf.into_iter().map(|o| (*id, o)));
        }
        self.prune();
    }

    /// Collision checks after session `id` moved, then pruning.
    fn after(
        &mut self,
        now: u64,
        id: SessionId,
        became_established: bool,
        out: &mut Vec<(SessionId, Output)>,
    ) {
        if self.sessions.len() == 2 {
            let (a_id, b_id) = (self.sessions[0].0, self.sessions[1].0);
            let other_id = if a_id == id { b_id } else { a_id };
            let state = |p: &Peer, x: SessionId| {
                p.sessions
                    .iter()
                    .find(|(i, _)| *i == x)
                    .map(|(_, s)| s.state())
            };
            let (me, other) = (state(self, id), state(self, other_id));
            let loser = match (me, other) {
                // §6.8: once one connection is Established, the other (still
                // racing) is closed.
                (Some(State::Established), Some(o))
                    if became_established && o != State::Established =>
                {
                    Some(other_id)
                }
                (Some(State::OpenConfirm), Some(State::OpenConfirm)) => {
                    Some(self.collision_loser(id, other_id))
                }
                (Some(State::OpenConfirm), Some(State::Established)) => {
                    // The peer restarted (graceful restart negotiated, or
                    // `incoming` would have refused): the old one goes.
                    let gr = self
                        .sessions
                        .iter()
                        .find(|(i, _)| *i == other_id)
                        .and_then(|(_, s)| s.negotiated())
                        .is_some_and(|n| n.graceful_restart.is_some());
                    if gr {
                        self.with(other_id, out, |s, buf| s.drop_for_restart(now, buf));
                        None
                    } else {
                        Some(id)
                    }
                }
                _ => None,
            };
            if let Some(l) = loser {
                self.with(l, out, |s, buf| s.collision_dump(now, buf));
            }
        }
        self.prune();
    }

    /// RFC 4271 §6.8 / RFC 6286 §2.3: which of the two OpenConfirm sessions
    /// must close.
    fn collision_loser(&self, a: SessionId, b: SessionId) -> SessionId {
        let get = |x: SessionId| self.sessions.iter().find(|(i, _)| *i == x).map(|(_, s)| s);
        let (Some(sa), Some(sb)) = (get(a), get(b)) else {
            return b;
        };
        let remote_id = sa
            .peer_open()
            .map(|o| o.bgp_id)
            .unwrap_or(sa.config().local_id);
        let local_id = self.config.local_id;
        let local_wins = if local_id != remote_id {
            u32::from(local_id) > u32::from(remote_id)
        } else {
            self.config.local_as > self.config.peer_as
        };
        // The winner's connection survives: ours if we win, else theirs.
        let keep = if local_wins {
            Direction::Outgoing
        } else {
            Direction::Incoming
        };
        if sa.direction() == Some(keep) {
            b
        } else if sb.direction() == Some(keep) {
            a
        } else {
            // Both the same direction (cannot happen with one peer): keep
            // the older connection.
            b
        }
    }

    fn with(
        &mut self,
        id: SessionId,
        out: &mut Vec<(SessionId, Output)>,
        f: impl FnOnce(&mut Session, &mut Vec<Output>),
    ) {
        if let Some((_, s)) = self.sessions.iter_mut().find(|(i, _)| *i == id) {
            let mut buf = Vec::new();
            f(s, &mut buf);
            out.extend(buf.into_iter().map(|o| (id, o)));
        }
    }

    /// Keeps at most one session without a connection; a surviving
    /// second session takes over the neighbor's full configuration.
    fn prune(&mut self) {
        if self.sessions.len() < 2 {
            return;
        }
        let connected = |s: &Session| !matches!(s.state(), State::Idle | State::Active);
        let any_connected = self.sessions.iter().any(|(_, s)| connected(s));
        if any_connected {
            self.sessions.retain(|(_, s)| connected(s));
        } else {
            // Both lost: keep the first (the configured one).
            self.sessions.truncate(1);
        }
        if let [(_, s)] = self.sessions.as_mut_slice() {
            if s.config() != &self.config {
                s.set_config(self.config.clone());
            }
        }
    }
}

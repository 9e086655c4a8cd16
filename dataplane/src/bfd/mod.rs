//! BFD (RFC 5880/5881/5883): sans-IO sessions driven by the worker loop.
//!
//! ## Model
//!
//! BFD runs where the packets are: in the poll-mode workers. This module does
//! no I/O and reads no clock; the worker loop is its driver.
//!
//! ```text
//!            rx burst                                     tx burst
//!   UDP 3784/4784 payload ──► SessionTable::handle_rx      ▲
//!     + RxMeta{peer,ttl}        │ parse (packet.rs)        │ Output::Transmit
//!                               │ demux: your-discr map    │ {peer, hop, src_port,
//!                               │        or (peer, iface)  │  24-byte payload}
//!                               ▼                          │
//!                        Session::on_packet ── transition table (events.rs)
//!                               │                          │
//!   now (ns, TSC once    SessionTable::poll_timers ────────┘
//!   per burst)  ───────►   min-heap of deadlines:
//!                          detection expiry, periodic tx, Final owed
//!                               │
//!                               └──► Output::StateChange ──► ring ──► ctrl
//!                                    (RFC 5882: BGP down at once)
//! ```
//!
//! * [`packet`]: the control packet (RFC 5880 §4.1) as a zero-copy view and
//!   a `Repr`; the §6.8.6 checks that need only the packet; drop reasons as
//!   a `Copy` enum indexing a counter array.
//! * [`events`]: the §6.8.6 transition rule as one `match (local, remote)`
//!   table, and [`StateChange`], the event for ctrl.
//! * [`session`]: one session — discriminators, timer negotiation, slow
//!   rate while not Up, Poll/Final sequences, jitter, detection, AdminDown,
//!   single-hop vs multihop TTL rules.
//! * [`discr`]: random local discriminators and the peer each belongs to.
//! * [`table`]: the sessions of one worker — fixed capacity, demultiplexing,
//!   one timer heap checked per loop iteration.
//!
//! Time is `now: u64` in nanoseconds from any monotonic origin (the worker
//! converts its TSC reading once per burst). Intervals are microseconds, as
//! on the wire. Nothing on the per-packet or per-timer path allocates or
//! locks; the table allocates once, at start-up.
//!
//! Not implemented: Demand mode (never requested; a remote's is honoured),
//! the Echo function, authentication (§6.7; packets with the A bit are
//! dropped and counted as `auth_mismatch`).

pub mod change;
pub mod discr;
pub mod events;
pub mod packet;
pub mod session;
pub mod table;

#[cfg(test)]
mod tests;

pub use change::Change;
pub use events::{transition, Action, SessionId, StateChange};
pub use packet::{Auth, AuthType, Diag, EmitError, Packet, Repr, RxCounters, RxError, State};
pub use session::{ConfigError, Hop, Session, SessionConfig, SessionInfo, SessionStats, Timers};
pub use table::{Output, PeerKey, RxMeta, SessionTable, TableError, Transmit};

//! Sans-IO BGP-4 core: the message codec and the session state machine of
//! pollux's BGP speaker, with no sockets, no timers and no clock.
//!
//! # Model
//!
//! ```text
//!            bytes in                    orders out
//!  driver ──────────────► Session ──────────────────► driver
//!  (tokio: TCP, sleeps)   process(now, Input, &mut Vec<Output>)
//!     ▲                     │ codec::decode / Message::encode
//!     └── Output::Connect, Send(bytes), CloseTcp, ArmTimer(kind, deadline),
//!         SessionUp(Negotiated), SessionDown(reason), UpdateReceived …
//! ```
//!
//! * [`message`] — BGP-4 messages as values (RFC 4271, 4760, 6793, 2918,
//!   4724, 1997/8326, 4486/8203).
//! * [`codec`] — framing, decoding and encoding. Every decoding error
//!   carries the protocol reaction ([`Reaction`]): the exact NOTIFICATION
//!   (RFC 4271 §6) or RFC 7606 treat-as-withdraw; attribute-discard is done
//!   silently by leaving the attribute out.
//! * [`fsm`] — one BGP connection's state machine (RFC 4271 §8). Time comes
//!   in as `now` (milliseconds on any monotonic clock the driver picks);
//!   timers are data: the FSM orders `ArmTimer(kind, deadline)` and later
//!   receives `Input::Timer(kind)`.
//! * [`peer`] — connection collision detection (RFC 4271 §6.8), the second
//!   pure layer over two [`fsm::Session`]s.
//! * [`advertise`] — building the UPDATEs that announce and withdraw a set
//!   of host routes (VIPs), packed into as few 4096-octet messages as
//!   possible, with identical attributes on every instance (ECMP).
//! * `testing` (feature `testing`) — the malformed-message corpus with the
//!   reaction each message must get, for this crate's tests and for
//!   end-to-end tests against the running daemon.
//!
//! The driver owns the sockets and timers; nothing here blocks, reads the
//! clock or allocates per byte.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod advertise;
pub mod codec;
pub mod error;
pub mod fsm;
pub mod message;
pub mod peer;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use codec::{check_header, decode, split_message, Context};
pub use error::{DecodeError, EncodeError, Reaction};
pub use message::*;

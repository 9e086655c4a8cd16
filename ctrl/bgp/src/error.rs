//! Errors of the codec, each carrying the protocol reaction it calls for.
//!
//! A decode error is not just "bad input": RFC 4271 §6 says exactly which
//! NOTIFICATION a speaker sends for each malformation, and RFC 7606 softens
//! most UPDATE attribute errors into "treat-as-withdraw" (the session stays
//! up; the UPDATE's routes are withdrawn) or "attribute-discard" (the
//! attribute is dropped and the UPDATE is used). [`DecodeError::reaction`]
//! is that decision; attribute-discard never surfaces as an error because the
//! decoder just leaves the attribute out.

use std::fmt;

use crate::message::{Notification, Prefix};

/// What a speaker must do about a malformed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reaction {
    /// RFC 4271 §6 / RFC 7606 "session reset": send this NOTIFICATION and
    /// close the connection.
    SessionReset(Notification),
    /// RFC 7606 §2 "treat-as-withdraw": keep the session; withdraw these
    /// prefixes (every prefix the UPDATE announced or withdrew).
    TreatAsWithdraw(Vec<Prefix>),
}

impl fmt::Display for Reaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reaction::SessionReset(n) => write!(f, "session reset, send {n}"),
            Reaction::TreatAsWithdraw(p) => {
                write!(f, "treat-as-withdraw ({} prefixes)", p.len())
            }
        }
    }
}

/// A message could not be decoded (or an UPDATE must be treated as a
/// withdrawal).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {reaction}")]
pub struct DecodeError {
    /// What was wrong, for logs and counters (a fixed phrase).
    pub reason: &'static str,
    /// What the speaker must do.
    pub reaction: Reaction,
}

impl DecodeError {
    pub(crate) fn notify(reason: &'static str, code: u8, subcode: u8, data: Vec<u8>) -> Self {
        Self {
            reason,
            reaction: Reaction::SessionReset(Notification::with_data(code, subcode, data)),
        }
    }

    /// The NOTIFICATION to send, when the reaction is a session reset.
    pub fn notification(&self) -> Option<&Notification> {
        match &self.reaction {
            Reaction::SessionReset(n) => Some(n),
            Reaction::TreatAsWithdraw(_) => None,
        }
    }
}

/// A message value that cannot be put on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// RFC 4271 §4.1: a message is at most 4096 octets.
    #[error("message of {len} octets exceeds the 4096-octet maximum")]
    MessageTooLong {
        /// The length it would have had.
        len: usize,
    },
    /// A one-octet length field cannot hold the value.
    #[error("{what} is {len} octets, more than its length field can hold")]
    FieldTooLong {
        /// Which field.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// An AS_PATH segment holds 1 to 255 ASes.
    #[error("AS_PATH segment with {len} ASes (1 to 255 allowed)")]
    BadSegmentLength {
        /// The number of ASes.
        len: usize,
    },
    /// The graceful-restart time is 12 bits.
    #[error("graceful-restart time {0} s exceeds 4095")]
    RestartTimeTooLarge(u16),
    /// A prefix's family does not match the MP attribute's.
    #[error("NLRI does not match the attribute's address family")]
    FamilyMismatch,
}

/// `Result` of decoding.
pub type DecodeResult<T> = std::result::Result<T, DecodeError>;
/// `Result` of encoding.
pub type EncodeResult<T> = std::result::Result<T, EncodeError>;

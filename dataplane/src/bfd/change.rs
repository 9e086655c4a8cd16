//! Live changes to a worker's sessions, ordered by ctrl on a reload: add a
//! session, remove one, change one's timers. Each names its session by
//! [`PeerKey`], which stays the same for the session's whole life;
//! sessions not named are not touched.
//!
//! A timer change on an Up session starts a Poll Sequence (RFC 5880
//! §6.8.3): the session stays Up while the peer acknowledges. Adding uses
//! the room [`SessionTable::with_capacity`] set aside at start-up
//! ([`SPARE`]): nothing allocates.

use super::session::{SessionConfig, Timers};
use super::table::{PeerKey, SessionTable, TableError};

/// Free session slots a worker keeps for sessions added after start-up.
pub const SPARE: usize = 64;

/// One change, as carried on a worker's command ring (`Copy`, fixed size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A new session; its first packet is due at once.
    Add {
        peer: PeerKey,
        config: SessionConfig,
    },
    /// The session goes, without a last packet (the peer's session times
    /// out to Down, as it does when its neighbor is deconfigured).
    Remove { peer: PeerKey },
    /// New intervals and multiplier for the session.
    SetTimers { peer: PeerKey, timers: Timers },
}

impl SessionTable {
    /// Applies `change` at `now`.
    pub fn apply(&mut self, now: u64, change: Change) -> Result<(), TableError> {
        match change {
            Change::Add { peer, config } => self.add(now, peer, config).map(|_| ()),
            Change::Remove { peer } => {
                let id = self.find(&peer).ok_or(TableError::NoSuchSession)?;
                self.remove(id);
                Ok(())
            }
            Change::SetTimers { peer, timers } => {
                let id = self.find(&peer).ok_or(TableError::NoSuchSession)?;
                self.set_timers(id, timers)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bfd::State;

    fn key(last: u8) -> PeerKey {
        PeerKey {
            addr: std::net::IpAddr::from([10, 0, 0, last]),
            iface: 0,
        }
    }

    fn timers(ms: u32) -> Timers {
        Timers {
            desired_min_tx_us: ms * 1000,
            required_min_rx_us: ms * 1000,
            detect_mult: 3,
        }
    }

    #[test]
    fn changes_touch_only_the_named_session() {
        let mut t = SessionTable::with_capacity(1 + SPARE);
        let a = SessionConfig::single_hop(0x1111, timers(100));
        t.add(0, key(1), a).unwrap();
        let b = SessionConfig::single_hop(0x2222, timers(100));
        t.apply(
            5,
            Change::Add {
                peer: key(2),
                config: b,
            },
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        let before = t.get(t.find(&key(1)).unwrap()).unwrap().info();
        t.apply(
            6,
            Change::SetTimers {
                peer: key(2),
                timers: timers(300),
            },
        )
        .unwrap();
        let b = t.get(t.find(&key(2)).unwrap()).unwrap().info();
        assert_eq!(b.required_min_rx_us, 300_000);
        assert_eq!(t.get(t.find(&key(1)).unwrap()).unwrap().info(), before);
        t.apply(7, Change::Remove { peer: key(2) }).unwrap();
        assert_eq!(t.len(), 1);
        assert!(t.find(&key(2)).is_none());
        assert_eq!(
            t.apply(8, Change::Remove { peer: key(2) }),
            Err(TableError::NoSuchSession)
        );
        assert_eq!(
            t.get(t.find(&key(1)).unwrap()).unwrap().info().state,
            State::Down
        );
    }

    #[test]
    fn a_full_table_refuses_an_add() {
        let mut t = SessionTable::with_capacity(1);
        t.add(0, key(1), SessionConfig::single_hop(1, timers(100)))
            .unwrap();
        let c = Change::Add {
            peer: key(2),
            config: SessionConfig::single_hop(2, timers(100)),
        };
        assert_eq!(t.apply(1, c), Err(TableError::Full));
    }
}

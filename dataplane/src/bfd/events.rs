//! The transition rule of RFC 5880 §6.8.6 as one table, and the event a
//! session hands to ctrl when its state changes.

use super::packet::{Diag, State};

/// Identifies a session to its owner: the slot index in a
/// [`super::table::SessionTable`], or whatever the caller chose for a
/// stand-alone [`super::session::Session`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u32);

/// What a received State field does to the local state (RFC 5880 §6.8.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// "If bfd.SessionState is AdminDown: Discard the packet."
    Discard,
    /// No change.
    Stay,
    /// Move to `to`; set bfd.LocalDiag to `diag` when it is `Some`.
    Goto { to: State, diag: Option<Diag> },
}

/// The RFC 5880 §6.8.6 state table, every (local, remote) pair spelled out.
///
/// ```text
/// If bfd.SessionState is AdminDown
///     Discard the packet
/// If received state is AdminDown
///     If bfd.SessionState is not Down
///         Set bfd.LocalDiag to 3 (Neighbor signaled session down)
///         Set bfd.SessionState to Down
/// Else
///     If bfd.SessionState is Down
///         If received State is Down
///             Set bfd.SessionState to Init
///         Else if received State is Init
///             Set bfd.SessionState to Up
///     Else if bfd.SessionState is Init
///         If received State is Init or Up
///             Set bfd.SessionState to Up
///     Else (bfd.SessionState is Up)
///         If received State is Down
///             Set bfd.LocalDiag to 3 (Neighbor signaled session down)
///             Set bfd.SessionState to Down
/// ```
///
/// Entering Up clears the diagnostic (it explains the last failure, which is
/// over), as FRR does; entering Init keeps it.
pub const fn transition(local: State, remote: State) -> Action {
    use State::{AdminDown, Down, Init, Up};
    const NEIGHBOR_DOWN: Action = Action::Goto {
        to: Down,
        diag: Some(Diag::NeighborSignaledDown),
    };
    const TO_INIT: Action = Action::Goto {
        to: Init,
        diag: None,
    };
    const TO_UP: Action = Action::Goto {
        to: Up,
        diag: Some(Diag::None),
    };
    match (local, remote) {
        (AdminDown, AdminDown) => Action::Discard,
        (AdminDown, Down) => Action::Discard,
        (AdminDown, Init) => Action::Discard,
        (AdminDown, Up) => Action::Discard,

        (Down, AdminDown) => Action::Stay,
        (Down, Down) => TO_INIT,
        (Down, Init) => TO_UP,
        (Down, Up) => Action::Stay,

        (Init, AdminDown) => NEIGHBOR_DOWN,
        (Init, Down) => Action::Stay,
        (Init, Init) => TO_UP,
        (Init, Up) => TO_UP,

        (Up, AdminDown) => NEIGHBOR_DOWN,
        (Up, Down) => NEIGHBOR_DOWN,
        (Up, Init) => Action::Stay,
        (Up, Up) => Action::Stay,
    }
}

/// A session changed state: what the worker pushes on its ring to ctrl.
/// Small and `Copy` (24 bytes; checked by a test).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateChange {
    pub session: SessionId,
    /// The session's local discriminator, so that ctrl can tell an event of
    /// a removed session from one of the session now in its slot.
    pub local_discr: u32,
    /// `now` (ns) of the call that caused the change. For a detection-time
    /// expiry, the exact deadline if the caller polls on time.
    pub at: u64,
    pub old: State,
    pub new: State,
    /// bfd.LocalDiag after the change: why the session left Up.
    pub diag: Diag,
    /// bfd.RemoteSessionState as last received (Down once the remote is
    /// forgotten after a detection-time expiry).
    pub remote_state: State,
    /// The Diag of the last packet received from the remote.
    pub remote_diag: Diag,
}

impl StateChange {
    /// Up → Down, a path failure: what RFC 5882 couples to the client
    /// (BGP tears its session down at once). AdminDown, ours (a drain) or
    /// the peer's, is not a path failure (§3.2): the client closes in
    /// order instead. The one statement of the rule; ctrl uses it.
    pub fn went_down(&self) -> bool {
        self.old == State::Up && self.new == State::Down && self.remote_state != State::AdminDown
    }

    /// anything → Up.
    pub fn went_up(&self) -> bool {
        self.new == State::Up && self.old != State::Up
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every (local, remote) pair of RFC 5880 §6.8.6, with the expected
    /// resulting state and diagnostic, written independently of the table.
    #[test]
    fn every_local_remote_pair() {
        use Diag::NeighborSignaledDown as Nsd;
        use State::*;
        // (local, remote, None if discarded else Some((next state, new diag)))
        type Row = (State, State, Option<(State, Option<Diag>)>);
        let want: [Row; 16] = [
            // local AdminDown: the packet is discarded whatever it says.
            (AdminDown, AdminDown, None),
            (AdminDown, Down, None),
            (AdminDown, Init, None),
            (AdminDown, Up, None),
            // local Down
            (Down, AdminDown, Some((Down, None))),
            (Down, Down, Some((Init, None))),
            (Down, Init, Some((Up, Some(Diag::None)))),
            (Down, Up, Some((Down, None))),
            // local Init
            (Init, AdminDown, Some((Down, Some(Nsd)))),
            (Init, Down, Some((Init, None))),
            (Init, Init, Some((Up, Some(Diag::None)))),
            (Init, Up, Some((Up, Some(Diag::None)))),
            // local Up
            (Up, AdminDown, Some((Down, Some(Nsd)))),
            (Up, Down, Some((Down, Some(Nsd)))),
            (Up, Init, Some((Up, None))),
            (Up, Up, Some((Up, None))),
        ];
        for (local, remote, expect) in want {
            let got = match transition(local, remote) {
                Action::Discard => None,
                Action::Stay => Some((local, None)),
                Action::Goto { to, diag } => Some((to, diag)),
            };
            assert_eq!(got, expect, "({local:?}, {remote:?})");
        }
    }

    #[test]
    fn state_change_is_small_and_copy() {
        assert!(core::mem::size_of::<StateChange>() <= 24);
        let ev = StateChange {
            session: SessionId(1),
            local_discr: 1,
            at: 0,
            old: State::Up,
            new: State::Down,
            diag: Diag::ControlDetectionTimeExpired,
            remote_state: State::Down,
            remote_diag: Diag::None,
        };
        let copy = ev;
        assert!(copy.went_down() && !copy.went_up());
        assert_eq!(ev, copy);
    }

    #[test]
    fn admin_down_is_not_a_path_failure() {
        let ev = |new, remote_state| StateChange {
            session: SessionId(1),
            local_discr: 1,
            at: 0,
            old: State::Up,
            new,
            diag: Diag::None,
            remote_state,
            remote_diag: Diag::None,
        };
        // The peer's AdminDown (we go Down, diag 3), and ours (a drain).
        assert!(!ev(State::Down, State::AdminDown).went_down());
        assert!(!ev(State::AdminDown, State::Up).went_down());
        assert!(ev(State::Down, State::Down).went_down());
        assert!(ev(State::Down, State::Up).went_down(), "detection time");
    }
}

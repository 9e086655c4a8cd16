//! The BFD Control packet (RFC 5880 §4.1): a zero-copy view and its `Repr`.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Vers |  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       My Discriminator                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                      Your Discriminator                       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Desired Min TX Interval                    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                   Required Min RX Interval                    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                 Required Min Echo RX Interval                 |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!
//! An optional Authentication Section MAY be present:
//!
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |   Auth Type   |   Auth Len    |    Authentication Data...     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! All intervals are in microseconds on the wire. The view ([`Packet`])
//! checks lengths once in [`Packet::new_checked`]; its getters are then
//! infallible. [`Repr::parse`] applies the reception rules of RFC 5880
//! §6.8.6 that need nothing but the packet itself; the rules that need a
//! session (demultiplexing, TTL, authentication in use) live in
//! [`super::session`] and [`super::table`]. Every rejection is an [`RxError`],
//! a `Copy` enum that indexes a drop counter ([`RxCounters`]).

/// Byte offsets of the fields (network byte order).
pub mod field {
    use core::ops::Range;

    /// Vers (3 bits) | Diag (5 bits).
    pub const VERS_DIAG: usize = 0;
    /// Sta (2 bits) | P | F | C | A | D | M.
    pub const STA_FLAGS: usize = 1;
    /// Detect Mult.
    pub const DETECT_MULT: usize = 2;
    /// Length of the whole control packet, in bytes.
    pub const LENGTH: usize = 3;
    /// My Discriminator.
    pub const MY_DISCR: Range<usize> = 4..8;
    /// Your Discriminator.
    pub const YOUR_DISCR: Range<usize> = 8..12;
    /// Desired Min TX Interval (µs).
    pub const DESIRED_MIN_TX: Range<usize> = 12..16;
    /// Required Min RX Interval (µs).
    pub const REQUIRED_MIN_RX: Range<usize> = 16..20;
    /// Required Min Echo RX Interval (µs).
    pub const REQUIRED_MIN_ECHO_RX: Range<usize> = 20..24;
    /// Auth Type (present when the A bit is set).
    pub const AUTH_TYPE: usize = 24;
    /// Auth Len: the length of the authentication section, including the
    /// Auth Type and Auth Len bytes.
    pub const AUTH_LEN: usize = 25;
    /// Start of the Authentication Data.
    pub const AUTH_DATA: usize = 26;
}

/// Length of the mandatory section.
pub const HEADER_LEN: usize = 24;
/// "If the A bit is set and the Length field is less than 26 (the minimum
/// length of a BFD Control packet with an Authentication Section), the
/// packet MUST be discarded."
pub const MIN_AUTH_PACKET_LEN: usize = 26;
/// The Length field is one byte.
pub const MAX_PACKET_LEN: usize = 255;
/// The only version this implementation speaks.
pub const VERSION: u8 = 1;

const FLAG_P: u8 = 0x20;
const FLAG_F: u8 = 0x10;
const FLAG_C: u8 = 0x08;
const FLAG_A: u8 = 0x04;
const FLAG_D: u8 = 0x02;
const FLAG_M: u8 = 0x01;

/// Why a received packet was dropped. One counter per variant
/// ([`RxCounters`]); the order follows RFC 5880 §6.8.6, then the checks
/// that need a session (demultiplexing, RFC 5881/5883 TTL, authentication).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RxError {
    /// Shorter than the 24-byte mandatory section.
    Truncated = 0,
    /// "If the version number is not correct (1), the packet MUST be
    /// discarded."
    BadVersion,
    /// "If the A bit is clear and the Length field is less than the minimum
    /// correct value (24 if the A bit is clear, 26 if the A bit is set), the
    /// packet MUST be discarded."
    BadLength,
    /// "If the Length field is greater than the payload of the encapsulating
    /// protocol, the packet MUST be discarded."
    LengthExceedsPayload,
    /// Auth Len smaller than 2 or running past the Length field.
    BadAuthLength,
    /// "If the Detect Mult field is zero, the packet MUST be discarded."
    ZeroDetectMult,
    /// "If the Multipoint (M) bit is nonzero, the packet MUST be discarded."
    Multipoint,
    /// "If the My Discriminator field is zero, the packet MUST be discarded."
    ZeroMyDiscr,
    /// "If the Your Discriminator field is zero and the State field is not
    /// Down or AdminDown, the packet MUST be discarded."
    ZeroYourDiscr,
    /// Both P and F set: "A BFD Control packet MUST NOT have both the Poll
    /// (P) and Final (F) bits set." (§6.5; holo drops these too).
    PollAndFinal,
    /// "If the Your Discriminator field is nonzero, it MUST be used to select
    /// the session with which this BFD packet is associated. If no session is
    /// found, the packet MUST be discarded."
    UnknownDiscr,
    /// Your Discriminator zero and no session for (peer, interface): "If a
    /// matching session is not found, a new session MAY be created, or the
    /// packet MAY be discarded." We discard (sessions come from config).
    NoSession,
    /// A single-hop packet arrived on the multihop port or vice versa.
    WrongHop,
    /// The Your Discriminator names a session whose peer is another address
    /// (or, single hop, that is reached through another port). RFC 5880
    /// §6.8.6 leaves the check to the encapsulation; RFC 5881 §4 / 5883 §4
    /// tie a session to its peer's address, and without the check any host
    /// on the link that learns (or guesses) the discriminator could hold the
    /// session Up or take it, and BGP with it, Down.
    WrongSource,
    /// RFC 5881 §5: "All received BFD Control packets that are demultiplexed
    /// to the session MUST be discarded if the received TTL or Hop Limit is
    /// not equal to 255." For multihop (RFC 5883 §5) below the configured
    /// minimum.
    BadTtl,
    /// "If the A bit is set and no authentication is in use (bfd.AuthType
    /// is zero), the packet MUST be discarded." (Authentication is not
    /// implemented, so no session has it in use.)
    AuthMismatch,
    /// "If bfd.SessionState is AdminDown: Discard the packet." (Counted so
    /// that every packet in is accounted for; not a fault.)
    AdminDown,
}

impl RxError {
    /// Number of variants: the size of a counter array.
    pub const COUNT: usize = 17;
    /// Every variant, in counter order.
    pub const ALL: [RxError; Self::COUNT] = [
        RxError::Truncated,
        RxError::BadVersion,
        RxError::BadLength,
        RxError::LengthExceedsPayload,
        RxError::BadAuthLength,
        RxError::ZeroDetectMult,
        RxError::Multipoint,
        RxError::ZeroMyDiscr,
        RxError::ZeroYourDiscr,
        RxError::PollAndFinal,
        RxError::UnknownDiscr,
        RxError::NoSession,
        RxError::WrongHop,
        RxError::WrongSource,
        RxError::BadTtl,
        RxError::AuthMismatch,
        RxError::AdminDown,
    ];

    /// Stable snake_case name, for metric labels and `show` output.
    pub const fn name(self) -> &'static str {
        match self {
            RxError::Truncated => "truncated",
            RxError::BadVersion => "bad_version",
            RxError::BadLength => "bad_length",
            RxError::LengthExceedsPayload => "length_exceeds_payload",
            RxError::BadAuthLength => "bad_auth_length",
            RxError::ZeroDetectMult => "zero_detect_mult",
            RxError::Multipoint => "multipoint",
            RxError::ZeroMyDiscr => "zero_my_discriminator",
            RxError::ZeroYourDiscr => "zero_your_discriminator",
            RxError::PollAndFinal => "poll_and_final",
            RxError::UnknownDiscr => "unknown_discriminator",
            RxError::NoSession => "no_session",
            RxError::WrongHop => "wrong_hop",
            RxError::WrongSource => "wrong_source",
            RxError::BadTtl => "bad_ttl",
            RxError::AuthMismatch => "auth_mismatch",
            RxError::AdminDown => "admin_down",
        }
    }
}

impl core::fmt::Display for RxError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Per-reason drop counters: a plain array indexed by [`RxError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RxCounters {
    counts: [u64; RxError::COUNT],
}

impl RxCounters {
    /// Count one drop.
    #[inline]
    pub fn bump(&mut self, reason: RxError) {
        self.counts[reason as usize] += 1;
    }

    /// Drops for one reason.
    pub fn get(&self, reason: RxError) -> u64 {
        self.counts[reason as usize]
    }

    /// All drops.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// `(reason, count)` for every reason, zeros included.
    pub fn iter(&self) -> impl Iterator<Item = (RxError, u64)> + '_ {
        RxError::ALL.iter().map(|&r| (r, self.get(r)))
    }
}

/// Why [`Repr::emit`] could not write a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmitError {
    /// The caller's buffer is shorter than [`Repr::buffer_len`].
    BufferTooSmall,
    /// The authentication data does not fit the one-byte Length field.
    AuthTooLong,
}

/// Session state (the Sta field, and `bfd.SessionState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum State {
    AdminDown = 0,
    Down = 1,
    Init = 2,
    Up = 3,
}

impl State {
    /// All four, in wire order.
    pub const ALL: [State; 4] = [State::AdminDown, State::Down, State::Init, State::Up];

    /// From the two-bit Sta field (the upper bits are ignored).
    #[inline]
    pub const fn from_bits(bits: u8) -> State {
        match bits & 0x3 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }

    /// Lower-case name as FRR prints it.
    pub const fn name(self) -> &'static str {
        match self {
            State::AdminDown => "admin_down",
            State::Down => "down",
            State::Init => "init",
            State::Up => "up",
        }
    }
}

/// Diagnostic code (RFC 5880 §4.1, Diag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Diag {
    /// 0 -- No Diagnostic
    None,
    /// 1 -- Control Detection Time Expired
    ControlDetectionTimeExpired,
    /// 2 -- Echo Function Failed
    EchoFunctionFailed,
    /// 3 -- Neighbor Signaled Session Down
    NeighborSignaledDown,
    /// 4 -- Forwarding Plane Reset
    ForwardingPlaneReset,
    /// 5 -- Path Down
    PathDown,
    /// 6 -- Concatenated Path Down
    ConcatenatedPathDown,
    /// 7 -- Administratively Down
    AdministrativelyDown,
    /// 8 -- Reverse Concatenated Path Down
    ReverseConcatenatedPathDown,
    /// 9-31 -- Reserved for future use (kept, not rejected).
    Unknown(u8),
}

impl Diag {
    /// From the five-bit Diag field (upper bits ignored).
    pub const fn from_bits(bits: u8) -> Diag {
        match bits & 0x1f {
            0 => Diag::None,
            1 => Diag::ControlDetectionTimeExpired,
            2 => Diag::EchoFunctionFailed,
            3 => Diag::NeighborSignaledDown,
            4 => Diag::ForwardingPlaneReset,
            5 => Diag::PathDown,
            6 => Diag::ConcatenatedPathDown,
            7 => Diag::AdministrativelyDown,
            8 => Diag::ReverseConcatenatedPathDown,
            other => Diag::Unknown(other),
        }
    }

    /// The five-bit code.
    pub const fn bits(self) -> u8 {
        match self {
            Diag::None => 0,
            Diag::ControlDetectionTimeExpired => 1,
            Diag::EchoFunctionFailed => 2,
            Diag::NeighborSignaledDown => 3,
            Diag::ForwardingPlaneReset => 4,
            Diag::PathDown => 5,
            Diag::ConcatenatedPathDown => 6,
            Diag::AdministrativelyDown => 7,
            Diag::ReverseConcatenatedPathDown => 8,
            Diag::Unknown(b) => b & 0x1f,
        }
    }
}

/// Auth Type (RFC 5880 §4.1). Unknown values are kept, not rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthType {
    /// 0 - Reserved
    Reserved,
    /// 1 - Simple Password
    SimplePassword,
    /// 2 - Keyed MD5
    KeyedMd5,
    /// 3 - Meticulous Keyed MD5
    MeticulousKeyedMd5,
    /// 4 - Keyed SHA1
    KeyedSha1,
    /// 5 - Meticulous Keyed SHA1
    MeticulousKeyedSha1,
    /// 6-255 - Reserved for future use
    Unknown(u8),
}

impl From<u8> for AuthType {
    fn from(v: u8) -> Self {
        match v {
            0 => AuthType::Reserved,
            1 => AuthType::SimplePassword,
            2 => AuthType::KeyedMd5,
            3 => AuthType::MeticulousKeyedMd5,
            4 => AuthType::KeyedSha1,
            5 => AuthType::MeticulousKeyedSha1,
            other => AuthType::Unknown(other),
        }
    }
}

impl From<AuthType> for u8 {
    fn from(v: AuthType) -> u8 {
        match v {
            AuthType::Reserved => 0,
            AuthType::SimplePassword => 1,
            AuthType::KeyedMd5 => 2,
            AuthType::MeticulousKeyedMd5 => 3,
            AuthType::KeyedSha1 => 4,
            AuthType::MeticulousKeyedSha1 => 5,
            AuthType::Unknown(b) => b,
        }
    }
}

/// A read (or read-write) view of a BFD Control packet in a buffer.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap a buffer without checking it. Getters may panic on a short
    /// buffer; use [`Packet::new_checked`] for received data.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wrap a buffer and check the lengths ([`Packet::check_len`]).
    pub fn new_checked(buffer: T) -> Result<Packet<T>, RxError> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// The length checks of RFC 5880 §6.8.6, done once so that every getter
    /// afterwards is infallible: the buffer holds the mandatory section, the
    /// Length field is at least 24 (26 with the A bit) and no more than the
    /// buffer (the UDP payload), and an authentication section fits in it.
    pub fn check_len(&self) -> Result<(), RxError> {
        let buf = self.buffer.as_ref();
        if buf.len() < HEADER_LEN {
            return Err(RxError::Truncated);
        }
        let length = usize::from(buf[field::LENGTH]);
        let auth = buf[field::STA_FLAGS] & FLAG_A != 0;
        // "If the A bit is clear and the Length field is less than the
        // minimum correct value (24 if the A bit is clear, 26 if the A bit is
        // set), the packet MUST be discarded."
        if length < HEADER_LEN || (auth && length < MIN_AUTH_PACKET_LEN) {
            return Err(RxError::BadLength);
        }
        // "If the Length field is greater than the payload of the
        // encapsulating protocol, the packet MUST be discarded."
        if length > buf.len() {
            return Err(RxError::LengthExceedsPayload);
        }
        if auth {
            let auth_len = usize::from(buf[field::AUTH_LEN]);
            if auth_len < 2 || HEADER_LEN + auth_len > length {
                return Err(RxError::BadAuthLength);
            }
        }
        Ok(())
    }

    /// Give the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u32_at(&self, at: core::ops::Range<usize>) -> u32 {
        let b = &self.buffer.as_ref()[at];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Vers.
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERS_DIAG] >> 5
    }
    /// Diag.
    #[inline]
    pub fn diag(&self) -> Diag {
        Diag::from_bits(self.buffer.as_ref()[field::VERS_DIAG])
    }
    /// Sta.
    #[inline]
    pub fn state(&self) -> State {
        State::from_bits(self.buffer.as_ref()[field::STA_FLAGS] >> 6)
    }
    fn flag(&self, mask: u8) -> bool {
        self.buffer.as_ref()[field::STA_FLAGS] & mask != 0
    }
    /// P: the sender asks for verification of connectivity or of a
    /// parameter change.
    #[inline]
    pub fn poll(&self) -> bool {
        self.flag(FLAG_P)
    }
    /// F: the sender answers a packet that had P set.
    #[inline]
    pub fn final_(&self) -> bool {
        self.flag(FLAG_F)
    }
    /// C: the sender's BFD does not share fate with its control plane.
    #[inline]
    pub fn control_plane_independent(&self) -> bool {
        self.flag(FLAG_C)
    }
    /// A: an authentication section is present.
    #[inline]
    pub fn auth_present(&self) -> bool {
        self.flag(FLAG_A)
    }
    /// D: the sender wishes to operate in Demand mode.
    #[inline]
    pub fn demand(&self) -> bool {
        self.flag(FLAG_D)
    }
    /// M: reserved for multipoint; must be zero.
    #[inline]
    pub fn multipoint(&self) -> bool {
        self.flag(FLAG_M)
    }
    /// Detect Mult.
    #[inline]
    pub fn detect_mult(&self) -> u8 {
        self.buffer.as_ref()[field::DETECT_MULT]
    }
    /// Length.
    #[inline]
    pub fn length(&self) -> u8 {
        self.buffer.as_ref()[field::LENGTH]
    }
    /// My Discriminator.
    #[inline]
    pub fn my_discr(&self) -> u32 {
        self.u32_at(field::MY_DISCR)
    }
    /// Your Discriminator.
    #[inline]
    pub fn your_discr(&self) -> u32 {
        self.u32_at(field::YOUR_DISCR)
    }
    /// Desired Min TX Interval (µs).
    #[inline]
    pub fn desired_min_tx(&self) -> u32 {
        self.u32_at(field::DESIRED_MIN_TX)
    }
    /// Required Min RX Interval (µs).
    #[inline]
    pub fn required_min_rx(&self) -> u32 {
        self.u32_at(field::REQUIRED_MIN_RX)
    }
    /// Required Min Echo RX Interval (µs).
    #[inline]
    pub fn required_min_echo_rx(&self) -> u32 {
        self.u32_at(field::REQUIRED_MIN_ECHO_RX)
    }
    /// The authentication section as (type, data after Auth Len), if the A
    /// bit is set. Needs a checked packet.
    pub fn auth(&self) -> Option<Auth<'_>> {
        if !self.auth_present() {
            return None;
        }
        let buf = self.buffer.as_ref();
        let auth_len = usize::from(buf[field::AUTH_LEN]);
        Some(Auth {
            auth_type: AuthType::from(buf[field::AUTH_TYPE]),
            data: &buf[field::AUTH_DATA..HEADER_LEN + auth_len],
        })
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_u32_at(&mut self, at: core::ops::Range<usize>, v: u32) {
        self.buffer.as_mut()[at].copy_from_slice(&v.to_be_bytes());
    }
    fn set_flag(&mut self, mask: u8, on: bool) {
        let b = &mut self.buffer.as_mut()[field::STA_FLAGS];
        *b = if on { *b | mask } else { *b & !mask };
    }
    /// Set Vers (3 bits).
    pub fn set_version(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[field::VERS_DIAG];
        *b = (*b & 0x1f) | (v << 5);
    }
    /// Set Diag.
    pub fn set_diag(&mut self, d: Diag) {
        let b = &mut self.buffer.as_mut()[field::VERS_DIAG];
        *b = (*b & 0xe0) | d.bits();
    }
    /// Set Sta.
    pub fn set_state(&mut self, s: State) {
        let b = &mut self.buffer.as_mut()[field::STA_FLAGS];
        *b = (*b & 0x3f) | ((s as u8) << 6);
    }
    /// Set P.
    pub fn set_poll(&mut self, on: bool) {
        self.set_flag(FLAG_P, on)
    }
    /// Set F.
    pub fn set_final(&mut self, on: bool) {
        self.set_flag(FLAG_F, on)
    }
    /// Set C.
    pub fn set_control_plane_independent(&mut self, on: bool) {
        self.set_flag(FLAG_C, on)
    }
    /// Set A.
    pub fn set_auth_present(&mut self, on: bool) {
        self.set_flag(FLAG_A, on)
    }
    /// Set D.
    pub fn set_demand(&mut self, on: bool) {
        self.set_flag(FLAG_D, on)
    }
    /// Set M.
    pub fn set_multipoint(&mut self, on: bool) {
        self.set_flag(FLAG_M, on)
    }
    /// Set Detect Mult.
    pub fn set_detect_mult(&mut self, v: u8) {
        self.buffer.as_mut()[field::DETECT_MULT] = v;
    }
    /// Set Length.
    pub fn set_length(&mut self, v: u8) {
        self.buffer.as_mut()[field::LENGTH] = v;
    }
    /// Set My Discriminator.
    pub fn set_my_discr(&mut self, v: u32) {
        self.set_u32_at(field::MY_DISCR, v)
    }
    /// Set Your Discriminator.
    pub fn set_your_discr(&mut self, v: u32) {
        self.set_u32_at(field::YOUR_DISCR, v)
    }
    /// Set Desired Min TX Interval (µs).
    pub fn set_desired_min_tx(&mut self, v: u32) {
        self.set_u32_at(field::DESIRED_MIN_TX, v)
    }
    /// Set Required Min RX Interval (µs).
    pub fn set_required_min_rx(&mut self, v: u32) {
        self.set_u32_at(field::REQUIRED_MIN_RX, v)
    }
    /// Set Required Min Echo RX Interval (µs).
    pub fn set_required_min_echo_rx(&mut self, v: u32) {
        self.set_u32_at(field::REQUIRED_MIN_ECHO_RX, v)
    }
}

/// The authentication section: its type and the bytes after Auth Len
/// (Auth Key ID, sequence number, password or digest, per type). Parsed but
/// not verified: authentication is not implemented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Auth<'a> {
    pub auth_type: AuthType,
    pub data: &'a [u8],
}

/// A parsed BFD Control packet: the values worth carrying.
///
/// The Length field is not stored: it is derived from the authentication
/// section on emit ([`Repr::buffer_len`]), so a `Repr` cannot disagree with
/// itself. The A bit is `auth.is_some()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr<'a> {
    /// Always [`VERSION`] after parse; settable so tests can emit bad ones.
    pub version: u8,
    pub diag: Diag,
    pub state: State,
    pub poll: bool,
    pub final_: bool,
    pub control_plane_independent: bool,
    pub demand: bool,
    /// Always false after parse; settable so tests can emit bad ones.
    pub multipoint: bool,
    pub detect_mult: u8,
    pub my_discr: u32,
    pub your_discr: u32,
    /// µs.
    pub desired_min_tx: u32,
    /// µs.
    pub required_min_rx: u32,
    /// µs; zero: the sender does not support receiving Echo packets.
    pub required_min_echo_rx: u32,
    pub auth: Option<Auth<'a>>,
}

impl<'a> Repr<'a> {
    /// Check and parse a received UDP payload: RFC 5880 §6.8.6 in its order
    /// (version first, then the lengths, then the fields).
    pub fn parse_bytes(payload: &'a [u8]) -> Result<Repr<'a>, RxError> {
        // "If the version number is not correct (1), the packet MUST be
        // discarded." Checked before the lengths to keep the RFC's order.
        if let Some(&b) = payload.first() {
            if b >> 5 != VERSION {
                return Err(RxError::BadVersion);
            }
        }
        Repr::parse(&Packet::new_checked(payload)?)
    }

    /// Parse a length-checked view (see [`Packet::new_checked`]) and apply the
    /// field checks of RFC 5880 §6.8.6.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Repr<'a>, RxError> {
        let packet = Packet::new_unchecked(packet.buffer.as_ref());
        if packet.version() != VERSION {
            return Err(RxError::BadVersion);
        }
        // "If the Detect Mult field is zero, the packet MUST be discarded."
        if packet.detect_mult() == 0 {
            return Err(RxError::ZeroDetectMult);
        }
        // "If the Multipoint (M) bit is nonzero, the packet MUST be
        // discarded."
        if packet.multipoint() {
            return Err(RxError::Multipoint);
        }
        // "If the My Discriminator field is zero, the packet MUST be
        // discarded."
        if packet.my_discr() == 0 {
            return Err(RxError::ZeroMyDiscr);
        }
        // "If the Your Discriminator field is zero and the State field is not
        // Down or AdminDown, the packet MUST be discarded."
        let state = packet.state();
        if packet.your_discr() == 0 && !matches!(state, State::Down | State::AdminDown) {
            return Err(RxError::ZeroYourDiscr);
        }
        // §6.5: "A BFD Control packet MUST NOT have both the Poll (P) and
        // Final (F) bits set."
        if packet.poll() && packet.final_() {
            return Err(RxError::PollAndFinal);
        }
        let auth = if packet.auth_present() {
            let buf: &'a [u8] = packet.buffer;
            let auth_len = usize::from(buf[field::AUTH_LEN]);
            Some(Auth {
                auth_type: AuthType::from(buf[field::AUTH_TYPE]),
                data: &buf[field::AUTH_DATA..HEADER_LEN + auth_len],
            })
        } else {
            None
        };
        Ok(Repr {
            version: packet.version(),
            diag: packet.diag(),
            state,
            poll: packet.poll(),
            final_: packet.final_(),
            control_plane_independent: packet.control_plane_independent(),
            demand: packet.demand(),
            multipoint: false,
            detect_mult: packet.detect_mult(),
            my_discr: packet.my_discr(),
            your_discr: packet.your_discr(),
            desired_min_tx: packet.desired_min_tx(),
            required_min_rx: packet.required_min_rx(),
            required_min_echo_rx: packet.required_min_echo_rx(),
            auth,
        })
    }

    /// Bytes [`Repr::emit`] writes (also the Length field).
    pub const fn buffer_len(&self) -> usize {
        match self.auth {
            None => HEADER_LEN,
            Some(a) => HEADER_LEN + 2 + a.data.len(),
        }
    }

    /// Write the packet into the start of `buf`; returns its length. Does not
    /// validate (tests emit malformed packets on purpose); what the session
    /// emits is valid by construction.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, EmitError> {
        let len = self.buffer_len();
        if len > MAX_PACKET_LEN {
            return Err(EmitError::AuthTooLong);
        }
        if buf.len() < len {
            return Err(EmitError::BufferTooSmall);
        }
        let mut p = Packet::new_unchecked(&mut buf[..len]);
        p.buffer[..HEADER_LEN].fill(0);
        p.set_version(self.version);
        p.set_diag(self.diag);
        p.set_state(self.state);
        p.set_poll(self.poll);
        p.set_final(self.final_);
        p.set_control_plane_independent(self.control_plane_independent);
        p.set_auth_present(self.auth.is_some());
        p.set_demand(self.demand);
        p.set_multipoint(self.multipoint);
        p.set_detect_mult(self.detect_mult);
        p.set_length(len as u8);
        p.set_my_discr(self.my_discr);
        p.set_your_discr(self.your_discr);
        p.set_desired_min_tx(self.desired_min_tx);
        p.set_required_min_rx(self.required_min_rx);
        p.set_required_min_echo_rx(self.required_min_echo_rx);
        if let Some(a) = self.auth {
            let b = p.buffer;
            b[field::AUTH_TYPE] = a.auth_type.into();
            b[field::AUTH_LEN] = (2 + a.data.len()) as u8;
            b[field::AUTH_DATA..len].copy_from_slice(a.data);
        }
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A packet as FRR bfdd sends it while coming up: Down, no diag, 300 ms
    /// timers, multiplier 3, remote discriminator not yet known.
    #[rustfmt::skip]
    const DOWN_NO_YOUR_DISCR: [u8; 24] = [
        0x20,                   // Vers 1 (001) | Diag 0 (00000)
        0x40,                   // Sta 1 Down (01) | P0 F0 C0 A0 D0 M0
        0x03,                   // Detect Mult 3
        0x18,                   // Length 24
        0x00, 0x00, 0x00, 0x2a, // My Discriminator 42
        0x00, 0x00, 0x00, 0x00, // Your Discriminator 0
        0x00, 0x04, 0x93, 0xe0, // Desired Min TX 300 000 µs
        0x00, 0x04, 0x93, 0xe0, // Required Min RX 300 000 µs
        0x00, 0x00, 0xc3, 0x50, // Required Min Echo RX 50 000 µs
    ];

    /// Up, answering a poll, C bit set, 10 ms timers, diag Path Down kept
    /// from an earlier failure.
    #[rustfmt::skip]
    const UP_FINAL_CPI: [u8; 24] = [
        0x25,                   // Vers 1 | Diag 5 Path Down (00101)
        0xd8,                   // Sta 3 Up (11) | P0 F1 C1 A0 D0 M0
        0x05,                   // Detect Mult 5
        0x18,                   // Length 24
        0xde, 0xad, 0xbe, 0xef, // My Discriminator 0xdeadbeef
        0x00, 0x00, 0x00, 0x07, // Your Discriminator 7
        0x00, 0x00, 0x27, 0x10, // Desired Min TX 10 000 µs
        0x00, 0x00, 0x0c, 0xe4, // Required Min RX 3 300 µs
        0x00, 0x00, 0x00, 0x00, // Required Min Echo RX 0 (no echo)
    ];

    /// With a Simple Password section ("pw") and the P bit.
    #[rustfmt::skip]
    const INIT_POLL_AUTH: [u8; 29] = [
        0x27,                   // Vers 1 | Diag 7 Administratively Down
        0xa4,                   // Sta 2 Init (10) | P1 F0 C0 A1 D0 M0
        0x01,                   // Detect Mult 1
        0x1d,                   // Length 29
        0x00, 0x00, 0x00, 0x01, // My Discriminator 1
        0x00, 0x00, 0x00, 0x02, // Your Discriminator 2
        0x00, 0x0f, 0x42, 0x40, // Desired Min TX 1 000 000 µs
        0x00, 0x0f, 0x42, 0x40, // Required Min RX 1 000 000 µs
        0x00, 0x00, 0x00, 0x00, // Required Min Echo RX 0
        0x01,                   // Auth Type 1 Simple Password
        0x05,                   // Auth Len 5
        0x03,                   // Auth Key ID 3
        b'p', b'w',             // Password
    ];

    fn down_repr() -> Repr<'static> {
        Repr {
            version: 1,
            diag: Diag::None,
            state: State::Down,
            poll: false,
            final_: false,
            control_plane_independent: false,
            demand: false,
            multipoint: false,
            detect_mult: 3,
            my_discr: 42,
            your_discr: 0,
            desired_min_tx: 300_000,
            required_min_rx: 300_000,
            required_min_echo_rx: 50_000,
            auth: None,
        }
    }

    fn both_ways(bytes: &[u8], repr: &Repr<'_>) {
        assert_eq!(Repr::parse_bytes(bytes).as_ref(), Ok(repr), "bytes -> repr");
        let mut buf = [0xffu8; 64];
        let n = repr.emit(&mut buf).unwrap();
        assert_eq!(&buf[..n], bytes, "repr -> bytes");
    }

    #[test]
    fn fixture_down_without_your_discr() {
        both_ways(&DOWN_NO_YOUR_DISCR, &down_repr());
    }

    #[test]
    fn fixture_up_final_cpi() {
        let repr = Repr {
            diag: Diag::PathDown,
            state: State::Up,
            final_: true,
            control_plane_independent: true,
            detect_mult: 5,
            my_discr: 0xdead_beef,
            your_discr: 7,
            desired_min_tx: 10_000,
            required_min_rx: 3_300,
            required_min_echo_rx: 0,
            ..down_repr()
        };
        both_ways(&UP_FINAL_CPI, &repr);
    }

    #[test]
    fn fixture_auth_section_is_type_plus_raw_bytes() {
        let repr = Repr {
            diag: Diag::AdministrativelyDown,
            state: State::Init,
            poll: true,
            detect_mult: 1,
            my_discr: 1,
            your_discr: 2,
            desired_min_tx: 1_000_000,
            required_min_rx: 1_000_000,
            required_min_echo_rx: 0,
            auth: Some(Auth {
                auth_type: AuthType::SimplePassword,
                data: &[0x03, b'p', b'w'],
            }),
            ..down_repr()
        };
        both_ways(&INIT_POLL_AUTH, &repr);
        let view = Packet::new_checked(&INIT_POLL_AUTH[..]).unwrap();
        assert_eq!(view.auth().unwrap().data, &[0x03, b'p', b'w']);
        assert_eq!(view.length(), 29);
    }

    #[test]
    fn trailing_bytes_beyond_length_are_ignored() {
        let mut buf = [0u8; 40];
        buf[..24].copy_from_slice(&DOWN_NO_YOUR_DISCR);
        assert_eq!(Repr::parse_bytes(&buf), Ok(down_repr()));
    }

    fn mutated(f: impl FnOnce(&mut [u8; 24])) -> [u8; 24] {
        let mut b = DOWN_NO_YOUR_DISCR;
        f(&mut b);
        b
    }

    #[test]
    fn every_packet_only_rule_of_6_8_6_rejects() {
        let cases: &[(&str, [u8; 24], RxError)] = &[
            ("version 0", mutated(|b| b[0] = 0x00), RxError::BadVersion),
            ("version 2", mutated(|b| b[0] = 0x40), RxError::BadVersion),
            ("length 23", mutated(|b| b[3] = 23), RxError::BadLength),
            ("length 0", mutated(|b| b[3] = 0), RxError::BadLength),
            (
                "A bit, length 24",
                mutated(|b| b[1] |= FLAG_A),
                RxError::BadLength,
            ),
            (
                "length 25 > payload 24",
                mutated(|b| b[3] = 25),
                RxError::LengthExceedsPayload,
            ),
            (
                "detect mult 0",
                mutated(|b| b[2] = 0),
                RxError::ZeroDetectMult,
            ),
            ("M bit", mutated(|b| b[1] |= FLAG_M), RxError::Multipoint),
            (
                "my discr 0",
                mutated(|b| b[4..8].fill(0)),
                RxError::ZeroMyDiscr,
            ),
            (
                "your discr 0 in Init",
                mutated(|b| b[1] = 0x80),
                RxError::ZeroYourDiscr,
            ),
            (
                "your discr 0 in Up",
                mutated(|b| b[1] = 0xc0),
                RxError::ZeroYourDiscr,
            ),
            (
                "P and F",
                mutated(|b| {
                    b[1] |= FLAG_P | FLAG_F;
                    b[11] = 1;
                }),
                RxError::PollAndFinal,
            ),
        ];
        for (what, bytes, want) in cases {
            assert_eq!(Repr::parse_bytes(bytes), Err(*want), "{what}");
        }
        // Your Discriminator zero is fine in Down and AdminDown.
        assert!(Repr::parse_bytes(&mutated(|b| b[1] = 0x00)).is_ok());
        assert!(Repr::parse_bytes(&DOWN_NO_YOUR_DISCR).is_ok());
    }

    #[test]
    fn short_buffers_and_bad_auth_length() {
        assert_eq!(Repr::parse_bytes(&[]), Err(RxError::Truncated));
        assert_eq!(
            Repr::parse_bytes(&DOWN_NO_YOUR_DISCR[..23]),
            Err(RxError::Truncated)
        );
        assert_eq!(
            Packet::new_checked(&[0u8; 10][..]).err(),
            Some(RxError::Truncated)
        );
        // Auth Len 1 (< 2) and Auth Len running past Length.
        for auth_len in [0u8, 1, 6, 255] {
            let mut b = INIT_POLL_AUTH;
            b[25] = auth_len;
            assert_eq!(
                Repr::parse_bytes(&b),
                Err(RxError::BadAuthLength),
                "auth len {auth_len}"
            );
        }
    }

    #[test]
    fn emit_refuses_small_buffer_and_long_auth() {
        let mut small = [0u8; 23];
        assert_eq!(down_repr().emit(&mut small), Err(EmitError::BufferTooSmall));
        let data = [0u8; 230];
        let r = Repr {
            auth: Some(Auth {
                auth_type: AuthType::KeyedSha1,
                data: &data,
            }),
            ..down_repr()
        };
        let mut big = [0u8; 300];
        assert_eq!(r.emit(&mut big), Err(EmitError::AuthTooLong));
    }

    #[test]
    fn setters_touch_only_their_bits() {
        let mut b = [0u8; 24];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_version(1);
        p.set_diag(Diag::Unknown(31));
        p.set_state(State::Up);
        p.set_poll(true);
        p.set_multipoint(true);
        assert_eq!(p.version(), 1);
        assert_eq!(p.diag(), Diag::Unknown(31));
        assert_eq!(p.state(), State::Up);
        assert!(p.poll() && p.multipoint() && !p.final_() && !p.demand());
        p.set_poll(false);
        assert!(!p.poll() && p.multipoint());
        assert_eq!(b[0], 0x3f);
        assert_eq!(b[1], 0xc1);
    }

    #[test]
    fn diag_and_auth_type_codes_round_trip() {
        for code in 0..32u8 {
            assert_eq!(Diag::from_bits(code).bits(), code);
        }
        for code in 0..=255u8 {
            assert_eq!(u8::from(AuthType::from(code)), code);
        }
    }

    #[test]
    fn counters_are_indexed_by_reason() {
        for (i, r) in RxError::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r:?} out of order");
        }
        let mut c = RxCounters::default();
        c.bump(RxError::BadTtl);
        c.bump(RxError::BadTtl);
        c.bump(RxError::Truncated);
        assert_eq!(c.get(RxError::BadTtl), 2);
        assert_eq!(c.get(RxError::Truncated), 1);
        assert_eq!(c.total(), 3);
        assert_eq!(RxError::BadTtl.to_string(), "bad_ttl");
    }

    mod prop {
        use proptest::prelude::*;

        use super::super::*;

        fn diag() -> impl Strategy<Value = Diag> {
            (0u8..32).prop_map(Diag::from_bits)
        }
        fn state() -> impl Strategy<Value = State> {
            (0u8..4).prop_map(State::from_bits)
        }

        proptest! {
            #[test]
            fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
                let _ = Repr::parse_bytes(&bytes);
                if let Ok(p) = Packet::new_checked(&bytes[..]) {
                    let _ = (p.auth(), p.state(), p.desired_min_tx());
                }
            }

            #[test]
            fn parse_accepts_only_what_the_view_checked(
                bytes in proptest::collection::vec(any::<u8>(), 24..64)
            ) {
                if let Ok(r) = Repr::parse_bytes(&bytes) {
                    prop_assert_eq!(r.version, 1);
                    prop_assert!(r.detect_mult != 0 && r.my_discr != 0 && !r.multipoint);
                    prop_assert!(r.buffer_len() <= bytes.len());
                }
            }

            #[test]
            fn emit_parse_round_trip(
                diag in diag(),
                st in state(),
                pf in 0u8..3,
                c: bool,
                d: bool,
                detect_mult in 1u8..,
                my_discr in 1u32..,
                your_discr: u32,
                tx: u32,
                rx: u32,
                echo: u32,
                auth in proptest::option::of((any::<u8>(), proptest::collection::vec(any::<u8>(), 0..40))),
            ) {
                let your_discr = if matches!(st, State::Init | State::Up) { your_discr.max(1) } else { your_discr };
                let repr = Repr {
                    version: 1, diag, state: st,
                    poll: pf == 1, final_: pf == 2,
                    control_plane_independent: c, demand: d, multipoint: false,
                    detect_mult, my_discr, your_discr,
                    desired_min_tx: tx, required_min_rx: rx, required_min_echo_rx: echo,
                    auth: auth.as_ref().map(|(t, data)| Auth { auth_type: AuthType::from(*t), data }),
                };
                let mut buf = [0u8; 255];
                let n = repr.emit(&mut buf).unwrap();
                prop_assert_eq!(n, repr.buffer_len());
                prop_assert_eq!(Repr::parse_bytes(&buf[..n]), Ok(repr));
            }
        }
    }
}

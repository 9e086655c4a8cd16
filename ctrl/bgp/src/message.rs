//! BGP-4 messages as values (the parsed "Repr" side of the codec).
//!
//! Every type here is plain data: `codec` turns bytes into these values and
//! back. Numbers the RFCs leave open (AFI, SAFI, capability codes, attribute
//! type codes, NOTIFICATION codes) are kept as numbers with named constants,
//! so an unknown value is a value, not an error (STYLE §4, "unknown protocol
//! numbers become a variant").

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// RFC 4271 §4.1: the 16-octet marker, all ones.
pub const MARKER: [u8; 16] = [0xff; 16];
/// RFC 4271 §4.1: length of the fixed header.
pub const HEADER_LEN: usize = 19;
/// RFC 4271 §4.1: "The value of the Length field MUST always be at least 19
/// and no greater than 4096".
pub const MAX_MESSAGE_LEN: usize = 4096;
/// RFC 6793 §9: the 2-octet AS number standing in for a 4-octet one.
pub const AS_TRANS: u16 = 23456;
/// RFC 4271 §4.2: the only protocol version we speak.
pub const BGP_VERSION: u8 = 4;

/// RFC 4271 §4.1: message type codes (ROUTE-REFRESH: RFC 2918 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// 1
    Open,
    /// 2
    Update,
    /// 3
    Notification,
    /// 4
    Keepalive,
    /// 5 (RFC 2918)
    RouteRefresh,
}

impl MessageType {
    /// The wire code.
    pub fn code(self) -> u8 {
        match self {
            Self::Open => 1,
            Self::Update => 2,
            Self::Notification => 3,
            Self::Keepalive => 4,
            Self::RouteRefresh => 5,
        }
    }

    /// The type for a wire code, `None` for an unknown one.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => Self::Open,
            2 => Self::Update,
            3 => Self::Notification,
            4 => Self::Keepalive,
            5 => Self::RouteRefresh,
            _ => return None,
        })
    }
}

/// Address Family Identifier (RFC 4760 §3, IANA "Address Family Numbers").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Afi(pub u16);

impl Afi {
    /// IPv4.
    pub const IPV4: Afi = Afi(1);
    /// IPv6.
    pub const IPV6: Afi = Afi(2);
}

/// Subsequent Address Family Identifier (RFC 4760 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Safi(pub u8);

impl Safi {
    /// Unicast forwarding.
    pub const UNICAST: Safi = Safi(1);
}

/// An `<AFI, SAFI>` pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Family {
    /// Address family.
    pub afi: Afi,
    /// Subsequent address family.
    pub safi: Safi,
}

impl Family {
    /// IPv4 unicast: the family of the classic UPDATE fields.
    pub const IPV4_UNICAST: Family = Family {
        afi: Afi::IPV4,
        safi: Safi::UNICAST,
    };
    /// IPv6 unicast, carried in MP_REACH_NLRI / MP_UNREACH_NLRI.
    pub const IPV6_UNICAST: Family = Family {
        afi: Afi::IPV6,
        safi: Safi::UNICAST,
    };
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Family::IPV4_UNICAST => f.write_str("ipv4-unicast"),
            Family::IPV6_UNICAST => f.write_str("ipv6-unicast"),
            Family { afi, safi } => write!(f, "afi{}-safi{}", afi.0, safi.0),
        }
    }
}

/// An IPv4 prefix; host bits beyond `len` are always zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Prefix {
    addr: Ipv4Addr,
    len: u8,
}

impl Ipv4Prefix {
    /// A prefix, host bits cleared; `None` when `len > 32`.
    pub fn new(addr: Ipv4Addr, len: u8) -> Option<Self> {
        if len > 32 {
            return None;
        }
        let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
        Some(Self {
            addr: Ipv4Addr::from(u32::from(addr) & mask),
            len,
        })
    }

    /// A /32.
    pub fn host(addr: Ipv4Addr) -> Self {
        Self { addr, len: 32 }
    }

    /// Network address.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// Prefix length in bits.
    pub fn len(&self) -> u8 {
        self.len
    }

    /// True for the default route 0.0.0.0/0.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Display for Ipv4Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// An IPv6 prefix; host bits beyond `len` are always zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv6Prefix {
    addr: Ipv6Addr,
    len: u8,
}

impl Ipv6Prefix {
    /// A prefix, host bits cleared; `None` when `len > 128`.
    pub fn new(addr: Ipv6Addr, len: u8) -> Option<Self> {
        if len > 128 {
            return None;
        }
        let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
        Some(Self {
            addr: Ipv6Addr::from(u128::from(addr) & mask),
            len,
        })
    }

    /// A /128.
    pub fn host(addr: Ipv6Addr) -> Self {
        Self { addr, len: 128 }
    }

    /// Network address.
    pub fn addr(&self) -> Ipv6Addr {
        self.addr
    }

    /// Prefix length in bits.
    pub fn len(&self) -> u8 {
        self.len
    }

    /// True for ::/0.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Display for Ipv6Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// A prefix of either family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Prefix {
    /// IPv4.
    V4(Ipv4Prefix),
    /// IPv6.
    V6(Ipv6Prefix),
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Prefix::V4(p) => p.fmt(f),
            Prefix::V6(p) => p.fmt(f),
        }
    }
}

/// A BGP message.
///
/// ```text
/// RFC 4271 §4.1, the header every message starts with:
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                                                               |
/// +                                                               +
/// |                           Marker                              |
/// +                                                               +
/// |                                                               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |          Length               |      Type     |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// OPEN (type 1).
    Open(Open),
    /// UPDATE (type 2).
    Update(Update),
    /// NOTIFICATION (type 3).
    Notification(Notification),
    /// KEEPALIVE (type 4): the header alone.
    Keepalive,
    /// ROUTE-REFRESH (type 5).
    RouteRefresh(RouteRefresh),
}

impl Message {
    /// The message's type.
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::Open(_) => MessageType::Open,
            Message::Update(_) => MessageType::Update,
            Message::Notification(_) => MessageType::Notification,
            Message::Keepalive => MessageType::Keepalive,
            Message::RouteRefresh(_) => MessageType::RouteRefresh,
        }
    }
}

/// OPEN message.
///
/// ```text
/// RFC 4271 §4.2:
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+
/// |    Version    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |     My Autonomous System      |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |           Hold Time           |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                         BGP Identifier                        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// | Opt Parm Len  |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |             Optional Parameters (variable)                    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///
/// Optional Parameter: | Parm. Type (1) | Parm. Length (1) | Value |
/// RFC 5492 §4: Parm. Type 2 = Capabilities, Value = a list of
///     | Capability Code (1) | Capability Length (1) | Capability Value |
/// ```
///
/// Capabilities are kept as one list; the encoder writes one Capabilities
/// parameter per capability, as FRR and GoBGP do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    /// Protocol version (4).
    pub version: u8,
    /// My Autonomous System: the 2-octet AS, or AS_TRANS (RFC 6793 §4.1).
    pub my_as: u16,
    /// Proposed hold time in seconds (0, or at least 3).
    pub hold_time: u16,
    /// BGP Identifier (RFC 6286: a 4-octet unsigned number, shown as IPv4).
    pub bgp_id: Ipv4Addr,
    /// Capabilities, in order of appearance.
    pub capabilities: Vec<Capability>,
}

impl Open {
    /// The speaker's AS: the 4-octet capability's value when present
    /// (RFC 6793 §4.1), else `my_as`.
    pub fn asn(&self) -> u32 {
        self.four_octet_as().unwrap_or(u32::from(self.my_as))
    }

    /// The value of the 4-octet AS capability, if sent.
    pub fn four_octet_as(&self) -> Option<u32> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::FourOctetAs(asn) => Some(*asn),
            _ => None,
        })
    }

    /// The families of the Multiprotocol capabilities (RFC 4760 §8).
    pub fn families(&self) -> Vec<Family> {
        self.capabilities
            .iter()
            .filter_map(|c| match c {
                Capability::Multiprotocol(f) => Some(*f),
                _ => None,
            })
            .collect()
    }

    /// The graceful-restart capability, if sent.
    pub fn graceful_restart(&self) -> Option<&GracefulRestart> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::GracefulRestart(gr) => Some(gr),
            _ => None,
        })
    }

    /// True when the route-refresh capability (code 2, RFC 2918) was sent.
    pub fn route_refresh(&self) -> bool {
        self.capabilities
            .iter()
            .any(|c| matches!(c, Capability::RouteRefresh))
    }
}

/// RFC 5492 capability codes this crate names.
pub mod capability_code {
    /// RFC 4760 Multiprotocol Extensions.
    pub const MULTIPROTOCOL: u8 = 1;
    /// RFC 2918 Route Refresh.
    pub const ROUTE_REFRESH: u8 = 2;
    /// RFC 4724 Graceful Restart.
    pub const GRACEFUL_RESTART: u8 = 64;
    /// RFC 6793 4-octet AS number.
    pub const FOUR_OCTET_AS: u8 = 65;
    /// RFC 7313 Enhanced Route Refresh (recognised, not acted upon).
    pub const ENHANCED_ROUTE_REFRESH: u8 = 70;
}

/// A capability (RFC 5492 §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capability {
    /// Code 1 (RFC 4760 §8): `| AFI (2) | Res. (1) | SAFI (1) |`.
    Multiprotocol(Family),
    /// Code 2 (RFC 2918 §2), empty value.
    RouteRefresh,
    /// Code 64 (RFC 4724 §3).
    GracefulRestart(GracefulRestart),
    /// Code 65 (RFC 6793 §3): the 4-octet AS number.
    FourOctetAs(u32),
    /// Code 70 (RFC 7313), empty value; recognised and otherwise ignored.
    EnhancedRouteRefresh,
    /// Anything else, kept as received (and ignored by negotiation).
    Unknown {
        /// Capability code.
        code: u8,
        /// Capability value.
        value: Vec<u8>,
    },
}

impl Capability {
    /// The capability code.
    pub fn code(&self) -> u8 {
        match self {
            Capability::Multiprotocol(_) => capability_code::MULTIPROTOCOL,
            Capability::RouteRefresh => capability_code::ROUTE_REFRESH,
            Capability::GracefulRestart(_) => capability_code::GRACEFUL_RESTART,
            Capability::FourOctetAs(_) => capability_code::FOUR_OCTET_AS,
            Capability::EnhancedRouteRefresh => capability_code::ENHANCED_ROUTE_REFRESH,
            Capability::Unknown { code, .. } => *code,
        }
    }
}

/// The graceful-restart capability.
///
/// ```text
/// RFC 4724 §3 (flag N: RFC 8538 §2):
/// +--------------------------------------------------+
/// | Restart Flags (4 bits) | Restart Time (12 bits)  |
/// +--------------------------------------------------+
/// | AFI (2) | SAFI (1) | Flags for Address Family (1)|  (repeated)
/// +--------------------------------------------------+
/// Restart Flags: R (0x8) = restarting, N (0x4) = notification support.
/// Flags for Address Family: F (0x80) = forwarding state preserved.
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GracefulRestart {
    /// The 4 Restart Flags bits (upper nibble of the first octet, shifted
    /// down: R = 0x8, N = 0x4).
    pub flags: u8,
    /// Restart Time in seconds (12 bits, at most 4095).
    pub restart_time: u16,
    /// Per-family state.
    pub families: Vec<GracefulRestartFamily>,
}

impl GracefulRestart {
    /// Restart Flags: R, "the BGP speaker has restarted".
    pub const RESTART_STATE: u8 = 0x8;
    /// Restart Flags: N (RFC 8538), notification support.
    pub const NOTIFICATION: u8 = 0x4;

    /// True when the R bit is set.
    pub fn restart_state(&self) -> bool {
        self.flags & Self::RESTART_STATE != 0
    }
}

/// One `<AFI, SAFI, Flags>` tuple of the graceful-restart capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GracefulRestartFamily {
    /// The family.
    pub family: Family,
    /// F bit: forwarding state for this family was preserved.
    pub forwarding_state: bool,
}

/// UPDATE message.
///
/// ```text
/// RFC 4271 §4.3:
/// +-----------------------------------------------------+
/// |   Withdrawn Routes Length (2 octets)                |
/// +-----------------------------------------------------+
/// |   Withdrawn Routes (variable)                       |
/// +-----------------------------------------------------+
/// |   Total Path Attribute Length (2 octets)            |
/// +-----------------------------------------------------+
/// |   Path Attributes (variable)                        |
/// +-----------------------------------------------------+
/// |   Network Layer Reachability Information (variable) |
/// +-----------------------------------------------------+
/// Each prefix: | Length (1 octet, bits) | Prefix (ceil(Length/8) octets) |
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Update {
    /// IPv4 prefixes withdrawn.
    pub withdrawn: Vec<Ipv4Prefix>,
    /// Path attributes, in order of appearance.
    pub attributes: Vec<PathAttribute>,
    /// IPv4 prefixes announced (with the classic NEXT_HOP).
    pub nlri: Vec<Ipv4Prefix>,
}

impl Update {
    /// The End-of-RIB marker of a family (RFC 4724 §2): an empty UPDATE for
    /// IPv4 unicast, an UPDATE holding only an empty MP_UNREACH_NLRI for
    /// the others.
    pub fn end_of_rib(family: Family) -> Update {
        if family == Family::IPV4_UNICAST {
            return Update::default();
        }
        let withdrawn = match family {
            Family::IPV6_UNICAST => MpNlri::Ipv6(Vec::new()),
            _ => MpNlri::Other(Vec::new()),
        };
        Update {
            attributes: vec![PathAttribute::new(AttributeValue::MpUnreachNlri(
                MpUnreach { family, withdrawn },
            ))],
            ..Update::default()
        }
    }

    /// The family whose End-of-RIB marker this UPDATE is, if it is one.
    pub fn is_end_of_rib(&self) -> Option<Family> {
        if !self.withdrawn.is_empty() || !self.nlri.is_empty() {
            return None;
        }
        match self.attributes.as_slice() {
            [] => Some(Family::IPV4_UNICAST),
            [PathAttribute {
                value: AttributeValue::MpUnreachNlri(u),
                ..
            }] if u.withdrawn.is_empty() => Some(u.family),
            _ => None,
        }
    }

    /// The first attribute with this type code.
    pub fn attribute(&self, type_code: u8) -> Option<&AttributeValue> {
        self.attributes
            .iter()
            .find(|a| a.type_code() == type_code)
            .map(|a| &a.value)
    }

    /// True when `asn` is on the route's AS_PATH or AS4_PATH: the route
    /// went through that AS already (RFC 4271 §9.1.2: a route with our own
    /// AS on its path is a loop and takes no part in the decision).
    pub fn path_contains(&self, asn: u32) -> bool {
        self.attributes.iter().any(|a| match &a.value {
            AttributeValue::AsPath(p) | AttributeValue::As4Path(p) => p.contains(asn),
            _ => false,
        })
    }

    /// All prefixes announced: the classic NLRI and MP_REACH_NLRI's.
    pub fn announced(&self) -> Vec<Prefix> {
        let mut out: Vec<Prefix> = self.nlri.iter().map(|p| Prefix::V4(*p)).collect();
        for a in &self.attributes {
            if let AttributeValue::MpReachNlri(r) = &a.value {
                r.nlri.push_prefixes(&mut out);
            }
        }
        out
    }

    /// All prefixes withdrawn: the classic field and MP_UNREACH_NLRI's.
    pub fn withdrawn_prefixes(&self) -> Vec<Prefix> {
        let mut out: Vec<Prefix> = self.withdrawn.iter().map(|p| Prefix::V4(*p)).collect();
        for a in &self.attributes {
            if let AttributeValue::MpUnreachNlri(u) = &a.value {
                u.withdrawn.push_prefixes(&mut out);
            }
        }
        out
    }
}

/// RFC 4271 §4.3 (and later RFCs): path attribute type codes.
pub mod attr_type {
    /// ORIGIN, well-known mandatory.
    pub const ORIGIN: u8 = 1;
    /// AS_PATH, well-known mandatory.
    pub const AS_PATH: u8 = 2;
    /// NEXT_HOP, well-known mandatory (for the classic NLRI).
    pub const NEXT_HOP: u8 = 3;
    /// MULTI_EXIT_DISC, optional non-transitive.
    pub const MULTI_EXIT_DISC: u8 = 4;
    /// LOCAL_PREF, well-known (iBGP).
    pub const LOCAL_PREF: u8 = 5;
    /// ATOMIC_AGGREGATE, well-known discretionary.
    pub const ATOMIC_AGGREGATE: u8 = 6;
    /// AGGREGATOR, optional transitive.
    pub const AGGREGATOR: u8 = 7;
    /// COMMUNITIES (RFC 1997), optional transitive.
    pub const COMMUNITIES: u8 = 8;
    /// MP_REACH_NLRI (RFC 4760), optional non-transitive.
    pub const MP_REACH_NLRI: u8 = 14;
    /// MP_UNREACH_NLRI (RFC 4760), optional non-transitive.
    pub const MP_UNREACH_NLRI: u8 = 15;
    /// AS4_PATH (RFC 6793), optional transitive.
    pub const AS4_PATH: u8 = 17;
    /// AS4_AGGREGATOR (RFC 6793), optional transitive.
    pub const AS4_AGGREGATOR: u8 = 18;
}

/// RFC 4271 §4.3: attribute flag bits.
pub mod attr_flags {
    /// Optional (1) or well-known (0).
    pub const OPTIONAL: u8 = 0x80;
    /// Transitive.
    pub const TRANSITIVE: u8 = 0x40;
    /// Partial: an optional transitive attribute passed on by a speaker that
    /// did not recognise it.
    pub const PARTIAL: u8 = 0x20;
    /// Extended Length: the length field is two octets.
    pub const EXTENDED_LENGTH: u8 = 0x10;
}

/// A path attribute: its flags as received (or the canonical ones) and its
/// value.
///
/// ```text
/// RFC 4271 §4.3:
///  0                   1
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5
/// +---------------+---------------+
/// |  Attr. Flags  |Attr. Type Code|  then Attr. Length (1 octet, or 2 if
/// +---------------+---------------+  Extended Length), then the value
/// Flags: O (0x80) optional, T (0x40) transitive, P (0x20) partial,
///        E (0x10) extended length; low 4 bits unused (sent 0, ignored).
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathAttribute {
    /// Flags. The encoder keeps them as given, except that it sets
    /// Extended Length when the value needs it.
    pub flags: u8,
    /// The value.
    pub value: AttributeValue,
}

impl PathAttribute {
    /// An attribute with the canonical flags of its type.
    pub fn new(value: AttributeValue) -> Self {
        let flags = value.canonical_flags();
        Self { flags, value }
    }

    /// The attribute type code.
    pub fn type_code(&self) -> u8 {
        self.value.type_code()
    }
}

/// ORIGIN values (RFC 4271 §5.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// 0: learned from an IGP (what a VIP is).
    Igp,
    /// 1: learned from EGP.
    Egp,
    /// 2: learned some other way.
    Incomplete,
}

/// AS_PATH segment types (RFC 4271 §4.3, confederations RFC 5065 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentType {
    /// 1
    AsSet,
    /// 2
    AsSequence,
    /// 3
    ConfedSequence,
    /// 4
    ConfedSet,
}

impl SegmentType {
    /// Wire code.
    pub fn code(self) -> u8 {
        match self {
            SegmentType::AsSet => 1,
            SegmentType::AsSequence => 2,
            SegmentType::ConfedSequence => 3,
            SegmentType::ConfedSet => 4,
        }
    }

    /// Type for a code.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => SegmentType::AsSet,
            2 => SegmentType::AsSequence,
            3 => SegmentType::ConfedSequence,
            4 => SegmentType::ConfedSet,
            _ => return None,
        })
    }
}

/// One AS_PATH segment.
///
/// ```text
/// RFC 4271 §4.3: | segment type (1) | segment length (1, in ASes) |
///                | ASes: 2 octets each, or 4 octets (RFC 6793)    |
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsSegment {
    /// Segment type.
    pub kind: SegmentType,
    /// The ASes (1 to 255 of them on the wire).
    pub asns: Vec<u32>,
}

/// An AS_PATH (or AS4_PATH): its segments.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AsPath {
    /// Segments in order.
    pub segments: Vec<AsSegment>,
}

impl AsPath {
    /// A path of one AS_SEQUENCE (empty when `asns` is).
    pub fn sequence(asns: &[u32]) -> Self {
        if asns.is_empty() {
            return Self::default();
        }
        Self {
            segments: vec![AsSegment {
                kind: SegmentType::AsSequence,
                asns: asns.to_vec(),
            }],
        }
    }

    /// True when `asn` is on the path, in any segment.
    pub fn contains(&self, asn: u32) -> bool {
        self.segments.iter().any(|s| s.asns.contains(&asn))
    }

    /// True when some AS does not fit in 2 octets.
    pub fn has_four_octet(&self) -> bool {
        self.segments
            .iter()
            .flat_map(|s| &s.asns)
            .any(|a| *a > 0xffff)
    }
}

/// A COMMUNITIES value (RFC 1997): `AS (2) : value (2)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Community(pub u32);

impl Community {
    /// RFC 8326: GRACEFUL_SHUTDOWN, 65535:0.
    pub const GRACEFUL_SHUTDOWN: Community = Community(0xffff_0000);
    /// RFC 1997: NO_EXPORT.
    pub const NO_EXPORT: Community = Community(0xffff_ff01);
    /// RFC 1997: NO_ADVERTISE.
    pub const NO_ADVERTISE: Community = Community(0xffff_ff02);

    /// `asn:value`.
    pub fn new(asn: u16, value: u16) -> Self {
        Community((u32::from(asn) << 16) | u32::from(value))
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0 >> 16, self.0 & 0xffff)
    }
}

/// MP_REACH_NLRI next hop (RFC 4760 §3; IPv6: RFC 2545 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MpNextHop {
    /// 4 octets.
    V4(Ipv4Addr),
    /// 16 octets (global) or 32 (global then link-local).
    V6 {
        /// Global address.
        global: Ipv6Addr,
        /// Link-local address, when the next hop field is 32 octets long.
        link_local: Option<Ipv6Addr>,
    },
    /// Any other length or family, as received.
    Other(Vec<u8>),
}

/// The NLRI of an MP attribute, parsed for the unicast families we know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MpNlri {
    /// IPv4 unicast prefixes.
    Ipv4(Vec<Ipv4Prefix>),
    /// IPv6 unicast prefixes.
    Ipv6(Vec<Ipv6Prefix>),
    /// Another family's NLRI, raw.
    Other(Vec<u8>),
}

impl MpNlri {
    /// True when there is nothing in it.
    pub fn is_empty(&self) -> bool {
        match self {
            MpNlri::Ipv4(v) => v.is_empty(),
            MpNlri::Ipv6(v) => v.is_empty(),
            MpNlri::Other(v) => v.is_empty(),
        }
    }

    fn push_prefixes(&self, out: &mut Vec<Prefix>) {
        match self {
            MpNlri::Ipv4(v) => out.extend(v.iter().map(|p| Prefix::V4(*p))),
            MpNlri::Ipv6(v) => out.extend(v.iter().map(|p| Prefix::V6(*p))),
            MpNlri::Other(_) => {}
        }
    }
}

/// MP_REACH_NLRI.
///
/// ```text
/// RFC 4760 §3:
/// +---------------------------------------------------------+
/// | Address Family Identifier (2 octets)                    |
/// +---------------------------------------------------------+
/// | Subsequent Address Family Identifier (1 octet)          |
/// +---------------------------------------------------------+
/// | Length of Next Hop Network Address (1 octet)            |
/// +---------------------------------------------------------+
/// | Network Address of Next Hop (variable)                  |
/// +---------------------------------------------------------+
/// | Reserved (1 octet)                                      |
/// +---------------------------------------------------------+
/// | Network Layer Reachability Information (variable)       |
/// +---------------------------------------------------------+
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpReach {
    /// `<AFI, SAFI>`.
    pub family: Family,
    /// Next hop.
    pub next_hop: MpNextHop,
    /// Announced prefixes.
    pub nlri: MpNlri,
}

/// MP_UNREACH_NLRI.
///
/// ```text
/// RFC 4760 §4:
/// +---------------------------------------------------------+
/// | Address Family Identifier (2 octets)                    |
/// +---------------------------------------------------------+
/// | Subsequent Address Family Identifier (1 octet)          |
/// +---------------------------------------------------------+
/// | Withdrawn Routes (variable)                             |
/// +---------------------------------------------------------+
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpUnreach {
    /// `<AFI, SAFI>`.
    pub family: Family,
    /// Withdrawn prefixes.
    pub withdrawn: MpNlri,
}

/// A path attribute's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeValue {
    /// 1, one octet.
    Origin(Origin),
    /// 2; 2- or 4-octet ASes depending on the session (RFC 6793).
    AsPath(AsPath),
    /// 3, 4 octets.
    NextHop(Ipv4Addr),
    /// 4, 4 octets.
    MultiExitDisc(u32),
    /// 5, 4 octets.
    LocalPref(u32),
    /// 6, empty.
    AtomicAggregate,
    /// 7: AS (2 or 4 octets, as AS_PATH) and IPv4 address.
    Aggregator {
        /// Aggregating AS.
        asn: u32,
        /// Aggregating speaker.
        addr: Ipv4Addr,
    },
    /// 8, a list of 4-octet communities.
    Communities(Vec<Community>),
    /// 14.
    MpReachNlri(MpReach),
    /// 15.
    MpUnreachNlri(MpUnreach),
    /// 17, always 4-octet ASes.
    As4Path(AsPath),
    /// 18: 4-octet AS and IPv4 address.
    As4Aggregator {
        /// Aggregating AS.
        asn: u32,
        /// Aggregating speaker.
        addr: Ipv4Addr,
    },
    /// Any other attribute, kept as received.
    Unknown {
        /// Type code.
        type_code: u8,
        /// Value.
        value: Vec<u8>,
    },
}

impl AttributeValue {
    /// Type code.
    pub fn type_code(&self) -> u8 {
        use attr_type::*;
        match self {
            AttributeValue::Origin(_) => ORIGIN,
            AttributeValue::AsPath(_) => AS_PATH,
            AttributeValue::NextHop(_) => NEXT_HOP,
            AttributeValue::MultiExitDisc(_) => MULTI_EXIT_DISC,
            AttributeValue::LocalPref(_) => LOCAL_PREF,
            AttributeValue::AtomicAggregate => ATOMIC_AGGREGATE,
            AttributeValue::Aggregator { .. } => AGGREGATOR,
            AttributeValue::Communities(_) => COMMUNITIES,
            AttributeValue::MpReachNlri(_) => MP_REACH_NLRI,
            AttributeValue::MpUnreachNlri(_) => MP_UNREACH_NLRI,
            AttributeValue::As4Path(_) => AS4_PATH,
            AttributeValue::As4Aggregator { .. } => AS4_AGGREGATOR,
            AttributeValue::Unknown { type_code, .. } => *type_code,
        }
    }

    /// The Optional and Transitive bits the RFCs assign to this attribute
    /// (`None` for an unknown one).
    pub fn expected_flags(type_code: u8) -> Option<u8> {
        use attr_flags::*;
        use attr_type::*;
        Some(match type_code {
            // RFC 4271 §5: well-known attributes are transitive.
            ORIGIN | AS_PATH | NEXT_HOP | LOCAL_PREF | ATOMIC_AGGREGATE => TRANSITIVE,
            MULTI_EXIT_DISC | MP_REACH_NLRI | MP_UNREACH_NLRI => OPTIONAL,
            AGGREGATOR | COMMUNITIES | AS4_PATH | AS4_AGGREGATOR => OPTIONAL | TRANSITIVE,
            _ => return None,
        })
    }

    fn canonical_flags(&self) -> u8 {
        match self {
            // An unknown attribute we originate: optional transitive.
            AttributeValue::Unknown { .. } => attr_flags::OPTIONAL | attr_flags::TRANSITIVE,
            v => Self::expected_flags(v.type_code()).unwrap_or(0),
        }
    }
}

/// NOTIFICATION error codes (RFC 4271 §4.5; 7: RFC 7313).
pub mod error_code {
    /// Message Header Error.
    pub const MESSAGE_HEADER: u8 = 1;
    /// OPEN Message Error.
    pub const OPEN_MESSAGE: u8 = 2;
    /// UPDATE Message Error.
    pub const UPDATE_MESSAGE: u8 = 3;
    /// Hold Timer Expired.
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    /// Finite State Machine Error.
    pub const FSM: u8 = 5;
    /// Cease.
    pub const CEASE: u8 = 6;
    /// ROUTE-REFRESH Message Error (RFC 7313 §5).
    pub const ROUTE_REFRESH: u8 = 7;
}

/// Message Header Error subcodes (RFC 4271 §6.1).
pub mod header_subcode {
    /// Connection Not Synchronized (bad marker).
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
    /// Bad Message Length.
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    /// Bad Message Type.
    pub const BAD_MESSAGE_TYPE: u8 = 3;
}

/// OPEN Message Error subcodes (RFC 4271 §6.2; 7: RFC 5492).
pub mod open_subcode {
    /// Unspecific: a recognised optional parameter is malformed.
    pub const UNSPECIFIC: u8 = 0;
    /// Unsupported Version Number.
    pub const UNSUPPORTED_VERSION: u8 = 1;
    /// Bad Peer AS.
    pub const BAD_PEER_AS: u8 = 2;
    /// Bad BGP Identifier.
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    /// Unsupported Optional Parameter.
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    /// Unacceptable Hold Time.
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    /// Unsupported Capability (RFC 5492 §5).
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
}

/// UPDATE Message Error subcodes (RFC 4271 §6.3).
pub mod update_subcode {
    /// Malformed Attribute List.
    pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    /// Unrecognized Well-known Attribute.
    pub const UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: u8 = 2;
    /// Missing Well-known Attribute.
    pub const MISSING_WELL_KNOWN_ATTRIBUTE: u8 = 3;
    /// Attribute Flags Error.
    pub const ATTRIBUTE_FLAGS_ERROR: u8 = 4;
    /// Attribute Length Error.
    pub const ATTRIBUTE_LENGTH_ERROR: u8 = 5;
    /// Invalid ORIGIN Attribute.
    pub const INVALID_ORIGIN_ATTRIBUTE: u8 = 6;
    /// Invalid NEXT_HOP Attribute.
    pub const INVALID_NEXT_HOP_ATTRIBUTE: u8 = 8;
    /// Optional Attribute Error.
    pub const OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;
    /// Invalid Network Field.
    pub const INVALID_NETWORK_FIELD: u8 = 10;
    /// Malformed AS_PATH.
    pub const MALFORMED_AS_PATH: u8 = 11;
}

/// Finite State Machine Error subcodes (RFC 6608 §3).
pub mod fsm_subcode {
    /// Unspecified Error.
    pub const UNSPECIFIED: u8 = 0;
    /// Receive Unexpected Message in OpenSent State.
    pub const UNEXPECTED_IN_OPEN_SENT: u8 = 1;
    /// Receive Unexpected Message in OpenConfirm State.
    pub const UNEXPECTED_IN_OPEN_CONFIRM: u8 = 2;
    /// Receive Unexpected Message in Established State.
    pub const UNEXPECTED_IN_ESTABLISHED: u8 = 3;
}

/// Cease subcodes (RFC 4486 §4; 9: RFC 8538).
pub mod cease_subcode {
    /// Maximum Number of Prefixes Reached.
    pub const MAX_PREFIXES: u8 = 1;
    /// Administrative Shutdown (data: RFC 8203 / RFC 9003 message).
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    /// Peer De-configured.
    pub const PEER_DECONFIGURED: u8 = 3;
    /// Administrative Reset (data: RFC 8203 message).
    pub const ADMINISTRATIVE_RESET: u8 = 4;
    /// Connection Rejected.
    pub const CONNECTION_REJECTED: u8 = 5;
    /// Other Configuration Change.
    pub const OTHER_CONFIGURATION_CHANGE: u8 = 6;
    /// Connection Collision Resolution.
    pub const CONNECTION_COLLISION_RESOLUTION: u8 = 7;
    /// Out of Resources.
    pub const OUT_OF_RESOURCES: u8 = 8;
    /// Hard Reset (RFC 8538).
    pub const HARD_RESET: u8 = 9;
}

/// NOTIFICATION message.
///
/// ```text
/// RFC 4271 §4.5:
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// | Error code    | Error subcode |   Data (variable)             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Error code (`error_code`).
    pub code: u8,
    /// Error subcode (per code).
    pub subcode: u8,
    /// Data.
    pub data: Vec<u8>,
}

impl Notification {
    /// A NOTIFICATION with no data.
    pub fn new(code: u8, subcode: u8) -> Self {
        Self {
            code,
            subcode,
            data: Vec::new(),
        }
    }

    /// A NOTIFICATION with data.
    pub fn with_data(code: u8, subcode: u8, data: Vec<u8>) -> Self {
        Self {
            code,
            subcode,
            data,
        }
    }

    /// Cease / Administrative Shutdown carrying a shutdown communication
    /// (RFC 8203 §2, length raised to 255 by RFC 9003): `| Length (1) |
    /// UTF-8 message |`. The message is cut at a character boundary to fit
    /// 255 octets; an empty message gives empty data.
    pub fn administrative_shutdown(message: &str) -> Self {
        let mut end = message.len().min(255);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let text = message.get(..end).unwrap_or("");
        let mut data = Vec::with_capacity(text.len() + 1);
        if !text.is_empty() {
            data.push(text.len() as u8);
            data.extend_from_slice(text.as_bytes());
        }
        Self::with_data(
            error_code::CEASE,
            cease_subcode::ADMINISTRATIVE_SHUTDOWN,
            data,
        )
    }

    /// The shutdown communication of a Cease / Administrative Shutdown or
    /// Reset (RFC 8203 §2), when the data holds a well-formed one.
    pub fn shutdown_message(&self) -> Option<String> {
        if self.code != error_code::CEASE
            || !matches!(
                self.subcode,
                cease_subcode::ADMINISTRATIVE_SHUTDOWN | cease_subcode::ADMINISTRATIVE_RESET
            )
        {
            return None;
        }
        let (&len, rest) = self.data.split_first()?;
        let text = rest.get(..usize::from(len))?;
        String::from_utf8(text.to_vec()).ok()
    }

    /// A short name of the error, for logs ("cease/administrative-shutdown").
    pub fn describe(&self) -> String {
        let code = match self.code {
            error_code::MESSAGE_HEADER => "message-header-error",
            error_code::OPEN_MESSAGE => "open-message-error",
            error_code::UPDATE_MESSAGE => "update-message-error",
            error_code::HOLD_TIMER_EXPIRED => "hold-timer-expired",
            error_code::FSM => "fsm-error",
            error_code::CEASE => "cease",
            error_code::ROUTE_REFRESH => "route-refresh-message-error",
            _ => "unknown",
        };
        format!("{code}({})/{}", self.code, self.subcode)
    }
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())?;
        if let Some(msg) = self.shutdown_message() {
            write!(f, " \"{msg}\"")?;
        } else if !self.data.is_empty() {
            write!(f, " data")?;
            for b in &self.data {
                write!(f, " {b:02x}")?;
            }
        }
        Ok(())
    }
}

/// ROUTE-REFRESH message.
///
/// ```text
/// RFC 2918 §3 (the Reserved octet is RFC 7313's Message Subtype):
///  0       7      15      23      31
///  +-------+-------+-------+-------+
///  |      AFI      | Res.  | SAFI  |
///  +-------+-------+-------+-------+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteRefresh {
    /// The family to re-advertise.
    pub family: Family,
    /// Reserved octet (RFC 7313 subtype: 0 normal, 1 BoRR, 2 EoRR).
    pub subtype: u8,
}

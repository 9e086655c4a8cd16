//! Bytes ⇄ [`Message`]: framing, decoding with the RFC reaction to every
//! malformation, and encoding.
//!
//! Decoding never panics: every read goes through `Reader`, which returns
//! `None` past the end, and every length is checked before it is used.
//!
//! Error handling follows RFC 4271 §6 for the header, OPEN, NOTIFICATION
//! and KEEPALIVE, and RFC 7606 for UPDATE path attributes:
//!
//! | malformation                                   | reaction                   |
//! |------------------------------------------------|----------------------------|
//! | header marker, length, type                    | NOTIFICATION 1/1, 1/2, 1/3 |
//! | OPEN version, hold time, identifier, params    | NOTIFICATION 2/x           |
//! | UPDATE field lengths, NLRI syntax              | NOTIFICATION 3/1, 3/10     |
//! | unrecognised well-known attribute              | NOTIFICATION 3/2           |
//! | MP_REACH/MP_UNREACH unparsable or repeated     | NOTIFICATION 3/9, 3/1      |
//! | ORIGIN, AS_PATH, NEXT_HOP, MED, LOCAL_PREF,    | treat-as-withdraw          |
//! |   COMMUNITIES malformed, flags wrong, missing  |                            |
//! |   mandatory attribute, attribute overrun       |                            |
//! | ATOMIC_AGGREGATE, AGGREGATOR, AS4_* malformed, | attribute-discard          |
//! |   LOCAL_PREF from eBGP, repeated attribute     |                            |

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::error::{DecodeError, DecodeResult, EncodeError, EncodeResult, Reaction};
use crate::message::*;

/// What the decoder and encoder need to know about the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    /// Both sides announced the 4-octet AS capability: AS_PATH and
    /// AGGREGATOR carry 4-octet ASes (RFC 6793 §4.1).
    pub four_octet_as: bool,
    /// The peer is external: LOCAL_PREF from it is discarded (RFC 7606
    /// §7.5).
    pub ebgp: bool,
}

impl Default for Context {
    /// A 4-octet-AS eBGP session, the usual case with FRR and BIRD.
    fn default() -> Self {
        Self {
            four_octet_as: true,
            ebgp: true,
        }
    }
}

/// A bounds-checked cursor over a byte slice.
#[derive(Debug, Clone, Copy)]
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn remaining(&self) -> usize {
        self.buf.len()
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.buf.len() {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        let (&b, tail) = self.buf.split_first()?;
        self.buf = tail;
        Some(b)
    }

    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
    }

    fn u32(&mut self) -> Option<u32> {
        let b: [u8; 4] = self.take(4)?.try_into().ok()?;
        Some(u32::from_be_bytes(b))
    }

    fn ipv4(&mut self) -> Option<Ipv4Addr> {
        self.u32().map(Ipv4Addr::from)
    }

    fn ipv6(&mut self) -> Option<Ipv6Addr> {
        let b: [u8; 16] = self.take(16)?.try_into().ok()?;
        Some(Ipv6Addr::from(b))
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }
}

// ---------------------------------------------------------------------------
// Framing
// ---------------------------------------------------------------------------

/// RFC 4271 §6.1: the smallest and largest legal length of each type.
fn length_bounds(kind: MessageType) -> (usize, usize) {
    match kind {
        // §4.2: 29 octets with no optional parameters.
        MessageType::Open => (29, MAX_MESSAGE_LEN),
        // §4.3: 23 octets with nothing in it.
        MessageType::Update => (23, MAX_MESSAGE_LEN),
        // §4.5: 21 octets with no data.
        MessageType::Notification => (21, MAX_MESSAGE_LEN),
        // §4.4: the header alone.
        MessageType::Keepalive => (HEADER_LEN, HEADER_LEN),
        // RFC 2918 §3: header + 4 octets.
        MessageType::RouteRefresh => (23, 23),
    }
}

/// Checks the header at the start of `buf` (RFC 4271 §6.1) and returns the
/// length of the whole message, or `None` while fewer than 19 octets are
/// available. A stream driver calls this to frame messages: it may act on
/// an error as soon as the header is in, without waiting for a body that a
/// bad length field promises.
pub fn check_header(buf: &[u8]) -> DecodeResult<Option<(MessageType, usize)>> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let mut r = Reader::new(header);
    let marker = r.take(16).unwrap_or_default();
    let len_field = r.u16().unwrap_or_default();
    let type_code = r.u8().unwrap_or_default();
    // §6.1: "If the Marker field of the message header is not as expected,
    // then a synchronization error has occurred and the Error Subcode MUST
    // be set to Connection Not Synchronized."
    if marker != MARKER {
        return Err(DecodeError::notify(
            "marker is not all ones",
            error_code::MESSAGE_HEADER,
            header_subcode::CONNECTION_NOT_SYNCHRONIZED,
            Vec::new(),
        ));
    }
    let len = usize::from(len_field);
    let bad_length = |reason| {
        // §6.1: "The Data field MUST contain the erroneous Length field."
        DecodeError::notify(
            reason,
            error_code::MESSAGE_HEADER,
            header_subcode::BAD_MESSAGE_LENGTH,
            len_field.to_be_bytes().to_vec(),
        )
    };
    // §6.1: "if the Length field of the message header is less than 19 or
    // greater than 4096 ..."
    if !(HEADER_LEN..=MAX_MESSAGE_LEN).contains(&len) {
        return Err(bad_length("length field outside 19..4096"));
    }
    // §6.1: "If the Type field of the message header is not recognized,
    // then the Error Subcode MUST be set to Bad Message Type. The Data
    // field MUST contain the erroneous Type field."
    let Some(kind) = MessageType::from_code(type_code) else {
        return Err(DecodeError::notify(
            "unknown message type",
            error_code::MESSAGE_HEADER,
            header_subcode::BAD_MESSAGE_TYPE,
            vec![type_code],
        ));
    };
    // §6.1: "... or if the Length field of an OPEN message is less than the
    // minimum length of the OPEN message, or if the Length field of an
    // UPDATE message is less than the minimum length of the UPDATE message,
    // or if the Length field of a KEEPALIVE message is not equal to 19, or
    // if the Length field of a NOTIFICATION message is less than the
    // minimum length of the NOTIFICATION message, then the Error Subcode
    // MUST be set to Bad Message Length."
    let (min, max) = length_bounds(kind);
    if kind == MessageType::RouteRefresh && len != min {
        // RFC 7313 §5: "If the length, excluding the fixed-size message
        // header, of the received ROUTE-REFRESH message with Message
        // Subtype 0 is not 4, then the BGP speaker MUST send a NOTIFICATION
        // message with the Error Code of 'ROUTE-REFRESH Message Error' and
        // the subcode of 'Invalid Message Length'. The Data field of the
        // NOTIFICATION message MUST contain the complete ROUTE-REFRESH
        // message." A stream driver has the whole message only once it is
        // in, so this case is decided by `decode`, not here.
        return Ok(Some((kind, len)));
    }
    if len < min || len > max {
        return Err(bad_length("length field wrong for the message type"));
    }
    Ok(Some((kind, len)))
}

/// Splits the first complete message off `buf`: `Ok(Some((message,
/// rest)))`, `Ok(None)` when more octets are needed, or the header error.
pub fn split_message(buf: &[u8]) -> DecodeResult<Option<(&[u8], &[u8])>> {
    match check_header(buf)? {
        Some((_, len)) if buf.len() >= len => Ok(Some(buf.split_at(len))),
        _ => Ok(None),
    }
}

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

/// Decodes one whole message (`buf` holds exactly one message).
pub fn decode(buf: &[u8], ctx: &Context) -> DecodeResult<Message> {
    let Some((kind, len)) = check_header(buf)? else {
        return Err(DecodeError::notify(
            "message shorter than its header",
            error_code::MESSAGE_HEADER,
            header_subcode::BAD_MESSAGE_LENGTH,
            Vec::new(),
        ));
    };
    if buf.len() != len {
        // The caller framed wrongly (or the bytes were cut): the length
        // field does not describe the octets given.
        return Err(DecodeError::notify(
            "length field differs from the message size",
            error_code::MESSAGE_HEADER,
            header_subcode::BAD_MESSAGE_LENGTH,
            (len as u16).to_be_bytes().to_vec(),
        ));
    }
    let body = buf.get(HEADER_LEN..).unwrap_or_default();
    match kind {
        MessageType::Open => decode_open(body).map(Message::Open),
        MessageType::Update => decode_update(body, ctx).map(Message::Update),
        MessageType::Notification => {
            let mut r = Reader::new(body);
            let code = r.u8().unwrap_or_default();
            let subcode = r.u8().unwrap_or_default();
            Ok(Message::Notification(Notification::with_data(
                code,
                subcode,
                r.rest().to_vec(),
            )))
        }
        MessageType::Keepalive => Ok(Message::Keepalive),
        MessageType::RouteRefresh => decode_route_refresh(buf, body),
    }
}

fn decode_route_refresh(buf: &[u8], body: &[u8]) -> DecodeResult<Message> {
    let mut r = Reader::new(body);
    match (r.u16(), r.u8(), r.u8(), r.is_empty()) {
        (Some(afi), Some(subtype), Some(safi), true) => Ok(Message::RouteRefresh(RouteRefresh {
            family: Family {
                afi: Afi(afi),
                safi: Safi(safi),
            },
            subtype,
        })),
        // RFC 7313 §5, quoted in `check_header`: 7/1, data = the message.
        _ => Err(DecodeError::notify(
            "ROUTE-REFRESH body is not 4 octets",
            error_code::ROUTE_REFRESH,
            1,
            buf.to_vec(),
        )),
    }
}

fn open_error(reason: &'static str, subcode: u8) -> DecodeError {
    DecodeError::notify(reason, error_code::OPEN_MESSAGE, subcode, Vec::new())
}

/// RFC 4271 §4.2, §6.2; RFC 5492 §4.
fn decode_open(body: &[u8]) -> DecodeResult<Open> {
    let mut r = Reader::new(body);
    let malformed = || open_error("OPEN fields overrun", open_subcode::UNSPECIFIC);
    let version = r.u8().ok_or_else(malformed)?;
    let my_as = r.u16().ok_or_else(malformed)?;
    let hold_time = r.u16().ok_or_else(malformed)?;
    let bgp_id = r.ipv4().ok_or_else(malformed)?;
    let opt_len = usize::from(r.u8().ok_or_else(malformed)?);
    // §6.2: "If the version number in the Version field of the received
    // OPEN message is not supported, then the Error Subcode MUST be set to
    // Unsupported Version Number. The Data field is a 2-octet unsigned
    // integer, which indicates the largest, locally-supported version
    // number less than the version the remote BGP peer bid".
    if version != BGP_VERSION {
        return Err(DecodeError::notify(
            "unsupported BGP version",
            error_code::OPEN_MESSAGE,
            open_subcode::UNSUPPORTED_VERSION,
            u16::from(BGP_VERSION).to_be_bytes().to_vec(),
        ));
    }
    // §6.2: "An implementation MUST reject Hold Time values of one or two
    // seconds."
    if hold_time == 1 || hold_time == 2 {
        return Err(open_error(
            "hold time of 1 or 2 seconds",
            open_subcode::UNACCEPTABLE_HOLD_TIME,
        ));
    }
    // RFC 6286 §2.2: "If the BGP Identifier field of the OPEN message is
    // zero ... then the Error Subcode is set to 'Bad BGP Identifier'." (The
    // rule about internal peers needs the configuration: see `fsm`.)
    if bgp_id.is_unspecified() {
        return Err(open_error(
            "BGP identifier is zero",
            open_subcode::BAD_BGP_IDENTIFIER,
        ));
    }
    // The Optional Parameters Length must describe exactly the rest of the
    // message; RFC 4271 names no subcode for this, so: Unspecific (§6.2,
    // "recognized, but malformed").
    if opt_len != r.remaining() {
        return Err(open_error(
            "optional parameters length differs from the message",
            open_subcode::UNSPECIFIC,
        ));
    }
    let mut capabilities = Vec::new();
    while !r.is_empty() {
        let ptype = r.u8().ok_or_else(malformed)?;
        let plen =
            usize::from(r.u8().ok_or_else(|| {
                open_error("optional parameter cut short", open_subcode::UNSPECIFIC)
            })?);
        let value = r.take(plen).ok_or_else(|| {
            open_error(
                "optional parameter overruns the message",
                open_subcode::UNSPECIFIC,
            )
        })?;
        // RFC 5492 §4: Capabilities Optional Parameter (type 2). §6.2 of
        // RFC 4271: "If one of the Optional Parameters in the OPEN message
        // is not recognized, then the Error Subcode MUST be set to
        // Unsupported Optional Parameters." (Type 255, RFC 9072's extended
        // format, is not supported and lands here too.)
        if ptype != 2 {
            return Err(open_error(
                "unsupported optional parameter",
                open_subcode::UNSUPPORTED_OPTIONAL_PARAMETER,
            ));
        }
        decode_capabilities(value, &mut capabilities)?;
    }
    Ok(Open {
        version,
        my_as,
        hold_time,
        bgp_id,
        capabilities,
    })
}

fn decode_capabilities(value: &[u8], out: &mut Vec<Capability>) -> DecodeResult<()> {
    // §6.2: "If one of the Optional Parameters in the OPEN message is
    // recognized, but is malformed, then the Error Subcode MUST be set to 0
    // (Unspecific)."
    let malformed = |reason| open_error(reason, open_subcode::UNSPECIFIC);
    let mut r = Reader::new(value);
    while !r.is_empty() {
        let code = r.u8().ok_or_else(|| malformed("capability cut short"))?;
        let len = usize::from(r.u8().ok_or_else(|| malformed("capability cut short"))?);
        let v = r
            .take(len)
            .ok_or_else(|| malformed("capability overruns its parameter"))?;
        let mut cv = Reader::new(v);
        let cap = match code {
            // RFC 4760 §8: AFI (2), Reserved (1), SAFI (1).
            capability_code::MULTIPROTOCOL => match (cv.u16(), cv.u8(), cv.u8(), cv.is_empty()) {
                (Some(afi), Some(_reserved), Some(safi), true) => {
                    Capability::Multiprotocol(Family {
                        afi: Afi(afi),
                        safi: Safi(safi),
                    })
                }
                _ => return Err(malformed("multiprotocol capability not 4 octets")),
            },
            // RFC 2918 §2: "Capability length: 0".
            capability_code::ROUTE_REFRESH if v.is_empty() => Capability::RouteRefresh,
            capability_code::ROUTE_REFRESH => {
                return Err(malformed("route-refresh capability not empty"))
            }
            capability_code::ENHANCED_ROUTE_REFRESH if v.is_empty() => {
                Capability::EnhancedRouteRefresh
            }
            capability_code::ENHANCED_ROUTE_REFRESH => {
                return Err(malformed("enhanced route-refresh capability not empty"))
            }
            // RFC 6793 §3: "the Capability Length field is set to 4".
            capability_code::FOUR_OCTET_AS => match (cv.u32(), cv.is_empty()) {
                (Some(asn), true) => Capability::FourOctetAs(asn),
                _ => return Err(malformed("4-octet AS capability not 4 octets")),
            },
            // RFC 4724 §3: 2 octets, then 4 per family.
            capability_code::GRACEFUL_RESTART => {
                if v.len() < 2 || (v.len() - 2) % 4 != 0 {
                    return Err(malformed("graceful-restart capability length"));
                }
                let word = cv.u16().unwrap_or_default();
                let mut families = Vec::new();
                while let (Some(afi), Some(safi), Some(flags)) = (cv.u16(), cv.u8(), cv.u8()) {
                    families.push(GracefulRestartFamily {
                        family: Family {
                            afi: Afi(afi),
                            safi: Safi(safi),
                        },
                        forwarding_state: flags & 0x80 != 0,
                    });
                }
                Capability::GracefulRestart(GracefulRestart {
                    flags: (word >> 12) as u8,
                    restart_time: word & 0x0fff,
                    families,
                })
            }
            // RFC 5492 §4: "a BGP speaker ... MUST ignore capabilities that
            // it does not understand" (kept so the driver may show them).
            _ => Capability::Unknown {
                code,
                value: v.to_vec(),
            },
        };
        out.push(cap);
    }
    Ok(())
}

/// Parses RFC 4271 §4.3 prefixes (`| Length (1) | Prefix (var) |`).
fn decode_v4_prefixes(buf: &[u8]) -> Option<Vec<Ipv4Prefix>> {
    let mut r = Reader::new(buf);
    let mut out = Vec::new();
    while !r.is_empty() {
        let len = r.u8()?;
        if len > 32 {
            return None;
        }
        let bytes = r.take(usize::from(len).div_ceil(8))?;
        let mut a = [0u8; 4];
        a.get_mut(..bytes.len())?.copy_from_slice(bytes);
        out.push(Ipv4Prefix::new(Ipv4Addr::from(a), len)?);
    }
    Some(out)
}

/// Parses IPv6 prefixes, same layout (RFC 2545 §2 / RFC 4760 §5).
fn decode_v6_prefixes(buf: &[u8]) -> Option<Vec<Ipv6Prefix>> {
    let mut r = Reader::new(buf);
    let mut out = Vec::new();
    while !r.is_empty() {
        let len = r.u8()?;
        if len > 128 {
            return None;
        }
        let bytes = r.take(usize::from(len).div_ceil(8))?;
        let mut a = [0u8; 16];
        a.get_mut(..bytes.len())?.copy_from_slice(bytes);
        out.push(Ipv6Prefix::new(Ipv6Addr::from(a), len)?);
    }
    Some(out)
}

fn decode_mp_nlri(family: Family, buf: &[u8]) -> Option<MpNlri> {
    Some(match family {
        Family::IPV4_UNICAST => MpNlri::Ipv4(decode_v4_prefixes(buf)?),
        Family::IPV6_UNICAST => MpNlri::Ipv6(decode_v6_prefixes(buf)?),
        _ => MpNlri::Other(buf.to_vec()),
    })
}

fn update_error(reason: &'static str, subcode: u8, data: Vec<u8>) -> DecodeError {
    DecodeError::notify(reason, error_code::UPDATE_MESSAGE, subcode, data)
}

/// What one attribute decoded to.
enum Parsed {
    Keep(AttributeValue),
    Discard,
    Withdraw(&'static str),
}

/// RFC 4271 §4.3, §6.3 as revised by RFC 7606.
fn decode_update(body: &[u8], ctx: &Context) -> DecodeResult<Update> {
    let mut r = Reader::new(body);
    // §6.3: "If the Withdrawn Routes Length or Total Attribute Length is
    // too large (i.e., if Withdrawn Routes Length + Total Attribute Length
    // + 23 exceeds the message Length), then the Error Subcode MUST be set
    // to Malformed Attribute List."
    let too_large = || {
        update_error(
            "withdrawn or attribute length too large",
            update_subcode::MALFORMED_ATTRIBUTE_LIST,
            Vec::new(),
        )
    };
    let wlen = usize::from(r.u16().ok_or_else(too_large)?);
    let withdrawn_buf = r.take(wlen).ok_or_else(too_large)?;
    let alen = usize::from(r.u16().ok_or_else(too_large)?);
    let attr_buf = r.take(alen).ok_or_else(too_large)?;
    let nlri_buf = r.rest();

    // §6.3: "If the NLRI field in the UPDATE message is syntactically
    // incorrect, then the Error Subcode MUST be set to Invalid Network
    // Field." RFC 7606 §5.3 keeps this a session reset: the prefixes
    // cannot be found, so they cannot be withdrawn either. We apply the
    // same rule to the Withdrawn Routes field.
    let invalid_network = || {
        update_error(
            "prefix length or encoding invalid",
            update_subcode::INVALID_NETWORK_FIELD,
            Vec::new(),
        )
    };
    let withdrawn = decode_v4_prefixes(withdrawn_buf).ok_or_else(invalid_network)?;
    let nlri = decode_v4_prefixes(nlri_buf).ok_or_else(invalid_network)?;

    // RFC 7606 §2: the first reason to treat the UPDATE as a withdrawal.
    let mut withdraw: Option<&'static str> = None;
    let mut attributes: Vec<PathAttribute> = Vec::new();
    let mut seen = [false; 256];
    let mut a = Reader::new(attr_buf);
    while !a.is_empty() {
        let start = a;
        // RFC 7606 §4: fewer than 3 (4 with Extended Length) octets left,
        // or an attribute whose length overruns the Total Attribute Length:
        // "the 'treat-as-withdraw' approach MUST be used ... and the Total
        // Attribute Length MUST be relied upon to enable the beginning of
        // the NLRI field to be located."
        let Some((flags, type_code)) = a.u8().zip(a.u8()) else {
            withdraw.get_or_insert("attribute header cut short");
            break;
        };
        let len = if flags & attr_flags::EXTENDED_LENGTH != 0 {
            a.u16().map(usize::from)
        } else {
            a.u8().map(usize::from)
        };
        let Some(value) = len.and_then(|l| a.take(l)) else {
            if matches!(
                type_code,
                attr_type::MP_REACH_NLRI | attr_type::MP_UNREACH_NLRI
            ) {
                // The MP NLRI cannot be located: nothing can be withdrawn
                // reliably (RFC 7606 §5.3), so the session is reset.
                return Err(update_error(
                    "MP attribute overruns the attribute list",
                    update_subcode::MALFORMED_ATTRIBUTE_LIST,
                    Vec::new(),
                ));
            }
            withdraw.get_or_insert("attribute overruns the attribute list");
            break;
        };
        // The whole attribute (flags, type, length, value): the Data of the
        // NOTIFICATIONs of RFC 4271 §6.3.
        let whole = start
            .buf
            .get(..start.remaining().saturating_sub(a.remaining()))
            .unwrap_or_default();

        // RFC 7606 §3 (g): "If the MP_REACH_NLRI attribute or the
        // MP_UNREACH_NLRI attribute appears more than once in the UPDATE
        // message, then a NOTIFICATION message MUST be sent with the Error
        // Subcode 'Malformed Attribute List'. If any other attribute
        // (whether recognized or unrecognized) appears more than once in an
        // UPDATE message, then all the occurrences of the attribute other
        // than the first one SHALL be discarded and the UPDATE message will
        // continue to be processed."
        let dup = &mut seen[usize::from(type_code)];
        if *dup {
            if matches!(
                type_code,
                attr_type::MP_REACH_NLRI | attr_type::MP_UNREACH_NLRI
            ) {
                return Err(update_error(
                    "MP attribute repeated",
                    update_subcode::MALFORMED_ATTRIBUTE_LIST,
                    Vec::new(),
                ));
            }
            continue;
        }
        *dup = true;

        let expected = AttributeValue::expected_flags(type_code);
        let Some(expected) = expected else {
            // §6.3: "If any of the well-known mandatory attributes are not
            // recognized, then the Error Subcode MUST be set to
            // Unrecognized Well-known Attribute. The Data field MUST
            // contain the unrecognized attribute (type, length, and
            // value)."
            if flags & attr_flags::OPTIONAL == 0 {
                return Err(update_error(
                    "unrecognized well-known attribute",
                    update_subcode::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
                    whole.to_vec(),
                ));
            }
            // RFC 4271 §5: "If an optional non-transitive attribute is
            // unrecognized, it is quietly ignored. If an optional
            // transitive attribute is unrecognized, the Partial bit ... is
            // set to 1, and the attribute is retained for propagation".
            if flags & attr_flags::TRANSITIVE != 0 {
                attributes.push(PathAttribute {
                    flags: flags | attr_flags::PARTIAL,
                    value: AttributeValue::Unknown {
                        type_code,
                        value: value.to_vec(),
                    },
                });
            }
            continue;
        };

        // RFC 7606 §3 (c): "If the value of either the Optional or
        // Transitive bits in the Attribute Flags is in conflict with their
        // specified values, then the attribute MUST be treated as malformed
        // and the 'treat-as-withdraw' approach used, unless the
        // specification for the attribute mandates different handling".
        let flags_ok = flags & (attr_flags::OPTIONAL | attr_flags::TRANSITIVE) == expected;

        let parsed = decode_attribute(type_code, value, ctx, whole)?;
        match parsed {
            Parsed::Keep(v) if flags_ok => attributes.push(PathAttribute { flags, value: v }),
            Parsed::Keep(v) => {
                withdraw.get_or_insert("attribute flags conflict with type");
                // Keep MP attributes so their prefixes are withdrawn too.
                if matches!(
                    v,
                    AttributeValue::MpReachNlri(_) | AttributeValue::MpUnreachNlri(_)
                ) {
                    attributes.push(PathAttribute { flags, value: v });
                }
            }
            Parsed::Discard => {}
            Parsed::Withdraw(reason) => {
                withdraw.get_or_insert(reason);
            }
        }
    }

    let update = Update {
        withdrawn,
        attributes,
        nlri,
    };
    let has = |t: u8| seen[usize::from(t)];
    // RFC 7606 §3 (d): "If any of the well-known mandatory attributes are
    // not present in an UPDATE message, then 'treat-as-withdraw' MUST be
    // used. (Note that [RFC4760] reclassifies NEXT_HOP as what is
    // effectively discretionary.)" RFC 4271 §6.3 asks for them only when
    // NLRI is present; NEXT_HOP only for the classic NLRI field.
    let mp_reach = has(attr_type::MP_REACH_NLRI);
    if (mp_reach || !update.nlri.is_empty())
        && (!has(attr_type::ORIGIN) || !has(attr_type::AS_PATH))
    {
        withdraw.get_or_insert("mandatory attribute missing");
    }
    if !update.nlri.is_empty() && !has(attr_type::NEXT_HOP) {
        withdraw.get_or_insert("NEXT_HOP missing");
    }
    match withdraw {
        None => Ok(update),
        Some(reason) => {
            let mut prefixes = update.withdrawn_prefixes();
            prefixes.extend(update.announced());
            Err(DecodeError {
                reason,
                reaction: Reaction::TreatAsWithdraw(prefixes),
            })
        }
    }
}

fn decode_as_path(value: &[u8], four: bool) -> Option<AsPath> {
    let mut r = Reader::new(value);
    let mut segments = Vec::new();
    while !r.is_empty() {
        // RFC 7606 §7.2: an AS_PATH is malformed if a segment overruns the
        // attribute, if fewer than two octets are left for a segment
        // header, if a segment type is unknown, or if a segment length is
        // zero.
        let kind = SegmentType::from_code(r.u8()?)?;
        let count = r.u8()?;
        if count == 0 {
            return None;
        }
        let mut asns = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            asns.push(if four { r.u32()? } else { u32::from(r.u16()?) });
        }
        segments.push(AsSegment { kind, asns });
    }
    Some(AsPath { segments })
}

/// One attribute's value (RFC 4271 §5, §6.3; RFC 7606 §7).
fn decode_attribute(
    type_code: u8,
    value: &[u8],
    ctx: &Context,
    whole: &[u8],
) -> DecodeResult<Parsed> {
    use Parsed::*;
    let mut r = Reader::new(value);
    let exact_u32 = |mut r: Reader<'_>| r.u32().filter(|_| r.is_empty());
    Ok(match type_code {
        // RFC 7606 §7.1: ORIGIN of length other than 1 or an undefined
        // value: treat-as-withdraw.
        attr_type::ORIGIN => match (r.u8(), r.is_empty()) {
            (Some(0), true) => Keep(AttributeValue::Origin(Origin::Igp)),
            (Some(1), true) => Keep(AttributeValue::Origin(Origin::Egp)),
            (Some(2), true) => Keep(AttributeValue::Origin(Origin::Incomplete)),
            _ => Withdraw("ORIGIN malformed"),
        },
        // RFC 7606 §7.2: malformed AS_PATH: treat-as-withdraw.
        attr_type::AS_PATH => match decode_as_path(value, ctx.four_octet_as) {
            Some(p) => Keep(AttributeValue::AsPath(p)),
            None => Withdraw("AS_PATH malformed"),
        },
        // RFC 7606 §7.3: NEXT_HOP of length other than 4: treat-as-withdraw.
        // RFC 4271 §6.3: a next hop that is not a valid host address is a
        // semantic error: "the route SHOULD be ignored", no NOTIFICATION.
        attr_type::NEXT_HOP => match exact_u32(r).map(Ipv4Addr::from) {
            Some(nh) if !nh.is_unspecified() && !nh.is_multicast() && !nh.is_broadcast() => {
                Keep(AttributeValue::NextHop(nh))
            }
            Some(_) => Withdraw("NEXT_HOP not a host address"),
            None => Withdraw("NEXT_HOP length not 4"),
        },
        // RFC 7606 §7.4: MED of length other than 4: treat-as-withdraw.
        attr_type::MULTI_EXIT_DISC => match exact_u32(r) {
            Some(v) => Keep(AttributeValue::MultiExitDisc(v)),
            None => Withdraw("MULTI_EXIT_DISC length not 4"),
        },
        // RFC 7606 §7.5: LOCAL_PREF from an external neighbor is discarded;
        // from an internal one, a length other than 4 is treat-as-withdraw.
        attr_type::LOCAL_PREF if ctx.ebgp => Discard,
        attr_type::LOCAL_PREF => match exact_u32(r) {
            Some(v) => Keep(AttributeValue::LocalPref(v)),
            None => Withdraw("LOCAL_PREF length not 4"),
        },
        // RFC 7606 §7.6: ATOMIC_AGGREGATE of non-zero length: discard.
        attr_type::ATOMIC_AGGREGATE if value.is_empty() => Keep(AttributeValue::AtomicAggregate),
        attr_type::ATOMIC_AGGREGATE => Discard,
        // RFC 7606 §7.7: AGGREGATOR of the wrong length: discard.
        attr_type::AGGREGATOR => {
            let asn = if ctx.four_octet_as {
                r.u32()
            } else {
                r.u16().map(u32::from)
            };
            match (asn, r.ipv4(), r.is_empty()) {
                (Some(asn), Some(addr), true) => Keep(AttributeValue::Aggregator { asn, addr }),
                _ => Discard,
            }
        }
        // RFC 7606 §7.8: COMMUNITIES whose length is not a non-zero
        // multiple of 4: treat-as-withdraw.
        attr_type::COMMUNITIES => {
            if value.is_empty() || value.len() % 4 != 0 {
                Withdraw("COMMUNITIES length not a non-zero multiple of 4")
            } else {
                let mut c = Vec::with_capacity(value.len() / 4);
                while let Some(v) = r.u32() {
                    c.push(Community(v));
                }
                Keep(AttributeValue::Communities(c))
            }
        }
        attr_type::MP_REACH_NLRI => Keep(AttributeValue::MpReachNlri(
            decode_mp_reach(value).ok_or_else(|| mp_error(whole))?,
        )),
        attr_type::MP_UNREACH_NLRI => {
            let (afi, safi) = r.u16().zip(r.u8()).ok_or_else(|| mp_error(whole))?;
            let family = Family {
                afi: Afi(afi),
                safi: Safi(safi),
            };
            let withdrawn = decode_mp_nlri(family, r.rest()).ok_or_else(|| mp_error(whole))?;
            Keep(AttributeValue::MpUnreachNlri(MpUnreach {
                family,
                withdrawn,
            }))
        }
        // RFC 6793 §6: a malformed AS4_PATH / AS4_AGGREGATOR is discarded;
        // §3/§4.1: a NEW speaker receiving them from a NEW speaker discards
        // them too.
        attr_type::AS4_PATH if ctx.four_octet_as => Discard,
        attr_type::AS4_PATH => match decode_as_path(value, true) {
            Some(p) => Keep(AttributeValue::As4Path(p)),
            None => Discard,
        },
        attr_type::AS4_AGGREGATOR if ctx.four_octet_as => Discard,
        attr_type::AS4_AGGREGATOR => match (r.u32(), r.ipv4(), r.is_empty()) {
            (Some(asn), Some(addr), true) => Keep(AttributeValue::As4Aggregator { asn, addr }),
            _ => Discard,
        },
        _ => Keep(AttributeValue::Unknown {
            type_code,
            value: value.to_vec(),
        }),
    })
}

/// RFC 7606 §7.11 and §5.3: an MP_REACH_NLRI / MP_UNREACH_NLRI whose next
/// hop length is inconsistent or whose NLRI cannot be parsed leaves nothing
/// to withdraw reliably: session reset. RFC 4271 §6.3 names Optional
/// Attribute Error, with the attribute as data, for optional attributes.
fn mp_error(whole: &[u8]) -> DecodeError {
    update_error(
        "MP_REACH_NLRI or MP_UNREACH_NLRI malformed",
        update_subcode::OPTIONAL_ATTRIBUTE_ERROR,
        whole.to_vec(),
    )
}

fn decode_mp_reach(value: &[u8]) -> Option<MpReach> {
    let mut r = Reader::new(value);
    let family = Family {
        afi: Afi(r.u16()?),
        safi: Safi(r.u8()?),
    };
    let nh_len = usize::from(r.u8()?);
    let nh = r.take(nh_len)?;
    let mut n = Reader::new(nh);
    let next_hop = match (family.afi, nh_len) {
        (Afi::IPV4, 4) => MpNextHop::V4(n.ipv4()?),
        // RFC 2545 §3: 16 (global) or 32 (global + link-local) octets.
        (Afi::IPV6, 16) => MpNextHop::V6 {
            global: n.ipv6()?,
            link_local: None,
        },
        (Afi::IPV6, 32) => MpNextHop::V6 {
            global: n.ipv6()?,
            link_local: Some(n.ipv6()?),
        },
        (Afi::IPV6, _) if family == Family::IPV6_UNICAST => return None,
        (Afi::IPV4, _) if family == Family::IPV4_UNICAST => {
            // RFC 8950 (IPv6 next hop for IPv4) is not supported.
            return None;
        }
        _ => MpNextHop::Other(nh.to_vec()),
    };
    // RFC 4760 §3: Reserved (formerly the SNAP count), "MUST be set to 0 ...
    // and ignored upon receipt".
    let _reserved = r.u8()?;
    let nlri = decode_mp_nlri(family, r.rest())?;
    Some(MpReach {
        family,
        next_hop,
        nlri,
    })
}

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

impl Message {
    /// Appends the wire form to `out`; returns its length.
    pub fn encode(&self, ctx: &Context, out: &mut Vec<u8>) -> EncodeResult<usize> {
        let start = out.len();
        out.extend_from_slice(&MARKER);
        out.extend_from_slice(&[0, 0, self.message_type().code()]);
        let result = match self {
            Message::Open(o) => encode_open(o, out),
            Message::Update(u) => encode_update(u, ctx, out),
            Message::Notification(n) => {
                out.push(n.code);
                out.push(n.subcode);
                out.extend_from_slice(&n.data);
                Ok(())
            }
            Message::Keepalive => Ok(()),
            Message::RouteRefresh(rr) => {
                out.extend_from_slice(&rr.family.afi.0.to_be_bytes());
                out.push(rr.subtype);
                out.push(rr.family.safi.0);
                Ok(())
            }
        };
        let len = out.len() - start;
        if let Err(e) = result {
            out.truncate(start);
            return Err(e);
        }
        if len > MAX_MESSAGE_LEN {
            out.truncate(start);
            return Err(EncodeError::MessageTooLong { len });
        }
        let len_bytes = (len as u16).to_be_bytes();
        out[start + 16] = len_bytes[0];
        out[start + 17] = len_bytes[1];
        Ok(len)
    }

    /// The wire form in a new buffer.
    pub fn to_bytes(&self, ctx: &Context) -> EncodeResult<Vec<u8>> {
        let mut v = Vec::new();
        self.encode(ctx, &mut v)?;
        Ok(v)
    }
}

fn u8_len(what: &'static str, len: usize) -> EncodeResult<u8> {
    u8::try_from(len).map_err(|_| EncodeError::FieldTooLong { what, len })
}

fn encode_open(o: &Open, out: &mut Vec<u8>) -> EncodeResult<()> {
    out.push(o.version);
    out.extend_from_slice(&o.my_as.to_be_bytes());
    out.extend_from_slice(&o.hold_time.to_be_bytes());
    out.extend_from_slice(&o.bgp_id.octets());
    let opt_len_at = out.len();
    out.push(0);
    for cap in &o.capabilities {
        let mut v = Vec::new();
        match cap {
            Capability::Multiprotocol(f) => {
                v.extend_from_slice(&f.afi.0.to_be_bytes());
                v.push(0);
                v.push(f.safi.0);
            }
            Capability::RouteRefresh | Capability::EnhancedRouteRefresh => {}
            Capability::FourOctetAs(asn) => v.extend_from_slice(&asn.to_be_bytes()),
            Capability::GracefulRestart(gr) => {
                if gr.restart_time > 0x0fff {
                    return Err(EncodeError::RestartTimeTooLarge(gr.restart_time));
                }
                let word = (u16::from(gr.flags & 0x0f) << 12) | gr.restart_time;
                v.extend_from_slice(&word.to_be_bytes());
                for f in &gr.families {
                    v.extend_from_slice(&f.family.afi.0.to_be_bytes());
                    v.push(f.family.safi.0);
                    v.push(if f.forwarding_state { 0x80 } else { 0 });
                }
            }
            Capability::Unknown { value, .. } => v.extend_from_slice(value),
        }
        // One Capabilities Optional Parameter per capability (RFC 5492 §4
        // allows either layout).
        let cap_len = u8_len("capability value", v.len())?;
        out.push(2);
        out.push(u8_len("optional parameter", v.len() + 2)?);
        out.push(cap.code());
        out.push(cap_len);
        out.extend_from_slice(&v);
    }
    out[opt_len_at] = u8_len("optional parameters", out.len() - opt_len_at - 1)?;
    Ok(())
}

fn encode_v4_prefix(p: &Ipv4Prefix, out: &mut Vec<u8>) {
    let n = usize::from(p.len()).div_ceil(8);
    out.push(p.len());
    out.extend_from_slice(&p.addr().octets()[..n]);
}

fn encode_v6_prefix(p: &Ipv6Prefix, out: &mut Vec<u8>) {
    let n = usize::from(p.len()).div_ceil(8);
    out.push(p.len());
    out.extend_from_slice(&p.addr().octets()[..n]);
}

/// Octets a prefix of `len` bits takes in NLRI.
pub fn prefix_wire_len(len: u8) -> usize {
    1 + usize::from(len).div_ceil(8)
}

fn encode_mp_nlri(n: &MpNlri, out: &mut Vec<u8>) {
    match n {
        MpNlri::Ipv4(v) => v.iter().for_each(|p| encode_v4_prefix(p, out)),
        MpNlri::Ipv6(v) => v.iter().for_each(|p| encode_v6_prefix(p, out)),
        MpNlri::Other(raw) => out.extend_from_slice(raw),
    }
}

fn encode_update(u: &Update, ctx: &Context, out: &mut Vec<u8>) -> EncodeResult<()> {
    let wlen_at = out.len();
    out.extend_from_slice(&[0, 0]);
    u.withdrawn.iter().for_each(|p| encode_v4_prefix(p, out));
    let wlen = out.len() - wlen_at - 2;
    let alen_at = out.len();
    out.extend_from_slice(&[0, 0]);
    let mut value = Vec::new();
    for a in &u.attributes {
        value.clear();
        encode_attribute_value(&a.value, ctx, &mut value)?;
        let mut flags = a.flags & 0xf0;
        if value.len() > 255 {
            flags |= attr_flags::EXTENDED_LENGTH;
        }
        out.push(flags);
        out.push(a.type_code());
        if flags & attr_flags::EXTENDED_LENGTH != 0 {
            let l = u16::try_from(value.len())
                .map_err(|_| EncodeError::MessageTooLong { len: value.len() })?;
            out.extend_from_slice(&l.to_be_bytes());
        } else {
            out.push(value.len() as u8);
        }
        out.extend_from_slice(&value);
    }
    let alen = out.len() - alen_at - 2;
    u.nlri.iter().for_each(|p| encode_v4_prefix(p, out));
    let too_long = |len| EncodeError::MessageTooLong { len };
    let wlen = u16::try_from(wlen).map_err(|_| too_long(wlen))?;
    let alen = u16::try_from(alen).map_err(|_| too_long(alen))?;
    out[wlen_at..wlen_at + 2].copy_from_slice(&wlen.to_be_bytes());
    out[alen_at..alen_at + 2].copy_from_slice(&alen.to_be_bytes());
    Ok(())
}

fn encode_as_path(p: &AsPath, four: bool, out: &mut Vec<u8>) -> EncodeResult<()> {
    for s in &p.segments {
        if s.asns.is_empty() || s.asns.len() > 255 {
            return Err(EncodeError::BadSegmentLength { len: s.asns.len() });
        }
        out.push(s.kind.code());
        out.push(s.asns.len() as u8);
        for &asn in &s.asns {
            if four {
                out.extend_from_slice(&asn.to_be_bytes());
            } else {
                // RFC 6793 §4.2.2: a 4-octet AS is replaced by AS_TRANS
                // in the 2-octet AS_PATH (and the AS4_PATH carries it).
                let asn = u16::try_from(asn).unwrap_or(AS_TRANS);
                out.extend_from_slice(&asn.to_be_bytes());
            }
        }
    }
    Ok(())
}

fn encode_attribute_value(
    v: &AttributeValue,
    ctx: &Context,
    out: &mut Vec<u8>,
) -> EncodeResult<()> {
    match v {
        AttributeValue::Origin(o) => out.push(match o {
            Origin::Igp => 0,
            Origin::Egp => 1,
            Origin::Incomplete => 2,
        }),
        AttributeValue::AsPath(p) => encode_as_path(p, ctx.four_octet_as, out)?,
        AttributeValue::NextHop(nh) => out.extend_from_slice(&nh.octets()),
        AttributeValue::MultiExitDisc(v) | AttributeValue::LocalPref(v) => {
            out.extend_from_slice(&v.to_be_bytes())
        }
        AttributeValue::AtomicAggregate => {}
        AttributeValue::Aggregator { asn, addr } => {
            if ctx.four_octet_as {
                out.extend_from_slice(&asn.to_be_bytes());
            } else {
                let asn = u16::try_from(*asn).unwrap_or(AS_TRANS);
                out.extend_from_slice(&asn.to_be_bytes());
            }
            out.extend_from_slice(&addr.octets());
        }
        AttributeValue::Communities(c) => c
            .iter()
            .for_each(|c| out.extend_from_slice(&c.0.to_be_bytes())),
        AttributeValue::MpReachNlri(r) => {
            out.extend_from_slice(&r.family.afi.0.to_be_bytes());
            out.push(r.family.safi.0);
            let nh_at = out.len();
            out.push(0);
            match &r.next_hop {
                MpNextHop::V4(a) => out.extend_from_slice(&a.octets()),
                MpNextHop::V6 { global, link_local } => {
                    out.extend_from_slice(&global.octets());
                    if let Some(ll) = link_local {
                        out.extend_from_slice(&ll.octets());
                    }
                }
                MpNextHop::Other(raw) => out.extend_from_slice(raw),
            }
            out[nh_at] = u8_len("MP next hop", out.len() - nh_at - 1)?;
            out.push(0); // Reserved.
            check_family(r.family, &r.nlri)?;
            encode_mp_nlri(&r.nlri, out);
        }
        AttributeValue::MpUnreachNlri(u) => {
            out.extend_from_slice(&u.family.afi.0.to_be_bytes());
            out.push(u.family.safi.0);
            check_family(u.family, &u.withdrawn)?;
            encode_mp_nlri(&u.withdrawn, out);
        }
        AttributeValue::As4Path(p) => encode_as_path(p, true, out)?,
        AttributeValue::As4Aggregator { asn, addr } => {
            out.extend_from_slice(&asn.to_be_bytes());
            out.extend_from_slice(&addr.octets());
        }
        AttributeValue::Unknown { value, .. } => out.extend_from_slice(value),
    }
    Ok(())
}

fn check_family(family: Family, nlri: &MpNlri) -> EncodeResult<()> {
    let ok = match nlri {
        MpNlri::Ipv4(_) => family == Family::IPV4_UNICAST,
        MpNlri::Ipv6(_) => family == Family::IPV6_UNICAST,
        MpNlri::Other(_) => family != Family::IPV4_UNICAST && family != Family::IPV6_UNICAST,
    };
    if ok {
        Ok(())
    } else {
        Err(EncodeError::FamilyMismatch)
    }
}

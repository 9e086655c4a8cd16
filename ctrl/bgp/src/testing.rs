//! Test helpers (feature `testing`): the malformed-message corpus.
//!
//! Every case is a whole message as bytes, the moment it is sent, and the
//! reaction RFC 4271 §6 / RFC 7606 require from the receiver. The corpus is
//! data so that an end-to-end test can replay the same bytes at the running
//! daemon over raw TCP.
//!
//! The receiver the corpus assumes ([`corpus_config`]): local AS 65000,
//! identifier 192.0.2.1; the peer is AS 65001 (eBGP), identifier 192.0.2.2,
//! and both sides announce the 4-octet AS capability (UPDATE cases use
//! 4-octet AS_PATHs). `When::InsteadOfOpen` cases are sent as the peer's
//! first message; `When::Established` cases after the session is up.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::codec::{decode, Context};
use crate::error::Reaction;
use crate::fsm::{validate_open, Config};
use crate::message::*;

/// When a case is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// As the peer's first message, in place of its OPEN.
    InsteadOfOpen,
    /// Once the session is Established.
    Established,
}

/// The reaction a case must get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// Send exactly this NOTIFICATION, then close.
    Notification {
        /// Error code.
        code: u8,
        /// Error subcode.
        subcode: u8,
        /// Data.
        data: Vec<u8>,
    },
    /// Close without a NOTIFICATION (RFC 4271 §6.4: errors in a
    /// NOTIFICATION cannot be reported with one).
    CloseSilently,
    /// RFC 7606 treat-as-withdraw of these prefixes; the session stays up.
    TreatAsWithdraw(Vec<Prefix>),
    /// RFC 7606 attribute-discard: the UPDATE is accepted and holds
    /// `remaining` attributes of this type (0, or 1 for a repeated one).
    AttributeDiscard {
        /// Attribute type code.
        type_code: u8,
        /// How many of them the accepted UPDATE keeps.
        remaining: usize,
    },
}

/// One malformed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// Short unique name.
    pub name: &'static str,
    /// The whole message.
    pub bytes: Vec<u8>,
    /// When it is sent.
    pub when: When,
    /// The reaction it must get.
    pub expected: Expected,
}

/// Our AS in the corpus.
pub const LOCAL_AS: u32 = 65000;
/// The peer's AS in the corpus.
pub const PEER_AS: u32 = 65001;
/// Our identifier in the corpus.
pub const LOCAL_ID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The peer's identifier in the corpus.
pub const PEER_ID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

/// The receiver's configuration the corpus assumes.
pub fn corpus_config() -> Config {
    Config::new(LOCAL_AS, PEER_AS, LOCAL_ID)
}

/// The codec context of an Established corpus session.
pub fn corpus_context() -> Context {
    Context {
        four_octet_as: true,
        ebgp: true,
    }
}

/// A message with a correct header around `body`.
pub fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut v = MARKER.to_vec();
    let len = (HEADER_LEN + body.len()) as u16;
    v.extend_from_slice(&len.to_be_bytes());
    v.push(kind);
    v.extend_from_slice(body);
    v
}

/// A bare header with any length field and type.
fn header(len: u16, kind: u8) -> Vec<u8> {
    let mut v = MARKER.to_vec();
    v.extend_from_slice(&len.to_be_bytes());
    v.push(kind);
    v
}

/// An attribute with a one-octet length.
pub fn attr(flags: u8, type_code: u8, value: &[u8]) -> Vec<u8> {
    let mut v = vec![flags, type_code, value.len() as u8];
    v.extend_from_slice(value);
    v
}

/// An attribute with the Extended Length bit and a two-octet length.
pub fn attr_ext(flags: u8, type_code: u8, value: &[u8]) -> Vec<u8> {
    let mut v = vec![flags | attr_flags::EXTENDED_LENGTH, type_code];
    v.extend_from_slice(&(value.len() as u16).to_be_bytes());
    v.extend_from_slice(value);
    v
}

/// An UPDATE from raw withdrawn routes, attributes and NLRI.
pub fn update(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut b = (withdrawn.len() as u16).to_be_bytes().to_vec();
    b.extend_from_slice(withdrawn);
    b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    b.extend_from_slice(attrs);
    b.extend_from_slice(nlri);
    message(2, &b)
}

/// An OPEN body: version, My AS, hold time, identifier, then raw optional
/// parameters.
pub fn open_body(version: u8, my_as: u16, hold: u16, id: Ipv4Addr, params: &[u8]) -> Vec<u8> {
    let mut b = vec![version];
    b.extend_from_slice(&my_as.to_be_bytes());
    b.extend_from_slice(&hold.to_be_bytes());
    b.extend_from_slice(&id.octets());
    b.push(params.len() as u8);
    b.extend_from_slice(params);
    b
}

/// One Capabilities optional parameter holding one capability.
pub fn cap_param(code: u8, value: &[u8]) -> Vec<u8> {
    let mut v = vec![2, value.len() as u8 + 2, code, value.len() as u8];
    v.extend_from_slice(value);
    v
}

const WT: u8 = attr_flags::TRANSITIVE;
const OPT: u8 = attr_flags::OPTIONAL;
const OT: u8 = attr_flags::OPTIONAL | attr_flags::TRANSITIVE;

fn origin_igp() -> Vec<u8> {
    attr(WT, attr_type::ORIGIN, &[0])
}

fn as_path_65001() -> Vec<u8> {
    attr(WT, attr_type::AS_PATH, &[2, 1, 0, 0, 0xfd, 0xe9])
}

fn next_hop() -> Vec<u8> {
    attr(WT, attr_type::NEXT_HOP, &[192, 0, 2, 2])
}

/// 198.51.100.0/24.
const NLRI: [u8; 4] = [24, 198, 51, 100];

fn nlri_prefix() -> Prefix {
    Prefix::V4(
        Ipv4Prefix::new(Ipv4Addr::new(198, 51, 100, 0), 24)
            .unwrap_or(Ipv4Prefix::host(Ipv4Addr::UNSPECIFIED)),
    )
}

fn v6_prefix() -> Prefix {
    Prefix::V6(Ipv6Prefix::host(Ipv6Addr::new(
        0x2001, 0xdb8, 0, 0, 0, 0, 0, 1,
    )))
}

/// MP_REACH_NLRI value: IPv6 unicast, next hop 2001:db8::2, 2001:db8::1/128.
fn mp_reach_v6() -> Vec<u8> {
    let mut v = vec![0, 2, 1, 16];
    v.extend_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2).octets());
    v.push(0);
    v.push(128);
    v.extend_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).octets());
    v
}

/// A valid update with `extra` attributes appended to ORIGIN, AS_PATH,
/// NEXT_HOP.
fn update_with(extra: &[u8]) -> Vec<u8> {
    let mut a = [origin_igp(), as_path_65001(), next_hop()].concat();
    a.extend_from_slice(extra);
    update(&[], &a, &NLRI)
}

/// A valid update whose mandatory attributes are replaced.
fn update_attrs(attrs: &[Vec<u8>]) -> Vec<u8> {
    update(&[], &attrs.concat(), &NLRI)
}

fn valid_caps() -> Vec<u8> {
    [
        cap_param(1, &[0, 1, 0, 1]),
        cap_param(65, &PEER_AS.to_be_bytes()),
    ]
    .concat()
}

fn open(version: u8, my_as: u16, hold: u16, id: Ipv4Addr, params: &[u8]) -> Vec<u8> {
    message(1, &open_body(version, my_as, hold, id, params))
}

fn notify(code: u8, subcode: u8, data: &[u8]) -> Expected {
    Expected::Notification {
        code,
        subcode,
        data: data.to_vec(),
    }
}

fn case(name: &'static str, bytes: Vec<u8>, when: When, expected: Expected) -> Case {
    Case {
        name,
        bytes,
        when,
        expected,
    }
}

/// The corpus: at least 30 malformed messages with their RFC reactions.
pub fn malformed_corpus() -> Vec<Case> {
    use error_code::*;
    use When::*;
    let taw = || Expected::TreatAsWithdraw(vec![nlri_prefix()]);
    let peer = PEER_AS as u16;
    let mut keepalive_bad_marker = header(19, 4);
    keepalive_bad_marker[0] = 0;
    let mut rr_long = header(24, 5);
    rr_long.extend_from_slice(&[0, 1, 0, 1, 0]);
    vec![
        // --- RFC 4271 §6.1, message header ---
        case(
            "header_bad_marker",
            keepalive_bad_marker,
            Established,
            notify(
                MESSAGE_HEADER,
                header_subcode::CONNECTION_NOT_SYNCHRONIZED,
                &[],
            ),
        ),
        case(
            "header_length_18",
            header(18, 4),
            Established,
            notify(MESSAGE_HEADER, header_subcode::BAD_MESSAGE_LENGTH, &[0, 18]),
        ),
        case(
            "header_length_4097",
            header(4097, 2),
            Established,
            notify(
                MESSAGE_HEADER,
                header_subcode::BAD_MESSAGE_LENGTH,
                &[0x10, 0x01],
            ),
        ),
        case(
            "header_unknown_type_7",
            header(19, 7),
            Established,
            notify(MESSAGE_HEADER, header_subcode::BAD_MESSAGE_TYPE, &[7]),
        ),
        case(
            "keepalive_length_20",
            message(4, &[0]),
            Established,
            notify(MESSAGE_HEADER, header_subcode::BAD_MESSAGE_LENGTH, &[0, 20]),
        ),
        case(
            "open_length_28",
            message(1, &[4, 0xfd, 0xe9, 0, 90, 192, 0, 2, 2]),
            InsteadOfOpen,
            notify(MESSAGE_HEADER, header_subcode::BAD_MESSAGE_LENGTH, &[0, 28]),
        ),
        case(
            "update_length_22",
            message(2, &[0, 0, 0]),
            Established,
            notify(MESSAGE_HEADER, header_subcode::BAD_MESSAGE_LENGTH, &[0, 22]),
        ),
        case(
            "notification_length_20",
            message(3, &[6]),
            Established,
            Expected::CloseSilently,
        ),
        // RFC 7313 §5: data = the whole message.
        case(
            "route_refresh_length_24",
            rr_long.clone(),
            Established,
            notify(ROUTE_REFRESH, 1, &rr_long),
        ),
        // --- RFC 4271 §6.2, OPEN ---
        case(
            "open_version_3",
            open(3, peer, 90, PEER_ID, &valid_caps()),
            InsteadOfOpen,
            notify(OPEN_MESSAGE, open_subcode::UNSUPPORTED_VERSION, &[0, 4]),
        ),
        case(
            "open_bad_peer_as",
            open(
                4,
                65002,
                90,
                PEER_ID,
                &[
                    cap_param(1, &[0, 1, 0, 1]),
                    cap_param(65, &65002u32.to_be_bytes()),
                ]
                .concat(),
            ),
            InsteadOfOpen,
            notify(OPEN_MESSAGE, open_subcode::BAD_PEER_AS, &[]),
        ),
        case(
            "open_bad_peer_as_4octet",
            open(
                4,
                AS_TRANS,
                90,
                PEER_ID,
                &cap_param(65, &4_200_000_000u32.to_be_bytes()),
            ),
            InsteadOfOpen,
            notify(OPEN_MESSAGE, open_subcode::BAD_PEER_AS, &[]),
        ),
        // RFC 6793 §4.1: My AS must be the capability's AS, or AS_TRANS.
        case(
            "open_4octet_as_disagrees_with_my_as",
            open(
                4,
                65003,
                90,
                PEER_ID,
                &[
                    cap_param(1, &[0, 1, 0, 1]),
                    cap_param(65, &PEER_AS.to_be_bytes()),
                ]
                .concat(),
            ),
            InsteadOfOpen,
            notify(OPEN_MESSAGE, open_subcode::BAD_PEER_AS, &[]),
        ),
        case(
            "open_4octet_as_zero",
            open(4, AS_TRANS, 90, PEER_ID, &cap_param(65, &[0, 0, 0, 0])),
            InsteadOfOpen,
            notify(OPEN_MESSAGE, open_subcode::BAD_PEER_AS, &[]),
        ),
        // Below the receiver's minimum hold time (3 s by default).
        case(
            "open_hold_time_0",
            open(4, peer, 0, PEER_ID, &valid_caps()),
            InsteadOfOpen,
            notify(OPEN_MESSAGE, open_subcode::UNACCEPTABLE_HOLD_TIME, &[]),
        ),
        // RFC 4271 §8.2.2 Established, event 19 and RFC 6608: an OPEN in
        // Established is an FSM error, subcode 3.
        case(
            "open_in_established",
            open(4, peer, 90, PEER_ID, &valid_caps()),
            Established,
            notify(FSM, fsm_subcode::UNEXPECTED_IN_ESTABLISHED, &[]),
        ),
        case(
            "open_as_trans_without_capability",
            open(4, AS_TRANS, 90, PEER_ID, &[]),
            InsteadOfOpen,
            notify(OPEN_MESSAGE, open_subcode::BAD_PEER_AS, &[]),
        ),
        case(
            "open_hold_time_1",
            open(4, peer, 1, PEER_ID, &valid_caps()),
            InsteadOfOpen,
            notify(OPEN_MESSAGE, open_subcode::UNACCEPTABLE_HOLD_TIME, &[]),
        ),
        case(
            "open_hold_time_2",
            open(4, peer, 2, PEER_ID, &valid_caps()),
            InsteadOfOpen,
            notify(OPEN_MESSAGE, open_subcode::UNACCEPTABLE_HOLD_TIME, &[]),
        ),
        case(
            "open_bgp_id_zero",
            open(4, peer, 90, Ipv4Addr::UNSPECIFIED, &valid_caps()),
            InsteadOfOpen,
            notify(OPEN_MESSAGE, open_subcode::BAD_BGP_IDENTIFIER, &[]),
        ),
        case(
            "open_unsupported_optional_parameter",
            open(4, peer, 90, PEER_ID, &[1, 2, 0, 0]),
            InsteadOfOpen,
            notify(
                OPEN_MESSAGE,
                open_subcode::UNSUPPORTED_OPTIONAL_PARAMETER,
                &[],
            ),
        ),
        case(
            "open_opt_param_length_overrun",
            {
                let mut b = open_body(4, peer, 90, PEER_ID, &valid_caps());
                b[9] += 4;
                message(1, &b)
            },
            InsteadOfOpen,
            notify(OPEN_MESSAGE, open_subcode::UNSPECIFIC, &[]),
        ),
        case(
            "open_param_overrun",
            open(4, peer, 90, PEER_ID, &[2, 9, 65, 4, 0, 0, 0xfd, 0xe9]),
            InsteadOfOpen,
            notify(OPEN_MESSAGE, open_subcode::UNSPECIFIC, &[]),
        ),
        case(
            "open_capability_overrun",
            open(4, peer, 90, PEER_ID, &[2, 6, 65, 5, 0, 0, 0xfd, 0xe9]),
            InsteadOfOpen,
            notify(OPEN_MESSAGE, open_subcode::UNSPECIFIC, &[]),
        ),
        case(
            "open_mp_capability_length_3",
            open(4, peer, 90, PEER_ID, &cap_param(1, &[0, 1, 1])),
            InsteadOfOpen,
            notify(OPEN_MESSAGE, open_subcode::UNSPECIFIC, &[]),
        ),
        case(
            "open_4octet_capability_length_2",
            open(4, peer, 90, PEER_ID, &cap_param(65, &[0xfd, 0xe9])),
            InsteadOfOpen,
            notify(OPEN_MESSAGE, open_subcode::UNSPECIFIC, &[]),
        ),
        case(
            "open_gr_capability_length_3",
            open(4, peer, 90, PEER_ID, &cap_param(64, &[0, 120, 0])),
            InsteadOfOpen,
            notify(OPEN_MESSAGE, open_subcode::UNSPECIFIC, &[]),
        ),
        // --- RFC 4271 §6.3 / RFC 7606, UPDATE: session reset ---
        case(
            "update_withdrawn_length_overrun",
            update(&[], &[], &[])
                .iter()
                .enumerate()
                .map(|(i, b)| if i == 20 { 9 } else { *b })
                .collect(),
            Established,
            notify(
                UPDATE_MESSAGE,
                update_subcode::MALFORMED_ATTRIBUTE_LIST,
                &[],
            ),
        ),
        case(
            "update_attribute_length_overrun",
            {
                let mut m = update_with(&[]);
                m[22] += 10;
                m
            },
            Established,
            notify(
                UPDATE_MESSAGE,
                update_subcode::MALFORMED_ATTRIBUTE_LIST,
                &[],
            ),
        ),
        case(
            "update_nlri_prefix_length_33",
            update(
                &[],
                &[origin_igp(), as_path_65001(), next_hop()].concat(),
                &[33, 1, 2, 3, 4, 5],
            ),
            Established,
            notify(UPDATE_MESSAGE, update_subcode::INVALID_NETWORK_FIELD, &[]),
        ),
        case(
            "update_nlri_truncated",
            update(
                &[],
                &[origin_igp(), as_path_65001(), next_hop()].concat(),
                &[24, 198],
            ),
            Established,
            notify(UPDATE_MESSAGE, update_subcode::INVALID_NETWORK_FIELD, &[]),
        ),
        case(
            "update_withdrawn_prefix_length_33",
            update(&[33, 1, 2, 3, 4, 5], &[], &[]),
            Established,
            notify(UPDATE_MESSAGE, update_subcode::INVALID_NETWORK_FIELD, &[]),
        ),
        case(
            "update_unrecognized_well_known",
            update_with(&attr(WT, 99, &[1, 2])),
            Established,
            notify(
                UPDATE_MESSAGE,
                update_subcode::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
                &[0x40, 99, 2, 1, 2],
            ),
        ),
        case(
            "update_mp_reach_repeated",
            update(
                &[],
                &[
                    origin_igp(),
                    as_path_65001(),
                    attr_ext(OPT, 14, &mp_reach_v6()),
                    attr_ext(OPT, 14, &mp_reach_v6()),
                ]
                .concat(),
                &[],
            ),
            Established,
            notify(
                UPDATE_MESSAGE,
                update_subcode::MALFORMED_ATTRIBUTE_LIST,
                &[],
            ),
        ),
        case(
            "update_mp_reach_next_hop_length_8",
            {
                let mut v = mp_reach_v6();
                v[3] = 8;
                update(
                    &[],
                    &[origin_igp(), as_path_65001(), attr(OPT, 14, &v)].concat(),
                    &[],
                )
            },
            Established,
            notify(UPDATE_MESSAGE, update_subcode::OPTIONAL_ATTRIBUTE_ERROR, &{
                let mut v = mp_reach_v6();
                v[3] = 8;
                attr(OPT, 14, &v)
            }),
        ),
        case(
            "update_mp_reach_nlri_overrun",
            {
                let mut v = mp_reach_v6();
                v[21] = 128;
                v.truncate(30);
                update(
                    &[],
                    &[origin_igp(), as_path_65001(), attr(OPT, 14, &v)].concat(),
                    &[],
                )
            },
            Established,
            notify(UPDATE_MESSAGE, update_subcode::OPTIONAL_ATTRIBUTE_ERROR, &{
                let mut v = mp_reach_v6();
                v.truncate(30);
                attr(OPT, 14, &v)
            }),
        ),
        case(
            "update_mp_unreach_prefix_length_129",
            update(&[], &attr(OPT, 15, &[0, 2, 1, 129, 0]), &[]),
            Established,
            notify(
                UPDATE_MESSAGE,
                update_subcode::OPTIONAL_ATTRIBUTE_ERROR,
                &attr(OPT, 15, &[0, 2, 1, 129, 0]),
            ),
        ),
        // --- RFC 7606 treat-as-withdraw ---
        case(
            "update_missing_origin",
            update_attrs(&[as_path_65001(), next_hop()]),
            Established,
            taw(),
        ),
        case(
            "update_missing_as_path",
            update_attrs(&[origin_igp(), next_hop()]),
            Established,
            taw(),
        ),
        case(
            "update_missing_next_hop",
            update_attrs(&[origin_igp(), as_path_65001()]),
            Established,
            taw(),
        ),
        case(
            "update_no_attributes_with_nlri",
            update(&[], &[], &NLRI),
            Established,
            taw(),
        ),
        case(
            "update_mp_reach_missing_origin",
            update(
                &[],
                &[as_path_65001(), attr(OPT, 14, &mp_reach_v6())].concat(),
                &[],
            ),
            Established,
            Expected::TreatAsWithdraw(vec![v6_prefix()]),
        ),
        case(
            "update_origin_value_3",
            update_attrs(&[attr(WT, 1, &[3]), as_path_65001(), next_hop()]),
            Established,
            taw(),
        ),
        case(
            "update_origin_length_2",
            update_attrs(&[attr(WT, 1, &[0, 0]), as_path_65001(), next_hop()]),
            Established,
            taw(),
        ),
        case(
            "update_origin_flags_optional",
            update_attrs(&[attr(OT, 1, &[0]), as_path_65001(), next_hop()]),
            Established,
            taw(),
        ),
        case(
            "update_as_path_segment_type_5",
            update_attrs(&[
                origin_igp(),
                attr(WT, 2, &[5, 1, 0, 0, 0xfd, 0xe9]),
                next_hop(),
            ]),
            Established,
            taw(),
        ),
        case(
            "update_as_path_segment_length_0",
            update_attrs(&[origin_igp(), attr(WT, 2, &[2, 0]), next_hop()]),
            Established,
            taw(),
        ),
        case(
            "update_as_path_segment_overrun",
            update_attrs(&[
                origin_igp(),
                attr(WT, 2, &[2, 2, 0, 0, 0xfd, 0xe9]),
                next_hop(),
            ]),
            Established,
            taw(),
        ),
        case(
            "update_as_path_flags_optional",
            update_attrs(&[
                origin_igp(),
                attr(OT, 2, &[2, 1, 0, 0, 0xfd, 0xe9]),
                next_hop(),
            ]),
            Established,
            taw(),
        ),
        case(
            "update_next_hop_length_5",
            update_attrs(&[
                origin_igp(),
                as_path_65001(),
                attr(WT, 3, &[192, 0, 2, 2, 0]),
            ]),
            Established,
            taw(),
        ),
        case(
            "update_next_hop_zero",
            update_attrs(&[origin_igp(), as_path_65001(), attr(WT, 3, &[0, 0, 0, 0])]),
            Established,
            taw(),
        ),
        case(
            "update_med_length_2",
            update_with(&attr(OPT, 4, &[0, 1])),
            Established,
            taw(),
        ),
        case(
            "update_communities_length_5",
            update_with(&attr(OT, 8, &[0xff, 0xff, 0, 0, 1])),
            Established,
            taw(),
        ),
        case(
            "update_attribute_overruns_list",
            update_with(&[OT, 8, 12, 0xff, 0xff, 0, 0]),
            Established,
            taw(),
        ),
        case(
            "update_attribute_header_cut_short",
            update_with(&[OT, 8]),
            Established,
            taw(),
        ),
        // --- RFC 7606 attribute-discard ---
        case(
            "update_local_pref_from_ebgp",
            update_with(&attr(WT, 5, &[0, 0, 0, 100])),
            Established,
            Expected::AttributeDiscard {
                type_code: attr_type::LOCAL_PREF,
                remaining: 0,
            },
        ),
        case(
            "update_atomic_aggregate_length_1",
            update_with(&attr(WT, 6, &[1])),
            Established,
            Expected::AttributeDiscard {
                type_code: attr_type::ATOMIC_AGGREGATE,
                remaining: 0,
            },
        ),
        case(
            "update_aggregator_length_5",
            update_with(&attr(OT, 7, &[0, 0, 0xfd, 0xe9, 1])),
            Established,
            Expected::AttributeDiscard {
                type_code: attr_type::AGGREGATOR,
                remaining: 0,
            },
        ),
        case(
            "update_as4_path_on_4octet_session",
            update_with(&attr(OT, 17, &[2, 1, 0, 0, 0xfd, 0xe9])),
            Established,
            Expected::AttributeDiscard {
                type_code: attr_type::AS4_PATH,
                remaining: 0,
            },
        ),
        case(
            "update_origin_repeated",
            update_with(&attr(WT, 1, &[2])),
            Established,
            Expected::AttributeDiscard {
                type_code: attr_type::ORIGIN,
                remaining: 1,
            },
        ),
    ]
}

/// The reaction this crate gives to `case` (what the tests compare with
/// `case.expected`).
pub fn reaction(case: &Case) -> Expected {
    let ctx = match case.when {
        When::InsteadOfOpen => Context {
            four_octet_as: false,
            ebgp: true,
        },
        When::Established => corpus_context(),
    };
    let is_notification = case.bytes.get(18) == Some(&MessageType::Notification.code());
    match decode(&case.bytes, &ctx) {
        Err(_) if is_notification => Expected::CloseSilently,
        Err(e) => match e.reaction {
            Reaction::SessionReset(n) => Expected::Notification {
                code: n.code,
                subcode: n.subcode,
                data: n.data,
            },
            Reaction::TreatAsWithdraw(p) => Expected::TreatAsWithdraw(p),
        },
        Ok(Message::Open(_)) if case.when == When::Established => Expected::Notification {
            code: error_code::FSM,
            subcode: fsm_subcode::UNEXPECTED_IN_ESTABLISHED,
            data: Vec::new(),
        },
        Ok(Message::Open(o)) => match validate_open(&corpus_config(), &o) {
            Err(n) => Expected::Notification {
                code: n.code,
                subcode: n.subcode,
                data: n.data,
            },
            Ok(()) => Expected::AttributeDiscard {
                type_code: 0,
                remaining: usize::MAX,
            },
        },
        Ok(Message::Update(u)) => {
            let type_code = match &case.expected {
                Expected::AttributeDiscard { type_code, .. } => *type_code,
                _ => 0,
            };
            let remaining = u
                .attributes
                .iter()
                .filter(|a| a.type_code() == type_code)
                .count();
            Expected::AttributeDiscard {
                type_code,
                remaining,
            }
        }
        // Anything else was accepted as is: no expectation matches it.
        Ok(_) => Expected::AttributeDiscard {
            type_code: 0,
            remaining: usize::MAX,
        },
    }
}

//! UPDATEs for a set of host routes (VIPs): announce, withdraw, End-of-RIB.
//!
//! Every pollux instance announcing a VIP must send the same attributes, so
//! that routers see equal paths and build ECMP: ORIGIN IGP, AS_PATH of our
//! AS alone (eBGP) or empty (iBGP), the session's next hop, no MED,
//! LOCAL_PREF (iBGP only), the configured communities sorted. Attributes
//! are in ascending type order (RFC 4271 §5: "The sender of an UPDATE
//! message SHOULD order path attributes within the UPDATE message in
//! ascending order of attribute type.").
//!
//! IPv4 prefixes travel in the classic NLRI field with NEXT_HOP; IPv6
//! prefixes in MP_REACH_NLRI / MP_UNREACH_NLRI (RFC 4760), whose Extended
//! Length bit is always set (as FRR does) so the packing arithmetic is
//! exact. Prefixes are sorted and de-duplicated, then packed into as few
//! messages of at most 4096 octets as possible: 100 000 /32s take about
//! 123 UPDATEs of ~813 prefixes each.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::codec::{prefix_wire_len, Context};
use crate::message::*;

/// The attributes of our announcements on one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteAttributes {
    /// Our AS.
    pub local_as: u32,
    /// The peer is external (AS_PATH = `[local_as]`, no LOCAL_PREF) or
    /// internal (AS_PATH empty, LOCAL_PREF sent).
    pub ebgp: bool,
    /// NEXT_HOP for IPv4 prefixes (the session's IPv4 self address).
    pub next_hop_v4: Option<Ipv4Addr>,
    /// Global IPv6 next hop for IPv6 prefixes.
    pub next_hop_v6: Option<Ipv6Addr>,
    /// Optional link-local IPv6 next hop (RFC 2545 §3).
    pub next_hop_v6_link_local: Option<Ipv6Addr>,
    /// LOCAL_PREF for iBGP (RFC 4271 §5.1.5); `None` sends 100.
    pub local_pref: Option<u32>,
    /// COMMUNITIES to attach (e.g. GRACEFUL_SHUTDOWN while draining).
    pub communities: Vec<Community>,
}

impl RouteAttributes {
    /// Attributes for an eBGP or iBGP session with no communities.
    pub fn new(local_as: u32, ebgp: bool) -> Self {
        Self {
            local_as,
            ebgp,
            next_hop_v4: None,
            next_hop_v6: None,
            next_hop_v6_link_local: None,
            local_pref: None,
            communities: Vec::new(),
        }
    }

    /// The attributes shared by IPv4 and IPv6 announcements, in type order.
    fn common(&self, ctx: &Context) -> Vec<PathAttribute> {
        let mut attrs = vec![PathAttribute::new(AttributeValue::Origin(Origin::Igp))];
        // RFC 4271 §5.1.2: an external peer gets our AS prepended (to an
        // empty path: a sequence of one); an internal peer an empty path.
        let path = if self.ebgp {
            AsPath::sequence(&[self.local_as])
        } else {
            AsPath::default()
        };
        // RFC 6793 §4.2.2: a 2-octet peer sees AS_TRANS in AS_PATH and the
        // real AS in AS4_PATH.
        let as4 = (!ctx.four_octet_as && path.has_four_octet()).then(|| path.clone());
        attrs.push(PathAttribute::new(AttributeValue::AsPath(path)));
        if !self.ebgp {
            let lp = self.local_pref.unwrap_or(100);
            attrs.push(PathAttribute::new(AttributeValue::LocalPref(lp)));
        }
        if !self.communities.is_empty() {
            let mut c = self.communities.clone();
            c.sort_unstable();
            c.dedup();
            attrs.push(PathAttribute::new(AttributeValue::Communities(c)));
        }
        if let Some(p) = as4 {
            attrs.push(PathAttribute::new(AttributeValue::As4Path(p)));
        }
        attrs
    }
}

/// Why UPDATEs could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdvertiseError {
    /// IPv4 prefixes but no IPv4 next hop configured.
    #[error("IPv4 prefixes to announce but no IPv4 next hop")]
    NoIpv4NextHop,
    /// IPv6 prefixes but no IPv6 next hop configured.
    #[error("IPv6 prefixes to announce but no IPv6 next hop")]
    NoIpv6NextHop,
    /// The attributes alone leave no room for a prefix.
    #[error("attributes take {0} octets, leaving no room for NLRI")]
    AttributesTooLong(usize),
}

fn sorted<T: Ord + Copy>(v: impl Iterator<Item = T>) -> Vec<T> {
    let mut v: Vec<T> = v.collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn split(prefixes: &[Prefix]) -> (Vec<Ipv4Prefix>, Vec<Ipv6Prefix>) {
    let v4 = sorted(prefixes.iter().filter_map(|p| match p {
        Prefix::V4(p) => Some(*p),
        Prefix::V6(_) => None,
    }));
    let v6 = sorted(prefixes.iter().filter_map(|p| match p {
        Prefix::V6(p) => Some(*p),
        Prefix::V4(_) => None,
    }));
    (v4, v6)
}

/// Size of an UPDATE holding these attributes and no prefixes.
fn base_len(attrs: &[PathAttribute], ctx: &Context) -> usize {
    let u = Update {
        attributes: attrs.to_vec(),
        ..Update::default()
    };
    Message::Update(u)
        .to_bytes(ctx)
        .map(|b| b.len())
        .unwrap_or(usize::MAX)
}

/// Splits `items` into runs whose wire sizes, added to `base`, stay within
/// 4096 octets.
fn chunks<T: Copy>(items: &[T], base: usize, size: impl Fn(&T) -> usize) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut len = base;
    for it in items {
        let s = size(it);
        if len + s > MAX_MESSAGE_LEN && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
            len = base;
        }
        cur.push(*it);
        len += s;
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

const MP_FLAGS: u8 = attr_flags::OPTIONAL | attr_flags::EXTENDED_LENGTH;

/// UPDATEs announcing `prefixes` with `attrs` (see the module doc).
pub fn announce(
    attrs: &RouteAttributes,
    prefixes: &[Prefix],
    ctx: &Context,
) -> Result<Vec<Update>, AdvertiseError> {
    let (v4, v6) = split(prefixes);
    let mut out = Vec::new();
    if !v4.is_empty() {
        let nh = attrs.next_hop_v4.ok_or(AdvertiseError::NoIpv4NextHop)?;
        let mut a = attrs.common(ctx);
        a.push(PathAttribute::new(AttributeValue::NextHop(nh)));
        a.sort_by_key(PathAttribute::type_code);
        let base = base_len(&a, ctx);
        if base + 5 > MAX_MESSAGE_LEN {
            return Err(AdvertiseError::AttributesTooLong(base));
        }
        for nlri in chunks(&v4, base, |p| prefix_wire_len(p.len())) {
            out.push(Update {
                withdrawn: Vec::new(),
                attributes: a.clone(),
                nlri,
            });
        }
    }
    if !v6.is_empty() {
        let global = attrs.next_hop_v6.ok_or(AdvertiseError::NoIpv6NextHop)?;
        let mp = |nlri| PathAttribute {
            flags: MP_FLAGS,
            value: AttributeValue::MpReachNlri(MpReach {
                family: Family::IPV6_UNICAST,
                next_hop: MpNextHop::V6 {
                    global,
                    link_local: attrs.next_hop_v6_link_local,
                },
                nlri: MpNlri::Ipv6(nlri),
            }),
        };
        let mut a = attrs.common(ctx);
        a.push(mp(Vec::new()));
        a.sort_by_key(PathAttribute::type_code);
        let base = base_len(&a, ctx);
        if base + 17 > MAX_MESSAGE_LEN {
            return Err(AdvertiseError::AttributesTooLong(base));
        }
        for chunk in chunks(&v6, base, |p| prefix_wire_len(p.len())) {
            let mut attributes = attrs.common(ctx);
            attributes.push(mp(chunk));
            attributes.sort_by_key(PathAttribute::type_code);
            out.push(Update {
                attributes,
                ..Update::default()
            });
        }
    }
    Ok(out)
}

/// UPDATEs withdrawing `prefixes` (IPv4 in Withdrawn Routes, IPv6 in
/// MP_UNREACH_NLRI).
pub fn withdraw(prefixes: &[Prefix]) -> Vec<Update> {
    let (v4, v6) = split(prefixes);
    let mut out = Vec::new();
    // Header 19 + two length fields.
    for withdrawn in chunks(&v4, HEADER_LEN + 4, |p| prefix_wire_len(p.len())) {
        out.push(Update {
            withdrawn,
            ..Update::default()
        });
    }
    // + MP_UNREACH header: flags, type, 2-octet length, AFI, SAFI.
    for chunk in chunks(&v6, HEADER_LEN + 4 + 4 + 3, |p| prefix_wire_len(p.len())) {
        out.push(Update {
            attributes: vec![PathAttribute {
                flags: MP_FLAGS,
                value: AttributeValue::MpUnreachNlri(MpUnreach {
                    family: Family::IPV6_UNICAST,
                    withdrawn: MpNlri::Ipv6(chunk),
                }),
            }],
            ..Update::default()
        });
    }
    out
}

/// End-of-RIB markers for these families (RFC 4724 §2), sent after the
/// initial announcements.
pub fn end_of_rib(families: &[Family]) -> Vec<Update> {
    families.iter().map(|f| Update::end_of_rib(*f)).collect()
}

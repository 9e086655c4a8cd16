//! `show bgp summary`, `show bgp neighbors`, `show bgp routes` and the
//! BGP metrics, from the speaker's view of its neighbors and sessions.

use bgp::fsm::State;
use bgp::MessageType;
use serde_json::{json, Value};

use super::metrics::Encoder;
use crate::bgp::{NeighborView, Speaker, Status};

fn state_name(s: State) -> &'static str {
    match s {
        State::Idle => "Idle",
        State::Connect => "Connect",
        State::Active => "Active",
        State::OpenSent => "OpenSent",
        State::OpenConfirm => "OpenConfirm",
        State::Established => "Established",
    }
}

/// RFC 4273 bgpPeerState numbering, for the metric.
fn state_number(s: State) -> u8 {
    match s {
        State::Idle => 1,
        State::Connect => 2,
        State::Active => 3,
        State::OpenSent => 4,
        State::OpenConfirm => 5,
        State::Established => 6,
    }
}

const TYPES: [MessageType; 5] = [
    MessageType::Open,
    MessageType::Update,
    MessageType::Notification,
    MessageType::Keepalive,
    MessageType::RouteRefresh,
];

fn type_name(t: MessageType) -> &'static str {
    match t {
        MessageType::Open => "open",
        MessageType::Update => "update",
        MessageType::Notification => "notification",
        MessageType::Keepalive => "keepalive",
        MessageType::RouteRefresh => "route_refresh",
    }
}

fn uptime(s: &Status) -> u64 {
    s.established_at.map_or(0, |t| t.elapsed().as_secs())
}

/// `pollux show bgp summary --json`.
pub fn summary_json(b: &Speaker) -> Value {
    let neighbors: Vec<Value> = b
        .neighbors()
        .into_iter()
        .map(|(e, s)| match s {
            Some(s) => json!({
                "address": e.name,
                "remote_as": e.remote_as,
                "state": state_name(s.state),
                "uptime_secs": uptime(&s),
                "messages_received": s.received.iter().sum::<u64>(),
                "messages_sent": s.sent.iter().sum::<u64>(),
                "prefixes_received": s.received_prefixes,
                "prefixes_advertised": s.advertised.len(),
                "error": s.last_error,
            }),
            None => json!({
                "address": e.name, "remote_as": e.remote_as, "state": "Idle",
                "uptime_secs": 0, "messages_received": 0, "messages_sent": 0,
                "prefixes_received": 0, "prefixes_advertised": 0, "error": e.error,
            }),
        })
        .collect();
    json!({
        "router_id": b.router_id().to_string(),
        "local_as": b.local_as(),
        "vips": b.vip_count(),
        "neighbors": neighbors,
    })
}

/// `pollux show bgp neighbors --json`.
pub fn neighbors_json(b: &Speaker) -> Value {
    let list: Vec<Value> = b
        .neighbors()
        .into_iter()
        .map(|(e, s)| {
            let Some(s) = s else {
                return json!({ "address": e.name, "remote_as": e.remote_as, "state": "Idle", "error": e.error });
            };
            let by_type = |c: &[u64; 5]| -> Value {
                TYPES.iter().map(|t| (type_name(*t).to_string(), json!(c[usize::from(t.code() - 1)]))).collect::<serde_json::Map<_, _>>().into()
            };
            let negotiated = s.negotiated.as_ref().map(|n| {
                json!({
                    "peer_as": n.peer_as,
                    "peer_router_id": n.peer_id.to_string(),
                    "ebgp": n.ebgp,
                    "four_octet_as": n.four_octet_as,
                    "hold_time": n.hold_time,
                    "keepalive_time": n.keepalive_time,
                    "families": n.families.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "route_refresh": n.route_refresh,
                    "graceful_restart": n.graceful_restart.as_ref().map(|g| json!({ "restart_time": g.restart_time })),
                })
            });
            json!({
                "address": e.name,
                "remote_as": e.remote_as,
                "local_address": s.local.to_string(),
                "state": state_name(s.state),
                "uptime_secs": uptime(&s),
                "last_change_secs_ago": s.last_change.elapsed().as_secs(),
                "established_transitions": s.established_transitions,
                "last_error": s.last_error,
                "messages_sent": by_type(&s.sent),
                "messages_received": by_type(&s.received),
                "prefixes_received": s.received_prefixes,
                "prefixes_advertised": s.advertised.len(),
                "treat_as_withdraw": s.treat_as_withdraw,
                "as_path_loops": s.as_path_loops,
                "negotiated": negotiated,
                "md5": s.md5,
                "ttl": s.ttl,
                "ttl_security_min_ttl": s.min_ttl,
                "max_prefixes": s.max_prefixes,
                "max_prefixes_reached": s.max_prefixes_reached,
                "bfd_up": s.bfd_up,
                "draining": s.draining,
                "stopped": s.stopped,
                "held_down": s.held_down,
            })
        })
        .collect();
    json!({ "neighbors": list })
}

/// `pollux show bgp routes --json`: the VIP set and what each session
/// advertises, with its attributes.
pub fn routes_json(b: &Speaker) -> Value {
    let vips: Vec<String> = b.vips().iter().map(ToString::to_string).collect();
    let mut routes = Vec::new();
    for (e, s) in b.neighbors() {
        let Some(s) = s else { continue };
        let Some(a) = &s.attributes else { continue };
        let as_path: Vec<u32> = if a.ebgp { vec![a.local_as] } else { vec![] };
        let communities: Vec<String> = a.communities.iter().map(ToString::to_string).collect();
        for p in s.advertised.iter() {
            let nh = match p {
                bgp::Prefix::V4(_) => a.next_hop_v4.map(|n| n.to_string()),
                bgp::Prefix::V6(_) => a.next_hop_v6.map(|n| n.to_string()),
            };
            routes.push(json!({
                "prefix": p.to_string(),
                "neighbor": e.name,
                "next_hop": nh,
                "origin": "igp",
                "as_path": as_path,
                "local_pref": (!a.ebgp).then(|| a.local_pref.unwrap_or(100)),
                "communities": communities,
            }));
        }
    }
    json!({ "vips": vips, "routes": routes })
}

/// Appends the BGP metric families.
pub fn metrics(b: &Speaker, e: &mut Encoder, instance: &str) {
    let st = b.neighbors();
    let live: Vec<(&NeighborView, &Status)> = st
        .iter()
        .filter_map(|(e, s)| s.as_ref().map(|s| (e, s)))
        .collect();
    e.family(
        "bgp_session_state",
        "gauge",
        "BGP FSM state (RFC 4273 numbering: 1 idle … 6 established).",
    );
    for (en, s) in &st {
        let v = s.as_ref().map_or(1, |s| state_number(s.state));
        e.sample(
            "bgp_session_state",
            &[("instance", instance), ("neighbor", &en.name)],
            v,
        );
    }
    e.family(
        "bgp_session_established",
        "gauge",
        "1 while the BGP session is Established.",
    );
    for (en, s) in &st {
        let v = s.as_ref().is_some_and(|s| s.state == State::Established);
        e.sample(
            "bgp_session_established",
            &[("instance", instance), ("neighbor", &en.name)],
            u8::from(v),
        );
    }
    e.family(
        "bgp_session_uptime_seconds",
        "gauge",
        "Seconds since the session became Established (0 when down).",
    );
    for (en, s) in &live {
        e.sample(
            "bgp_session_uptime_seconds",
            &[("instance", instance), ("neighbor", &en.name)],
            uptime(s),
        );
    }
    e.family(
        "bgp_established_transitions_total",
        "counter",
        "Times the session became Established.",
    );
    for (en, s) in &live {
        e.sample(
            "bgp_established_transitions_total",
            &[("instance", instance), ("neighbor", &en.name)],
            s.established_transitions,
        );
    }
    for (name, help, get) in [
        (
            "bgp_messages_sent_total",
            "BGP messages sent, by type.",
            (|s: &Status| s.sent) as fn(&Status) -> [u64; 5],
        ),
        (
            "bgp_messages_received_total",
            "BGP messages received, by type.",
            |s: &Status| s.received,
        ),
    ] {
        e.family(name, "counter", help);
        for (en, s) in &live {
            let c = get(s);
            for t in TYPES {
                e.sample(
                    name,
                    &[
                        ("instance", instance),
                        ("neighbor", &en.name),
                        ("type", type_name(t)),
                    ],
                    c[usize::from(t.code() - 1)],
                );
            }
        }
    }
    e.family(
        "bgp_prefixes_advertised",
        "gauge",
        "Routes the session advertises, by family.",
    );
    for (en, s) in &live {
        let v4 = s
            .advertised
            .iter()
            .filter(|p| matches!(p, bgp::Prefix::V4(_)))
            .count();
        let v6 = s.advertised.len() - v4;
        e.sample(
            "bgp_prefixes_advertised",
            &[
                ("instance", instance),
                ("neighbor", &en.name),
                ("family", "ipv4"),
            ],
            v4,
        );
        e.sample(
            "bgp_prefixes_advertised",
            &[
                ("instance", instance),
                ("neighbor", &en.name),
                ("family", "ipv6"),
            ],
            v6,
        );
    }
    e.family(
        "bgp_prefixes_received",
        "gauge",
        "Routes the peer advertises to us.",
    );
    for (en, s) in &live {
        e.sample(
            "bgp_prefixes_received",
            &[("instance", instance), ("neighbor", &en.name)],
            s.received_prefixes,
        );
    }
    e.family(
        "bgp_as_path_loops_total",
        "counter",
        "Routes received with our own AS on their path, dropped (RFC 4271 §9.1.2).",
    );
    for (en, s) in &live {
        e.sample(
            "bgp_as_path_loops_total",
            &[("instance", instance), ("neighbor", &en.name)],
            s.as_path_loops,
        );
    }
    e.family(
        "bgp_treat_as_withdraw_total",
        "counter",
        "Malformed UPDATEs treated as withdraw (RFC 7606).",
    );
    for (en, s) in &live {
        e.sample(
            "bgp_treat_as_withdraw_total",
            &[("instance", instance), ("neighbor", &en.name)],
            s.treat_as_withdraw,
        );
    }
}

//! Connection collision detection (RFC 4271 §6.8) in the peer layer.

mod common;

use std::net::Ipv4Addr;

use bgp::fsm::{Input, Output, State};
use bgp::peer::{Peer, PeerInput, SessionId};
use bgp::*;
use common::*;

fn notifications(out: &[(SessionId, Output)]) -> Vec<(SessionId, Notification)> {
    out.iter()
        .filter_map(|(id, o)| match o {
            Output::Send {
                kind: MessageType::Notification,
                bytes,
            } => match decode(bytes, &Context::default()) {
                Ok(Message::Notification(n)) => Some((*id, n)),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Both connections up and in OpenSent: ours (session 1) and the peer's.
fn racing(local_id: Ipv4Addr) -> (Peer, SessionId, Vec<(SessionId, Output)>) {
    let mut cfg = local_config();
    cfg.local_id = local_id;
    let mut p = Peer::new(cfg);
    let mut out = Vec::new();
    p.process(0, PeerInput::ManualStart, &mut out);
    let incoming = p.incoming(0, &mut out).expect("accepted while connecting");
    p.process(
        0,
        PeerInput::Session(SessionId(1), Input::TcpCrAcked),
        &mut out,
    );
    let open = peer_open_bytes(); // peer id 192.0.2.2
    p.process(
        0,
        PeerInput::Session(SessionId(1), Input::Received(&open)),
        &mut out,
    );
    p.process(
        0,
        PeerInput::Session(incoming, Input::Received(&open)),
        &mut out,
    );
    (p, incoming, out)
}

#[test]
fn higher_local_identifier_keeps_our_connection() {
    let (p, incoming, out) = racing(Ipv4Addr::new(192, 0, 2, 9));
    let n = notifications(&out);
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].0, incoming);
    assert_eq!(
        (n[0].1.code, n[0].1.subcode),
        (6, cease_subcode::CONNECTION_COLLISION_RESOLUTION)
    );
    let ids: Vec<_> = p.sessions().map(|(id, _)| id).collect();
    assert_eq!(ids, vec![SessionId(1)]);
}

#[test]
fn lower_local_identifier_keeps_the_peers_connection() {
    let (p, incoming, out) = racing(Ipv4Addr::new(192, 0, 2, 1));
    let n = notifications(&out);
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].0, SessionId(1));
    let ids: Vec<_> = p.sessions().map(|(id, _)| id).collect();
    assert_eq!(ids, vec![incoming]);
}

#[test]
fn survivor_reaches_established_and_carries_updates() {
    let (mut p, incoming, _) = racing(Ipv4Addr::new(192, 0, 2, 1));
    let mut out = Vec::new();
    p.process(
        0,
        PeerInput::Session(incoming, Input::Received(&keepalive_bytes())),
        &mut out,
    );
    assert_eq!(p.state(), State::Established);
    let id = p
        .send(0, &Message::Update(Update::default()), &mut out)
        .unwrap();
    assert_eq!(id, incoming);
}

#[test]
fn idle_peer_refuses_incoming_connections() {
    let mut p = Peer::new(local_config());
    assert_eq!(p.incoming(0, &mut Vec::new()), None);
}

#[test]
fn passive_peer_takes_the_incoming_connection_itself() {
    let mut cfg = local_config();
    cfg.passive = true;
    let mut p = Peer::new(cfg);
    let mut out = Vec::new();
    p.process(0, PeerInput::ManualStart, &mut out);
    assert_eq!(p.incoming(0, &mut out), Some(SessionId(1)));
    assert_eq!(p.state(), State::OpenSent);
}

#[test]
fn established_without_graceful_restart_refuses_a_second_connection() {
    let mut cfg = local_config();
    cfg.graceful_restart = None;
    cfg.passive = true;
    let mut p = Peer::new(cfg);
    let mut out = Vec::new();
    p.process(0, PeerInput::ManualStart, &mut out);
    let id = p.incoming(0, &mut out).unwrap();
    p.process(
        0,
        PeerInput::Session(id, Input::Received(&peer_open_bytes())),
        &mut out,
    );
    p.process(
        0,
        PeerInput::Session(id, Input::Received(&keepalive_bytes())),
        &mut out,
    );
    assert_eq!(p.state(), State::Established);
    assert_eq!(p.incoming(1, &mut out), None);
}

#[test]
fn restarted_peer_replaces_the_established_session_with_graceful_restart() {
    let mut cfg = local_config();
    cfg.passive = true;
    let mut p = Peer::new(cfg);
    let mut out = Vec::new();
    p.process(0, PeerInput::ManualStart, &mut out);
    let old = p.incoming(0, &mut out).unwrap();
    p.process(
        0,
        PeerInput::Session(old, Input::Received(&peer_open_bytes())),
        &mut out,
    );
    p.process(
        0,
        PeerInput::Session(old, Input::Received(&keepalive_bytes())),
        &mut out,
    );
    out.clear();
    let new = p.incoming(1, &mut out).expect("accepted: GR negotiated");
    p.process(
        1,
        PeerInput::Session(new, Input::Received(&peer_open_bytes())),
        &mut out,
    );
    // The old connection is dropped without a NOTIFICATION (RFC 4724 §4.2).
    assert!(notifications(&out).is_empty());
    assert!(out.iter().any(|(id, o)| *id == old
        && matches!(
            o,
            Output::SessionDown {
                reason: bgp::fsm::DownReason::PeerRestarted,
                ..
            }
        )));
    let ids: Vec<_> = p.sessions().map(|(id, _)| id).collect();
    assert_eq!(ids, vec![new]);
}

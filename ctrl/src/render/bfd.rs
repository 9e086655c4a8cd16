//! `show bfd sessions` and the BFD metrics, from the workers' session
//! snapshots and ctrl's history of each session.

use dataplane::api::{BfdHop, BfdSessionStatus, BfdState as State};
use serde_json::{json, Value};

use super::metrics::Encoder;
use crate::bfd::History;
use crate::state::State as Ctrl;

fn name(s: State) -> String {
    format!("{s:?}")
}

fn session_json(s: &BfdSessionStatus, h: &History, ports: &[String]) -> Value {
    let mut v = json!({ "peer": s.peer.to_string(), "port": ports.get(s.port), "up_transitions": h.up, "down_transitions": h.down, "last_change_unix_ns": s.last_change_unix_ns });
    if let Some(i) = &s.info {
        let m = v.as_object_mut().expect("object");
        for (k, val) in [
            ("state", json!(name(i.state))),
            ("remote_state", json!(name(i.remote_state))),
            ("local_discriminator", json!(i.local_discr)),
            ("remote_discriminator", json!(i.remote_discr)),
            ("diagnostic", json!(format!("{:?}", i.local_diag))),
            ("remote_diagnostic", json!(format!("{:?}", i.remote_diag))),
            ("multihop", json!(matches!(i.hop, BfdHop::Multi { .. }))),
            ("tx_interval_ms", json!(i.tx_interval_ns as f64 / 1e6)),
            ("detection_time_ms", json!(i.detection_time_ns as f64 / 1e6)),
            (
                "local",
                json!({ "desired_min_tx_ms": i.desired_min_tx_us as f64 / 1e3, "required_min_rx_ms": i.required_min_rx_us as f64 / 1e3, "multiplier": i.detect_mult }),
            ),
            (
                "remote",
                json!({ "desired_min_tx_ms": i.remote_desired_min_tx_us as f64 / 1e3, "required_min_rx_ms": i.remote_min_rx_us as f64 / 1e3, "multiplier": i.remote_detect_mult }),
            ),
        ] {
            m.insert(k.into(), val);
        }
    } else {
        v["state"] = json!("Down");
    }
    v
}

/// `pollux show bfd sessions --json`.
pub fn show_json(state: &Ctrl) -> Value {
    let Some((sessions, drops, rejected)) =
        state.with_dp(|dp| (dp.bfd_sessions(), dp.bfd_drops(), dp.bfd_rejected_changes()))
    else {
        return json!({ "error": "the data plane is stopped" });
    };
    let ports: Vec<String> = state
        .config
        .load()
        .dataplane
        .ports
        .iter()
        .map(|p| p.name.clone())
        .collect();
    let list: Vec<Value> = sessions
        .iter()
        .map(|s| session_json(s, &state.bfd.history(s.peer), &ports))
        .collect();
    let drops: serde_json::Map<String, Value> = drops
        .into_iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({ "sessions": list, "drops": drops, "rejected_changes": rejected })
}

/// BFD metrics: state, transitions, detection time, drops by reason.
pub fn metrics(state: &Ctrl, e: &mut Encoder) {
    let cfg = state.config.load();
    let inst = cfg.name.as_str();
    let Some((sessions, drops)) = state.with_dp(|dp| (dp.bfd_sessions(), dp.bfd_drops())) else {
        return;
    };
    e.family("bfd_session_up", "gauge", "1 while the BFD session is Up.");
    for s in &sessions {
        let up = s.info.as_ref().is_some_and(|i| i.state == State::Up);
        e.sample(
            "bfd_session_up",
            &[("instance", inst), ("peer", &s.peer.to_string())],
            u8::from(up),
        );
    }
    e.family(
        "bfd_session_transitions_total",
        "counter",
        "BFD transitions to Up and out of Up.",
    );
    for s in &sessions {
        let h = state.bfd.history(s.peer);
        let p = s.peer.to_string();
        e.sample(
            "bfd_session_transitions_total",
            &[("instance", inst), ("peer", &p), ("to", "up")],
            h.up,
        );
        e.sample(
            "bfd_session_transitions_total",
            &[("instance", inst), ("peer", &p), ("to", "down")],
            h.down,
        );
    }
    e.family(
        "bfd_detection_time_seconds",
        "gauge",
        "Negotiated detection time.",
    );
    for s in &sessions {
        let t = s
            .info
            .as_ref()
            .map_or(0.0, |i| i.detection_time_ns as f64 / 1e9);
        e.sample(
            "bfd_detection_time_seconds",
            &[("instance", inst), ("peer", &s.peer.to_string())],
            t,
        );
    }
    e.family(
        "bfd_drops_total",
        "counter",
        "BFD packets discarded (RFC 5880 §6.8.6), by reason.",
    );
    for (reason, n) in drops {
        e.sample(
            "bfd_drops_total",
            &[("instance", inst), ("reason", reason)],
            n,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_json_dates_the_last_change() {
        let mut s = BfdSessionStatus {
            peer: "10.0.0.1".parse().unwrap(),
            port: 0,
            info: None,
            last_change_unix_ns: None,
        };
        let h = History { up: 1, down: 2 };
        let ports = ["ext".to_string()];
        let v = session_json(&s, &h, &ports);
        assert_eq!(v["last_change_unix_ns"], Value::Null);
        assert_eq!(
            (v["state"].as_str(), v["down_transitions"].as_u64()),
            (Some("Down"), Some(2))
        );
        s.last_change_unix_ns = Some(1_800_000_000_123_456_789);
        let v = session_json(&s, &h, &ports);
        // Exact in JSON (an integer, not a float).
        assert_eq!(
            v["last_change_unix_ns"].as_u64(),
            Some(1_800_000_000_123_456_789)
        );
    }
}

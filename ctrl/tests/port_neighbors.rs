//! `dataplane.ports[].neighbors` (static neighbors) and `puntRate`: parsed,
//! validated, and rejected with the offending field named.

use ctrl::config::{self, HostFacts};

fn host() -> HostFacts {
    HostFacts {
        allowed_cpus: vec![0, 1],
        node_name: None,
    }
}

fn with_port_extra(extra: &str) -> String {
    format!(
        "instance: {{ name: a }}\ndataplane:\n  workers: [1]\n  ports: [{{ name: p, device: net_null0, selfIps: [\"10.0.0.2/24\", \"fd00::2/64\"]{extra} }}]\n"
    )
}

#[test]
fn static_neighbors_and_punt_rate_are_validated() {
    let text = with_port_extra(
        ", puntRate: 500, neighbors: [{ address: 10.0.0.9, mac: \"02:00:00:00:00:09\" }, { address: \"fe80::9\", mac: \"02:00:00:00:00:0A\" }]",
    );
    let cfg = config::parse(&text)
        .and_then(|r| config::validate(&r, &host()))
        .unwrap();
    let p = &cfg.dataplane.ports[0];
    assert_eq!(p.punt_rate, 500);
    let got: Vec<String> = p
        .neighbors
        .iter()
        .map(|(a, m)| format!("{a} {m}"))
        .collect();
    assert_eq!(
        got,
        ["10.0.0.9 02:00:00:00:00:09", "fe80::9 02:00:00:00:00:0a"]
    );
    // Defaults: none, and the policer on at its default rate.
    let cfg = config::parse(&with_port_extra(""))
        .and_then(|r| config::validate(&r, &host()))
        .unwrap();
    assert!(cfg.dataplane.ports[0].neighbors.is_empty());
    assert_eq!(
        cfg.dataplane.ports[0].punt_rate,
        dataplane::api::DEFAULT_PUNT_RATE
    );
}

#[test]
fn bad_static_neighbors_name_the_field() {
    let n = |addr: &str, mac: &str| {
        with_port_extra(&format!(
            ", neighbors: [{{ address: \"{addr}\", mac: \"{mac}\" }}]"
        ))
    };
    let cases = [
        (n("10.0.0.300", "02:00:00:00:00:09"), "dataplane.ports[0].neighbors[0].address"),
        (n("10.9.0.9", "02:00:00:00:00:09"), "dataplane.ports[0].neighbors[0].address"),
        (n("10.0.0.2", "02:00:00:00:00:09"), "dataplane.ports[0].neighbors[0].address"),
        (n("224.0.0.5", "02:00:00:00:00:09"), "dataplane.ports[0].neighbors[0].address"),
        (n("10.0.0.9", "02:00:00:00:09"), "dataplane.ports[0].neighbors[0].mac"),
        (n("10.0.0.9", "01:00:5e:00:00:01"), "dataplane.ports[0].neighbors[0].mac"),
        (n("10.0.0.9", "00:00:00:00:00:00"), "dataplane.ports[0].neighbors[0].mac"),
        (
            with_port_extra(", neighbors: [{ address: 10.0.0.9, mac: \"02:00:00:00:00:09\" }, { address: 10.0.0.9, mac: \"02:00:00:00:00:0a\" }]"),
            "dataplane.ports[0].neighbors[1].address",
        ),
        (
            with_port_extra(", neighbors: [{ address: 10.0.0.9, lladdr: \"02:00:00:00:00:09\" }]"),
            "dataplane.ports[0]",
        ),
        (with_port_extra(", puntRate: -1"), "dataplane"),
    ];
    for (text, path) in cases {
        let err = config::parse(&text)
            .and_then(|r| config::validate(&r, &host()))
            .expect_err(path);
        assert!(err.path.starts_with(path), "{path}: got {err}");
    }
}

//! Every example in configs/ parses and validates (with the host facts of a
//! 16-core machine, so the examples do not depend on where tests run).

use std::path::Path;

use ctrl::config::{self, HostFacts};

#[test]
fn every_example_config_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let host = HostFacts {
        allowed_cpus: (0..16).collect(),
        node_name: Some("node-1".into()),
    };
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let cfg =
                config::load(&path, &host).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!cfg.dataplane.ports.is_empty());
            n += 1;
        }
    }
    assert!(n >= 3, "only {n} example configs");
}

#[test]
fn errors_name_the_field() {
    let host = HostFacts {
        allowed_cpus: vec![0, 1],
        node_name: None,
    };
    let base = "instance: { name: a }\ndataplane:\n  workers: [1]\n  ports: [{ name: p, device: net_null0, selfIps: [\"10.0.0.2/24\"] }]\n";
    let cases = [
        (base.replace("workers: [1]", "workers: [7]"), "dataplane.workers[0]"),
        (base.replace("10.0.0.2/24", "10.0.0.2/33"), "dataplane.ports[0].selfIps[0]"),
        (base.replace("name: p,", "name: p, vlan: 0,"), "dataplane.ports[0].vlan"),
        (base.replace("name: p,", "name: a-name-that-is-too-long,"), "dataplane.ports[0].name"),
        (base.replace("instance: { name: a }", "instance: { name: a, colour: red }"), "instance"),
        (format!("{base}virtualServers: [{{ name: v, address: 10.9.9.9, port: 80, members: [{{ address: fd00::1, port: 80 }}] }}]\n"), "virtualServers[0].members[0].address"),
        (format!("{base}bgp: {{ asn: 65000, routerId: 10.0.0.2, neighbors: [{{ asn: 1 }}] }}\n"), "bgp.neighbors[0]"),
        (format!("{base}bfd: {{ multiplier: 1 }}\n"), "bfd.multiplier"),
    ];
    for (text, path) in cases {
        let err = config::parse(&text)
            .and_then(|r| config::validate(&r, &host))
            .expect_err(path);
        assert!(err.path.starts_with(path), "{path}: got {err}");
    }
}

/// What `run` would reject or silently misread is rejected by validation
/// (so `pollux check` too), naming the exact field (issue 14).
#[test]
fn validation_rejects_what_run_would_misread() {
    let host = HostFacts {
        allowed_cpus: vec![0, 1],
        node_name: None,
    };
    let base = "instance: { name: a }\ndataplane:\n  workers: [1]\n  ports: [{ name: p, device: net_null0, selfIps: [\"10.0.0.2/24\"] }]\n";
    let vs = |extra: &str| format!("{base}virtualServers:\n{extra}");
    let web = "  - { name: web, address: 10.9.9.9, port: 80, members: [{ address: 10.1.0.1, port: 8080 }] }\n";
    let nbr = |extra: &str| {
        format!("{base}bgp: {{ asn: 65000, routerId: 10.0.0.2, neighbors: [{{ address: 10.0.0.1, asn: 65001{extra} }}] }}\n")
    };
    let cases = [
        (vs(&format!("{web}  - {{ name: web2, address: 10.9.9.9, port: 80, members: [] }}\n")), "virtualServers[1]", "already virtualServers[0]"),
        (vs(&format!("{web}  - {{ name: s, address: 10.9.9.8, port: 81, snat: [10.0.0.9, 10.9.9.9], members: [] }}\n")), "virtualServers[1].snat[1]", "virtual server address"),
        (vs("  - { name: t, address: 10.9.9.9, port: 80, idleTimeout: 65536, members: [] }\n"), "virtualServers[0].idleTimeout", "65536"),
        (vs("  - { name: any, address: 10.9.9.9, port: 0, healthCheck: { type: tcp }, members: [{ address: 10.1.0.1, port: 0 }] }\n"), "virtualServers[0].healthCheck.port", "members[0] forwards all ports"),
        (vs("  - { name: any, address: 10.9.9.9, port: 0, healthCheck: { type: tcp, port: 0 }, members: [] }\n"), "virtualServers[0].healthCheck.port", "1–65535"),
        (nbr(", maxPrefixes: 0"), "bgp.neighbors[0].maxPrefixes", "must be"),
    ];
    for (text, path, words) in cases {
        let err = config::parse(&text)
            .and_then(|r| config::validate(&r, &host))
            .expect_err(path);
        assert_eq!(err.path, path, "{err}");
        assert!(err.to_string().contains(words), "{path}: {err}");
    }
    // The accepted neighbours of those: different protocol, all ports
    // with a probe port, idleTimeout 65535, the hardening keys.
    let ok = [
        vs(&format!("{web}  - {{ name: dns, address: 10.9.9.9, port: 80, protocol: udp, members: [] }}\n")),
        vs("  - { name: any, address: 10.9.9.9, port: 0, idleTimeout: 65535, healthCheck: { type: tcp, port: 22 }, members: [{ address: 10.1.0.1, port: 0 }] }\n"),
        nbr(", ttlSecurity: true, minHoldTime: 0, maxPrefixes: 1000000"),
    ];
    for text in ok {
        let r = config::parse(&text).and_then(|r| config::validate(&r, &host));
        assert!(r.is_ok(), "{text}: {:?}", r.err());
    }
    let cfg = config::validate(&config::parse(&nbr("")).unwrap(), &host).unwrap();
    let n = &cfg.bgp.unwrap().neighbors[0];
    assert_eq!(
        (n.min_hold_time, n.max_prefixes, n.ttl_security),
        (3, 10_000, false),
        "defaults"
    );
}

/// `scaleOut` (issue 15): peers share a segment with this instance and are
/// not itself; errors name the peer.
#[test]
fn scale_out_peers_are_checked() {
    let host = HostFacts {
        allowed_cpus: vec![0, 1],
        node_name: None,
    };
    let base = "instance: { name: a }\ndataplane:\n  workers: [1]\n  ports: [{ name: p, device: net_null0, selfIps: [\"10.0.0.2/24\"] }]\n";
    let ok = config::parse(&format!("{base}scaleOut: {{ peers: [10.0.0.3] }}\n"))
        .and_then(|r| config::validate(&r, &host))
        .unwrap();
    assert_eq!(
        ok.scale_out.peers,
        vec!["10.0.0.3".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(ok.scale_out.port, 7790);
    let none = config::parse(base)
        .and_then(|r| config::validate(&r, &host))
        .unwrap();
    assert!(none.scale_out.peers.is_empty());
    for (so, path) in [
        ("{ peers: [10.0.1.3] }", "scaleOut.peers[0]"),
        ("{ peers: [10.0.0.3, 10.0.0.2] }", "scaleOut.peers[1]"),
        ("{ peers: [10.0.0.3, 10.0.0.3] }", "scaleOut.peers[1]"),
        ("{ peers: [peer-b] }", "scaleOut.peers[0]"),
        ("{ peers: [10.0.0.3], port: 0 }", "scaleOut.port"),
        ("{ peer: [10.0.0.3] }", "scaleOut"),
    ] {
        let err = config::parse(&format!("{base}scaleOut: {so}\n"))
            .and_then(|r| config::validate(&r, &host))
            .expect_err(path);
        assert!(err.path.starts_with(path), "{so}: got {err}");
    }
}

/// The flood guard is on by default (issue 14): `connections / 40` new
/// flows per second per worker; `newFlowsPerSec: 0` turns it off and an
/// explicit value is kept.
#[test]
fn flood_guard_defaults_to_a_fortieth_of_the_table() {
    let host = HostFacts {
        allowed_cpus: vec![0, 1],
        node_name: None,
    };
    let base = "instance: { name: a }\ndataplane:\n  workers: [1]\n  ports: [{ name: p, device: net_null0, selfIps: [\"10.0.0.2/24\"] }]\n";
    let rate = |extra: &str| {
        let text = format!("{base}{extra}");
        config::validate(&config::parse(&text).unwrap(), &host)
            .unwrap()
            .dataplane
            .new_flows_per_sec
    };
    assert_eq!(rate(""), 262_144 / 40, "default table, default guard");
    assert_eq!(rate("  connections: 4000000\n"), 100_000);
    assert_eq!(rate("  connections: 64\n"), 1, "never 0 (= off) by default");
    assert_eq!(rate("  newFlowsPerSec: 0\n"), 0, "off when asked");
    assert_eq!(rate("  newFlowsPerSec: 125000\n"), 125_000);
}

/// The IPv6 table is a quarter of the IPv4 one unless set; out-of-range
/// sizes are refused by their own name.
#[test]
fn ipv6_connections_default_to_a_quarter_and_are_checked() {
    let host = HostFacts {
        allowed_cpus: vec![0, 1],
        node_name: None,
    };
    let base = "instance: { name: a }\ndataplane:\n  workers: [1]\n  ports: [{ name: p, device: net_null0, selfIps: [\"10.0.0.2/24\"] }]\n";
    let v6 = |extra: &str| {
        config::validate(&config::parse(&format!("{base}{extra}")).unwrap(), &host)
            .map(|c| (c.dataplane.connections, c.dataplane.connections_v6))
            .map_err(|e| e.path)
    };
    assert_eq!(v6(""), Ok((1 << 18, 1 << 16)));
    assert_eq!(v6("  connections: 100\n"), Ok((100, 64)), "at least 64");
    assert_eq!(v6("  connectionsV6: 4096\n"), Ok((1 << 18, 4096)));
    assert_eq!(
        v6("  connectionsV6: 8\n"),
        Err("dataplane.connectionsV6".into())
    );
}

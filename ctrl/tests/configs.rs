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

//! The kernel side of the exception path: addresses and routes on the TAPs.
//!
//! Each port's TAP carries the port's self IPs (so kernel sockets bind to
//! them) and the static routes (so the kernel hands such traffic to the
//! data plane, which routes it and resolves the next hop itself). This is
//! done with iproute2, the one tool every node image has; each command is
//! logged.

use std::io::Write;
use std::process::{Command, Stdio};

use dataplane::api::Config;

/// The `ip -batch` lines for `cfg`.
pub fn commands(cfg: &Config) -> Vec<String> {
    let mut cmds = Vec::new();
    for p in &cfg.ports {
        cmds.push(format!("link set dev {} up", p.name));
        for s in &p.self_ips {
            let extra = if s.addr.is_ipv6() { " nodad" } else { "" };
            cmds.push(format!(
                "addr replace {}/{} dev {}{extra}",
                s.addr, s.len, p.name
            ));
        }
    }
    for r in &cfg.routes {
        // Validation made sure the next hop is on a connected subnet.
        let Some(port) = cfg
            .ports
            .iter()
            .find(|p| p.self_ips.iter().any(|s| s.prefix().contains(r.via)))
        else {
            continue;
        };
        let dev = &port.name;
        let family = if r.prefix.addr.is_ipv6() { "-6 " } else { "" };
        cmds.push(format!(
            "{family}route replace {} via {} dev {dev}",
            r.prefix, r.via
        ));
    }
    cmds
}

/// Applies [`commands`]: the TAPs exist once the data plane has started.
pub fn configure(cfg: &Config) -> anyhow::Result<()> {
    for p in &cfg.ports {
        // No router advertisements or autoconfiguration on the TAP: the
        // data plane owns the link.
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{}/accept_ra", p.name), "0");
    }
    let cmds = commands(cfg);
    for c in &cmds {
        tracing::info!(command = %format!("ip {c}"), "kernel");
    }
    let mut child = Command::new("ip")
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run ip (iproute2): {e}"))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(cmds.join("\n").as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        anyhow::bail!(
            "configuring the TAPs failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use dataplane::api::{PollMode, PortSpec, Prefix, SelfIp, StaticRoute, WorkerSpec};

    use super::*;

    #[test]
    fn addresses_and_routes_go_on_the_right_tap() {
        let cfg = Config {
            instance: "a".into(),
            eal: vec![],
            workers: vec![WorkerSpec { lcore: 1, cpu: 1 }],
            control_cpus: vec![0],
            poll_mode: PollMode::Adaptive,
            ports: vec![
                PortSpec {
                    name: "ext".into(),
                    device: "d0".into(),
                    self_ips: vec![
                        SelfIp {
                            addr: "10.0.0.2".parse().unwrap(),
                            len: 24,
                        },
                        SelfIp {
                            addr: "fd00::2".parse().unwrap(),
                            len: 64,
                        },
                    ],
                    vlan: None,
                    mtu: 1500,
                    neighbors: vec![],
                    punt_rate: 0,
                    queues: None,
                },
                PortSpec {
                    name: "int".into(),
                    device: "d1".into(),
                    self_ips: vec![SelfIp {
                        addr: "10.1.0.2".parse().unwrap(),
                        len: 24,
                    }],
                    vlan: None,
                    mtu: 1500,
                    neighbors: vec![],
                    punt_rate: 0,
                    queues: None,
                },
            ],
            routes: vec![StaticRoute {
                prefix: Prefix::new("192.168.0.0".parse().unwrap(), 16),
                via: "10.1.0.1".parse().unwrap(),
            }],
            bfd: vec![],
            connections: 4096,
            connections_v6: 1024,
            new_flows_per_sec: 0,
            snat_ports: (61000, 65535),
            mbufs: 2047,
            panic_for_test: false,
            hash_seed: None,
            clock_step_ns: None,
        };
        assert_eq!(
            commands(&cfg),
            vec![
                "link set dev ext up",
                "addr replace 10.0.0.2/24 dev ext",
                "addr replace fd00::2/64 dev ext nodad",
                "link set dev int up",
                "addr replace 10.1.0.2/24 dev int",
                "route replace 192.168.0.0/16 via 10.1.0.1 dev int",
            ]
        );
    }
}

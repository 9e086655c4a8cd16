//! The validated configuration and the checks that produce it.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use dataplane::api::{self, Mac, PollMode, PortSpec, Prefix, SelfIp, StaticRoute, WorkerSpec};

use super::{raw, Error, HostFacts};

/// The largest `maxPrefixes` a neighbor may set: each received prefix is
/// kept (for the count in `show bgp neighbors`), so this bounds memory.
pub const MAX_PREFIXES_LIMIT: u32 = 1_000_000;

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub name: String,
    pub node_name: Option<String>,
    pub dataplane: api::Config,
    pub virtual_servers: Vec<VirtualServer>,
    pub bgp: Option<Bgp>,
    pub bfd: Bfd,
    pub api: Api,
    pub scale_out: ScaleOut,
}

/// `scaleOut`: the peer instances (self IPs on a shared segment) and the
/// UDP port of the drain notices (docs/scale-out.md).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScaleOut {
    pub peers: Vec<IpAddr>,
    pub port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Snat {
    None,
    Automap,
    Pool(Vec<IpAddr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthCheckKind {
    Tcp,
    Http,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub kind: HealthCheckKind,
    pub interval_ms: u32,
    pub timeout_ms: u32,
    pub rise: u32,
    pub fall: u32,
    pub path: String,
    pub expect_status: u16,
    /// The port probed on every member, when set (`healthCheck.port`).
    pub port: Option<u16>,
}

impl HealthCheck {
    /// The port probed on a member of `vs` whose configured port is
    /// `member_port`: `healthCheck.port`, else the member's, else the
    /// virtual server's (validation makes sure it is not 0).
    pub fn probe_port(&self, vs_port: u16, member_port: u16) -> u16 {
        self.port.unwrap_or(if member_port == 0 {
            vs_port
        } else {
            member_port
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub address: IpAddr,
    pub port: u16,
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualServer {
    pub name: String,
    pub address: IpAddr,
    pub port: u16,
    pub protocol: Protocol,
    pub idle_timeout: u32,
    pub reset_on_timeout: bool,
    pub snat: Snat,
    pub health_check: Option<HealthCheck>,
    pub members: Vec<Member>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerAddress {
    Fixed(IpAddr),
    /// Looked up by node name in this file at start.
    NodeLookup(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbor {
    pub address: PeerAddress,
    pub asn: u32,
    pub password_file: Option<PathBuf>,
    pub ebgp_multihop: u8,
    pub bfd: bool,
    pub advertise_ipv4: bool,
    pub advertise_ipv6: bool,
    pub hold_time: u16,
    pub min_hold_time: u16,
    pub max_prefixes: u32,
    pub ttl_security: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bgp {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    pub graceful_restart: Option<u16>,
    pub neighbors: Vec<Neighbor>,
    /// GRACEFUL_SHUTDOWN announcement time before the withdrawal on drain.
    pub drain_delay: std::time::Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bfd {
    pub min_tx_ms: u32,
    pub min_rx_ms: u32,
    pub multiplier: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Api {
    pub socket: PathBuf,
    pub metrics: Option<SocketAddr>,
    /// The kernel interface `/metrics` is bound to (SO_BINDTODEVICE).
    pub metrics_interface: Option<String>,
}

type Result<T> = std::result::Result<T, Error>;

fn ip(path: &str, s: &str) -> Result<IpAddr> {
    s.trim()
        .parse()
        .map_err(|_| Error::new(path, format!("{s:?} is not an IPv4 or IPv6 address")))
}

/// A port's `neighbors`: unicast addresses on one of its subnets (or IPv6
/// link-local), each once, none a self IP, with a unicast MAC.
fn static_neighbors(
    path: &str,
    raw: &[raw::StaticNeighbor],
    self_ips: &[SelfIp],
) -> Result<Vec<(IpAddr, Mac)>> {
    let mut seen = HashSet::new();
    raw.iter()
        .enumerate()
        .map(|(j, n)| {
            let at = format!("{path}.neighbors[{j}]");
            let addr = ip(&format!("{at}.address"), &n.address)?;
            let link_local = matches!(addr, IpAddr::V6(a) if a.is_unicast_link_local());
            if addr.is_unspecified() || addr.is_multicast() || addr == Ipv4Addr::BROADCAST {
                return Err(Error::new(
                    format!("{at}.address"),
                    format!("{addr} is not a unicast address"),
                ));
            }
            if self_ips.iter().any(|s| s.addr == addr) {
                return Err(Error::new(
                    format!("{at}.address"),
                    format!("{addr} is a self IP of this port"),
                ));
            }
            if !link_local && !self_ips.iter().any(|s| s.prefix().contains(addr)) {
                return Err(Error::new(
                    format!("{at}.address"),
                    format!("{addr} is not on a subnet of this port's selfIps"),
                ));
            }
            if !seen.insert(addr) {
                return Err(Error::new(
                    format!("{at}.address"),
                    format!("{addr} is listed twice"),
                ));
            }
            let mac: Mac = n.mac.trim().parse().map_err(|_| {
                Error::new(
                    format!("{at}.mac"),
                    format!("{:?} is not a MAC address (02:00:00:00:00:09)", n.mac),
                )
            })?;
            if mac.is_multicast() || mac == Mac::ZERO {
                return Err(Error::new(
                    format!("{at}.mac"),
                    format!("{mac} is not a unicast MAC"),
                ));
            }
            Ok((addr, mac))
        })
        .collect()
}

/// `addr/len` with the length in range for the family.
fn cidr(path: &str, s: &str) -> Result<(IpAddr, u8)> {
    let (a, l) = s
        .split_once('/')
        .ok_or_else(|| Error::new(path, format!("{s:?} is not address/prefix-length")))?;
    let addr = ip(path, a)?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len: u8 = l
        .parse()
        .ok()
        .filter(|l| *l <= max)
        .ok_or_else(|| Error::new(path, format!("prefix length {l:?} is not 0–{max}")))?;
    Ok((addr, len))
}

/// Validates everything; nothing is touched.
pub fn validate(raw: &raw::Config, host: &HostFacts) -> Result<Config> {
    let name = &raw.instance.name;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        || name.len() > 63
    {
        return Err(Error::new(
            "instance.name",
            format!("{name:?} must be 1–63 characters of letters, digits, '-', '_', '.'"),
        ));
    }
    let node_name = raw
        .instance
        .node_name
        .clone()
        .or_else(|| host.node_name.clone());
    let dataplane = dataplane(&raw.dataplane, name, host)?;
    let mut names = HashSet::new();
    let virtual_servers = raw
        .virtual_servers
        .iter()
        .enumerate()
        .map(|(i, vs)| {
            let path = format!("virtualServers[{i}]");
            if !names.insert(vs.name.as_str()) {
                return Err(Error::new(
                    format!("{path}.name"),
                    format!("{:?} is used twice", vs.name),
                ));
            }
            virtual_server(&path, vs)
        })
        .collect::<Result<Vec<VirtualServer>>>()?;
    cross_check_virtual_servers(&virtual_servers)?;
    let bgp = raw.bgp.as_ref().map(bgp).transpose()?;
    let bfd = bfd(&raw.bfd)?;
    let api = Api {
        socket: raw.api.socket.clone().map_or_else(
            || PathBuf::from(format!("/run/pollux/{name}.sock")),
            PathBuf::from,
        ),
        metrics: raw
            .api
            .metrics
            .as_deref()
            .map(|m| {
                m.parse()
                    .map_err(|_| Error::new("api.metrics", format!("{m:?} is not address:port")))
            })
            .transpose()?,
        metrics_interface: raw
            .api
            .metrics_interface
            .as_deref()
            .map(|i| {
                let ok = !i.is_empty()
                    && i.len() <= 15
                    && i.bytes()
                        .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':');
                if raw.api.metrics.is_none() {
                    Err(Error::new("api.metricsInterface", "needs api.metrics"))
                } else if ok {
                    Ok(i.to_string())
                } else {
                    Err(Error::new(
                        "api.metricsInterface",
                        format!("{i:?} is not an interface name (1-15 characters, no '/' or ':')"),
                    ))
                }
            })
            .transpose()?,
    };
    let scale_out = scale_out(&raw.scale_out, &dataplane)?;
    Ok(Config {
        name: name.clone(),
        node_name,
        dataplane,
        virtual_servers,
        bgp,
        bfd,
        api,
        scale_out,
    })
}

fn dataplane(raw: &raw::Dataplane, instance: &str, host: &HostFacts) -> Result<api::Config> {
    let allowed = &host.allowed_cpus;
    let cores: Vec<usize> = match &raw.workers {
        raw::Workers::Cores(c) if c.is_empty() => {
            return Err(Error::new("dataplane.workers", "needs at least one core"))
        }
        raw::Workers::Cores(c) => {
            let mut seen = HashSet::new();
            for (i, core) in c.iter().enumerate() {
                if !allowed.contains(core) {
                    return Err(Error::new(
                        format!("dataplane.workers[{i}]"),
                        format!(
                            "core {core} is not available to this process (allowed: {})",
                            list(allowed)
                        ),
                    ));
                }
                if !seen.insert(core) {
                    return Err(Error::new(
                        format!("dataplane.workers[{i}]"),
                        format!("core {core} is listed twice"),
                    ));
                }
            }
            c.clone()
        }
        raw::Workers::Count(n) if *n == 0 || *n > allowed.len() => {
            return Err(Error::new(
                "dataplane.workers",
                format!("{n} workers: 1–{} cores are available", allowed.len()),
            ))
        }
        raw::Workers::Count(n) => allowed[allowed.len() - n..].to_vec(),
    };
    let control_cpus: Vec<usize> = allowed
        .iter()
        .copied()
        .filter(|c| !cores.contains(c))
        .collect();
    let control_cpus = if control_cpus.is_empty() {
        allowed.clone()
    } else {
        control_cpus
    };
    let poll_mode = match raw.poll_mode.as_str() {
        "busy" => PollMode::Busy,
        "adaptive" => PollMode::Adaptive,
        other => {
            return Err(Error::new(
                "dataplane.pollMode",
                format!("{other:?} is not busy or adaptive"),
            ))
        }
    };
    for (i, a) in raw.eal.iter().enumerate() {
        let flag = a.split('=').next().unwrap_or("");
        if ["-l", "-c", "--lcores", "--main-lcore", "--master-lcore"].contains(&flag) {
            return Err(Error::new(
                format!("dataplane.eal[{i}]"),
                format!("{a:?}: the lcore map is derived from dataplane.workers"),
            ));
        }
    }
    if !(64..=1 << 26).contains(&raw.connections) {
        return Err(Error::new(
            "dataplane.connections",
            "must be 64–67108864 slots per worker",
        ));
    }
    let connections_v6 = raw.connections_v6.unwrap_or((raw.connections / 4).max(64));
    if !(64..=1 << 26).contains(&connections_v6) {
        return Err(Error::new(
            "dataplane.connectionsV6",
            "must be 64–67108864 slots per worker",
        ));
    }
    if raw.ports.is_empty() {
        return Err(Error::new("dataplane.ports", "needs at least one port"));
    }
    let mut names = HashSet::new();
    let mut devices = HashSet::new();
    let workers = cores.len();
    let ports = raw
        .ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let path = format!("dataplane.ports[{i}]");
            if p.name.is_empty()
                || p.name.len() > 15
                || !p
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(Error::new(
                    format!("{path}.name"),
                    format!(
                        "{:?} must be a valid interface name: 1–15 letters, digits, '-', '_', '.'",
                        p.name
                    ),
                ));
            }
            if !names.insert(p.name.as_str()) {
                return Err(Error::new(
                    format!("{path}.name"),
                    format!("{:?} is used twice", p.name),
                ));
            }
            if p.device.trim().is_empty() {
                return Err(Error::new(format!("{path}.device"), "is empty"));
            }
            if !devices.insert(p.device.as_str()) {
                return Err(Error::new(
                    format!("{path}.device"),
                    format!("{:?} is used by two ports", p.device),
                ));
            }
            if let Some(v) = p.vlan {
                if !(1..=4094).contains(&v) {
                    return Err(Error::new(
                        format!("{path}.vlan"),
                        format!("{v} is not a VLAN id (1–4094)"),
                    ));
                }
            }
            if !(68..=9600).contains(&p.mtu) {
                return Err(Error::new(
                    format!("{path}.mtu"),
                    format!("{} is not 68–9600", p.mtu),
                ));
            }
            let self_ips = p
                .self_ips
                .iter()
                .enumerate()
                .map(|(j, s)| {
                    cidr(&format!("{path}.selfIps[{j}]"), s).map(|(addr, len)| SelfIp { addr, len })
                })
                .collect::<Result<Vec<_>>>()?;
            let neighbors = static_neighbors(&path, &p.neighbors, &self_ips)?;
            if let Some(q) = p.queues.filter(|&q| q == 0 || usize::from(q) > workers) {
                return Err(Error::new(
                    format!("{path}.queues"),
                    format!("{q} queues: 1 to the worker count ({workers})"),
                ));
            }
            Ok(PortSpec {
                name: p.name.clone(),
                device: p.device.clone(),
                self_ips,
                vlan: p.vlan,
                mtu: p.mtu,
                neighbors,
                punt_rate: p.punt_rate.unwrap_or(api::DEFAULT_PUNT_RATE),
                queues: p.queues,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let routes = raw
        .routes
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let path = format!("dataplane.routes[{i}]");
            let (addr, len) = cidr(&format!("{path}.prefix"), &r.prefix)?;
            let via = ip(&format!("{path}.via"), &r.via)?;
            if via.is_ipv4() != addr.is_ipv4() {
                return Err(Error::new(
                    format!("{path}.via"),
                    "is not of the prefix's address family",
                ));
            }
            Ok(StaticRoute {
                prefix: Prefix::new(addr, len),
                via,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let cfg = api::Config {
        instance: instance.to_string(),
        eal: raw.eal.clone(),
        workers: cores
            .iter()
            .enumerate()
            .map(|(i, &cpu)| WorkerSpec {
                lcore: i as u32 + 1,
                cpu,
            })
            .collect(),
        control_cpus,
        poll_mode,
        ports,
        routes,
        bfd: vec![],
        connections: raw.connections,
        connections_v6,
        new_flows_per_sec: raw
            .new_flows_per_sec
            .unwrap_or_else(|| raw::default_new_flows_per_sec(raw.connections)),
        // Above the kernel's ephemeral ports (32768–60999), so SNAT on a
        // self IP never takes a port a kernel socket there uses.
        snat_ports: (61000, 65535),
        mbufs: raw.mbufs.clamp(1023, 1 << 22),
        panic_for_test: std::env::var_os("POLLUX_TEST_WORKER_PANIC").is_some(),
        hash_seed: std::env::var("POLLUX_HASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok()),
        clock_step_ns: std::env::var("POLLUX_CLOCK_STEP_NS")
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|&n: &u64| n > 0),
    };
    // Each static route's next hop must be on a connected subnet.
    for (i, r) in cfg.routes.iter().enumerate() {
        let single = api::Config {
            routes: vec![*r],
            ..cfg.clone()
        };
        single
            .fib()
            .map_err(|m| Error::new(format!("dataplane.routes[{i}].via"), m))?;
    }
    Ok(cfg)
}

fn list(cpus: &[usize]) -> String {
    cpus.iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// What `run` would reject or misread across virtual servers: two with
/// the same address, port and protocol (one would shadow the other), and
/// a SNAT address that is also a VIP (return traffic to it would be taken
/// for new client traffic).
fn cross_check_virtual_servers(vss: &[VirtualServer]) -> Result<()> {
    let mut seen = std::collections::HashMap::new();
    for (i, vs) in vss.iter().enumerate() {
        if let Some(j) = seen.insert((vs.address, vs.port, vs.protocol), i) {
            return Err(Error::new(
                format!("virtualServers[{i}]"),
                format!(
                    "{} port {} {} is already virtualServers[{j}] ({:?})",
                    vs.address,
                    vs.port,
                    if vs.protocol == Protocol::Tcp {
                        "tcp"
                    } else {
                        "udp"
                    },
                    vss[j].name
                ),
            ));
        }
    }
    let vips: HashSet<IpAddr> = vss.iter().map(|v| v.address).collect();
    for (i, vs) in vss.iter().enumerate() {
        if let Snat::Pool(p) = &vs.snat {
            for (k, a) in p.iter().enumerate() {
                if vips.contains(a) {
                    return Err(Error::new(
                        format!("virtualServers[{i}].snat[{k}]"),
                        format!(
                            "{a} is a virtual server address; SNAT needs an address of its own"
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

fn virtual_server(path: &str, vs: &raw::VirtualServer) -> Result<VirtualServer> {
    let address = ip(&format!("{path}.address"), &vs.address)?;
    let protocol = match vs.protocol.as_str() {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        p => {
            return Err(Error::new(
                format!("{path}.protocol"),
                format!("{p:?} is not tcp or udp"),
            ))
        }
    };
    // The data plane keeps idle timeouts in 16 bits.
    if vs.idle_timeout == 0 || vs.idle_timeout > u32::from(u16::MAX) {
        return Err(Error::new(
            format!("{path}.idleTimeout"),
            format!("{} is not 1–65535 seconds", vs.idle_timeout),
        ));
    }
    let snat = match &vs.snat {
        None => Snat::None,
        Some(raw::Snat::Mode(m)) if m == "none" => Snat::None,
        Some(raw::Snat::Mode(m)) if m == "automap" => Snat::Automap,
        Some(raw::Snat::Mode(m)) => {
            return Err(Error::new(
                format!("{path}.snat"),
                format!("{m:?} is not none, automap or a list of addresses"),
            ))
        }
        Some(raw::Snat::Pool(p)) if p.is_empty() => {
            return Err(Error::new(format!("{path}.snat"), "an empty address list"))
        }
        Some(raw::Snat::Pool(p)) => Snat::Pool(
            p.iter()
                .enumerate()
                .map(|(i, a)| ip(&format!("{path}.snat[{i}]"), a))
                .collect::<Result<_>>()?,
        ),
    };
    let health_check = vs
        .health_check
        .as_ref()
        .map(|h| {
            let hp = format!("{path}.healthCheck");
            let kind = match h.kind.as_str() {
                "tcp" => HealthCheckKind::Tcp,
                "http" => HealthCheckKind::Http,
                k => {
                    return Err(Error::new(
                        format!("{hp}.type"),
                        format!("{k:?} is not tcp or http"),
                    ))
                }
            };
            if h.interval_ms < 10 {
                return Err(Error::new(
                    format!("{hp}.intervalMs"),
                    "must be at least 10",
                ));
            }
            if h.timeout_ms == 0 || h.timeout_ms > h.interval_ms {
                return Err(Error::new(
                    format!("{hp}.timeoutMs"),
                    "must be 1..=intervalMs",
                ));
            }
            if h.rise == 0 || h.fall == 0 {
                return Err(Error::new(
                    format!("{hp}.rise"),
                    "rise and fall must be at least 1",
                ));
            }
            Ok(HealthCheck {
                kind,
                interval_ms: h.interval_ms,
                timeout_ms: h.timeout_ms,
                rise: h.rise,
                fall: h.fall,
                path: h.path.clone().unwrap_or_else(|| "/".into()),
                expect_status: h.expect_status.unwrap_or(200),
                port: match h.port {
                    Some(0) => return Err(Error::new(format!("{hp}.port"), "must be 1–65535")),
                    p => p,
                },
            })
        })
        .transpose()?;
    let vs_family_v4 = address.is_ipv4();
    let members = vs
        .members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mp = format!("{path}.members[{i}]");
            let address = ip(&format!("{mp}.address"), &m.address)?;
            if address.is_ipv4() != vs_family_v4 {
                return Err(Error::new(
                    format!("{mp}.address"),
                    "is not of the virtual server's address family (no NAT46/64)",
                ));
            }
            if m.port == 0 && vs.port != 0 {
                return Err(Error::new(
                    format!("{mp}.port"),
                    "0 only for an all-ports virtual server",
                ));
            }
            // A member that keeps the client's port on an all-ports virtual
            // server has no port of its own to probe: port 0 cannot be.
            if let Some(hc) = &health_check {
                if hc.probe_port(vs.port, m.port) == 0 {
                    return Err(Error::new(
                        format!("{path}.healthCheck.port"),
                        format!(
                            "is required: {mp} forwards all ports (port 0 on an all-ports \
                             virtual server), so name the port the health check probes"
                        ),
                    ));
                }
            }
            Ok(Member {
                address,
                port: m.port,
                weight: m.weight,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(VirtualServer {
        name: vs.name.clone(),
        address,
        port: vs.port,
        protocol,
        idle_timeout: vs.idle_timeout,
        reset_on_timeout: vs.reset_on_timeout,
        snat,
        health_check,
        members,
    })
}

fn bgp(raw: &raw::Bgp) -> Result<Bgp> {
    if raw.asn == 0 || raw.asn == 23456 {
        return Err(Error::new("bgp.asn", format!("{} is reserved", raw.asn)));
    }
    let router_id: Ipv4Addr = raw.router_id.parse().map_err(|_| {
        Error::new(
            "bgp.routerId",
            format!("{:?} is not an IPv4 address", raw.router_id),
        )
    })?;
    let neighbors = raw
        .neighbors
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let path = format!("bgp.neighbors[{i}]");
            let address = match (&n.address, &n.node_lookup) {
                (Some(a), None) => PeerAddress::Fixed(ip(&format!("{path}.address"), a)?),
                (None, Some(f)) => PeerAddress::NodeLookup(PathBuf::from(f)),
                _ => {
                    return Err(Error::new(
                        &path,
                        "needs exactly one of address and nodeLookup",
                    ))
                }
            };
            if n.asn == 0 {
                return Err(Error::new(format!("{path}.asn"), "0 is reserved"));
            }
            if n.ebgp_multihop == 0 {
                return Err(Error::new(format!("{path}.ebgpMultihop"), "must be 1–255"));
            }
            if n.hold_time != 0 && n.hold_time < 3 {
                return Err(Error::new(
                    format!("{path}.holdTime"),
                    "must be 0 or at least 3 (RFC 4271 §4.2)",
                ));
            }
            if n.max_prefixes == 0 || n.max_prefixes > MAX_PREFIXES_LIMIT {
                return Err(Error::new(
                    format!("{path}.maxPrefixes"),
                    format!("must be 1–{MAX_PREFIXES_LIMIT}"),
                ));
            }
            Ok(Neighbor {
                address,
                asn: n.asn,
                password_file: n.password_file.as_ref().map(PathBuf::from),
                ebgp_multihop: n.ebgp_multihop,
                bfd: n.bfd,
                advertise_ipv4: n.advertise_ipv4,
                advertise_ipv6: n.advertise_ipv6,
                hold_time: n.hold_time,
                min_hold_time: n.min_hold_time,
                max_prefixes: n.max_prefixes,
                ttl_security: n.ttl_security,
            })
        })
        .collect::<Result<_>>()?;
    let gr = &raw.graceful_restart;
    if gr.restart_time > 4095 {
        return Err(Error::new(
            "bgp.gracefulRestart.restartTime",
            "must be at most 4095 seconds (RFC 4724)",
        ));
    }
    if raw.drain_delay_ms > 600_000 {
        return Err(Error::new(
            "bgp.drainDelayMs",
            "must be at most 600000 (10 minutes)",
        ));
    }
    Ok(Bgp {
        asn: raw.asn,
        router_id,
        graceful_restart: gr.enabled.then_some(gr.restart_time),
        neighbors,
        drain_delay: std::time::Duration::from_millis(u64::from(raw.drain_delay_ms)),
    })
}

fn scale_out(raw: &raw::ScaleOut, dp: &api::Config) -> Result<ScaleOut> {
    if raw.port == 0 {
        return Err(Error::new("scaleOut.port", "must be 1–65535"));
    }
    if raw.peers.len() > api::SecondChance::MAX_PEERS {
        return Err(Error::new(
            "scaleOut.peers",
            format!("at most {} peers", api::SecondChance::MAX_PEERS),
        ));
    }
    let mut peers = Vec::with_capacity(raw.peers.len());
    for (i, p) in raw.peers.iter().enumerate() {
        let path = format!("scaleOut.peers[{i}]");
        let a: IpAddr = p
            .parse()
            .map_err(|_| Error::new(&path, format!("{p:?} is not an IP address")))?;
        let selfs = dp.ports.iter().flat_map(|p| p.self_ips.iter());
        if selfs.clone().any(|s| s.addr == a) {
            return Err(Error::new(
                &path,
                format!("{a} is a self IP of this instance"),
            ));
        }
        if !selfs.clone().any(|s| s.prefix().contains(a)) {
            return Err(Error::new(
                &path,
                format!("{a} is on no port's subnet: peers share a segment with this instance"),
            ));
        }
        if peers.contains(&a) {
            return Err(Error::new(&path, format!("{a} is listed twice")));
        }
        peers.push(a);
    }
    Ok(ScaleOut {
        peers,
        port: raw.port,
    })
}

fn bfd(raw: &raw::Bfd) -> Result<Bfd> {
    if raw.min_tx_ms == 0 || raw.min_tx_ms > 60_000 {
        return Err(Error::new("bfd.minTxMs", "must be 1–60000"));
    }
    if raw.min_rx_ms == 0 || raw.min_rx_ms > 60_000 {
        return Err(Error::new("bfd.minRxMs", "must be 1–60000"));
    }
    if raw.multiplier < 2 {
        return Err(Error::new("bfd.multiplier", "must be 2–255"));
    }
    Ok(Bfd {
        min_tx_ms: raw.min_tx_ms,
        min_rx_ms: raw.min_rx_ms,
        multiplier: raw.multiplier,
    })
}

//! The configuration file as written: YAML, camelCase keys, unknown keys
//! rejected. Every field is documented here; [`super::validate`] turns this
//! into types with ranges checked and defaults applied.
//!
//! ```yaml
//! instance:   { name: pollux-a, nodeName: node-1 }
//! dataplane:
//!   workers: [1]
//!   pollMode: adaptive
//!   eal: ["--no-huge", "-m", "512", "--no-pci", "--vdev=net_af_xdp0,iface=ext0"]
//!   ports:
//!     - { name: external, device: net_af_xdp0, selfIps: ["10.0.0.2/24"], mtu: 1500 }
//!   routes: [{ prefix: 0.0.0.0/0, via: 10.0.0.1 }]
//! api: { socket: /run/pollux/pollux-a.sock, metrics: 127.0.0.1:9464 }
//! ```

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    pub instance: Instance,
    pub dataplane: Dataplane,
    #[serde(default)]
    pub virtual_servers: Vec<VirtualServer>,
    pub bgp: Option<Bgp>,
    #[serde(default)]
    pub bfd: Bfd,
    #[serde(default)]
    pub api: Api,
    #[serde(default)]
    pub scale_out: ScaleOut,
}

/// The other instances that share the VIPs (docs/scale-out.md): a draining
/// instance tells them so, and they hand it the mid-flow packets of its
/// flows that the router already sends them (second chance).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScaleOut {
    /// The peers' self IPs on a port's segment (the same segment as this
    /// instance: redirected frames go to their MAC).
    #[serde(default)]
    pub peers: Vec<String>,
    /// The UDP port of the drain notices between instances.
    #[serde(default = "default_scale_out_port")]
    pub port: u16,
}

impl Default for ScaleOut {
    fn default() -> Self {
        ScaleOut {
            peers: Vec::new(),
            port: default_scale_out_port(),
        }
    }
}

fn default_scale_out_port() -> u16 {
    7790
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Instance {
    /// Names the instance in logs, metrics and DPDK's runtime files.
    pub name: String,
    /// The Kubernetes node; defaults to `$NODE_NAME` (for `nodeLookup`).
    pub node_name: Option<String>,
}

/// `workers: [1, 3]` pins one worker to each listed core; `workers: 2`
/// takes the last two cores the process may run on.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Workers {
    Cores(Vec<usize>),
    Count(usize),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Dataplane {
    pub workers: Workers,
    /// `busy` (production) or `adaptive` (sleeps when idle).
    #[serde(default = "default_poll_mode")]
    pub poll_mode: String,
    /// EAL arguments: memory, virtual devices, allow-list. The lcore map,
    /// `--file-prefix` (unless given) and the TAP devices are added.
    #[serde(default)]
    pub eal: Vec<String>,
    pub ports: Vec<Port>,
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Packet buffers in each port's pool (raised to what the rings need).
    #[serde(default = "default_mbufs")]
    pub mbufs: u32,
    /// IPv4 connection-table slots per worker (a tracked flow takes two).
    #[serde(default = "default_connections")]
    pub connections: usize,
    /// IPv6 connection-table slots per worker (absent: a quarter of
    /// `connections`, at least 64). An IPv6 slot is 56 bytes, an IPv4
    /// one 32.
    #[serde(default)]
    pub connections_v6: Option<usize>,
    /// New flows per second per worker above which new flows are no longer
    /// tracked but forwarded by their Maglev choice (0 = no limit; absent =
    /// [`default_new_flows_per_sec`] of `connections`).
    #[serde(default)]
    pub new_flows_per_sec: Option<u32>,
}

/// The flood guard's default: `connections / 40` new flows per second per
/// worker. A flow takes two entries and even one whose handshake never
/// completes stays 10 s (the SYN timeout), so a SYN flood admitted at this
/// rate holds at most `connections / 40 * 2 * 10` = half the table: the
/// other half stays for the flows that were established, and new flows
/// keep being tracked as the flood's entries age out. A table cannot
/// sustain much more anyway: flows that live 10 s or more, created faster
/// than `connections / 20` per second, fill it whatever the limit. (The
/// default table, 262 144 slots, gives 6 553 flows per second; Katran's
/// fixed 125 000 per core would let a flood fill it in one second.)
pub fn default_new_flows_per_sec(connections: usize) -> u32 {
    u32::try_from(connections / 40).unwrap_or(u32::MAX).max(1)
}

fn default_connections() -> usize {
    1 << 18
}

fn default_poll_mode() -> String {
    "busy".into()
}

fn default_mbufs() -> u32 {
    16383
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Port {
    /// Also the name of the port's kernel TAP (at most 15 characters).
    pub name: String,
    /// A DPDK port name, a PCI address, or `env:PCIDEVICE_<RESOURCE>[#index]`.
    pub device: String,
    #[serde(default)]
    pub self_ips: Vec<String>,
    /// 802.1Q tag added and removed in software (1–4094).
    pub vlan: Option<u16>,
    #[serde(default = "default_mtu")]
    pub mtu: u16,
    /// Neighbors that do not answer ARP/ND (traffic generators such as
    /// pktgen or TRex): never expire, never overridden by ARP or ND.
    #[serde(default)]
    pub neighbors: Vec<StaticNeighbor>,
    /// Frames per second this port may punt to its TAP (the kernel), for
    /// traffic other than BGP and ARP/ND mirrors (BGP gets twice this, the
    /// mirrors a tenth, at least 100); 0 = no limit. Default 10000.
    pub punt_rate: Option<u32>,
    /// Queue pairs to open on the device (1 to the worker count; default:
    /// one per worker, as many as the device offers). A memif port must
    /// match its peer's queue count.
    pub queues: Option<u16>,
}

fn default_mtu() -> u16 {
    1500
}

/// `{ address: 10.0.0.9, mac: "02:00:00:00:00:09" }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StaticNeighbor {
    pub address: String,
    pub mac: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Route {
    pub prefix: String,
    pub via: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VirtualServer {
    pub name: String,
    pub address: String,
    /// 0 = all ports.
    pub port: u16,
    #[serde(default = "default_protocol")]
    pub protocol: String,
    /// Seconds a flow may stay idle (FastL4 default 300).
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: u32,
    /// RST to both ends when a TCP flow times out.
    #[serde(default = "default_true")]
    pub reset_on_timeout: bool,
    /// `none`, `automap`, or a list of addresses.
    #[serde(default)]
    pub snat: Option<Snat>,
    pub health_check: Option<HealthCheck>,
    #[serde(default)]
    pub members: Vec<Member>,
}

fn default_protocol() -> String {
    "tcp".into()
}

fn default_idle_timeout() -> u32 {
    300
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Snat {
    Mode(String),
    Pool(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HealthCheck {
    /// `tcp` (connect) or `http` (GET, expected status).
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default = "default_interval")]
    pub interval_ms: u32,
    #[serde(default = "default_timeout")]
    pub timeout_ms: u32,
    #[serde(default = "default_rise_fall")]
    pub rise: u32,
    #[serde(default = "default_rise_fall")]
    pub fall: u32,
    /// For `http`: the path to GET and the status that means healthy.
    pub path: Option<String>,
    pub expect_status: Option<u16>,
    /// The port probed on every member (default: the member's port, or
    /// the virtual server's). Required when a member forwards all ports.
    pub port: Option<u16>,
}

fn default_interval() -> u32 {
    1000
}

fn default_timeout() -> u32 {
    500
}

fn default_rise_fall() -> u32 {
    2
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Member {
    pub address: String,
    pub port: u16,
    /// 0 = drain: no new flows, existing flows stay.
    #[serde(default = "default_weight")]
    pub weight: u32,
}

fn default_weight() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Bgp {
    pub asn: u32,
    pub router_id: String,
    #[serde(default)]
    pub graceful_restart: GracefulRestart,
    #[serde(default)]
    pub neighbors: Vec<Neighbor>,
    /// The whole drain on SIGTERM (docs/scale-out.md): how long the routes
    /// stay announced with the GRACEFUL_SHUTDOWN community (RFC 8326), the
    /// established flows served (peers hand this instance their packets),
    /// before the withdrawal, BFD AdminDown and Cease. The chart sets it
    /// from `drain.seconds`.
    #[serde(default = "default_drain_delay_ms")]
    pub drain_delay_ms: u32,
}

fn default_drain_delay_ms() -> u32 {
    5000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GracefulRestart {
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default = "default_restart_time")]
    pub restart_time: u16,
}

impl Default for GracefulRestart {
    fn default() -> Self {
        GracefulRestart {
            enabled: true,
            restart_time: default_restart_time(),
        }
    }
}

fn default_restart_time() -> u16 {
    120
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Neighbor {
    pub address: Option<String>,
    /// A file mapping node names to peer addresses (instead of `address`).
    pub node_lookup: Option<String>,
    pub asn: u32,
    pub password_file: Option<String>,
    #[serde(default = "default_multihop")]
    pub ebgp_multihop: u8,
    #[serde(default)]
    pub bfd: bool,
    #[serde(default = "default_true", rename = "advertiseIPv4")]
    pub advertise_ipv4: bool,
    #[serde(default, rename = "advertiseIPv6")]
    pub advertise_ipv6: bool,
    #[serde(default = "default_hold_time")]
    pub hold_time: u16,
    /// The smallest hold time accepted from the peer (0 accepts a peer's
    /// 0, which turns liveness off).
    #[serde(default = "default_min_hold_time")]
    pub min_hold_time: u16,
    /// Received prefixes (all families) above which the session ends with
    /// Cease / Maximum Number of Prefixes Reached (RFC 4486).
    #[serde(default = "default_max_prefixes")]
    pub max_prefixes: u32,
    /// GTSM (RFC 5082): send TTL 255 and accept only segments that arrive
    /// with TTL >= 256 - ebgpMultihop.
    #[serde(default)]
    pub ttl_security: bool,
}

fn default_min_hold_time() -> u16 {
    3
}

fn default_max_prefixes() -> u32 {
    10_000
}

fn default_multihop() -> u8 {
    1
}

fn default_hold_time() -> u16 {
    90
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Bfd {
    #[serde(default = "default_bfd_ms")]
    pub min_tx_ms: u32,
    #[serde(default = "default_bfd_ms")]
    pub min_rx_ms: u32,
    #[serde(default = "default_multiplier")]
    pub multiplier: u8,
}

impl Default for Bfd {
    fn default() -> Self {
        Bfd {
            min_tx_ms: default_bfd_ms(),
            min_rx_ms: default_bfd_ms(),
            multiplier: default_multiplier(),
        }
    }
}

fn default_bfd_ms() -> u32 {
    300
}

fn default_multiplier() -> u8 {
    3
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Api {
    /// The management socket (default `/run/pollux/<instance>.sock`).
    pub socket: Option<String>,
    /// `address:port` for Prometheus `/metrics`; off when absent.
    pub metrics: Option<String>,
    /// Serve `/metrics` only to what arrives on this kernel interface
    /// (SO_BINDTODEVICE; e.g. the pod's `eth0`), whatever `metrics`'
    /// address: `0.0.0.0` would otherwise include the self IPs, reachable
    /// through the data plane.
    pub metrics_interface: Option<String>,
}

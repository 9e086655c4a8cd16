//! Virtual servers as ctrl sees them: the data plane's [`VsTable`] built
//! from the configuration and the members' health, republished whole on
//! every health verdict, and the layout that tells where each virtual
//! server's and member's counters are (`show virtual-servers`,
//! `show connections` and the L4 metrics: `crate::render`).

use std::net::IpAddr;

use dataplane::api::{MemberSpec, Proto, Snat as DpSnat, VsError, VsSpec, VsTable};

use crate::config::{Config, Protocol, Snat, VirtualServer};
use crate::health::{self, Health};

/// The self IP that `snat: automap` uses for `vs`: the one, of the VIP's
/// family, on the port through which its first member is reached.
fn automap(cfg: &Config, vs: &VirtualServer) -> Option<IpAddr> {
    let fib = cfg.dataplane.fib().ok()?;
    let (port, _) = fib.lookup(vs.members.first()?.address)?;
    cfg.dataplane.ports[port]
        .self_ips
        .iter()
        .map(|s| s.addr)
        .find(|a| a.is_ipv4() == vs.address.is_ipv4())
}

/// Where each configured virtual server and member sits in the workers'
/// table. Connection-table entries name their VS and member by index, so
/// a reload must not move what it keeps: a kept VS keeps its slot, a kept
/// member its slot within it, an added one takes a freed slot or a new one
/// at the end, and a removed one leaves its slot behind *retired* (members:
/// [`VsTable::retire`]; a VS: no members) until something reuses it or it
/// is the last one.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Layout {
    slots: Vec<Slot>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Slot {
    /// (VIP, port, protocol): what identifies a virtual server.
    key: (IpAddr, u16, Protocol),
    /// Its index in the configuration; `None`: removed.
    vs: Option<usize>,
    /// (address, port) and the member's index in the configuration.
    members: Vec<((IpAddr, u16), Option<usize>)>,
}

/// The key by which a reload recognises a virtual server.
pub fn vs_key(vs: &VirtualServer) -> (IpAddr, u16, Protocol) {
    (vs.address, vs.port, vs.protocol)
}

impl Layout {
    /// The layout for `vss`, keeping what `self` placed.
    pub fn sync(&self, vss: &[VirtualServer]) -> Layout {
        let mut slots: Vec<Slot> = self
            .slots
            .iter()
            .map(|s| Slot {
                key: s.key,
                vs: None,
                members: s.members.iter().map(|(k, _)| (*k, None)).collect(),
            })
            .collect();
        let mut placed = vec![None; vss.len()];
        for (v, vs) in vss.iter().enumerate() {
            if let Some(i) = slots
                .iter()
                .position(|s| s.key == vs_key(vs) && s.vs.is_none())
            {
                slots[i].vs = Some(v);
                placed[v] = Some(i);
            }
        }
        for (v, vs) in vss.iter().enumerate() {
            if placed[v].is_some() {
                continue;
            }
            let fresh = Slot {
                key: vs_key(vs),
                vs: Some(v),
                members: vec![],
            };
            // A removed VS's slot: its old entries name another VIP (or
            // port), so they do not fit the newcomer.
            match slots
                .iter()
                .position(|s| s.vs.is_none() && !vss.iter().any(|x| vs_key(x) == s.key))
            {
                Some(i) => slots[i] = fresh,
                None => slots.push(fresh),
            }
        }
        for slot in &mut slots {
            let Some(v) = slot.vs else {
                continue;
            };
            let ms = &vss[v].members;
            for (i, m) in ms.iter().enumerate() {
                let k = (m.address, m.port);
                if let Some(j) = slot
                    .members
                    .iter()
                    .position(|(mk, c)| *mk == k && c.is_none())
                {
                    slot.members[j].1 = Some(i);
                }
            }
            for (i, m) in ms.iter().enumerate() {
                if slot.members.iter().any(|(_, c)| *c == Some(i)) {
                    continue;
                }
                let k = (m.address, m.port);
                let free = slot.members.iter().position(|(mk, c)| {
                    c.is_none() && !ms.iter().any(|x| (x.address, x.port) == *mk)
                });
                match free {
                    Some(j) => slot.members[j] = (k, Some(i)),
                    None => slot.members.push((k, Some(i))),
                }
            }
            while slot.members.last().is_some_and(|(_, c)| c.is_none()) {
                slot.members.pop();
            }
        }
        while slots.last().is_some_and(|s| s.vs.is_none()) {
            slots.pop();
        }
        Layout { slots }
    }

    /// The slot of configured virtual server `v`.
    pub fn vs_slot(&self, v: usize) -> Option<usize> {
        self.slots.iter().position(|s| s.vs == Some(v))
    }

    /// The slot, within its VS's, of member `i` of configured VS `v`.
    pub fn member_slot(&self, v: usize, i: usize) -> Option<usize> {
        let s = &self.slots[self.vs_slot(v)?];
        s.members.iter().position(|(_, c)| *c == Some(i))
    }

    /// Slots of removed virtual servers and members still held.
    pub fn retired(&self) -> usize {
        self.slots
            .iter()
            .map(|s| {
                if s.vs.is_none() {
                    1
                } else {
                    s.members.iter().filter(|(_, c)| c.is_none()).count()
                }
            })
            .sum()
    }
}

/// Members taken out of service by `pollux member disable`: (VS name,
/// address, port). They get weight 0: no new flows, existing ones stay.
pub type Disabled = std::collections::BTreeSet<(String, IpAddr, u16)>;

fn spec_of(cfg: &Config, vs: &VirtualServer) -> VsSpec {
    VsSpec {
        name: vs.name.clone(),
        vip: vs.address,
        port: vs.port,
        proto: match vs.protocol {
            Protocol::Tcp => Proto::Tcp,
            Protocol::Udp => Proto::Udp,
        },
        // Validation keeps it within 1–65535.
        idle_timeout: u16::try_from(vs.idle_timeout).unwrap_or(u16::MAX),
        reset_on_timeout: vs.reset_on_timeout,
        snat: match &vs.snat {
            Snat::None => DpSnat::None,
            Snat::Automap => automap(cfg, vs).map_or(DpSnat::None, DpSnat::Automap),
            Snat::Pool(p) => DpSnat::Pool(p.clone()),
        },
        members: vec![],
    }
}

/// The workers' table for the configuration, the members' health, the
/// disabled members, laid out by `layout` (which must be `sync`ed with
/// `cfg`): retired slots included.
pub fn build(
    cfg: &Config,
    health: &Health,
    layout: &Layout,
    disabled: &Disabled,
) -> Result<VsTable, VsError> {
    let mut retire = Vec::new();
    let specs: Vec<VsSpec> = layout
        .slots
        .iter()
        .enumerate()
        .map(
            |(si, slot)| match slot.vs.and_then(|v| cfg.virtual_servers.get(v)) {
                Some(vs) => {
                    let mut spec = spec_of(cfg, vs);
                    spec.members = slot
                        .members
                        .iter()
                        .enumerate()
                        .map(
                            |(mi, ((addr, port), c))| match c.and_then(|i| vs.members.get(i)) {
                                Some(m) => MemberSpec {
                                    addr: m.address,
                                    port: m.port,
                                    weight: if disabled.contains(&(
                                        vs.name.clone(),
                                        m.address,
                                        m.port,
                                    )) {
                                        0
                                    } else {
                                        m.weight
                                    },
                                    healthy: health::member_up(health, vs, m.address, m.port),
                                },
                                None => {
                                    retire.push((si, mi));
                                    MemberSpec {
                                        addr: *addr,
                                        port: *port,
                                        weight: 0,
                                        healthy: false,
                                    }
                                }
                            },
                        )
                        .collect();
                    spec
                }
                None => VsSpec {
                    name: "(removed)".into(),
                    vip: slot.key.0,
                    port: slot.key.1,
                    proto: match slot.key.2 {
                        Protocol::Tcp => Proto::Tcp,
                        Protocol::Udp => Proto::Udp,
                    },
                    idle_timeout: 1,
                    reset_on_timeout: false,
                    snat: DpSnat::None,
                    members: vec![],
                },
            },
        )
        .collect();
    let mut table = VsTable::build(&specs)?;
    for (v, m) in retire {
        table.retire(v, m);
    }
    Ok(table)
}

/// The workers' first table (no reload yet, nothing disabled).
pub fn table(config: &Config, health: &Health) -> Result<VsTable, VsError> {
    build(
        config,
        health,
        &Layout::default().sync(&config.virtual_servers),
        &Disabled::default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, HostFacts};

    fn cfg(vss: &str) -> Config {
        let text = format!(
            "instance: {{ name: t }}\n\
             dataplane:\n  workers: 1\n  eal: [\"--no-pci\"]\n  ports:\n    - {{ name: ext, device: net_null0, selfIps: [\"10.0.0.2/24\"] }}\n\
             virtualServers:\n{vss}\
             api: {{ socket: /tmp/t.sock }}\n"
        );
        let host = HostFacts {
            allowed_cpus: vec![0, 1],
            node_name: None,
        };
        config::validate(&config::parse(&text).unwrap(), &host).unwrap()
    }

    fn vs(name: &str, vip: &str, members: &[&str]) -> String {
        let ms: Vec<String> = members
            .iter()
            .map(|m| format!("{{ address: {m}, port: 80 }}"))
            .collect();
        format!(
            "  - {{ name: {name}, address: {vip}, port: 80, protocol: tcp, members: [{}] }}\n",
            ms.join(", ")
        )
    }

    /// (slot of each VS, slot of each member) for a configuration.
    fn places(l: &Layout, c: &Config) -> Vec<(usize, Vec<usize>)> {
        c.virtual_servers
            .iter()
            .enumerate()
            .map(|(v, vs)| {
                let ms = (0..vs.members.len())
                    .map(|i| l.member_slot(v, i).unwrap())
                    .collect();
                (l.vs_slot(v).unwrap(), ms)
            })
            .collect()
    }

    #[test]
    fn a_reload_moves_nothing_it_keeps() {
        let a = cfg(&(vs("a", "10.9.0.1", &["10.1.0.1", "10.1.0.2", "10.1.0.3"])
            + &vs("b", "10.9.0.2", &["10.1.0.4"])
            + &vs("c", "10.9.0.3", &["10.1.0.5"])));
        let l0 = Layout::default().sync(&a.virtual_servers);
        assert_eq!(
            places(&l0, &a),
            vec![(0, vec![0, 1, 2]), (1, vec![0]), (2, vec![0])]
        );
        assert_eq!(
            l0.sync(&a.virtual_servers),
            l0,
            "the same config: same layout"
        );
        // b removed, a's middle member removed, d added, members reordered.
        let b = cfg(&(vs("c", "10.9.0.3", &["10.1.0.5"])
            + &vs("a", "10.9.0.1", &["10.1.0.3", "10.1.0.1"])
            + &vs("d", "10.9.0.4", &["10.1.0.6"])));
        let l1 = l0.sync(&b.virtual_servers);
        // c stays in slot 2, a in slot 0 with its members where they were
        // (slot 1 retired); d takes b's freed slot 1.
        assert_eq!(
            places(&l1, &b),
            vec![(2, vec![0]), (0, vec![2, 0]), (1, vec![0])]
        );
        assert_eq!(l1.retired(), 1);
        let t = build(&b, &Health::default(), &l1, &Disabled::default()).unwrap();
        assert_eq!(t.len(), 3);
        let a_slot = t.get(0).unwrap();
        assert!(a_slot.members[1].retired && !a_slot.members[0].retired);
        assert_eq!(a_slot.members[1].addr.to_string(), "10.1.0.2");
        // A new member reuses the retired slot; a removed last VS leaves.
        let c = cfg(&(vs("a", "10.9.0.1", &["10.1.0.3", "10.1.0.1", "10.1.0.7"])
            + &vs("d", "10.9.0.4", &["10.1.0.6"])));
        let l2 = l1.sync(&c.virtual_servers);
        assert_eq!(places(&l2, &c), vec![(0, vec![2, 0, 1]), (1, vec![0])]);
        assert_eq!(l2.retired(), 0);
    }

    #[test]
    fn a_removed_vs_in_the_middle_keeps_its_slot_without_members() {
        let a = cfg(&(vs("a", "10.9.0.1", &["10.1.0.1"]) + &vs("b", "10.9.0.2", &["10.1.0.2"])));
        let b = cfg(&vs("b", "10.9.0.2", &["10.1.0.2"]));
        let l = Layout::default()
            .sync(&a.virtual_servers)
            .sync(&b.virtual_servers);
        assert_eq!(places(&l, &b), vec![(1, vec![0])]);
        let t = build(&b, &Health::default(), &l, &Disabled::default()).unwrap();
        assert!(t.get(0).unwrap().members.is_empty());
        assert_eq!(t.get(1).unwrap().name, "b");
    }

    #[test]
    fn a_disabled_member_has_weight_zero() {
        let a = cfg(&vs("a", "10.9.0.1", &["10.1.0.1", "10.1.0.2"]));
        let l = Layout::default().sync(&a.virtual_servers);
        let mut d = Disabled::default();
        d.insert(("a".into(), "10.1.0.2".parse().unwrap(), 80));
        let t = build(&a, &Health::default(), &l, &d).unwrap();
        let ms = &t.get(0).unwrap().members;
        assert_eq!((ms[0].weight, ms[1].weight), (1, 0));
    }
}

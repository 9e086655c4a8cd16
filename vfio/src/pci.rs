//! One VF: find its address from the environment, then check in sysfs and
//! /dev that DPDK can drive it through VFIO.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::podinfo::{self, Attachment, DeviceInfo};
use crate::spec::{guess_resource, Bdf, DeviceSpec, Select};
use crate::Context;

/// A VF the pod was given, checked usable by DPDK through vfio-pci.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vf {
    /// The `device:` value it was resolved from.
    pub spec: String,
    /// Its PCI address; DPDK names the ethdev after it (`-a 0000:3b:02.0`
    /// gives a port named `0000:3b:02.0`).
    pub bdf: Bdf,
    /// The variable it came from (`None` for a literal PCI address).
    pub env_var: Option<String>,
    /// The Multus network it is attached to (`ns/name`), when the pod's
    /// network-status says so.
    pub network: Option<String>,
    /// The interface name Multus gave it (`net1`).
    pub interface: Option<String>,
    /// The MAC address Multus reports for it.
    pub mac: Option<String>,
    /// Its kernel driver (always `vfio-pci` once checked).
    pub driver: String,
    /// Its IOMMU group (`/dev/vfio/<group>`).
    pub iommu_group: String,
    /// The group device, as found in the container.
    pub group_dev: PathBuf,
    /// NUMA node of the device, `None` when the platform reports -1.
    pub numa_node: Option<u32>,
    /// Its physical function, when sysfs shows `physfn`.
    pub pf: Option<Bdf>,
    /// PCI vendor and device ids (`8086:154c`), when readable.
    pub ids: Option<String>,
}

impl fmt::Display for Vf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.bdf)?;
        if let Some(ids) = &self.ids {
            write!(f, " [{ids}]")?;
        }
        write!(f, " from `{}`", self.spec)?;
        match &self.network {
            Some(n) => write!(f, ", network {n}")?,
            None => write!(f, ", network unknown")?,
        }
        if let Some(i) = &self.interface {
            write!(f, " ({i})")?;
        }
        if let Some(m) = &self.mac {
            write!(f, ", mac {m}")?;
        }
        write!(
            f,
            ", driver {}, iommu group {} ({} ok)",
            self.driver,
            self.iommu_group,
            self.group_dev.display()
        )?;
        match self.numa_node {
            Some(n) => write!(f, ", numa node {n}")?,
            None => write!(f, ", numa node -")?,
        }
        if let Some(pf) = &self.pf {
            write!(f, ", pf {pf}")?;
        }
        Ok(())
    }
}

/// Things that are odd but do not stop the data plane.
pub(crate) type Warnings = Vec<String>;

/// The VFs of one `PCIDEVICE_` variable, as the environment lists them.
fn env_addresses(ctx: &Context, var: &str) -> Result<(String, Vec<Bdf>)> {
    let resource = guess_resource(var);
    let value = ctx.sys.env_var(var).ok_or_else(|| Error::EnvMissing {
        var: var.to_string(),
        resource: resource.clone(),
    })?;
    let mut out = Vec::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bdf = part.parse::<Bdf>().map_err(|()| Error::BadPciAddress {
            var: var.to_string(),
            value: part.to_string(),
        })?;
        out.push(bdf);
    }
    if out.is_empty() {
        return Err(Error::EnvEmpty {
            var: var.to_string(),
            resource,
        });
    }
    Ok((value, out))
}

/// The device plugin's `<var>_INFO`, if set.
fn env_info(ctx: &Context, var: &str) -> Result<Option<BTreeMap<String, DeviceInfo>>> {
    let info_var = format!("{var}_INFO");
    match ctx.sys.env_var(&info_var) {
        None => Ok(None),
        Some(json) => podinfo::parse_device_info(&info_var, &json).map(Some),
    }
}

/// Multus's network-status from the downward-API annotations file; `None`
/// (with a warning) when the file or the annotation is absent.
pub(crate) fn network_status(
    ctx: &Context,
    warnings: &mut Warnings,
) -> Result<Option<Vec<Attachment>>> {
    let path = &ctx.annotations_file;
    let text = match ctx.sys.read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            warnings.push(format!(
                "{} is missing: VF-to-network mapping unknown; mount the pod annotations with a \
                 downwardAPI volume at /etc/podinfo (the pollux chart does)",
                path.display()
            ));
            return Ok(None);
        }
        Err(source) => {
            return Err(Error::Read {
                what: "the downward-API annotations file",
                path: path.clone(),
                source,
            })
        }
    };
    let map = podinfo::parse_downward_file(path, &text)?;
    match map.get(podinfo::NETWORK_STATUS) {
        Some(json) => podinfo::parse_network_status(path, json).map(Some),
        None => {
            warnings.push(format!(
                "{} has no {} annotation: Multus has not reported the attachments (yet); \
                 VF-to-network mapping unknown",
                path.display(),
                podinfo::NETWORK_STATUS
            ));
            Ok(None)
        }
    }
}

/// Resolve one `device:` value to a checked VF. `Ok(None)` for a device
/// that is not a PCI function (a DPDK vdev name).
pub(crate) fn resolve(
    ctx: &Context,
    spec: &str,
    status: Option<&[Attachment]>,
    warnings: &mut Warnings,
) -> Result<Option<Vf>> {
    let parsed = DeviceSpec::parse(spec)?;
    let (bdf, var, info) = match &parsed {
        DeviceSpec::Other(_) => return Ok(None),
        DeviceSpec::Pci(bdf) => (*bdf, None, None),
        DeviceSpec::Env { var, select } => {
            let (value, addrs) = env_addresses(ctx, var)?;
            let info = env_info(ctx, var)?;
            if info.is_none() {
                warnings.push(format!(
                    "{var}_INFO is not set (SR-IOV device plugin older than 3.5?): the vfio \
                     device path is taken from sysfs"
                ));
            }
            let bdf = match select {
                Select::Only if addrs.len() == 1 => addrs[0],
                Select::Only => {
                    return Err(Error::Ambiguous {
                        spec: spec.to_string(),
                        var: var.clone(),
                        count: addrs.len(),
                        last: addrs.len() - 1,
                        value,
                    })
                }
                Select::Index(i) => *addrs.get(*i).ok_or_else(|| Error::IndexOutOfRange {
                    spec: spec.to_string(),
                    var: var.clone(),
                    index: *i,
                    count: addrs.len(),
                    need: i + 1,
                    value: value.clone(),
                    resource: guess_resource(var),
                })?,
                Select::Network(net) => {
                    let found = status.and_then(|s| {
                        s.iter().find(|a| {
                            a.is_network(net) && a.pci.is_some_and(|p| addrs.contains(&p))
                        })
                    });
                    match found {
                        Some(a) => a.pci.expect("checked above"),
                        None => {
                            let seen: Vec<String> = addrs
                                .iter()
                                .map(|b| {
                                    let n = status
                                        .and_then(|s| s.iter().find(|a| a.pci == Some(*b)))
                                        .map_or("no network", |a| a.network.as_str());
                                    format!("{b} → {n}")
                                })
                                .collect();
                            return Err(Error::NetworkNotFound {
                                spec: spec.to_string(),
                                var: var.clone(),
                                network: net.clone(),
                                seen: seen.join(", "),
                                resource: guess_resource(var),
                            });
                        }
                    }
                }
            };
            (bdf, Some(var.clone()), info)
        }
    };
    let resource = var.as_deref().map(guess_resource);
    let mut vf = inspect(ctx, spec, bdf, resource.as_deref(), warnings)?;
    vf.env_var = var.clone();
    if let Some(a) = status.and_then(|s| s.iter().find(|a| a.pci == Some(bdf))) {
        vf.network = Some(a.network.clone());
        vf.interface = a.interface.clone();
        vf.mac = a.mac.clone();
    } else if status.is_some() {
        warnings.push(format!(
            "VF {bdf} is not in k8s.v1.cni.cncf.io/network-status: no network attached it \
             (is the network listed in k8s.v1.cni.cncf.io/networks?)"
        ));
    }
    if let (Some(info), Some(var)) = (&info, &var) {
        match info.get(&bdf.to_string()) {
            None => warnings.push(format!("{var}_INFO has no entry for {bdf}")),
            Some(i) => {
                let expect = format!("/dev/vfio/{}", vf.iommu_group);
                if let Some(dm) = &i.dev_mount {
                    if dm != &expect {
                        warnings.push(format!(
                            "{var}_INFO says {bdf} is at {dm}, sysfs says {expect}"
                        ));
                    }
                }
            }
        }
    }
    Ok(Some(vf))
}

/// Read a sysfs symlink's last component.
fn link_name(ctx: &Context, path: &Path) -> io::Result<String> {
    let target = ctx.sys.read_link(path)?;
    Ok(target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default())
}

/// Check one PCI function in sysfs and /dev.
fn inspect(
    ctx: &Context,
    spec: &str,
    bdf: Bdf,
    resource: Option<&str>,
    warnings: &mut Warnings,
) -> Result<Vf> {
    let dir = ctx.sysfs_root.join("bus/pci/devices").join(bdf.to_string());
    if !ctx.sys.exists(&dir) {
        return Err(Error::DeviceNotInSysfs {
            bdf: bdf.to_string(),
            path: dir,
        });
    }
    let driver = match link_name(ctx, &dir.join("driver")) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => "no driver".to_string(),
        Err(source) => {
            return Err(Error::Read {
                what: "the VF's driver link",
                path: dir.join("driver"),
                source,
            })
        }
    };
    if driver != "vfio-pci" {
        return Err(Error::NotVfio {
            bdf: bdf.to_string(),
            driver,
            resource_hint: resource.map(|r| format!(" ({r})")).unwrap_or_default(),
        });
    }
    let group_link = dir.join("iommu_group");
    let iommu_group = match link_name(ctx, &group_link) {
        Ok(g) if !g.is_empty() => g,
        _ => {
            return Err(Error::NoIommuGroup {
                bdf: bdf.to_string(),
                path: group_link,
            })
        }
    };
    let container = ctx.dev_root.join("vfio/vfio");
    if !ctx.sys.exists(&container) {
        return Err(Error::VfioContainerMissing { path: container });
    }
    let group_dev = ctx.dev_root.join("vfio").join(&iommu_group);
    if !ctx.sys.exists(&group_dev) {
        return Err(Error::VfioGroupMissing {
            bdf: bdf.to_string(),
            group: iommu_group,
            path: group_dev,
        });
    }
    if let Err(source) = ctx.sys.open_rw(&group_dev) {
        let hint = match source.raw_os_error() {
            Some(libc::EBUSY) => {
                ": another process holds the group open (a running pollux in this pod? \
                 `pollux check` cannot inspect a VF that `pollux run` is using)"
                    .to_string()
            }
            _ => ": the container's device cgroup does not allow it; the SR-IOV device plugin \
                  grants it when the VF is requested through its resource \
                  (`resources.requests/limits`), and the container must run as a user that can \
                  open it (root, or the device's group)"
                .to_string(),
        };
        return Err(Error::VfioGroupUnopenable {
            bdf: bdf.to_string(),
            group: iommu_group,
            path: group_dev,
            hint,
            source,
        });
    }
    let numa_node = match ctx.sys.read_to_string(&dir.join("numa_node")) {
        Ok(t) => t
            .trim()
            .parse::<i64>()
            .ok()
            .and_then(|n| u32::try_from(n).ok()),
        Err(_) => None,
    };
    let pf = match link_name(ctx, &dir.join("physfn")) {
        Ok(name) => name.parse::<Bdf>().ok(),
        Err(_) => {
            warnings.push(format!(
                "{bdf} has no physfn link: it is not an SR-IOV VF (a whole NIC given to the pod?)"
            ));
            None
        }
    };
    let id = |f: &str| {
        ctx.sys
            .read_to_string(&dir.join(f))
            .ok()
            .map(|t| t.trim().trim_start_matches("0x").to_string())
    };
    let ids = match (id("vendor"), id("device")) {
        (Some(v), Some(d)) => Some(format!("{v}:{d}")),
        _ => None,
    };
    Ok(Vf {
        spec: spec.to_string(),
        bdf,
        env_var: None,
        network: None,
        interface: None,
        mac: None,
        driver,
        iommu_group,
        group_dev,
        numa_node,
        pf,
        ids,
    })
}

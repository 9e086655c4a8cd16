//! Find the SR-IOV VFs a pollux pod was given and check that DPDK can use
//! them, before the EAL touches anything.
//!
//! # The model
//!
//! On OpenShift/Kubernetes a data-plane pod gets its hardware from four
//! places, and each can be misconfigured independently:
//!
//! * the **SR-IOV device plugin** allocates VFs for an extended resource
//!   (`openshift.io/intelnics: 1` in requests == limits) and tells the
//!   container which through `PCIDEVICE_<RESOURCE>` (comma-separated PCI
//!   addresses) and `PCIDEVICE_<RESOURCE>_INFO` (JSON: the vfio device
//!   paths);
//! * **Multus** attaches the networks of the `k8s.v1.cni.cncf.io/networks`
//!   annotation and reports the result in `k8s.v1.cni.cncf.io/network-status`
//!   (which PCI address went to which network, with which MAC), which the pod
//!   reads through a downward-API file (`/etc/podinfo/annotations`);
//! * **the kernel** shows the VF in sysfs: bound to `vfio-pci`, in an IOMMU
//!   group whose `/dev/vfio/<group>` the container can open, on a NUMA node,
//!   under a PF (`physfn`);
//! * **the kubelet and runtime** give locked memory (RLIMIT_MEMLOCK or
//!   CAP_IPC_LOCK), hugepages (a hugetlbfs mount, free pages), CPUs (the
//!   affinity mask of a Guaranteed pod) and `/dev/net/tun` for the exception
//!   path's TAPs.
//!
//! [`discover`] checks all of it and returns a [`Discovery`] that prints what
//! it found (`pollux check`) and produces the EAL arguments
//! ([`Discovery::eal_args`]: `--file-prefix`, `--lcores`, `--main-lcore`,
//! `--huge-dir`, `-a BDF`...). Each failure is an [`Error`] whose message
//! says what is missing and what in the pod spec fixes it.
//!
//! Device specs (`device:` of a port) are described in [`spec`]:
//! `env:PCIDEVICE_<RESOURCE>`, `env:PCIDEVICE_<RESOURCE>[i]`,
//! `env:PCIDEVICE_<RESOURCE>@<network>`, a PCI address, or a DPDK vdev name
//! (left alone).
//!
//! # Test hooks
//!
//! Every kernel call goes through [`sys::Sys`]. [`Context::from_env`] also
//! honours these variables, meant for tests that run the real `pollux`
//! binary against a fake tree (never set them in a pod):
//!
//! | variable                     | default                    |
//! |------------------------------|----------------------------|
//! | `POLLUX_SYSFS_ROOT`          | `/sys`                     |
//! | `POLLUX_PROC_ROOT`           | `/proc`                    |
//! | `POLLUX_DEV_ROOT`            | `/dev`                     |
//! | `POLLUX_ANNOTATIONS_FILE`    | `/etc/podinfo/annotations` |
//!
//! RLIMIT_MEMLOCK and the affinity mask always come from the kernel there;
//! CAP_IPC_LOCK is read from `<proc root>/self/status`.
//!
//! # Example
//!
//! ```no_run
//! let ctx = vfio::Context::from_env();
//! let req = vfio::Request::new(
//!     "pollux-a",
//!     vec!["env:PCIDEVICE_OPENSHIFT_IO_INTELNICS".to_string()],
//!     vfio::Workers::Count(2),
//!     &[], // the config's dataplane.eal
//! );
//! match vfio::discover(&req, &ctx) {
//!     Ok(found) => {
//!         println!("{found}");
//!         let eal = found.eal_args(); // then append dataplane.eal
//!         # let _ = eal;
//!     }
//!     Err(e) => eprintln!("error: {e}"),
//! }
//! ```

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

pub mod error;
mod host;
mod pci;
pub mod podinfo;
pub mod spec;
pub mod sys;

#[cfg(test)]
mod tests;

pub use error::{Error, Result};
pub use host::{cpu_list, human, parse_cpu_list, CpuPlan, HugepageReport, MemlockReport, Workers};
pub use pci::Vf;
pub use spec::{env_var_for_resource, Bdf, DeviceSpec, Select};
pub use sys::{Kernel, Memlock, Sys};

/// Where the pod's annotations are mounted by the chart's downward-API
/// volume.
pub const DEFAULT_ANNOTATIONS_FILE: &str = "/etc/podinfo/annotations";

/// Memory VFIO must be able to pin when nothing better is known
/// (`--no-huge` without `-m`).
pub const DEFAULT_PIN_BYTES: u64 = 64 << 20;

/// Where discovery looks, and through what.
#[derive(Clone)]
pub struct Context {
    pub sysfs_root: PathBuf,
    pub proc_root: PathBuf,
    pub dev_root: PathBuf,
    /// The downward-API file with the pod's annotations.
    pub annotations_file: PathBuf,
    pub(crate) sys: Arc<dyn Sys>,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("sysfs_root", &self.sysfs_root)
            .field("proc_root", &self.proc_root)
            .field("dev_root", &self.dev_root)
            .field("annotations_file", &self.annotations_file)
            .field("sys", &self.sys)
            .finish()
    }
}

impl Default for Context {
    fn default() -> Self {
        Context::with_sys(Arc::new(Kernel))
    }
}

impl Context {
    /// The real kernel at the real paths.
    pub fn new() -> Self {
        Self::default()
    }

    /// The standard paths, through `sys`.
    pub fn with_sys(sys: Arc<dyn Sys>) -> Self {
        Context {
            sysfs_root: "/sys".into(),
            proc_root: "/proc".into(),
            dev_root: "/dev".into(),
            annotations_file: DEFAULT_ANNOTATIONS_FILE.into(),
            sys,
        }
    }

    /// The real kernel, with the roots overridden by the test-hook
    /// variables (`POLLUX_SYSFS_ROOT`, `POLLUX_PROC_ROOT`,
    /// `POLLUX_DEV_ROOT`, `POLLUX_ANNOTATIONS_FILE`) where set.
    pub fn from_env() -> Self {
        Self::from_env_with(Arc::new(Kernel))
    }

    /// As [`Context::from_env`], reading the hook variables through `sys`.
    pub fn from_env_with(sys: Arc<dyn Sys>) -> Self {
        let mut ctx = Context::with_sys(sys);
        let get = |name: &str| {
            ctx.sys
                .env_var(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        if let Some(p) = get("POLLUX_SYSFS_ROOT") {
            ctx.sysfs_root = p;
        }
        if let Some(p) = get("POLLUX_PROC_ROOT") {
            ctx.proc_root = p;
        }
        if let Some(p) = get("POLLUX_DEV_ROOT") {
            ctx.dev_root = p;
        }
        if let Some(p) = get("POLLUX_ANNOTATIONS_FILE") {
            ctx.annotations_file = p;
        }
        ctx
    }

    /// `<sys>/kernel/mm/hugepages/hugepages-<kB>kB`.
    pub(crate) fn pages_dir(&self, page_size: u64) -> PathBuf {
        self.sysfs_root.join(format!(
            "kernel/mm/hugepages/hugepages-{}kB",
            page_size >> 10
        ))
    }
}

/// What the data plane is about to ask of the pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// `--file-prefix` (the instance name: DPDK's runtime files and
    /// hugepage files are named after it).
    pub file_prefix: String,
    /// The `device:` of every port, in port order.
    pub devices: Vec<String>,
    pub workers: Workers,
    /// Bytes DPDK takes from hugepages: `None` for `--no-huge`, `Some(0)`
    /// when unknown (then one free page is the least asked).
    pub hugepages: Option<u64>,
    /// Use the hugetlbfs mounted here (`--huge-dir` already in the config).
    pub huge_dir: Option<PathBuf>,
    /// Bytes VFIO pins (checked against RLIMIT_MEMLOCK when there are VFs
    /// and no CAP_IPC_LOCK); `None`: what DPDK's memory will be.
    pub pinned: Option<u64>,
    /// Whether `/dev/net/tun` must open (the exception path's TAPs).
    pub tun: bool,
}

impl Request {
    /// A request for these ports and workers, reading what it can from the
    /// config's extra EAL arguments: `--no-huge`, `-m MB`, `--socket-mem
    /// MB,MB`, `--huge-dir DIR`.
    pub fn new(
        file_prefix: impl Into<String>,
        devices: Vec<String>,
        workers: Workers,
        eal: &[String],
    ) -> Self {
        let mut memory = None;
        let mut no_huge = false;
        let mut huge_dir = None;
        let mut it = eal.iter().peekable();
        while let Some(arg) = it.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
                _ => (arg.as_str(), None),
            };
            let mut value = || inline.clone().or_else(|| it.next().cloned());
            match flag {
                "--no-huge" => no_huge = true,
                "-m" => {
                    memory = value()
                        .and_then(|v| v.parse::<u64>().ok())
                        .map(|mb| mb << 20)
                }
                "--socket-mem" => {
                    memory = value().map(|v| {
                        v.split(',')
                            .filter_map(|m| m.trim().parse::<u64>().ok())
                            .sum::<u64>()
                            << 20
                    })
                }
                "--huge-dir" => huge_dir = value().map(PathBuf::from),
                _ => {}
            }
        }
        Request {
            file_prefix: file_prefix.into(),
            devices,
            workers,
            hugepages: if no_huge {
                None
            } else {
                Some(memory.unwrap_or(0))
            },
            huge_dir,
            pinned: memory,
            tun: true,
        }
    }
}

/// Everything discovery found: print it, or turn it into EAL arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Discovery {
    pub file_prefix: String,
    /// The VFs, in port order (vdev ports are not listed).
    pub vfs: Vec<Vf>,
    /// `None` when there is no VF (nothing to pin).
    pub memlock: Option<MemlockReport>,
    /// `None` with `--no-huge`.
    pub hugepages: Option<HugepageReport>,
    pub cpus: CpuPlan,
    /// `/dev/net/tun` as checked, `None` when not asked for.
    pub tun: Option<PathBuf>,
    /// Oddities that do not stop the data plane.
    pub warnings: Vec<String>,
}

impl Discovery {
    /// The EAL arguments discovery decides. The config's own
    /// `dataplane.eal` goes after them (the EAL takes the last of a repeated
    /// option, so the config can override):
    ///
    /// `--file-prefix P --lcores 0@M,1@W1,.. --main-lcore 0 [--huge-dir D]
    /// [-a BDF]...`
    pub fn eal_args(&self) -> Vec<String> {
        let mut args = vec!["--file-prefix".to_string(), self.file_prefix.clone()];
        let mut lcores = vec![format!("0@{}", self.cpus.main)];
        for (i, cpu) in self.cpus.workers.iter().enumerate() {
            lcores.push(format!("{}@{}", i + 1, cpu));
        }
        args.push("--lcores".into());
        args.push(lcores.join(","));
        args.push("--main-lcore".into());
        args.push("0".into());
        if let Some(h) = &self.hugepages {
            args.push("--huge-dir".into());
            args.push(h.mount.display().to_string());
        }
        let mut seen = Vec::new();
        for vf in &self.vfs {
            if !seen.contains(&vf.bdf) {
                seen.push(vf.bdf);
                args.push("-a".into());
                args.push(vf.bdf.to_string());
            }
        }
        args
    }

    /// The VF a port's `device:` resolved to.
    pub fn vf_for(&self, spec: &str) -> Option<&Vf> {
        self.vfs.iter().find(|v| v.spec == spec)
    }
}

impl fmt::Display for Discovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "VFs: {}", self.vfs.len())?;
        for vf in &self.vfs {
            writeln!(f, "  {vf}")?;
        }
        match &self.memlock {
            Some(m) => writeln!(f, "memlock: {m}")?,
            None => writeln!(f, "memlock: not checked (no VF to pin memory for)")?,
        }
        match &self.hugepages {
            Some(h) => writeln!(f, "hugepages: {h}")?,
            None => writeln!(f, "hugepages: not used (--no-huge)")?,
        }
        writeln!(f, "cpus: {}", self.cpus)?;
        match &self.tun {
            Some(p) => writeln!(f, "tun: {} opens", p.display())?,
            None => writeln!(f, "tun: not checked")?,
        }
        writeln!(f, "eal: {}", self.eal_args().join(" "))?;
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        Ok(())
    }
}

/// Resolve one port's `device:` to a checked VF (env variable, INFO,
/// network-status, sysfs, /dev/vfio). `Ok(None)` for a device that is not a
/// PCI function (a DPDK vdev such as `net_af_xdp0`), which has nothing to
/// check.
pub fn resolve_device(spec: &str, ctx: &Context) -> Result<Option<Vf>> {
    let mut warnings = Vec::new();
    let status = pci::network_status(ctx, &mut warnings)?;
    pci::resolve(ctx, spec, status.as_deref(), &mut warnings)
}

/// Check everything the request needs, in the order an operator would fix
/// it: VFs, hugepages, locked memory, CPUs, `/dev/net/tun`.
pub fn discover(req: &Request, ctx: &Context) -> Result<Discovery> {
    let mut warnings = Vec::new();
    let wants_vf = req
        .devices
        .iter()
        .any(|d| !matches!(DeviceSpec::parse(d), Ok(DeviceSpec::Other(_))));
    let status = if wants_vf {
        pci::network_status(ctx, &mut warnings)?
    } else {
        None
    };
    let mut vfs: Vec<Vf> = Vec::new();
    for spec in &req.devices {
        if let Some(vf) = pci::resolve(ctx, spec, status.as_deref(), &mut warnings)? {
            if let Some(other) = vfs.iter().find(|v| v.bdf == vf.bdf) {
                warnings.push(format!(
                    "`{}` and `{}` are the same VF {}",
                    other.spec, vf.spec, vf.bdf
                ));
            }
            vfs.push(vf);
        }
    }
    let hugepages = match req.hugepages {
        None => None,
        Some(need) => Some(host::check_hugepages(ctx, need, req.huge_dir.as_deref())?),
    };
    let memlock = if vfs.is_empty() {
        None
    } else {
        let need = req
            .pinned
            .or_else(|| hugepages.as_ref().map(|h| h.free * h.page_size))
            .unwrap_or(DEFAULT_PIN_BYTES)
            .max(1);
        Some(host::check_memlock(ctx, need)?)
    };
    let cpus = host::plan_cpus(ctx, &req.workers, &mut warnings)?;
    for vf in &vfs {
        if let Some(node) = vf.numa_node {
            if let Some(local) = host::node_cpus(ctx, node) {
                let remote: Vec<usize> = cpus
                    .workers
                    .iter()
                    .copied()
                    .filter(|c| !local.contains(c))
                    .collect();
                if !remote.is_empty() {
                    warnings.push(format!(
                        "VF {} is on NUMA node {node} but worker CPU(s) {} are not: every packet \
                         crosses the interconnect; enable the Topology Manager \
                         (`single-numa-node` policy) so the kubelet aligns CPUs and VFs",
                        vf.bdf,
                        cpu_list(&remote)
                    ));
                }
            }
        }
    }
    let tun = if req.tun {
        Some(host::check_tun(ctx)?)
    } else {
        None
    };
    Ok(Discovery {
        file_prefix: req.file_prefix.clone(),
        vfs,
        memlock,
        hugepages,
        cpus,
        tun,
        warnings,
    })
}

/// Whether a `device:` value names a VF (env or PCI address) rather than a
/// DPDK vdev. Errors on a malformed `env:` spec.
pub fn is_vf(spec: &str) -> Result<bool> {
    Ok(!matches!(DeviceSpec::parse(spec)?, DeviceSpec::Other(_)))
}

//! The one error type of the crate.
//!
//! Every message says what is missing and what in the pod spec (or the
//! node) fixes it: an operator reads these from `pollux check` or from the
//! log of a pod that refused to start, and should not need the source.

use std::io;
use std::path::PathBuf;

/// A discovery failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(
        "device `{spec}` is not understood: {reason}; write `env:PCIDEVICE_<RESOURCE>`, \
         `env:PCIDEVICE_<RESOURCE>[<index>]`, `env:PCIDEVICE_<RESOURCE>@<network>` or a PCI \
         address such as 0000:3b:02.0"
    )]
    BadSpec { spec: String, reason: String },

    #[error(
        "{var} is not set: the pod did not get the VF resource; add \
         `resources.requests/limits: {resource}: 1` (same value in both) to the container \
         (the SR-IOV device plugin sets {var} for resource {resource}; with the pollux chart, \
         list the network in `sriov.networks`)"
    )]
    EnvMissing { var: String, resource: String },

    #[error(
        "{var} is set but empty: the SR-IOV device plugin allocated no VF; check that \
         `resources.requests/limits: {resource}` is at least 1 and that the node has free VFs \
         (`oc describe node`, allocatable {resource})"
    )]
    EnvEmpty { var: String, resource: String },

    #[error(
        "{var} holds `{value}`, which is not a PCI address (expected DDDD:BB:DD.F): this \
         variable does not come from the SR-IOV device plugin; remove the conflicting `env:` \
         entry from the container spec"
    )]
    BadPciAddress { var: String, value: String },

    #[error(
        "device `{spec}` asks for VF index {index}, but {var} holds {count} VF(s) ({value}): \
         raise `resources.requests/limits: {resource}` to {need} or use a lower index"
    )]
    IndexOutOfRange {
        spec: String,
        var: String,
        index: usize,
        count: usize,
        need: usize,
        value: String,
        resource: String,
    },

    #[error(
        "device `{spec}` is ambiguous: {var} holds {count} VFs ({value}); say which with \
         `{spec}[0]`..`{spec}[{last}]` or `{spec}@<network name>`"
    )]
    Ambiguous {
        spec: String,
        var: String,
        count: usize,
        last: usize,
        value: String,
    },

    #[error(
        "device `{spec}` wants the VF of network `{network}`, but the pod's \
         k8s.v1.cni.cncf.io/network-status maps the VFs of {var} to {seen}: add `{network}` to \
         the pod annotation k8s.v1.cni.cncf.io/networks (chart value `sriov.networks`) with \
         resource {resource}"
    )]
    NetworkNotFound {
        spec: String,
        var: String,
        network: String,
        seen: String,
        resource: String,
    },

    #[error(
        "{var} is not valid device-info JSON ({detail}); it is written by the SR-IOV device \
         plugin: do not set {var} in the container's `env:`, and upgrade the device plugin if it \
         writes this"
    )]
    InfoMalformed {
        var: String,
        detail: String,
        #[source]
        source: serde_json::Error,
    },

    #[error(
        "{path}: k8s.v1.cni.cncf.io/network-status is not valid JSON ({detail}); the downward-API \
         file must come from `volumes: - downwardAPI: items: - path: annotations, fieldRef: \
         {{fieldPath: metadata.annotations}}`, not from a hand-written ConfigMap"
    )]
    NetworkStatusMalformed {
        path: PathBuf,
        detail: String,
        #[source]
        source: serde_json::Error,
    },

    #[error(
        "{path}: line {line} is not a downward-API annotation line (key=\"escaped value\"): \
         mount the pod annotations with `downwardAPI: items: - path: annotations, fieldRef: \
         {{fieldPath: metadata.annotations}}` at /etc/podinfo"
    )]
    AnnotationsMalformed { path: PathBuf, line: usize },

    #[error(
        "VF {bdf} is not in sysfs ({path} is missing): the container's /sys does not show the \
         device; do not mask /sys (no `hostPath` over /sys, no custom procMount), and check \
         that {bdf} exists on node (lspci)"
    )]
    DeviceNotInSysfs { bdf: String, path: PathBuf },

    #[error(
        "VF {bdf} is bound to {driver} instead of vfio-pci: DPDK cannot drive it; set \
         `deviceType: vfio-pci` in the SriovNetworkNodePolicy of its resource{resource_hint} \
         (or bind it with `driverctl set-override {bdf} vfio-pci` on the node)"
    )]
    NotVfio {
        bdf: String,
        driver: String,
        resource_hint: String,
    },

    #[error(
        "VF {bdf} has no IOMMU group ({path} is missing): the node runs without an IOMMU; \
         enable it on the kernel command line (`intel_iommu=on iommu=pt` or `amd_iommu=on`) with \
         a MachineConfig"
    )]
    NoIommuGroup { bdf: String, path: PathBuf },

    #[error(
        "{path} (IOMMU group {group} of VF {bdf}) is missing in the container: the SR-IOV device \
         plugin mounts it for resources with `deviceType: vfio-pci`; request the VF through its \
         resource (`resources.requests/limits`) instead of mounting /dev by hand"
    )]
    VfioGroupMissing {
        bdf: String,
        group: String,
        path: PathBuf,
    },

    #[error("{path} (IOMMU group {group} of VF {bdf}) cannot be opened ({source}){hint}")]
    VfioGroupUnopenable {
        bdf: String,
        group: String,
        path: PathBuf,
        hint: String,
        #[source]
        source: io::Error,
    },

    #[error(
        "{path} (the VFIO container device) is missing: the SR-IOV device plugin adds it with the \
         first vfio-pci VF; request the VF through its resource (`resources.requests/limits`)"
    )]
    VfioContainerMissing { path: PathBuf },

    #[error(
        "RLIMIT_MEMLOCK is {limit} and the container lacks CAP_IPC_LOCK: VFIO must pin {need} of \
         DMA memory; add `IPC_LOCK` to `securityContext.capabilities.add` (the pollux chart \
         does), or raise the container runtime's memlock ulimit to unlimited"
    )]
    MemlockTooLow { limit: String, need: String },

    #[error(
        "no hugetlbfs is mounted (none in {path}): add a volume `emptyDir: {{medium: HugePages}}` \
         mounted at /hugepages and request `hugepages-1Gi` or `hugepages-2Mi` with requests == \
         limits (chart value `hugepages`); or run with `--no-huge` in dataplane.eal (tests only)"
    )]
    NoHugetlbfs { path: PathBuf },

    #[error(
        "hugepages exhausted: {need} needed, but the hugetlbfs at {mount} ({size} pages) has only \
         {free} free page(s); raise `resources.requests/limits: hugepages-{k8s_size}` (same value \
         in both; chart value `hugepages.amount`), free pages on the node, or lower the DPDK \
         memory (`-m`/`--socket-mem` in dataplane.eal)"
    )]
    HugepagesExhausted {
        need: String,
        mount: PathBuf,
        size: String,
        k8s_size: String,
        free: u64,
    },

    #[error(
        "worker core {cpu} is not in this process's CPU affinity mask (allowed: {allowed}): the \
         kubelet gave the pod other CPUs; with the static CPU manager the exclusive CPUs are \
         chosen at admission, so set `dataplane.workers` to a count (e.g. `workers: 2`) or to cores \
         from the allowed list, and request whole CPUs with requests == limits (Guaranteed QoS)"
    )]
    CpuNotAllowed { cpu: usize, allowed: String },

    #[error(
        "{need} worker(s) asked for, but the CPU affinity mask allows only {have} CPU(s) \
         ({allowed}): request `cpu: {want}` (whole CPUs, requests == limits, Guaranteed QoS) or \
         lower `dataplane.workers`"
    )]
    TooFewCpus {
        need: usize,
        have: usize,
        want: usize,
        allowed: String,
    },

    #[error("`dataplane.workers` is 0: at least one worker core is needed")]
    NoWorkers,

    #[error(
        "{path} is missing in the container: the exception path's TAPs need it, and runc >= 1.2 \
         no longer adds it by default; request it through a device plugin resource (chart value \
         `tun.resource`, e.g. `devices.kubevirt.io/tun: 1`), a CDI device, or as a last resort \
         `tun.privileged: true`"
    )]
    TunMissing { path: PathBuf },

    #[error(
        "{path} cannot be opened ({source}): the container's device cgroup does not allow it \
         (runc >= 1.2 dropped it from the defaults and NET_ADMIN does not grant it); request it \
         through a device plugin resource (chart value `tun.resource`, e.g. \
         `devices.kubevirt.io/tun: 1`), a CDI device, or as a last resort `tun.privileged: true`"
    )]
    TunUnopenable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("cannot read {what} ({path}): {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("{what} failed: {source}")]
    Syscall {
        what: &'static str,
        #[source]
        source: io::Error,
    },
}

/// The crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

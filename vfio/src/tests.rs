//! Discovery against fake pods: a temporary sysfs/procfs/dev tree plus the
//! [`Fake`] kernel twin for environment, memlock and affinity.

use std::error::Error as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::sys::Fake;
use crate::*;

const EXT: &str = "0000:3b:02.0";
const INT: &str = "0000:3b:0a.1";
const EXT_VAR: &str = "PCIDEVICE_OPENSHIFT_IO_SRIOV_EXT";
const INT_VAR: &str = "PCIDEVICE_OPENSHIFT_IO_SRIOV_INT";
const CAP_IPC_LOCK_ONLY: &str = "0000000000004000";
const NO_CAPS: &str = "0000000000000000";

/// A fake pod: roots in a temp dir, a fake kernel.
struct Pod {
    dir: tempfile::TempDir,
    fake: Fake,
}

fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Pod {
    /// A healthy pod without VFs: 1 GiB hugepages mounted at /hugepages (4
    /// free of 8), CAP_IPC_LOCK, CPUs 2-5, /dev/net/tun.
    fn new() -> Pod {
        let pod = Pod {
            dir: tempfile::tempdir().unwrap(),
            fake: Fake {
                cpus: vec![2, 3, 4, 5],
                memlock: Memlock::Bytes(64 << 10),
                ..Fake::default()
            },
        };
        pod.write(
            "proc/mounts",
            "proc /proc proc rw 0 0\nnodev /hugepages hugetlbfs rw,relatime,pagesize=1024M 0 0\n",
        );
        pod.write("proc/meminfo", "MemTotal: 1 kB\nHugepagesize:    2048 kB\n");
        pod.caps(CAP_IPC_LOCK_ONLY);
        pod.pages(1 << 30, 4, 8);
        pod.write("dev/vfio/vfio", "");
        pod.write("dev/net/tun", "");
        pod.write("sys/devices/system/node/node0/cpulist", "0-7\n");
        pod.write("sys/devices/system/node/node1/cpulist", "8-15\n");
        pod
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn link(&self, rel: &str, target: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(&p);
        std::os::unix::fs::symlink(target, p).unwrap();
    }

    fn caps(&self, cap_eff: &str) {
        self.write(
            "proc/self/status",
            &format!("Name:\tpollux\nCapPrm:\t{cap_eff}\nCapEff:\t{cap_eff}\n"),
        );
    }

    fn pages(&self, size: u64, free: u64, total: u64) {
        let d = format!("sys/kernel/mm/hugepages/hugepages-{}kB", size >> 10);
        self.write(&format!("{d}/free_hugepages"), &format!("{free}\n"));
        self.write(&format!("{d}/nr_hugepages"), &format!("{total}\n"));
    }

    /// A VF in sysfs bound to `driver`, in `group`, with its /dev/vfio node.
    fn vf(&self, bdf: &str, group: u32, driver: &str, numa: i32) {
        let d = format!("sys/bus/pci/devices/{bdf}");
        self.link(
            &format!("{d}/driver"),
            &format!("../../../bus/pci/drivers/{driver}"),
        );
        self.link(
            &format!("{d}/iommu_group"),
            &format!("../../../kernel/iommu_groups/{group}"),
        );
        self.link(&format!("{d}/physfn"), "../0000:3b:00.0");
        self.write(&format!("{d}/numa_node"), &format!("{numa}\n"));
        self.write(&format!("{d}/vendor"), "0x8086\n");
        self.write(&format!("{d}/device"), "0x154c\n");
        self.write(&format!("dev/vfio/{group}"), "");
    }

    fn env(&mut self, k: &str, v: &str) {
        self.fake.env.insert(k.into(), v.into());
    }

    fn info(&mut self, var: &str, entries: &[(&str, u32)]) {
        let body: Vec<String> = entries
            .iter()
            .map(|(bdf, g)| {
                format!(
                    r#""{bdf}":{{"generic":{{"deviceID":"{bdf}"}},"vfio":{{"dev-mount":"/dev/vfio/{g}","mount":"/dev/vfio/vfio"}}}}"#
                )
            })
            .collect();
        self.env(&format!("{var}_INFO"), &format!("{{{}}}", body.join(",")));
    }

    /// The downward-API annotations file with a network-status listing
    /// (network, interface, mac, pci).
    fn network_status(&self, nets: &[(&str, &str, &str, &str)]) {
        let mut items = vec![
            "{\n    \"name\": \"ovn-kubernetes\",\n    \"interface\": \"eth0\",\n    \"ips\": [\"10.128.0.5\"],\n    \"default\": true,\n    \"dns\": {}\n}".to_string(),
        ];
        for (net, ifname, mac, pci) in nets {
            items.push(format!(
                "{{\n    \"name\": \"{net}\",\n    \"interface\": \"{ifname}\",\n    \"mac\": \"{mac}\",\n    \"dns\": {{}},\n    \"device-info\": {{\n        \"type\": \"pci\",\n        \"version\": \"1.1.0\",\n        \"pci\": {{\n            \"pci-address\": \"{pci}\"\n        }}\n    }}\n}}"
            ));
        }
        let status = format!("[{}]", items.join(","));
        let networks = r#"[{"name":"sriov-ext"},{"name":"sriov-int"}]"#;
        self.write(
            "podinfo/annotations",
            &format!(
                "k8s.v1.cni.cncf.io/network-status={}\nk8s.v1.cni.cncf.io/networks={}\nopenshift.io/scc=\"pollux\"\n",
                go_quote(&status),
                go_quote(networks)
            ),
        );
    }

    fn ctx(&self) -> Context {
        let mut ctx = Context::with_sys(Arc::new(self.fake.clone()));
        ctx.sysfs_root = self.path("sys");
        ctx.proc_root = self.path("proc");
        ctx.dev_root = self.path("dev");
        ctx.annotations_file = self.path("podinfo/annotations");
        ctx
    }

    /// A pod with two VFs from two resources, both attached by Multus.
    fn two_vfs() -> Pod {
        let mut pod = Pod::new();
        pod.vf(EXT, 73, "vfio-pci", 0);
        pod.vf(INT, 74, "vfio-pci", 0);
        pod.env(EXT_VAR, EXT);
        pod.env(INT_VAR, INT);
        pod.info(EXT_VAR, &[(EXT, 73)]);
        pod.info(INT_VAR, &[(INT, 74)]);
        pod.network_status(&[
            ("pollux/sriov-ext", "net1", "52:54:00:aa:bb:01", EXT),
            ("pollux/sriov-int", "net2", "52:54:00:aa:bb:02", INT),
        ]);
        pod
    }
}

fn request(devices: &[&str]) -> Request {
    Request::new(
        "pollux-a",
        devices.iter().map(|d| d.to_string()).collect(),
        Workers::Count(2),
        &[],
    )
}

fn two_devices() -> Vec<String> {
    vec![format!("env:{EXT_VAR}"), format!("env:{INT_VAR}")]
}

fn fails(pod: &Pod, req: &Request) -> Error {
    match discover(req, &pod.ctx()) {
        Ok(d) => panic!("discovery passed:\n{d}"),
        Err(e) => e,
    }
}

fn assert_has(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "missing {p:?} in:\n{msg}");
    }
}

#[test]
fn two_vfs_are_found_and_mapped_to_their_networks() {
    let pod = Pod::two_vfs();
    let req = Request::new("pollux-a", two_devices(), Workers::Count(2), &[]);
    let d = discover(&req, &pod.ctx()).unwrap();
    assert_eq!(d.vfs.len(), 2);
    let ext = &d.vfs[0];
    assert_eq!(ext.bdf.to_string(), EXT);
    assert_eq!(ext.env_var.as_deref(), Some(EXT_VAR));
    assert_eq!(ext.network.as_deref(), Some("pollux/sriov-ext"));
    assert_eq!(ext.interface.as_deref(), Some("net1"));
    assert_eq!(ext.mac.as_deref(), Some("52:54:00:aa:bb:01"));
    assert_eq!(ext.driver, "vfio-pci");
    assert_eq!(ext.iommu_group, "73");
    assert_eq!(ext.group_dev, pod.path("dev/vfio/73"));
    assert_eq!(ext.numa_node, Some(0));
    assert_eq!(
        ext.pf.map(|p| p.to_string()).as_deref(),
        Some("0000:3b:00.0")
    );
    assert_eq!(ext.ids.as_deref(), Some("8086:154c"));
    let int = &d.vfs[1];
    assert_eq!(int.bdf.to_string(), INT);
    assert_eq!(int.network.as_deref(), Some("pollux/sriov-int"));
    assert_eq!(int.mac.as_deref(), Some("52:54:00:aa:bb:02"));
    assert_eq!(int.iommu_group, "74");
    assert_eq!(d.vf_for(&format!("env:{INT_VAR}")), Some(int));

    assert_eq!(d.hugepages.as_ref().unwrap().mount, Path::new("/hugepages"));
    assert_eq!(d.hugepages.as_ref().unwrap().page_size, 1 << 30);
    assert!(d.memlock.unwrap().ipc_lock);
    assert_eq!(d.cpus.main, 2);
    assert_eq!(d.cpus.workers, vec![3, 4]);
    assert_eq!(d.tun, Some(pod.path("dev/net/tun")));
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);

    let shown = d.to_string();
    assert_has(
        &shown,
        &[
            "VFs: 2",
            "0000:3b:02.0 [8086:154c] from `env:PCIDEVICE_OPENSHIFT_IO_SRIOV_EXT`, network pollux/sriov-ext (net1), mac 52:54:00:aa:bb:01, driver vfio-pci, iommu group 73",
            "0000:3b:0a.1 [8086:154c] from `env:PCIDEVICE_OPENSHIFT_IO_SRIOV_INT`, network pollux/sriov-int (net2)",
            "numa node 0, pf 0000:3b:00.0",
            "memlock: 64 KiB, CAP_IPC_LOCK held",
            "hugepages: 1 GiB pages at /hugepages, 4 free of 8",
            "cpus: allowed 2-5; main lcore on CPU 2; workers on CPU(s) 3-4",
            "eal: --file-prefix pollux-a --lcores 0@2,1@3,2@4 --main-lcore 0 --huge-dir /hugepages -a 0000:3b:02.0 -a 0000:3b:0a.1",
        ],
    );
    assert!(!shown.contains("warning"), "{shown}");

    // The single-device entry point agrees.
    let vf = resolve_device(&format!("env:{INT_VAR}"), &pod.ctx())
        .unwrap()
        .unwrap();
    assert_eq!(&vf, int);
}

#[test]
fn one_resource_two_networks_selected_by_network_or_index() {
    let mut pod = Pod::new();
    let var = "PCIDEVICE_OPENSHIFT_IO_INTELNICS";
    pod.vf(EXT, 73, "vfio-pci", 0);
    pod.vf(INT, 74, "vfio-pci", 0);
    // The variable's order need not match the networks' order.
    pod.env(var, &format!("{INT},{EXT}"));
    pod.info(var, &[(EXT, 73), (INT, 74)]);
    pod.network_status(&[
        ("pollux/sriov-ext", "net1", "52:54:00:aa:bb:01", EXT),
        ("pollux/sriov-int", "net2", "52:54:00:aa:bb:02", INT),
    ]);
    let ctx = pod.ctx();
    let by_net = resolve_device(&format!("env:{var}@sriov-ext"), &ctx)
        .unwrap()
        .unwrap();
    assert_eq!(by_net.bdf.to_string(), EXT);
    let by_full = resolve_device(&format!("env:{var}@pollux/sriov-int"), &ctx)
        .unwrap()
        .unwrap();
    assert_eq!(by_full.bdf.to_string(), INT);
    let by_index = resolve_device(&format!("env:{var}[1]"), &ctx)
        .unwrap()
        .unwrap();
    assert_eq!(by_index.bdf.to_string(), EXT);
    assert_eq!(by_index.network.as_deref(), Some("pollux/sriov-ext"));

    let msg = resolve_device(&format!("env:{var}"), &ctx)
        .unwrap_err()
        .to_string();
    assert_has(
        &msg,
        &[
            "ambiguous",
            "holds 2 VFs",
            &format!("env:{var}[0]"),
            "@<network name>",
        ],
    );

    let msg = resolve_device(&format!("env:{var}[2]"), &ctx)
        .unwrap_err()
        .to_string();
    assert_has(
        &msg,
        &[
            "index 2",
            "holds 2 VF(s)",
            "resources.requests/limits: openshift.io/intelnics` to 3",
        ],
    );

    let msg = resolve_device(&format!("env:{var}@sriov-mgmt"), &ctx)
        .unwrap_err()
        .to_string();
    assert_has(
        &msg,
        &[
            "network `sriov-mgmt`",
            "0000:3b:0a.1 → pollux/sriov-int",
            "0000:3b:02.0 → pollux/sriov-ext",
            "k8s.v1.cni.cncf.io/networks",
        ],
    );
}

#[test]
fn missing_variable_names_it_and_the_resource_to_request() {
    let pod = Pod::new();
    let e = fails(&pod, &request(&["env:PCIDEVICE_OPENSHIFT_IO_INTELNICS"]));
    assert!(matches!(e, Error::EnvMissing { .. }));
    assert_has(
        &e.to_string(),
        &[
            "PCIDEVICE_OPENSHIFT_IO_INTELNICS is not set",
            "the pod did not get the VF resource",
            "`resources.requests/limits: openshift.io/intelnics: 1`",
            "same value",
        ],
    );
    assert!(e.source().is_none());
}

#[test]
fn empty_variable_and_foreign_values_are_refused() {
    let mut pod = Pod::new();
    pod.env(EXT_VAR, "");
    let msg = fails(&pod, &request(&[&format!("env:{EXT_VAR}")])).to_string();
    assert_has(
        &msg,
        &["set but empty", "allocated no VF", "openshift.io/sriov_ext"],
    );
    pod.env(EXT_VAR, "eth0");
    let msg = fails(&pod, &request(&[&format!("env:{EXT_VAR}")])).to_string();
    assert_has(
        &msg,
        &[
            "`eth0`",
            "not a PCI address",
            "not come from the SR-IOV device plugin",
        ],
    );
}

#[test]
fn malformed_info_json_is_refused_with_its_parse_error() {
    let mut pod = Pod::two_vfs();
    pod.env(&format!("{EXT_VAR}_INFO"), r#"{"0000:3b:02.0": {"vfio": "#);
    let e = fails(
        &pod,
        &Request::new("p", two_devices(), Workers::Count(1), &[]),
    );
    assert!(matches!(e, Error::InfoMalformed { .. }));
    let msg = e.to_string();
    assert_has(
        &msg,
        &[
            "PCIDEVICE_OPENSHIFT_IO_SRIOV_EXT_INFO is not valid device-info JSON",
            "EOF",
        ],
    );
    let src = e.source().expect("the serde error is the source");
    assert!(src.downcast_ref::<serde_json::Error>().is_some());
}

#[test]
fn vf_bound_to_iavf_is_refused() {
    let pod = Pod::two_vfs();
    pod.link(
        &format!("sys/bus/pci/devices/{INT}/driver"),
        "../../../bus/pci/drivers/iavf",
    );
    let e = fails(
        &pod,
        &Request::new("p", two_devices(), Workers::Count(1), &[]),
    );
    assert_has(
        &e.to_string(),
        &[
            "VF 0000:3b:0a.1 is bound to iavf instead of vfio-pci",
            "`deviceType: vfio-pci` in the SriovNetworkNodePolicy",
            "openshift.io/sriov_int",
        ],
    );
}

#[test]
fn missing_vfio_group_device_is_refused() {
    let pod = Pod::two_vfs();
    std::fs::remove_file(pod.path("dev/vfio/74")).unwrap();
    let e = fails(
        &pod,
        &Request::new("p", two_devices(), Workers::Count(1), &[]),
    );
    assert!(matches!(e, Error::VfioGroupMissing { .. }));
    assert_has(
        &e.to_string(),
        &[
            "/dev/vfio/74 (IOMMU group 74 of VF 0000:3b:0a.1) is missing",
            "deviceType: vfio-pci",
        ],
    );
}

#[test]
fn unopenable_vfio_group_device_is_refused() {
    let mut pod = Pod::two_vfs();
    pod.fake.deny_open.push(pod.path("dev/vfio/73"));
    let e = fails(
        &pod,
        &Request::new("p", two_devices(), Workers::Count(1), &[]),
    );
    assert_has(
        &e.to_string(),
        &["/dev/vfio/73", "cannot be opened", "device cgroup"],
    );
    let src = e
        .source()
        .unwrap()
        .downcast_ref::<std::io::Error>()
        .unwrap();
    assert_eq!(src.raw_os_error(), Some(libc::EPERM));
}

#[test]
fn missing_vfio_container_and_iommu_group_are_refused() {
    let pod = Pod::two_vfs();
    std::fs::remove_file(pod.path("dev/vfio/vfio")).unwrap();
    let msg = fails(&pod, &request(&[&format!("env:{EXT_VAR}")])).to_string();
    assert_has(&msg, &["vfio/vfio (the VFIO container device) is missing"]);

    let pod = Pod::two_vfs();
    std::fs::remove_file(pod.path(&format!("sys/bus/pci/devices/{EXT}/iommu_group"))).unwrap();
    let msg = fails(&pod, &request(&[&format!("env:{EXT_VAR}")])).to_string();
    assert_has(&msg, &["has no IOMMU group", "intel_iommu=on"]);
}

#[test]
fn vf_absent_from_sysfs_is_refused() {
    let mut pod = Pod::two_vfs();
    pod.env(EXT_VAR, "0000:af:00.2");
    let msg = fails(&pod, &request(&[&format!("env:{EXT_VAR}")])).to_string();
    assert_has(
        &msg,
        &[
            "VF 0000:af:00.2 is not in sysfs",
            "bus/pci/devices/0000:af:00.2",
        ],
    );
}

#[test]
fn memlock_too_low_without_ipc_lock_is_refused() {
    let pod = Pod::two_vfs();
    pod.caps(NO_CAPS);
    let e = fails(
        &pod,
        &Request::new(
            "p",
            two_devices(),
            Workers::Count(1),
            &["-m".into(), "512".into()],
        ),
    );
    assert!(matches!(e, Error::MemlockTooLow { .. }));
    assert_has(
        &e.to_string(),
        &[
            "RLIMIT_MEMLOCK is 64 KiB",
            "lacks CAP_IPC_LOCK",
            "pin 512 MiB",
            "add `IPC_LOCK` to `securityContext.capabilities.add`",
        ],
    );
    // Unlimited memlock is fine without the capability; so is the capability
    // with a low limit (the default pod above).
    let mut pod = pod;
    pod.fake.memlock = Memlock::Unlimited;
    let d = discover(
        &Request::new("p", two_devices(), Workers::Count(1), &[]),
        &pod.ctx(),
    )
    .unwrap();
    assert_eq!(d.memlock.unwrap().to_string(), "unlimited");
}

#[test]
fn no_hugetlbfs_is_refused() {
    let pod = Pod::two_vfs();
    pod.write(
        "proc/mounts",
        "proc /proc proc rw 0 0\ntmpfs /dev/shm tmpfs rw 0 0\n",
    );
    let e = fails(
        &pod,
        &Request::new("p", two_devices(), Workers::Count(1), &[]),
    );
    assert!(matches!(e, Error::NoHugetlbfs { .. }));
    assert_has(
        &e.to_string(),
        &[
            "no hugetlbfs is mounted",
            "emptyDir: {medium: HugePages}",
            "hugepages-1Gi",
            "requests == limits",
        ],
    );
    // ...unless the config runs without hugepages.
    let req = Request::new(
        "p",
        two_devices(),
        Workers::Count(1),
        &["--no-huge".into(), "-m".into(), "256".into()],
    );
    let d = discover(&req, &pod.ctx()).unwrap();
    assert!(d.hugepages.is_none());
    assert!(!d.eal_args().contains(&"--huge-dir".to_string()));
}

#[test]
fn exhausted_hugepages_are_refused() {
    let pod = Pod::two_vfs();
    pod.pages(1 << 30, 0, 8);
    let e = fails(
        &pod,
        &Request::new("p", two_devices(), Workers::Count(1), &[]),
    );
    assert!(matches!(e, Error::HugepagesExhausted { .. }));
    assert_has(
        &e.to_string(),
        &[
            "hugepages exhausted",
            "1 GiB needed",
            "/hugepages (1 GiB pages) has only 0 free",
            "hugepages-1Gi",
        ],
    );
    // Enough pages for one page, not for the 3 GiB the config asks.
    pod.pages(1 << 30, 2, 8);
    let msg = fails(
        &pod,
        &Request::new(
            "p",
            two_devices(),
            Workers::Count(1),
            &["--socket-mem=2048,1024".into()],
        ),
    )
    .to_string();
    assert_has(&msg, &["3 GiB needed", "only 2 free"]);
}

#[test]
fn two_meg_pages_without_pagesize_option_use_the_default_size() {
    let pod = Pod::two_vfs();
    pod.write(
        "proc/mounts",
        "hugetlbfs /dev/hugepages hugetlbfs rw,relatime 0 0\n",
    );
    pod.pages(2 << 20, 512, 1024);
    let d = discover(
        &Request::new(
            "p",
            two_devices(),
            Workers::Count(1),
            &["-m".into(), "512".into()],
        ),
        &pod.ctx(),
    )
    .unwrap();
    let h = d.hugepages.unwrap();
    assert_eq!((h.page_size, h.free), (2 << 20, 512));
    assert_eq!(h.mount, Path::new("/dev/hugepages"));
}

#[test]
fn a_core_outside_the_affinity_mask_is_refused() {
    let pod = Pod::two_vfs();
    let e = fails(
        &pod,
        &Request::new("p", two_devices(), Workers::Cores(vec![3, 7]), &[]),
    );
    assert!(matches!(e, Error::CpuNotAllowed { cpu: 7, .. }));
    assert_has(
        &e.to_string(),
        &[
            "worker core 7 is not in this process's CPU affinity mask (allowed: 2-5)",
            "`workers: 2`",
            "Guaranteed QoS",
        ],
    );
    let msg = fails(
        &pod,
        &Request::new("p", two_devices(), Workers::Count(5), &[]),
    )
    .to_string();
    assert_has(
        &msg,
        &["5 worker(s)", "only 4 CPU(s) (2-5)", "request `cpu: 6`"],
    );
    let msg = fails(
        &pod,
        &Request::new("p", two_devices(), Workers::Count(0), &[]),
    )
    .to_string();
    assert_has(&msg, &["workers` is 0"]);
}

#[test]
fn tun_missing_or_refused_is_reported() {
    let pod = Pod::two_vfs();
    std::fs::remove_file(pod.path("dev/net/tun")).unwrap();
    let e = fails(
        &pod,
        &Request::new("p", two_devices(), Workers::Count(1), &[]),
    );
    assert!(matches!(e, Error::TunMissing { .. }));
    assert_has(
        &e.to_string(),
        &[
            "net/tun is missing",
            "runc >= 1.2",
            "`tun.resource`",
            "`tun.privileged: true`",
        ],
    );

    let mut pod = Pod::two_vfs();
    pod.fake.deny_open.push(pod.path("dev/net/tun"));
    let e = fails(
        &pod,
        &Request::new("p", two_devices(), Workers::Count(1), &[]),
    );
    assert!(matches!(e, Error::TunUnopenable { .. }));
    assert_has(
        &e.to_string(),
        &[
            "net/tun cannot be opened",
            "Operation not permitted",
            "NET_ADMIN does not grant it",
            "devices.kubevirt.io/tun",
        ],
    );
    let io = e
        .source()
        .unwrap()
        .downcast_ref::<std::io::Error>()
        .unwrap();
    assert_eq!(io.raw_os_error(), Some(libc::EPERM));

    // Not asked for: not checked.
    let mut req = Request::new("p", two_devices(), Workers::Count(1), &[]);
    req.tun = false;
    assert!(discover(&req, &pod.ctx()).unwrap().tun.is_none());
}

#[test]
fn malformed_annotations_are_refused_and_missing_ones_warned() {
    let pod = Pod::two_vfs();
    pod.write(
        "podinfo/annotations",
        "k8s.v1.cni.cncf.io/network-status=\"[{\\\"name\\\": \"\n",
    );
    let e = fails(
        &pod,
        &Request::new("p", two_devices(), Workers::Count(1), &[]),
    );
    assert!(matches!(e, Error::NetworkStatusMalformed { .. }));
    assert!(e
        .source()
        .unwrap()
        .downcast_ref::<serde_json::Error>()
        .is_some());

    std::fs::remove_file(pod.path("podinfo/annotations")).unwrap();
    let d = discover(
        &Request::new("p", two_devices(), Workers::Count(1), &[]),
        &pod.ctx(),
    )
    .unwrap();
    assert_eq!(d.vfs[0].network, None);
    assert!(
        d.warnings
            .iter()
            .any(|w| w.contains("VF-to-network mapping unknown")),
        "{:?}",
        d.warnings
    );
    assert!(d.to_string().contains("warning: "));
}

#[test]
fn numa_mismatch_and_missing_info_are_warnings() {
    let mut pod = Pod::two_vfs();
    pod.fake.env.remove(&format!("{INT_VAR}_INFO"));
    pod.write(&format!("sys/bus/pci/devices/{EXT}/numa_node"), "1\n");
    let d = discover(
        &Request::new("p", two_devices(), Workers::Count(1), &[]),
        &pod.ctx(),
    )
    .unwrap();
    let w = d.warnings.join("\n");
    assert_has(
        &w,
        &[
            "VF 0000:3b:02.0 is on NUMA node 1 but worker CPU(s) 3 are not",
            "PCIDEVICE_OPENSHIFT_IO_SRIOV_INT_INFO is not set",
        ],
    );
}

#[test]
fn vdev_only_request_checks_no_vf_and_no_memlock() {
    let pod = Pod::new();
    let req = Request::new(
        "lab-a",
        vec!["net_af_xdp0".into()],
        Workers::Cores(vec![3]),
        &["--no-huge".into()],
    );
    let d = discover(&req, &pod.ctx()).unwrap();
    assert!(d.vfs.is_empty() && d.memlock.is_none() && d.hugepages.is_none());
    assert_eq!(
        d.eal_args(),
        [
            "--file-prefix",
            "lab-a",
            "--lcores",
            "0@2,1@3",
            "--main-lcore",
            "0"
        ]
    );
    assert_eq!(resolve_device("net_af_xdp0", &pod.ctx()).unwrap(), None);
    assert!(!is_vf("net_af_xdp0").unwrap() && is_vf(EXT).unwrap());
}

#[test]
fn eal_argument_vector() {
    let pod = Pod::two_vfs();
    let mut devices = two_devices();
    devices.push("net_ring0".into());
    devices.push(EXT.into()); // the same VF twice: one -a
    let req = Request::new("pollux-b", devices, Workers::Cores(vec![4, 5]), &[]);
    let d = discover(&req, &pod.ctx()).unwrap();
    assert_eq!(
        d.eal_args(),
        [
            "--file-prefix",
            "pollux-b",
            "--lcores",
            "0@2,1@4,2@5",
            "--main-lcore",
            "0",
            "--huge-dir",
            "/hugepages",
            "-a",
            "0000:3b:02.0",
            "-a",
            "0000:3b:0a.1",
        ]
    );
    assert!(d
        .warnings
        .iter()
        .any(|w| w.contains("are the same VF 0000:3b:02.0")));
}

#[test]
fn main_lcore_shares_a_cpu_when_the_mask_is_full() {
    let mut pod = Pod::two_vfs();
    pod.fake.cpus = vec![6, 7];
    let d = discover(
        &Request::new("p", two_devices(), Workers::Count(2), &[]),
        &pod.ctx(),
    )
    .unwrap();
    assert_eq!((d.cpus.main, d.cpus.workers.clone()), (6, vec![6, 7]));
    assert!(d.eal_args().contains(&"0@6,1@6,2@7".to_string()));
    assert!(d
        .warnings
        .iter()
        .any(|w| w.contains("request one more whole CPU")));
}

#[test]
fn request_reads_memory_from_eal_arguments() {
    let r = Request::new(
        "p",
        vec![],
        Workers::Count(1),
        &["-m".into(), "1024".into(), "--huge-dir=/mnt/huge".into()],
    );
    assert_eq!(r.hugepages, Some(1 << 30));
    assert_eq!(r.pinned, Some(1 << 30));
    assert_eq!(r.huge_dir.as_deref(), Some(Path::new("/mnt/huge")));
    let r = Request::new(
        "p",
        vec![],
        Workers::Count(1),
        &["--socket-mem".into(), "512,512".into()],
    );
    assert_eq!(r.hugepages, Some(1 << 30));
    let r = Request::new("p", vec![], Workers::Count(1), &["--no-huge".into()]);
    assert_eq!((r.hugepages, r.pinned), (None, None));
    assert!(r.tun);
}

#[test]
fn huge_dir_from_the_config_picks_that_mount() {
    let pod = Pod::two_vfs();
    pod.write(
        "proc/mounts",
        "nodev /hugepages hugetlbfs rw,pagesize=1024M 0 0\nnodev /hugepages-2Mi hugetlbfs rw,pagesize=2M 0 0\n",
    );
    pod.pages(2 << 20, 100, 100);
    let d = discover(
        &Request::new("p", two_devices(), Workers::Count(1), &[]),
        &pod.ctx(),
    )
    .unwrap();
    assert_eq!(
        d.hugepages.unwrap().page_size,
        1 << 30,
        "largest pages first"
    );
    let d = discover(
        &Request::new(
            "p",
            two_devices(),
            Workers::Count(1),
            &["--huge-dir".into(), "/hugepages-2Mi".into()],
        ),
        &pod.ctx(),
    )
    .unwrap();
    assert_eq!(d.hugepages.unwrap().page_size, 2 << 20);
}

#[test]
fn context_roots_come_from_the_test_hook_variables() {
    let mut fake = Fake::default();
    fake.env.insert("POLLUX_SYSFS_ROOT".into(), "/t/sys".into());
    fake.env.insert("POLLUX_PROC_ROOT".into(), "/t/proc".into());
    fake.env.insert("POLLUX_DEV_ROOT".into(), "/t/dev".into());
    fake.env.insert(
        "POLLUX_ANNOTATIONS_FILE".into(),
        "/t/podinfo/annotations".into(),
    );
    let ctx = Context::from_env_with(Arc::new(fake));
    assert_eq!(ctx.sysfs_root, Path::new("/t/sys"));
    assert_eq!(ctx.proc_root, Path::new("/t/proc"));
    assert_eq!(ctx.dev_root, Path::new("/t/dev"));
    assert_eq!(ctx.annotations_file, Path::new("/t/podinfo/annotations"));
    let ctx = Context::from_env_with(Arc::new(Fake::default()));
    assert_eq!(ctx.sysfs_root, Path::new("/sys"));
    assert_eq!(ctx.annotations_file, Path::new(DEFAULT_ANNOTATIONS_FILE));
    assert!(format!("{ctx:?}").contains("annotations_file"));
}

#[test]
fn error_display_and_source() {
    let io = std::io::Error::from_raw_os_error(libc::EACCES);
    let e = Error::TunUnopenable {
        path: "/dev/net/tun".into(),
        source: io,
    };
    assert!(e
        .to_string()
        .starts_with("/dev/net/tun cannot be opened (Permission denied"));
    assert_eq!(
        e.source()
            .unwrap()
            .downcast_ref::<std::io::Error>()
            .unwrap()
            .raw_os_error(),
        Some(libc::EACCES)
    );
    let e = Error::NoWorkers;
    assert!(e.source().is_none());
    let e = Error::Read {
        what: "the mount table",
        path: "/proc/mounts".into(),
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    };
    assert!(e
        .to_string()
        .starts_with("cannot read the mount table (/proc/mounts): "));
    assert!(e.source().is_some());
}

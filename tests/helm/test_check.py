"""The config inside the rendered ConfigMap passes `pollux check`, in a fake
pod built from the render itself.

The pod is materialised under a temporary directory the way the kubelet
would build it: every ConfigMap/Secret/downward-API volume of the rendered
Deployment is written at its mountPath (absolute paths in the config are
re-rooted there), and a fake kernel tree (sysfs, procfs, /dev) holds one
vfio-pci VF per `sriov.networks` entry, the hugepages the pod requests and
the capabilities the container is given. The SR-IOV device plugin's
variables and Multus's network-status are derived from the rendered
annotation and resources. The vfio crate reads the fake tree through its
test hooks (POLLUX_SYSFS_ROOT, POLLUX_PROC_ROOT, POLLUX_DEV_ROOT,
POLLUX_ANNOTATIONS_FILE); RLIMIT_MEMLOCK and the CPU affinity mask are this
machine's.

`pollux check` runs from $POLLUX_BIN (skipped, with the reason, when unset).
The same pod also goes through the vfio crate's own discovery (its
`discover` example), which needs only cargo.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import REPO, by_kind, load_values, manifests

# linux/capability.h bit numbers of what the chart may add.
CAP_BITS = {"NET_ADMIN": 12, "NET_RAW": 13, "IPC_LOCK": 14, "SYS_RESOURCE": 24}


def go_quote(s: str) -> str:
    """Go's strconv.Quote for the ASCII JSON the annotations hold."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def env_var(resource: str) -> str:
    return "PCIDEVICE_" + resource.upper().replace(".", "_").replace("/", "_").replace("-", "_")


class FakePod:
    """One instance's pod, materialised under `root`."""

    def __init__(self, root: Path, value_set: str, instance: int = 0):
        self.root = root
        self.values = load_values(value_set)
        docs = manifests(self.values)
        self.deploy = by_kind(docs, "Deployment")[instance]
        self.docs = docs
        self.env: dict[str, str] = {}
        spec = self.deploy["spec"]["template"]["spec"]
        (self.container,) = spec["containers"]
        self.volumes = {v["name"]: v for v in spec["volumes"]}
        self.mounts = {m["name"]: m["mountPath"] for m in self.container["volumeMounts"]}
        self.bdfs: list[str] = []
        self._kernel()
        self._volumes()
        self.config = self._config()

    def at(self, pod_path: str) -> Path:
        return self.root / "pod" / pod_path.lstrip("/")

    def _kernel(self):
        sys_, proc, dev = (self.root / d for d in ("sys", "proc", "dev"))
        ann = self.deploy["spec"]["template"]["metadata"]["annotations"]
        networks = json.loads(ann["k8s.v1.cni.cncf.io/networks"])
        limits = self.container["resources"]["limits"]
        by_resource: dict[str, list[str]] = {}
        status = [{"name": "ovn-kubernetes", "interface": "eth0", "ips": ["10.128.2.7"], "default": True, "dns": {}}]
        sriov = self.values.get("sriov", {}).get("networks") or [
            {"name": "sriov-external", "resource": "openshift.io/intelnics"}
        ]
        for i, (net, val) in enumerate(zip(networks, sriov)):
            bdf, group = f"0000:3b:02.{i}", 80 + i
            self.bdfs.append(bdf)
            d = sys_ / "bus/pci/devices" / bdf
            d.mkdir(parents=True)
            (d / "driver").symlink_to("../../../bus/pci/drivers/vfio-pci")
            (d / "iommu_group").symlink_to(f"../../../kernel/iommu_groups/{group}")
            (d / "physfn").symlink_to("../0000:3b:00.0")
            (d / "numa_node").write_text("0\n")
            (dev / "vfio").mkdir(parents=True, exist_ok=True)
            (dev / "vfio" / str(group)).write_text("")
            by_resource.setdefault(val["resource"], []).append(bdf)
            status.append({
                "name": f"{net['namespace']}/{net['name']}",
                "interface": f"net{i + 1}",
                "mac": f"52:54:00:00:00:{i + 1:02x}",
                "dns": {},
                "device-info": {"type": "pci", "version": "1.1.0", "pci": {"pci-address": bdf}},
            })
        (dev / "vfio" / "vfio").write_text("")
        for resource, bdfs in by_resource.items():
            assert limits[resource] == str(len(bdfs)), "one VF per network, requested == allocated"
            var = env_var(resource)
            # The kubelet does not order a resource's VFs by network.
            self.env[var] = ",".join(reversed(bdfs))
            self.env[var + "_INFO"] = json.dumps({
                b: {"generic": {"deviceID": b},
                    "vfio": {"dev-mount": f"/dev/vfio/{80 + self.bdfs.index(b)}", "mount": "/dev/vfio/vfio"}}
                for b in bdfs
            })
        self.network_status = json.dumps(status, indent=4)
        # Hugepages: what the pod requests, free on the node.
        (size_key,) = [k for k in limits if k.startswith("hugepages-")]
        size = {"hugepages-1Gi": 1 << 30, "hugepages-2Mi": 2 << 20}[size_key]
        amount = limits[size_key]
        total = int(amount[:-2]) << {"Gi": 30, "Mi": 20}[amount[-2:]]
        pages = sys_ / f"kernel/mm/hugepages/hugepages-{size >> 10}kB"
        pages.mkdir(parents=True)
        (pages / "free_hugepages").write_text(f"{total // size}\n")
        (pages / "nr_hugepages").write_text(f"{total // size}\n")
        pagesize = {1 << 30: "1024M", 2 << 20: "2M"}[size]
        proc.mkdir()
        (proc / "mounts").write_text(
            "overlay / overlay rw 0 0\nproc /proc proc rw 0 0\n"
            f"nodev {self.mounts['hugepages']} hugetlbfs rw,relatime,pagesize={pagesize} 0 0\n"
        )
        (proc / "meminfo").write_text("Hugepagesize:       2048 kB\n")
        caps = 0
        for name in self.container["securityContext"]["capabilities"]["add"]:
            caps |= 1 << CAP_BITS[name]
        (proc / "self").mkdir()
        (proc / "self/status").write_text(f"Name:\tpollux\nCapEff:\t{caps:016x}\n")
        # /dev/net/tun: the chart asked for it through a device plugin.
        assert any("tun" in k for k in limits) or self.container["securityContext"].get("privileged")
        (dev / "net").mkdir(parents=True)
        (dev / "net/tun").write_text("")
        self.env.update({
            "POLLUX_SYSFS_ROOT": str(sys_),
            "POLLUX_PROC_ROOT": str(proc),
            "POLLUX_DEV_ROOT": str(dev),
        })

    def _volumes(self):
        named = {(d["kind"], d["metadata"]["name"]): d for d in self.docs}
        for name, path in self.mounts.items():
            vol = self.volumes[name]
            target = self.at(path)
            target.mkdir(parents=True, exist_ok=True)
            if "configMap" in vol:
                cm = named[("ConfigMap", vol["configMap"]["name"])]
                for key, text in cm["data"].items():
                    (target / key).write_text(text)
            elif "secret" in vol:
                secret = named[("Secret", vol["secret"]["secretName"])]
                for item in vol["secret"]["items"]:
                    (target / item["path"]).write_bytes(base64.b64decode(secret["data"][item["key"]]))
            elif "downwardAPI" in vol:
                meta = self.deploy["spec"]["template"]["metadata"]
                annotations = dict(meta["annotations"])
                annotations["k8s.v1.cni.cncf.io/network-status"] = self.network_status
                for item in vol["downwardAPI"]["items"]:
                    field = item["fieldRef"]["fieldPath"]
                    src = {"metadata.annotations": annotations, "metadata.labels": meta["labels"]}[field]
                    (target / item["path"]).write_text(
                        "".join(f"{k}={go_quote(str(v))}\n" for k, v in sorted(src.items()))
                    )
        self.env["POLLUX_ANNOTATIONS_FILE"] = str(self.at(self.mounts["podinfo"]) / "annotations")

    def _config(self) -> Path:
        """The config file at its mount, with pod paths re-rooted here."""
        command = self.container["command"]
        config_path = command[command.index("--config") + 1]
        mount_paths = sorted(self.mounts.values(), key=len, reverse=True)

        def reroot(x):
            if isinstance(x, dict):
                return {k: reroot(v) for k, v in x.items()}
            if isinstance(x, list):
                return [reroot(v) for v in x]
            if isinstance(x, str):
                for m in mount_paths:
                    if x == m or x.startswith(m + "/"):
                        return str(self.at(x))
            return x

        f = self.at(config_path)
        cfg = yaml.safe_load(f.read_text())
        f.write_text(yaml.safe_dump(reroot(cfg), sort_keys=False))
        return f

    def run_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PCIDEVICE_", "POLLUX_"))}
        env.update(self.env)
        lookup = self.values.get("nodeLookup") or {"worker-0": []}
        env["NODE_NAME"] = sorted(lookup)[0]
        env["POD_NAME"] = self.deploy["metadata"]["name"] + "-7d9f8-abcde"
        env["POD_NAMESPACE"] = self.deploy["metadata"]["namespace"]
        return env

    def devices(self) -> list[str]:
        cfg = yaml.safe_load(self.config.read_text())
        return [p["device"] for p in cfg["dataplane"]["ports"]]


@pytest.fixture(scope="session")
def discover_bin() -> str:
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.skip("cargo is not installed: cannot build the vfio crate's discover example")
    subprocess.run(
        [cargo, "build", "-q", "-p", "vfio", "--example", "discover"],
        cwd=REPO, check=True, timeout=900,
    )
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return str(target / "debug" / "examples" / "discover")


def test_rendered_devices_pass_vfio_discovery(value_set, tmp_path, discover_bin):
    pod = FakePod(tmp_path, value_set)
    cfg = yaml.safe_load(pod.config.read_text())
    args = [discover_bin, "--workers", str(cfg["dataplane"]["workers"])]
    for e in cfg["dataplane"].get("eal", []):
        args += ["--eal", e]
    r = subprocess.run(args + pod.devices(), env=pod.run_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    for bdf in pod.bdfs:
        assert f"-a {bdf}" in r.stdout, r.stdout
    # Each network got the VF Multus attached to it, whatever the variable's order.
    for i, bdf in enumerate(pod.bdfs):
        assert f"{bdf}" in r.stdout and f"(net{i + 1})" in r.stdout
    assert "--huge-dir /hugepages" in r.stdout
    assert "CAP_IPC_LOCK held" in r.stdout


def test_rendered_pod_without_the_vf_resource_is_refused(tmp_path, discover_bin):
    pod = FakePod(tmp_path, "minimal")
    env = pod.run_env()
    del env["PCIDEVICE_OPENSHIFT_IO_INTELNICS"]
    r = subprocess.run([discover_bin, *pod.devices()], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "PCIDEVICE_OPENSHIFT_IO_INTELNICS is not set" in r.stderr
    assert "resources.requests/limits: openshift.io/intelnics: 1" in r.stderr


def pollux_bin() -> str:
    path = os.environ.get("POLLUX_BIN")
    if not path:
        pytest.skip("POLLUX_BIN is not set: point it at the pollux binary to run `pollux check` on the rendered configs")
    return path


def test_rendered_config_passes_pollux_check(value_set, tmp_path):
    binary = pollux_bin()
    pod = FakePod(tmp_path, value_set)
    r = subprocess.run(
        [binary, "check", "--config", str(pod.config)],
        env=pod.run_env(), capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    # `pollux check` performs the discovery and prints what it found.
    for bdf in pod.bdfs:
        assert bdf in r.stdout + r.stderr


def test_pollux_check_without_the_vf_resource_names_the_fix(tmp_path):
    binary = pollux_bin()
    pod = FakePod(tmp_path, "minimal")
    env = pod.run_env()
    del env["PCIDEVICE_OPENSHIFT_IO_INTELNICS"]
    r = subprocess.run(
        [binary, "check", "--config", str(pod.config)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "PCIDEVICE_OPENSHIFT_IO_INTELNICS" in out
    assert "resources.requests/limits: openshift.io/intelnics: 1" in out

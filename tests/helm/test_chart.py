"""The chart, rendered by the real Helm library and checked against the real
Kubernetes schemas (kubernetes-validate) and the pollux contract (DESIGN.md
section 4 config keys, the vfio crate's downward-API path)."""

from __future__ import annotations

import copy
import json
import subprocess

import helm_python
import pytest
import yaml

from conftest import (
    GOLDEN,
    NAMESPACE,
    by_kind,
    load_values,
    manifests,
    render,
    render_text,
    update_golden,
    venv_bin,
    CHART,
)

# DESIGN.md section 4: the config keys pollux reads (no others may appear:
# unknown keys are an error for `pollux check`).
TOP_KEYS = {"instance", "dataplane", "virtualServers", "bgp", "bfd", "api", "scaleOut"}
DATAPLANE_KEYS = {"workers", "pollMode", "eal", "ports", "routes"}
PORT_KEYS = {"name", "device", "selfIps", "vlan", "mtu"}
NEIGHBOR_KEYS = {
    "address", "nodeLookup", "asn", "passwordFile", "ebgpMultihop", "bfd",
    "advertiseIPv4", "advertiseIPv6",
}
BGP_KEYS = {"asn", "routerId", "gracefulRestart", "neighbors", "drainDelayMs"}
VS_KEYS = {
    "name", "address", "port", "protocol", "idleTimeout", "snat", "healthCheck",
    "members",
}

# Where the vfio crate reads the pod's annotations by default
# (vfio::DEFAULT_ANNOTATIONS_FILE).
PODINFO_ANNOTATIONS = "/etc/podinfo/annotations"


def container(deploy: dict) -> dict:
    (c,) = deploy["spec"]["template"]["spec"]["containers"]
    return c


def pod_configs(docs: list[dict]) -> dict[str, dict]:
    """instance ConfigMap name -> parsed pollux config."""
    return {
        cm["metadata"]["name"]: yaml.safe_load(cm["data"]["pollux.yaml"])
        for cm in by_kind(docs, "ConfigMap")
        if "pollux.yaml" in cm["data"]
    }


def render_error(values: dict) -> str:
    with pytest.raises(helm_python.HelmError) as e:
        render(values)
    return str(e.value)


def test_lint_is_clean():
    result = helm_python.lint(str(CHART))
    assert result["errors"] == []
    assert result["messages"] == [], result["messages"]


def test_render_matches_golden(value_set):
    text = render_text(load_values(value_set))
    golden = GOLDEN / f"{value_set}.yaml"
    if update_golden():
        golden.write_text(text)
    assert golden.exists(), f"no golden {golden.name}: run with POLLUX_UPDATE_GOLDEN=1"
    assert text == golden.read_text(), (
        f"render of {value_set} differs from {golden}; if intended, rerun with "
        "POLLUX_UPDATE_GOLDEN=1 and review the diff"
    )


def kubernetes_validate(tmp_path, docs: list[dict]) -> subprocess.CompletedProcess:
    files = []
    for i, doc in enumerate(docs):
        f = tmp_path / f"{i:02d}-{doc['kind']}-{doc['metadata']['name']}.yaml"
        f.write_text(yaml.safe_dump(doc))
        files.append(str(f))
    return subprocess.run(
        [venv_bin("kubernetes-validate"), "--strict", *files],
        capture_output=True,
        text=True,
        check=False,
    )


def test_every_manifest_validates_against_kubernetes_schemas(value_set, tmp_path):
    docs = manifests(load_values(value_set))
    builtin = [d for d in docs if d["apiVersion"] != "monitoring.coreos.com/v1"]
    kinds = {d["kind"] for d in builtin}
    assert {"Deployment", "ConfigMap", "Service", "PodDisruptionBudget", "ServiceAccount"} <= kinds
    r = kubernetes_validate(tmp_path, builtin)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "Couldn't find schema" not in out, out
    assert out.count("INFO") == len(builtin) or "ERROR" not in out, out
    # The ServiceMonitor is a CRD with no bundled schema; its shape is
    # checked in test_metrics_service_and_service_monitor.


def test_validator_is_strict_enough_to_catch_a_bad_deployment(tmp_path):
    """A control: the same check refuses a Deployment with a misspelt field."""
    docs = manifests(load_values("minimal"))
    deploy = copy.deepcopy(by_kind(docs, "Deployment")[0])
    container(deploy)["securityContext"]["capabilites"] = {"add": ["NET_ADMIN"]}
    r = kubernetes_validate(tmp_path, [deploy])
    assert r.returncode != 0
    assert "capabilites" in r.stdout + r.stderr


def test_schema_refuses_bad_values_naming_the_field():
    msg = render_error(load_values("bad-schema"))
    assert "/hugepages/size" in msg
    assert "'1Gi', '2Mi'" in msg
    msg = render_error({"resources": {"cpu": 2.5, "memory": "2Gi"}})
    assert "/resources/cpu" in msg
    msg = render_error({"config": {"dataplane": {"workers": 1, "ports": [{"name": "external"}]}, "bgpp": {}}})
    assert "bgpp" in msg
    msg = render_error({"config": {"dataplane": {"workers": 1, "ports": [{"name": "a-very-long-port-name"}]}}})
    assert "/config/dataplane/ports/0/name" in msg


def test_pod_is_guaranteed_with_vfs_hugepages_and_tun():
    docs = manifests(load_values("two-vfs"))
    deploys = by_kind(docs, "Deployment")
    assert len(deploys) == 2
    for d in deploys:
        res = container(d)["resources"]
        assert res["requests"] == res["limits"]
        assert res["requests"] == {
            "cpu": "3",
            "memory": "4Gi",
            "hugepages-1Gi": "4Gi",
            "openshift.io/intelnics": "2",
            "devices.kubevirt.io/tun": "1",
        }
    small = by_kind(manifests(load_values("hugepages-2mi")), "Deployment")[0]
    res = container(small)["resources"]
    assert res["requests"] == res["limits"]
    assert res["limits"]["hugepages-2Mi"] == "1Gi"
    assert "hugepages-1Gi" not in res["limits"]


def test_networks_annotation_keeps_the_values_order():
    docs = manifests(load_values("two-vfs"))
    for d in by_kind(docs, "Deployment"):
        ann = d["spec"]["template"]["metadata"]["annotations"]
        nets = json.loads(ann["k8s.v1.cni.cncf.io/networks"])
        assert nets == [
            {"name": "sriov-external", "namespace": NAMESPACE},
            {"name": "sriov-internal", "namespace": "sriov-nets"},
        ]
    values = load_values("two-vfs")
    values["sriov"]["networks"].reverse()
    d = by_kind(manifests(values), "Deployment")[0]
    nets = json.loads(d["spec"]["template"]["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"])
    assert [n["name"] for n in nets] == ["sriov-internal", "sriov-external"]


def test_capabilities_and_nothing_privileged_by_default():
    d = by_kind(manifests(load_values("minimal")), "Deployment")[0]
    sc = container(d)["securityContext"]
    assert sc["capabilities"] == {
        "drop": ["ALL"],
        "add": ["IPC_LOCK", "NET_ADMIN", "NET_RAW", "SYS_RESOURCE"],
    }
    assert sc["privileged"] is False
    assert sc["allowPrivilegeEscalation"] is False
    assert "hostNetwork" not in d["spec"]["template"]["spec"]
    assert all("hostPath" not in v for v in d["spec"]["template"]["spec"]["volumes"])


def test_tun_comes_from_a_device_plugin_or_an_explicit_privileged_choice():
    d = by_kind(manifests({"tun": {"resource": "squat.ai/tun"}}), "Deployment")[0]
    assert container(d)["resources"]["limits"]["squat.ai/tun"] == "1"
    d = by_kind(manifests({"tun": {"resource": "", "privileged": True}}), "Deployment")[0]
    c = container(d)
    assert c["securityContext"]["privileged"] is True
    assert not any("tun" in k for k in c["resources"]["limits"])
    msg = render_error({"tun": {"resource": "", "privileged": False}})
    assert "tun.resource" in msg and "/dev/net/tun" in msg
    msg = render_error({"tun": {"resource": "squat.ai/tun", "privileged": True}})
    assert "not both" in msg


def test_config_uses_exactly_the_design_keys():
    docs = manifests(load_values("two-vfs"))
    configs = pod_configs(docs)
    assert set(configs) == {"pollux-a-config", "pollux-b-config"}
    for name, cfg in configs.items():
        assert set(cfg) <= TOP_KEYS, set(cfg) - TOP_KEYS
        assert set(cfg["dataplane"]) <= DATAPLANE_KEYS
        for p in cfg["dataplane"]["ports"]:
            assert set(p) <= PORT_KEYS, set(p) - PORT_KEYS
        assert set(cfg["bgp"]) <= BGP_KEYS
        for n in cfg["bgp"]["neighbors"]:
            assert set(n) <= NEIGHBOR_KEYS, set(n) - NEIGHBOR_KEYS
        for vs in cfg["virtualServers"]:
            assert set(vs) <= VS_KEYS
        assert set(cfg["instance"]) == {"name"}  # nodeName comes from $NODE_NAME
        assert set(cfg["api"]) == {"socket", "metrics", "metricsInterface"}
    a = configs["pollux-a-config"]
    assert a["instance"]["name"] == "pollux-a"
    assert a["bgp"]["routerId"] == "10.10.0.2"
    ports = {p["name"]: p for p in a["dataplane"]["ports"]}
    # One resource backs two networks: the VF is picked by network.
    assert ports["external"]["device"] == "env:PCIDEVICE_OPENSHIFT_IO_INTELNICS@sriov-external"
    assert ports["internal"]["device"] == "env:PCIDEVICE_OPENSHIFT_IO_INTELNICS@sriov-internal"
    assert ports["external"]["selfIps"] == ["10.10.0.2/24", "fd00:10::2/64"]
    assert ports["internal"]["vlan"] == 200
    b = configs["pollux-b-config"]
    assert {p["name"]: p for p in b["dataplane"]["ports"]}["external"]["selfIps"][1] == "fd00:10::3/64"
    # One resource per network: no selector.
    m = pod_configs(manifests(load_values("minimal")))["pollux-a-config"]
    assert m["dataplane"]["ports"][0]["device"] == "env:PCIDEVICE_OPENSHIFT_IO_INTELNICS"


def test_files_named_in_the_config_are_mounted():
    docs = manifests(load_values("two-vfs"))
    cfg = pod_configs(docs)["pollux-a-config"]
    d = by_kind(docs, "Deployment")[0]
    c = container(d)
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in d["spec"]["template"]["spec"]["volumes"]}
    (nb,) = cfg["bgp"]["neighbors"]
    # nodeLookup: the file is a key of the node-lookup ConfigMap.
    lookup_dir, lookup_key = nb["nodeLookup"].rsplit("/", 1)
    assert mounts["node-lookup"] == lookup_dir
    cm = next(x for x in by_kind(docs, "ConfigMap") if x["metadata"]["name"] == volumes["node-lookup"]["configMap"]["name"])
    assert yaml.safe_load(cm["data"][lookup_key]) == load_values("two-vfs")["nodeLookup"]
    # passwordFile: a key of the Secret, never in a ConfigMap.
    pw_dir, pw_key = nb["passwordFile"].rsplit("/", 1)
    assert mounts["bgp-password"] == pw_dir
    secret_name = volumes["bgp-password"]["secret"]["secretName"]
    (secret,) = by_kind(docs, "Secret")
    assert secret["metadata"]["name"] == secret_name and pw_key in secret["data"]
    for cmap in by_kind(docs, "ConfigMap"):
        assert "not-a-real-secret" not in json.dumps(cmap)
    # The config file itself.
    assert c["command"] == ["pollux", "run", "--config", mounts["config"] + "/pollux.yaml"]


def test_downward_api_hugepages_and_node_name():
    d = by_kind(manifests(load_values("minimal")), "Deployment")[0]
    c = container(d)
    spec = d["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    items = {i["path"]: i["fieldRef"]["fieldPath"] for i in volumes["podinfo"]["downwardAPI"]["items"]}
    assert items["annotations"] == "metadata.annotations"
    assert f"{mounts['podinfo']}/annotations" == PODINFO_ANNOTATIONS
    assert volumes["hugepages"]["emptyDir"] == {"medium": "HugePages"}
    assert mounts["hugepages"] == "/hugepages"
    env = {e["name"]: e for e in c["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"


def test_grace_period_fits_prestop_and_drain():
    for values, pre, drain in [({}, 5, 30), ({"drain": {"preStopSeconds": 15, "seconds": 90}}, 15, 90)]:
        d = by_kind(manifests(values), "Deployment")[0]
        spec = d["spec"]["template"]["spec"]
        assert container(d)["lifecycle"]["preStop"] == {"sleep": {"seconds": pre}}
        assert spec["terminationGracePeriodSeconds"] == pre + drain + 10
        # One drain setting: the same seconds reach pollux's config.
        cm = [m for m in by_kind(manifests(values), "ConfigMap") if "pollux.yaml" in m["data"]][0]
        cfg = yaml.safe_load(cm["data"]["pollux.yaml"])
        assert cfg["bgp"]["drainDelayMs"] == drain * 1000


def test_scale_out_peers_are_the_other_instances():
    values = {"instances": [
        {"name": "a", "routerId": "10.0.0.2", "selfIps": {"external": ["10.0.0.2/24"]}},
        {"name": "b", "routerId": "10.0.0.3", "selfIps": {"external": ["10.0.0.3/24", "fd00::3/64"]}},
    ]}
    cms = [m for m in by_kind(manifests(values), "ConfigMap") if "pollux.yaml" in m["data"]]
    peers = {m["metadata"]["name"]: yaml.safe_load(m["data"]["pollux.yaml"])["scaleOut"]["peers"] for m in cms}
    assert peers == {"pollux-a-config": ["10.0.0.3", "fd00::3"], "pollux-b-config": ["10.0.0.2"]}


def test_probes_go_through_pollux_show():
    c = container(by_kind(manifests({}), "Deployment")[0])
    ready = " ".join(c["readinessProbe"]["exec"]["command"])
    assert "pollux show stats --json" in ready and "workers_running" in ready
    assert "pollux show bgp summary --json" in ready and "Established" in ready
    assert c["livenessProbe"]["exec"]["command"][:3] == ["pollux", "show", "interfaces"]
    assert "--api" in c["livenessProbe"]["exec"]["command"]
    assert c["startupProbe"]["failureThreshold"] * c["startupProbe"]["periodSeconds"] >= 120


def test_one_replica_per_instance_spread_across_nodes():
    docs = manifests(load_values("two-vfs"))
    deploys = by_kind(docs, "Deployment")
    assert [d["metadata"]["name"] for d in deploys] == ["pollux-a", "pollux-b"]
    for d in deploys:
        assert d["spec"]["replicas"] == 1
        assert d["spec"]["strategy"] == {"type": "Recreate"}
        term = d["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"
        ][0]
        assert term["topologyKey"] == "kubernetes.io/hostname"
        # The anti-affinity selector matches every instance's pods.
        for other in deploys:
            labels = other["spec"]["template"]["metadata"]["labels"]
            assert term["labelSelector"]["matchLabels"].items() <= labels.items()
    d = by_kind(manifests({"spread": "preferred"}), "Deployment")[0]
    anti = d["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in anti
    assert anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"] == 100


def test_pdb_metrics_service_and_service_monitor():
    docs = manifests(load_values("two-vfs"))
    pods = [d["spec"]["template"]["metadata"]["labels"] for d in by_kind(docs, "Deployment")]
    (pdb,) = by_kind(docs, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    (svc,) = by_kind(docs, "Service")
    for labels in pods:
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert svc["spec"]["selector"].items() <= labels.items()
    assert svc["spec"]["ports"][0]["name"] == "metrics"
    assert svc["spec"]["ports"][0]["port"] == 9464
    cfg = pod_configs(docs)["pollux-a-config"]
    # Only on the pod's cluster interface, never on the TAPs' self IPs.
    assert cfg["api"]["metrics"] == "0.0.0.0:9464" and cfg["api"]["metricsInterface"] == "eth0"
    lo = copy.deepcopy(load_values("two-vfs"))
    lo["metrics"] = {"interface": "", "service": {"enabled": False}}
    cfg = pod_configs(manifests(lo))["pollux-a-config"]
    assert cfg["api"] == {"socket": cfg["api"]["socket"], "metrics": "127.0.0.1:9464"}
    lo["metrics"]["service"]["enabled"] = True
    assert "needs metrics.interface" in render_error(lo)
    (sm,) = by_kind(docs, "ServiceMonitor")
    assert sm["metadata"]["labels"]["release"] == "prometheus"
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s"}]
    assert by_kind(manifests({}), "ServiceMonitor") == []
    assert by_kind(manifests({"podDisruptionBudget": {"enabled": False}}), "PodDisruptionBudget") == []


def test_template_refusals_name_the_fix():
    msg = render_error({"resources": {"cpu": 2, "memory": "2Gi"}})
    assert "resources.cpu" in msg and "resources.cpu >= 3" in msg
    msg = render_error({"sriov": {"networks": []}})
    assert "config.dataplane.ports[external] has no device" in msg
    msg = render_error({"config": {"dataplane": {"workers": 2, "ports": [{"name": "external"}]}, "bgp": {"asn": 1, "neighbors": [{"address": "10.0.0.1", "asn": 2, "md5": True}]}}})
    assert "bgpPassword" in msg

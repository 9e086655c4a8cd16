"""The Grafana dashboard in the chart queries metrics that exist: every
`pollux_*` name in its expressions is one pollux's code emits (a family
name in ctrl/src) and one docs/metrics.md documents. (test_ops in
tests/integration also scrapes a live pollux for every one of them.)"""

from __future__ import annotations

import json
import re

from conftest import CHART, REPO, by_kind, manifests

DASHBOARD = CHART / "dashboards" / "pollux.json"


def dashboard_metrics() -> set[str]:
    d = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in d["panels"] for t in p["targets"]]
    assert exprs, "a dashboard without queries"
    return {m for e in exprs for m in re.findall(r"\bpollux_[a-z0-9_]+", e)}


def code_metrics() -> set[str]:
    """Family names as the encoder is given them (`pollux_` is prefixed by
    it): the first string literal of every `.family(` call, and the names in
    the tables of (name, help, getter) that loop over `.family(name, ...)`."""
    names = set()
    for f in (REPO / "ctrl" / "src").rglob("*.rs"):
        text = f.read_text()
        names |= set(re.findall(r'\.family\(\s*"([a-z0-9_]+)"', text))
        names |= set(re.findall(r'\(\s*"([a-z0-9_]+_(?:total|seconds|flows|entries))",\s*"[A-Z]', text))
    return {f"pollux_{n}" for n in names}


def documented_metrics() -> set[str]:
    return set(re.findall(r"`(pollux_[a-z0-9_]+)`", (REPO / "docs" / "metrics.md").read_text()))


def test_every_dashboard_metric_is_emitted_and_documented():
    used = dashboard_metrics()
    assert len(used) >= 20, used
    code, docs = code_metrics(), documented_metrics()
    assert "pollux_port_rx_packets_total" in code and "pollux_vs_active_flows" in code, sorted(code)
    assert used - code == set(), f"not emitted by pollux: {sorted(used - code)}"
    assert used - docs == set(), f"not in docs/metrics.md: {sorted(used - docs)}"


def test_the_checker_catches_a_made_up_name():
    assert "pollux_made_up_total" not in code_metrics()


def test_dashboard_configmap_carries_the_file():
    assert by_kind(manifests({}), "ConfigMap") and not [
        c for c in by_kind(manifests({}), "ConfigMap") if c["metadata"]["name"].endswith("-dashboard")
    ]
    docs = manifests({"metrics": {"grafanaDashboard": {"enabled": True}}})
    (cm,) = [c for c in by_kind(docs, "ConfigMap") if c["metadata"]["name"].endswith("-dashboard")]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["pollux.json"]) == json.loads(DASHBOARD.read_text())

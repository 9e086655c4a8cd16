"""Shared helpers of the chart tests: render the chart with the real Helm
library (helm-python-sdk bundles Helm v4, works offline) and split the result
into manifests."""

from __future__ import annotations

import os
from pathlib import Path

import helm_python
import pytest
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CHART = REPO / "helm" / "pollux"
VALUES = HERE / "values"
GOLDEN = HERE / "golden"
RELEASE = "pollux"
NAMESPACE = "telco"

# The value sets with golden renders.
VALUE_SETS = ["minimal", "two-vfs", "hugepages-2mi"]


def load_values(name: str) -> dict:
    return yaml.safe_load((VALUES / f"{name}.yaml").read_text()) or {}


def render(values: dict) -> dict[str, str]:
    """{template path: rendered text} for these values."""
    chart = helm_python.Chart.load(str(CHART))
    try:
        return chart.render(values, name=RELEASE, namespace=NAMESPACE)
    finally:
        chart.close()


def render_text(values: dict) -> str:
    """The whole render as one stable text (the golden format)."""
    out = []
    for path, text in sorted(render(values).items()):
        if path.endswith("NOTES.txt") or not text.strip():
            continue
        out.append(f"# Source: {path}\n{text.strip()}\n")
    return "\n".join(out)


def manifests(values: dict) -> list[dict]:
    """Every rendered Kubernetes object."""
    docs = []
    for path, text in sorted(render(values).items()):
        if not path.endswith((".yaml", ".yml")):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                docs.append(doc)
    return docs


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def venv_bin(name: str) -> str:
    """A console script installed beside this interpreter (the venv's bin)."""
    import sys

    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


@pytest.fixture(params=VALUE_SETS)
def value_set(request) -> str:
    return request.param


def update_golden() -> bool:
    return os.environ.get("POLLUX_UPDATE_GOLDEN") == "1"

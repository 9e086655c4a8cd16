import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from netlab import POLLUX  # noqa: E402


def pytest_configure(config):
    if os.geteuid() != 0:
        pytest.exit("the integration tests need root (namespaces, AF_XDP, TAPs)", returncode=2)
    if not POLLUX.exists():
        pytest.exit(f"{POLLUX} is missing: cargo build --release -p ctrl (or set POLLUX_BIN)", returncode=2)

"""Network namespaces, veths and pollux processes for the integration tests.

Every test topology lives in namespaces whose names start with its own
prefix; traffic only flows between them. Every wait polls with a deadline.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
POLLUX = Path(os.environ.get("POLLUX_BIN", ROOT / "target/release/pollux"))


def sh(*args: str, check: bool = True, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, timeout=timeout, capture_output=True, text=True, **kw)


def wait_for(what: str, pred, timeout: float = 10.0, interval: float = 0.05):
    """Polls `pred` until it returns a truthy value; fails naming `what`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - keep polling, report the last error
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Netns:
    def __init__(self, name: str):
        self.name = name
        sh("ip", "netns", "del", name, check=False)
        sh("ip", "netns", "add", name)
        self.run("ip", "link", "set", "lo", "up")

    def run(self, *args: str, check: bool = True, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
        return sh("ip", "netns", "exec", self.name, *args, check=check, timeout=timeout, **kw)

    def popen(self, *args: str, **kw) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", self.name, *args], **kw)

    def read_sys(self, path: str) -> str:
        return self.run("cat", path).stdout.strip()

    def delete(self):
        # Kill what still runs inside, then the namespace.
        pids = sh("ip", "netns", "pids", self.name, check=False).stdout.split()
        for p in pids:
            try:
                os.kill(int(p), signal.SIGKILL)
            except ProcessLookupError:
                pass
        sh("ip", "netns", "del", self.name, check=False)


def veth(a: Netns, a_if: str, b: Netns, b_if: str, mtu: int | None = None):
    """A veth pair; the kernel side (`b`) gets tx checksum offload off so
    AF_XDP sees finished checksums (../shared/lab gotcha 16)."""
    sh("ip", "link", "add", a_if, "netns", a.name, "type", "veth", "peer", "name", b_if, "netns", b.name)
    for ns, i in ((a, a_if), (b, b_if)):
        if mtu:
            ns.run("ip", "link", "set", i, "mtu", str(mtu))
        ns.run("ip", "link", "set", i, "up")
    b.run("ethtool", "-K", b_if, "tx", "off")


class Pollux:
    """A `pollux run` in a namespace, with its config in a temp dir."""

    def __init__(self, ns: Netns, config: str, env: dict | None = None):
        self.ns = ns
        self.dir = Path(tempfile.mkdtemp(prefix="pollux-it-"))
        self.config = self.dir / "pollux.yaml"
        self.socket = self.dir / "api.sock"
        self.config.write_text(config.replace("@SOCKET@", str(self.socket)))
        self.log = open(self.dir / "pollux.log", "w+")
        e = dict(os.environ, **(env or {}))
        self.proc = ns.popen(str(POLLUX), "run", "--config", str(self.config), stdout=self.log, stderr=subprocess.STDOUT, env=e)

    def logs(self) -> str:
        self.log.flush()
        return (self.dir / "pollux.log").read_text()

    def show(self, *what: str) -> dict:
        r = sh(str(POLLUX), "show", *what, "--json", "--api", str(self.socket), check=False)
        if r.returncode != 0:
            raise RuntimeError(r.stderr)
        return json.loads(r.stdout)

    def wait_ready(self, timeout: float = 20):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"pollux exited {self.proc.returncode}:\n{self.logs()}")
            s = self.show("stats")
            return all(w["running"] for w in s["workers"]) and s
        return wait_for("pollux workers running", ready, timeout)

    def port(self, name: str) -> dict:
        return next(p for p in self.show("stats")["ports"] if p["name"] == name)

    def stop(self, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError(f"pollux did not stop on SIGTERM within {timeout}s:\n{self.logs()}")
        return self.proc.returncode


def teardown(procs, pollux: Pollux | None, namespaces):
    """A fixture's end, whatever happened: kills its helper processes and
    a pollux still running, deletes its namespaces."""
    for q in procs:
        q.kill()
        q.wait(5)
    if pollux and pollux.proc.poll() is None:
        pollux.proc.kill()
    for ns in namespaces:
        ns.delete()

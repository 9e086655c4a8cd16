"""Real routing peers for the integration tests, started without systemd
inside a test namespace: FRR (zebra, bgpd, bfdd as plain daemons) and
BIRD 2. Each instance keeps its files in its own run directory and is
stopped (and its files removed) by `stop()`.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
from pathlib import Path

from netlab import Netns, wait_for

FRR_BIN = Path("/usr/lib/frr")


class Frr:
    """FRR daemons in `ns`. `configs` maps daemon name (zebra, bfdd, bgpd)
    to its configuration text; zebra always runs. bgpd logs updates and
    neighbor events with microsecond timestamps (tests read the order);
    `listen` restricts bgpd's listening address."""

    BGPD_LOG = "log timestamp precision 6\ndebug bgp updates in\ndebug bgp neighbor-events\ndebug bgp graceful-restart\n"

    def __init__(self, ns: Netns, configs: dict[str, str], listen: str | None = None):
        self.ns = ns
        self.dir = Path(tempfile.mkdtemp(prefix="pollux-frr-"))
        os.chmod(self.dir, 0o755)
        configs = {"zebra": "hostname zebra\n", **configs}
        for name, text in configs.items():
            level, extra = ("debugging", self.BGPD_LOG) if name == "bgpd" else ("informational", "")
            (self.dir / f"{name}.conf").write_text(f"log file {self.dir}/{name}.log {level}\n{extra}{text}")
        shutil.chown(self.dir, "frr", "frr")
        for f in self.dir.iterdir():
            shutil.chown(f, "frr", "frr")
        common = ["-d", "-z", f"{self.dir}/zserv.api", "--vty_socket", str(self.dir), "-P", "0", "-u", "frr", "-g", "frr"]
        for name in ["zebra"] + [n for n in configs if n != "zebra"]:
            extra = ["--bfdctl", f"{self.dir}/bfdd.sock"] if name == "bfdd" else []
            if name == "bgpd" and listen:
                extra = ["-l", listen]
            ns.run(str(FRR_BIN / name), *common, "-f", f"{self.dir}/{name}.conf", "-i", f"{self.dir}/{name}.pid", *extra)
            if name == "zebra":
                wait_for("zebra's API socket", lambda: (self.dir / "zserv.api").exists(), timeout=10)

    def vtysh(self, *cmds: str) -> str:
        args = []
        for c in cmds:
            args += ["-c", c]
        return self.ns.run("vtysh", "--vty_socket", str(self.dir), *args, timeout=15).stdout

    def json(self, cmd: str):
        return json.loads(self.vtysh(cmd + " json") or "{}")

    def state(self, peer: str) -> str:
        """The BGP state of neighbor `peer`."""
        return self.json(f"show bgp neighbors {peer}").get(peer, {}).get("bgpState", "")

    def log(self) -> str:
        p = self.dir / "bgpd.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def stop(self):
        for pid in self.dir.glob("*.pid"):
            try:
                os.kill(int(pid.read_text().strip()), signal.SIGKILL)
            except (ValueError, ProcessLookupError):
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


class Bird:
    def __init__(self, ns: Netns, config: str):
        self.ns = ns
        self.dir = Path(tempfile.mkdtemp(prefix="pollux-bird-"))
        (self.dir / "bird.conf").write_text(config.replace("@RUN@", str(self.dir)))
        self.ctl = self.dir / "bird.ctl"
        ns.run("bird", "-c", str(self.dir / "bird.conf"), "-s", str(self.ctl), "-P", str(self.dir / "bird.pid"))
        wait_for("BIRD's control socket", lambda: self.ctl.exists(), timeout=10)

    def birdc(self, *cmd: str) -> str:
        # birdc blocks forever on a stopped bird (lab gotcha 10): bounded.
        return self.ns.run("timeout", "10", "birdc", "-s", str(self.ctl), *cmd, check=False).stdout

    def state(self, proto: str) -> str:
        """The `show protocols` line of `proto`."""
        for line in self.birdc("show", "protocols", proto).splitlines():
            if line.startswith(proto):
                return line
        return ""

    def stop(self):
        try:
            os.kill(int((self.dir / "bird.pid").read_text().strip()), signal.SIGKILL)
        except (OSError, ValueError):
            pass
        shutil.rmtree(self.dir, ignore_errors=True)

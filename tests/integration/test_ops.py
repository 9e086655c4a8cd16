"""Issue 16: operating pollux live — reload (SIGHUP, `pollux reload`),
the operator's commands (`pollux member disable`, `pollux vs drain`),
against FRR (bgpd + bfdd) and real kernel clients and backends.

Topology (namespace prefix pxo-):

    pxo-cl  cl0 10.80.0.1/24 ── ext0 [port "ext" 10.80.0.2]
            FRR (AS 65003, BFD 100 ms x 3) and the clients: the VIP routes
            the clients follow are the ones BGP installed
    pxo-be  be0 10.81.0.10-12/24 ── int0 [port "int" 10.81.0.2]
            echo servers (port 7000) and HTTP (port 8080) on each address

Virtual servers: echo (192.168.88.10:7000, three members) and echo2
(192.168.88.11:7000, two members). Persistent connections (echo.py) check
every exchange byte for byte, so one of them carried across a reload is a
byte-exact transfer across it.
"""
import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from netlab import POLLUX, Netns, Pollux, sh, veth, wait_for
from routers import Frr

HERE = Path(__file__).parent
BACKENDS = ["10.81.0.10", "10.81.0.11", "10.81.0.12"]


def members(addrs, port):
    return "[" + ", ".join(f"{{ address: {a}, port: {port} }}" for a in addrs) + "]"


def config(echo=BACKENDS, extra="", bfd="minTxMs: 100, minRxMs: 100, multiplier: 3",
           neighbors="    - { address: 10.80.0.1, asn: 65003, bfd: true, holdTime: 9 }\n"):
    return f"""
instance: {{ name: pxo }}
dataplane:
  workers: [1]
  pollMode: adaptive
  eal: ["--no-huge", "-m", "512", "--no-pci", "--vdev=net_af_xdp0,iface=ext0", "--vdev=net_af_xdp1,iface=int0"]
  ports:
    - {{ name: ext, device: net_af_xdp0, selfIps: ["10.80.0.2/24"] }}
    - {{ name: int, device: net_af_xdp1, selfIps: ["10.81.0.2/24"] }}
virtualServers:
  - {{ name: echo, address: 192.168.88.10, port: 7000, members: {members(echo, 7000)} }}
  - {{ name: echo2, address: 192.168.88.11, port: 7000, members: {members(BACKENDS[:2], 7000)} }}
{extra}bgp:
  asn: 65030
  routerId: 10.80.0.2
  drainDelayMs: 0
  neighbors:
{neighbors}bfd: {{ {bfd} }}
api: {{ socket: "@SOCKET@", metrics: "127.0.0.1:19467", metricsInterface: lo }}
"""


WEB2 = f"  - {{ name: web2, address: 192.168.88.12, port: 80, members: {members(BACKENDS[:2], 8080)} }}\n"

BGPD = """
router bgp 65003
 bgp router-id 10.80.0.1
 no bgp ebgp-requires-policy
 timers bgp 3 9
 neighbor 10.80.0.2 remote-as 65030
 neighbor 10.80.0.2 timers connect 1
 neighbor 10.80.0.2 bfd profile ops
exit
"""
BFDD = """
bfd
 profile ops
  detect-multiplier 3
  receive-interval 100
  transmit-interval 100
 exit
exit
"""


class Conn:
    """One persistent TCP connection from pxo-cl through a VIP (echo.py)."""

    def __init__(self, cl: Netns, vip: str, port: int = 7000):
        self.p = cl.popen(sys.executable, str(HERE / "echo.py"), "client", vip, str(port),
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.p.stdout.readline().strip() == "connected"
        self.member = self.exchange(1000).split()[1]

    def exchange(self, n: int) -> str:
        """Sends n bytes; "ok MEMBER" when they arrived intact."""
        self.p.stdin.write(f"{n}\n")
        self.p.stdin.flush()
        return self.p.stdout.readline().strip() or "error closed"

    def close(self):
        self.p.kill()
        self.p.wait(5)


def conns_on(cl: Netns, vip: str, want: set, tries: int = 40) -> dict:
    """Opens connections until each member in `want` has one (at most
    `tries`); returns member -> [Conn]."""
    by = defaultdict(list)
    for _ in range(tries):
        c = Conn(cl, vip)
        by[c.member].append(c)
        if want <= set(by):
            break
    assert want <= set(by), f"no connection reached {want - set(by)} in {tries}"
    return by


def close_all(by: dict):
    for cs in by.values():
        for c in cs:
            c.close()


@pytest.fixture(scope="module")
def lab():
    dp, cl, be = Netns("pxo-dp"), Netns("pxo-cl"), Netns("pxo-be")
    procs, frr, p = [], None, None
    try:
        veth(dp, "ext0", cl, "cl0")
        veth(dp, "int0", be, "be0")
        cl.run("ip", "addr", "add", "10.80.0.1/24", "dev", "cl0")
        for a in BACKENDS:
            be.run("ip", "addr", "add", f"{a}/24", "dev", "be0")
        be.run("ip", "route", "add", "default", "via", "10.81.0.2")
        for a in BACKENDS:
            for args in (("echo.py", "serve", a, "7000"), ("backend.py", a)):
                s = be.popen(sys.executable, str(HERE / args[0]), *args[1:], stdout=subprocess.PIPE, text=True)
                assert s.stdout.readline().strip() == "ready"
                procs.append(s)
        frr = Frr(cl, {"bfdd": BFDD, "bgpd": BGPD})
        # JSON logs (`--log-format json`, here through its environment
        # variable): every test below reads them.
        p = Pollux(dp, config(), env={"POLLUX_LOG_FORMAT": "json"})
        p.wait_ready()
        lab = {"pollux": p, "cl": cl, "be": be, "frr": frr, "dp": dp}
        wait_for("BFD Up", lambda: bfd(p)["state"] == "Up", timeout=60)
        wait_for("FRR Established", lambda: frr.state("10.80.0.2") == "Established", timeout=60)
        for vip in ("192.168.88.10", "192.168.88.11"):
            wait_for(f"{vip} in FRR's FIB", lambda: routed(cl, vip), timeout=30)
        yield lab
        assert p.stop() == 0, p.logs()
    finally:
        for s in procs:
            s.kill()
        if p and p.proc.poll() is None:
            p.proc.kill()
        if frr:
            frr.stop()
        for ns in (dp, cl, be):
            ns.delete()


def bfd(p: Pollux, peer: str = "10.80.0.1") -> dict:
    return next(s for s in p.show("bfd", "sessions")["sessions"] if s["peer"] == peer)


def frr_bfd(lab) -> dict:
    return next(x for x in lab["frr"].json("show bfd peers") if x["peer"] == "10.80.0.2")


def neighbors(p: Pollux) -> dict:
    return {n["address"]: n for n in p.show("bgp", "summary")["neighbors"]}


def routed(cl: Netns, vip: str) -> bool:
    return "proto bgp" in cl.run("ip", "route", "show", vip).stdout


def sessions(lab) -> tuple:
    """What a reload must not move: FRR's session counts, pollux's BFD
    transitions and state. (FRR's uptime, in whole seconds, must not fall.)"""
    n = lab["frr"].json("show bgp neighbors 10.80.0.2")["10.80.0.2"]
    b = bfd(lab["pollux"])
    return (n["bgpState"], n["connectionsEstablished"], n["connectionsDropped"],
            b["state"], b["up_transitions"], b["down_transitions"])


def uptime(lab) -> int:
    return lab["frr"].json("show bgp neighbors 10.80.0.2")["10.80.0.2"]["bgpTimerUpMsec"]


def write(p: Pollux, text: str):
    """Replaces the file atomically (as a ConfigMap update does)."""
    tmp = p.config.with_suffix(".new")
    tmp.write_text(text.replace("@SOCKET@", str(p.socket)))
    os.replace(tmp, p.config)


def reload_cli(p: Pollux, *args: str):
    return sh(str(POLLUX), "reload", "--api", str(p.socket), *args, check=False)


def generation(p: Pollux) -> int:
    return p.show("config")["generation"]


def test_sighup_with_an_unchanged_file_moves_nothing(lab):
    p, cl = lab["pollux"], lab["cl"]
    by = conns_on(cl, "192.168.88.10", set(BACKENDS))
    try:
        before, gen, up0 = sessions(lab), generation(p), uptime(lab)
        p.proc.send_signal(1)  # SIGHUP
        wait_for("the reload counted", lambda: sum(p.show("config")["reloads"].values()) >= 1, timeout=10)
        c = p.show("config")
        assert c["reloads"]["unchanged"] == 1, c["last_reload"]
        assert p.proc.poll() is None, "SIGHUP must not stop pollux"
        assert generation(p) == gen
        for member, cs in by.items():
            for c in cs:
                assert c.exchange(200_000) == f"ok {member}", "a flow moved or broke"
        assert sessions(lab) == before
        assert uptime(lab) >= up0, "the BGP session restarted"
        assert "configuration reloaded: unchanged" in p.logs()
    finally:
        close_all(by)


def test_a_bad_file_is_refused_and_the_old_config_serves(lab):
    p, cl = lab["pollux"], lab["cl"]
    good = p.config.read_text()
    gen = generation(p)
    try:
        write(p, config(echo=[BACKENDS[0], "10.81.0.999"]))
        r = reload_cli(p)
        assert r.returncode != 0, r.stdout
        assert "virtualServers[0].members[1].address" in r.stderr, r.stderr
        assert generation(p) == gen
        assert "virtualServers[0].members[1].address" in p.logs()
        # What only a restart can change is refused by name.
        write(p, config().replace("iface=int0", "iface=int1"))
        r = reload_cli(p)
        assert r.returncode != 0 and "dataplane.eal" in r.stderr and "restart" in r.stderr, r.stderr
        assert generation(p) == gen
        # The old config still serves, every member of it.
        by = conns_on(cl, "192.168.88.10", set(BACKENDS))
        close_all(by)
    finally:
        p.config.write_text(good)


def test_reload_adds_a_vs_removes_a_member_changes_bfd_timers_and_keeps_the_rest(lab):
    p, cl = lab["pollux"], lab["cl"]
    removed = BACKENDS[1]  # the middle one: the members after it keep their place
    by = conns_on(cl, "192.168.88.10", set(BACKENDS))
    by2 = conns_on(cl, "192.168.88.11", set(BACKENDS[:2]))
    try:
        before, gen, up0 = sessions(lab), generation(p), uptime(lab)
        fb0 = frr_bfd(lab)
        assert fb0["status"] == "up" and fb0["remote-receive-interval"] == 100, fb0
        assert not routed(cl, "192.168.88.12")
        write(p, config(echo=[BACKENDS[0], BACKENDS[2]], extra=WEB2,
                        bfd="minTxMs: 150, minRxMs: 200, multiplier: 4"))
        r = reload_cli(p)  # the file watcher may have applied it already
        assert r.returncode == 0, r.stderr
        wait_for("generation + 1", lambda: generation(p) == gen + 1, timeout=5)
        assert "bfd: 100/100/3 -> 150/200/4" in p.logs()
        # The BFD session took its new timers by a Poll Sequence, staying
        # Up on both sides: FRR sees them, its session never went down.
        wait_for("FRR sees the new BFD timers", lambda: frr_bfd(lab)["remote-receive-interval"] == 200, timeout=10)
        fb = frr_bfd(lab)
        assert fb["status"] == "up" and fb["remote-detect-multiplier"] == 4, fb
        assert fb["uptime"] >= fb0["uptime"], f"FRR's BFD session restarted: {fb0} -> {fb}"
        s = bfd(p)
        assert (s["local"]["required_min_rx_ms"], s["local"]["multiplier"]) == (200, 4), s
        # The new VIP is advertised to FRR and served.
        wait_for("192.168.88.12 in FRR's FIB", lambda: routed(cl, "192.168.88.12"), timeout=15)
        got = cl.run("curl", "-sS", "--max-time", "5", "http://192.168.88.12/", check=False)
        assert got.returncode == 0 and got.stdout.split()[0] in BACKENDS[:2], got.stderr
        # The removed member's flows are reset; every other flow carries on
        # byte for byte, on its member.
        for member, cs in by.items():
            for c in cs:
                out = c.exchange(200_000)
                if member == removed:
                    assert out.startswith("error"), f"a flow of the removed member went on: {out}"
                else:
                    assert out == f"ok {member}", out
        for member, cs in by2.items():
            for c in cs:
                assert c.exchange(200_000) == f"ok {member}"
        # New flows never reach it.
        fresh = conns_on(cl, "192.168.88.10", {BACKENDS[0], BACKENDS[2]})
        try:
            assert removed not in fresh
            more = [Conn(cl, "192.168.88.10") for _ in range(10)]
            assert removed not in {c.member for c in more}
            for c in more:
                c.close()
        finally:
            close_all(fresh)
        # BGP and BFD sessions untouched.
        assert sessions(lab) == before
        assert uptime(lab) >= up0, "the BGP session restarted"
        v = p.show("virtual-servers")["virtual_servers"]
        assert [x["name"] for x in v] == ["echo", "echo2", "web2"]
        assert p.show("config")["retired_slots"] == 1
        assert frr_bfd(lab)["uptime"] >= fb["uptime"]
    finally:
        close_all(by)
        close_all(by2)


def test_reload_adds_changes_and_removes_bgp_neighbors(lab):
    """A neighbor (with BFD) added and removed beside FRR's: FRR's BGP and
    BFD sessions and the flows through them do not move; then FRR's own
    neighbor changed: that session alone restarts, with the new setting."""
    p, cl = lab["pollux"], lab["cl"]
    ours = "    - { address: 10.80.0.1, asn: 65003, bfd: true, holdTime: 9 }\n"
    extra = "    - { address: 10.80.0.9, asn: 65009, bfd: true }\n"
    keep = p.config.read_text()
    by = conns_on(cl, "192.168.88.10", {BACKENDS[0]})
    try:
        before, gen, up0, fb0 = sessions(lab), generation(p), uptime(lab), frr_bfd(lab)
        text = keep.replace(ours.strip("\n"), (ours + extra).strip("\n"))
        assert text != keep
        write(p, text)
        r = reload_cli(p)
        assert r.returncode == 0, r.stderr
        wait_for("generation + 1", lambda: generation(p) == gen + 1, timeout=5)
        msg = next(l for l in p.logs().splitlines() if "BGP neighbor 10.80.0.9 added" in l)
        assert "BFD session 10.80.0.9 added" in msg, msg
        assert "10.80.0.1" not in msg, msg
        n = neighbors(p)
        assert n["10.80.0.9"]["state"] != "Established" and n["10.80.0.1"]["state"] == "Established", n
        wait_for("the new BFD session runs", lambda: bfd(p, "10.80.0.9").get("local_discriminator"), timeout=5)
        assert bfd(p, "10.80.0.9")["state"] == "Down"
        assert p.show("bfd", "sessions")["rejected_changes"] == 0
        # Removed again.
        write(p, keep)
        r = reload_cli(p)
        assert r.returncode == 0, r.stderr
        wait_for("generation + 2", lambda: generation(p) == gen + 2, timeout=5)
        assert set(neighbors(p)) == {"10.80.0.1"}
        assert [s["peer"] for s in p.show("bfd", "sessions")["sessions"]] == ["10.80.0.1"]
        # FRR's sessions and the flow went on through both reloads.
        for member, cs in by.items():
            for c in cs:
                assert c.exchange(100_000) == f"ok {member}"
        assert sessions(lab) == before
        assert uptime(lab) >= up0, "the BGP session restarted"
        fb = frr_bfd(lab)
        assert fb["status"] == "up" and fb["uptime"] >= fb0["uptime"], (fb0, fb)

        # FRR's neighbor changed (hold time 9 -> 6): that session restarts
        # and negotiates it; the VIPs come back.
        conns = before[1]
        write(p, keep.replace("holdTime: 9", "holdTime: 6"))
        r = reload_cli(p)
        assert r.returncode == 0, r.stderr
        wait_for("generation + 3", lambda: generation(p) == gen + 3, timeout=5)
        assert "BGP neighbor 10.80.0.1 changed" in p.logs()
        def renegotiated():
            n = lab["frr"].json("show bgp neighbors 10.80.0.2")["10.80.0.2"]
            ours = p.show("bgp", "neighbors")["neighbors"][0]
            return (n["bgpState"] == "Established" and n["connectionsEstablished"] == conns + 1
                    and ours["state"] == "Established" and ours["negotiated"]["hold_time"] == 6)
        wait_for("FRR re-established with hold time 6", renegotiated, timeout=30)
        assert bfd(p)["state"] == "Up" and bfd(p)["down_transitions"] == before[5], "BFD must not flap"
        for vip in ("192.168.88.10", "192.168.88.11"):
            wait_for(f"{vip} back in FRR's FIB", lambda: routed(cl, vip), timeout=30)
    finally:
        # (The changed file stays: it is what runs now.)
        close_all(by)


def test_a_disabled_member_keeps_its_flows_and_takes_no_new_ones(lab):
    p, cl = lab["pollux"], lab["cl"]
    target = BACKENDS[0]
    by = conns_on(cl, "192.168.88.11", {target})
    try:
        r = sh(str(POLLUX), "member", "disable", "echo2", f"{target}:7000", "--api", str(p.socket), check=False)
        assert r.returncode == 0 and "disabled" in r.stdout, r.stderr
        m = next(x for x in p.show("virtual-servers")["virtual_servers"][1]["members"] if x["address"] == target)
        assert m["disabled"]
        for c in by[target]:
            assert c.exchange(1_000_000) == f"ok {target}", "its running transfer must complete"
        new = [Conn(cl, "192.168.88.11") for _ in range(12)]
        assert {c.member for c in new} == {BACKENDS[1]}
        for c in new:
            c.close()
        r = sh(str(POLLUX), "member", "enable", "echo2", target, "--api", str(p.socket), check=False)
        assert r.returncode == 0, r.stderr
        back = conns_on(cl, "192.168.88.11", {target})
        close_all(back)
        bad = sh(str(POLLUX), "member", "disable", "echo2", "10.81.0.99", "--api", str(p.socket), check=False)
        assert bad.returncode != 0 and "no member" in bad.stderr
    finally:
        close_all(by)


def test_a_drained_vs_is_withdrawn_and_keeps_its_flows(lab):
    p, cl = lab["pollux"], lab["cl"]
    by = conns_on(cl, "192.168.88.11", {BACKENDS[1]})
    try:
        r = sh(str(POLLUX), "vs", "drain", "echo2", "--api", str(p.socket), check=False)
        assert r.returncode == 0, r.stderr
        wait_for("192.168.88.11 withdrawn", lambda: not routed(cl, "192.168.88.11"), timeout=15)
        assert routed(cl, "192.168.88.10")
        # The flow keeps going (the client's route is gone: send through
        # pollux's address directly, as a router still holding it would).
        cl.run("ip", "route", "add", "192.168.88.11/32", "via", "10.80.0.2")
        try:
            for c in by[BACKENDS[1]]:
                assert c.exchange(100_000) == f"ok {BACKENDS[1]}"
        finally:
            cl.run("ip", "route", "del", "192.168.88.11/32", "via", "10.80.0.2")
        r = sh(str(POLLUX), "vs", "undrain", "echo2", "--api", str(p.socket), check=False)
        assert r.returncode == 0, r.stderr
        wait_for("192.168.88.11 announced again", lambda: routed(cl, "192.168.88.11"), timeout=15)
    finally:
        close_all(by)


SHOWS = {  # what -> a column header its table has
    ("interfaces",): "DEVICE", ("stats",): "port ext", ("virtual-servers",): "MEMBER",
    ("connections",): "CAPACITY", ("bgp", "summary"): "NEIGHBOR", ("bgp", "neighbors"): "HOLD",
    ("bgp", "routes"): "NEXT HOP", ("bfd", "sessions"): "DETECT (ms)", ("config",): "generation",
}


def test_show_prints_tables_and_json_and_logs_are_json(lab):
    p = lab["pollux"]
    for what, header in SHOWS.items():
        t = sh(str(POLLUX), "show", *what, "--api", str(p.socket), check=False)
        assert t.returncode == 0, t.stderr
        assert header in t.stdout and not t.stdout.lstrip().startswith("{"), f"{what}: {t.stdout}"
        j = sh(str(POLLUX), "show", *what, "--json", "--api", str(p.socket), check=False)
        assert isinstance(json.loads(j.stdout), dict), what
    rows = sh(str(POLLUX), "show", "bfd", "sessions", "--api", str(p.socket)).stdout.splitlines()
    assert rows[1].split()[:3] == ["10.80.0.1", "ext", "Up"], rows
    # Every line tracing wrote is one JSON object with its fields (the
    # EAL's own lines are text: DPDK prints them itself).
    logs = [json.loads(l) for l in p.logs().splitlines() if l.startswith('{"timestamp"')]
    assert len(logs) >= 5
    reloads = [l for l in logs if l["fields"].get("message", "").startswith("configuration reloaded")]
    assert reloads and all(l["level"] == "INFO" and "generation" in l["fields"] for l in reloads), reloads
    assert any(l["target"].startswith("ctrl::bgp") and l.get("span", {}).get("peer") == "10.80.0.1" for l in logs)


def scrape(lab) -> str:
    return lab["dp"].run(sys.executable, "-c", "import urllib.request as u; "
                         "print(u.urlopen('http://127.0.0.1:19467/metrics').read().decode())").stdout


def test_metrics_export_l4_bfd_link_and_config(lab):
    p, cl = lab["pollux"], lab["cl"]
    by = conns_on(cl, "192.168.88.10", {BACKENDS[0]})
    close_all(by)
    m = scrape(lab)
    def value(series: str) -> float:
        line = next((l for l in m.splitlines() if l.startswith(series + " ")), None)
        assert line is not None, f"{series} not exported"
        return float(line.rsplit(" ", 1)[1])
    assert value('pollux_vs_new_flows_total{instance="pxo",vs="echo"}') >= 1
    assert value('pollux_bfd_session_up{instance="pxo",peer="10.80.0.1"}') == 1
    assert value('pollux_port_link_up{instance="pxo",port="ext"}') == 1
    assert value('pollux_config_generation{instance="pxo"}') == generation(p)
    assert "pollux_l4_drops_total{" in m and "pollux_conntrack_entries{" in m
    # Every metric the chart's Grafana dashboard queries is in a real scrape.
    dash = json.loads((HERE.parent.parent / "helm" / "pollux" / "dashboards" / "pollux.json").read_text())
    used = {n for panel in dash["panels"] for t in panel["targets"] for n in re.findall(r"\bpollux_[a-z0-9_]+", t["expr"])}
    scraped = {l.split("{")[0].split(" ")[0] for l in m.splitlines() if l.startswith("pollux_")}
    assert len(used) >= 20 and used <= scraped, sorted(used - scraped)
    ifs = {i["name"]: i for i in p.show("interfaces")["interfaces"]}
    assert ifs["ext"]["link"]["up"] is True, ifs

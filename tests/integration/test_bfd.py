"""Issue 5: BFD in pollux's workers against real FRR bfdd and BIRD 2.

Topology (namespace prefix pxd-):

    pxd-frr  f0 10.50.0.1/24 ── [pxd-br: bridge br0] ── dfrr0 [pollux port "tofrr" 10.50.0.2]
    pxd-bird b0 10.60.0.1/24 ───────────────────────── dbird0 [pollux port "tobird" 10.60.0.2]

The bridge lets a test cut the FRR link silently (both ends keep carrier).
Both peers run BFD 50 ms x 3. FRR's session is a bfdd `peer`; BIRD asks for
its session through a static route with `bfd`.
"""
import os
import subprocess
import time
from pathlib import Path

import pytest

from netlab import Netns, Pollux, sh, veth, wait_for
from routers import Bird, Frr

CONFIG = """
instance: { name: pxd }
dataplane:
  workers: [1]
  pollMode: @POLLMODE@
  eal: ["--no-huge", "-m", "512", "--no-pci", "--vdev=net_af_xdp0,iface=dfrr0", "--vdev=net_af_xdp1,iface=dbird0"]
  ports:
    - { name: tofrr, device: net_af_xdp0, selfIps: ["10.50.0.2/24"] }
    - { name: tobird, device: net_af_xdp1, selfIps: ["10.60.0.2/24"] }
bgp:
  asn: 65010
  routerId: 10.50.0.2
  neighbors:
    - { address: 10.50.0.1, asn: 65001, bfd: true }
    - { address: 10.60.0.1, asn: 65002, bfd: true }
bfd: { minTxMs: 50, minRxMs: 50, multiplier: 3 }
api: { socket: "@SOCKET@" }
"""

BFDD = """
bfd
 peer 10.50.0.2 local-address 10.50.0.1
  detect-multiplier 3
  receive-interval 50
  transmit-interval 50
 exit
exit
"""

BIRD = """
log "@RUN@/bird.log" all;
router id 10.60.0.1;
protocol device { scan time 10; }
protocol bfd { interface "*" { min rx interval 50 ms; min tx interval 50 ms; multiplier 3; }; }
protocol static { ipv4; route 10.99.0.0/24 via 10.60.0.2 bfd; }
"""


def realtime(*pidfiles: Path):
    """SCHED_FIFO for every thread of the peers' BFD daemons.

    FRR and BIRD stand in for routers on their own hardware: what is under
    test is pollux, at normal priority, on a loaded host. At normal priority
    the peers shared this VM's two CPUs with the CPU hogs and whatever else
    runs here, and were seen runnable but unscheduled for over 150 ms (and up
    to seconds), then rightly timed out by pollux, or timing pollux out
    themselves because they had not read its packets. Real-time peers take
    that noise out of the measurement; pollux gets no such help.
    """
    for f in pidfiles:
        pid = wait_for(f"{f.name}", lambda: f.exists() and f.read_text().strip(), timeout=10)
        sh("chrt", "--fifo", "--all-tasks", "--pid", "10", pid)


@pytest.fixture(scope="module")
def lab():
    dp, br, f, b = Netns("pxd-dp"), Netns("pxd-br"), Netns("pxd-frr"), Netns("pxd-bird")
    frr = bird = p = None
    try:
        br.run("ip", "link", "add", "br0", "type", "bridge")
        br.run("ip", "link", "set", "br0", "up")
        veth(dp, "dfrr0", br, "xdp0")
        veth(f, "f0", br, "xfrr0")
        for i in ("xdp0", "xfrr0"):
            br.run("ip", "link", "set", i, "master", "br0")
        f.run("ethtool", "-K", "f0", "tx", "off")
        veth(dp, "dbird0", b, "b0")
        f.run("ip", "addr", "add", "10.50.0.1/24", "dev", "f0")
        b.run("ip", "addr", "add", "10.60.0.1/24", "dev", "b0")
        p = Pollux(dp, CONFIG.replace("@POLLMODE@", os.environ.get("POLLUX_BFD_POLLMODE", "adaptive")))
        p.wait_ready()
        frr = Frr(f, {"bfdd": BFDD})
        bird = Bird(b, BIRD)
        realtime(frr.dir / "bfdd.pid", bird.dir / "bird.pid")
        yield {"pollux": p, "frr": frr, "bird": bird, "br": br}
        assert p.stop() == 0, p.logs()
    finally:
        for r in (frr, bird):
            if r:
                r.stop()
        if p and p.proc.poll() is None:
            p.proc.kill()
        for ns in (dp, br, f, b):
            ns.delete()


def session(p: Pollux, peer: str) -> dict:
    return next(s for s in p.show("bfd", "sessions")["sessions"] if s["peer"] == peer)


def frr_peer(frr: Frr) -> dict:
    return next(x for x in frr.json("show bfd peers") if x["peer"] == "10.50.0.2")


def test_sessions_come_up_with_frr_and_bird_at_50ms(lab):
    p, frr, bird = lab["pollux"], lab["frr"], lab["bird"]
    wait_for("FRR's session Up", lambda: frr_peer(frr)["status"] == "up", timeout=15)
    wait_for("BIRD's session Up", lambda: " Up " in bird.birdc("show", "bfd", "sessions"), timeout=15)
    for peer in ("10.50.0.1", "10.60.0.1"):
        s = wait_for(f"pollux's session to {peer} Up", lambda: session(p, peer)["state"] == "Up" and session(p, peer), timeout=10)
        assert s["tx_interval_ms"] == 50 and s["detection_time_ms"] == 150, s
        assert s["remote"]["multiplier"] == 3 and s["remote_discriminator"] != 0
    fp = frr_peer(frr)
    # FRR shows the negotiated intervals.
    assert fp["transmit-interval"] == 50 and fp["receive-interval"] == 50, fp
    assert fp["remote-transmit-interval"] == 50 and fp["remote-receive-interval"] == 50, fp
    print(frr.vtysh("show bfd peers"))
    print(bird.birdc("show", "bfd", "sessions"))


def cpu_hogs(n: int) -> list[subprocess.Popen]:
    """`n` busy loops, each in a session of its own.

    Own sessions, so own autogroups: the load is an unrelated workload, as it
    would be in production, rather than a member of pytest's scheduling group,
    which pollux is in. That is what made this test flap (2 runs in 3, in
    adaptive mode only): on this lab's kernel (6.18, EEVDF, autogroups on) a
    group holding a CPU-bound task and a task that sleeps thousands of times
    a second (the adaptive worker) starves the tasks of other groups. FRR's
    bfdd and BIRD sat runnable but unscheduled for 150 ms to 1 s, really went
    silent (their own interfaces' captures show the gaps), and pollux rightly
    timed them out. Reproduced without pollux: a 100 us nanosleep loop and
    two busy loops in one session make a 40 ms timer loop in another session
    wake up to ~140 ms late; with the busy loops in their own sessions, < 4 ms.
    """
    return [subprocess.Popen(["sh", "-c", "while :; do :; done"], start_new_session=True) for _ in range(n)]


def soak_failure(lab, peer: str, s: dict, seconds: float) -> str:
    """Both ends' view of a session that left Up, and the worker loop's
    longest gap since start: enough to tell a stalled worker (a gap near the
    150 ms detection time; the peer times pollux out and pollux goes down
    with NeighborSignaledDown) from a silent peer (pollux's diag
    ControlDetectionTimeExpired with short gaps)."""
    p = lab["pollux"]
    gap = [w["max_gap_us"] for w in p.show("stats")["workers"]]
    if peer == "10.50.0.1":
        fp = frr_peer(lab["frr"])
        theirs = f"FRR: status {fp.get('status')}, diag {fp.get('diagnostic')}, remote diag {fp.get('remote-diagnostic')}"
    else:
        theirs = "BIRD: " + " | ".join(l.strip() for l in lab["bird"].birdc("show", "bfd", "sessions").splitlines() if "10.60.0.2" in l)
    return (
        f"pollux's BFD session to {peer} left Up within {seconds:.1f} s of CPU load: "
        f"state {s['state']} diag {s['diagnostic']}, remote {s['remote_state']} diag {s['remote_diagnostic']}, "
        f"up/down transitions {s['up_transitions']}/{s['down_transitions']}, "
        f"BFD drops {({k: v for k, v in p.show('bfd', 'sessions')['drops'].items() if v})}; "
        f"worker loop's longest gap {gap} us; {theirs}"
    )


def test_sessions_stay_up_under_cpu_load(lab):
    """60 s (POLLUX_BFD_SOAK_S) with both CPUs loaded: no down transition
    on either end."""
    p, frr = lab["pollux"], lab["frr"]
    seconds = float(os.environ.get("POLLUX_BFD_SOAK_S", "60"))
    wait_for("sessions Up", lambda: all(session(p, a)["state"] == "Up" for a in ("10.50.0.1", "10.60.0.1")), timeout=15)
    before = {a: session(p, a)["down_transitions"] for a in ("10.50.0.1", "10.60.0.1")}
    frr_before = frr_peer(frr).get("downtime", 0)
    hogs = cpu_hogs(2)
    try:
        start = time.monotonic()
        while time.monotonic() < start + seconds:
            for a in before:
                s = session(p, a)
                if s["state"] != "Up" or s["down_transitions"] != before[a]:
                    raise AssertionError(soak_failure(lab, a, s, time.monotonic() - start))
            time.sleep(1)  # a soak: the sample rate, not a readiness wait
    finally:
        for h in hogs:
            h.kill()
    print("worker loop: longest gap", [w["max_gap_us"] for w in p.show("stats")["workers"]], "us")
    fp = frr_peer(frr)
    assert fp["status"] == "up" and fp.get("downtime", 0) == frr_before, fp
    assert " Up " in lab["bird"].birdc("show", "bfd", "sessions")


def test_silent_link_cut_is_detected_and_recovers(lab):
    p, br = lab["pollux"], lab["br"]
    wait_for("FRR session Up", lambda: session(p, "10.50.0.1")["state"] == "Up", timeout=15)
    downs = session(p, "10.50.0.1")["down_transitions"]
    br.run("ip", "link", "set", "xfrr0", "nomaster")  # carrier stays up on both ends
    t0 = time.monotonic()
    try:
        s = wait_for("pollux to detect the cut", lambda: session(p, "10.50.0.1")["state"] != "Up" and session(p, "10.50.0.1"), timeout=5, interval=0.005)
        took = (time.monotonic() - t0) * 1000
        print(f"detected after {took:.0f} ms (3 x 50 ms = 150 ms; includes the polling of this test)")
        assert s["diagnostic"] == "ControlDetectionTimeExpired", s
        assert s["down_transitions"] == downs + 1
        # The BIRD session, on another port, did not notice.
        assert session(p, "10.60.0.1")["state"] == "Up"
    finally:
        br.run("ip", "link", "set", "xfrr0", "master", "br0")
    wait_for("the session to come back Up", lambda: session(p, "10.50.0.1")["state"] == "Up", timeout=15)


MALFORMED = {
    # name of the drop counter: (BFD payload, TTL)
    "bad_version": (bytes([0x40, 0x40, 3, 24]) + bytes(20), 255),           # version 2
    "zero_detect_mult": (bytes([0x20, 0x40, 0, 24, 0, 0, 0, 9]) + bytes(16), 255),
    "bad_length": (bytes([0x20, 0x40, 3, 20]) + bytes(20), 255),            # length < 24
    "multipoint": (bytes([0x20, 0x41, 3, 24, 0, 0, 0, 9]) + bytes(16), 255),  # M bit
    "zero_my_discriminator": (bytes([0x20, 0x40, 3, 24]) + bytes(20), 255),
    "zero_your_discriminator": (bytes([0x20, 0xC0, 3, 24, 0, 0, 0, 9]) + bytes(16), 255),  # Up, your 0
    "bad_ttl": (bytes([0x20, 0x40, 3, 24, 0, 0, 0, 9, 0, 0, 0, 0]) + bytes(12), 64),  # single hop, TTL 64
    "truncated": (bytes([0x20, 0x40, 3]), 255),
}

SEND = """
import socket, sys
payload, ttl = bytes.fromhex(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
s.bind(("10.50.0.1", 49500))
for _ in range(3):
    s.sendto(payload, ("10.50.0.2", 3784))
"""


def test_malformed_bfd_is_discarded_and_counted(lab):
    """RFC 5880 §6.8.6: each malformed control packet from the peer's
    address is discarded and counted by reason; the session stays Up."""
    p = lab["pollux"]
    f = lab["frr"].ns
    wait_for("FRR session Up", lambda: session(p, "10.50.0.1")["state"] == "Up", timeout=15)
    before = p.show("bfd", "sessions")["drops"]
    for reason, (payload, ttl) in MALFORMED.items():
        f.run("python3", "-c", SEND, payload.hex(), str(ttl))
    def counted():
        d = p.show("bfd", "sessions")["drops"]
        return all(d[r] - before[r] >= 3 for r in MALFORMED) and d
    wait_for("every malformed BFD packet counted under its reason", counted, timeout=5)
    s = session(p, "10.50.0.1")
    assert s["state"] == "Up", s

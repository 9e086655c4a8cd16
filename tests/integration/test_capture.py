"""Issue 16: `pollux capture` — pcapng from the workers, read by tshark.

Topology (namespace prefix cap-):

    cap-cl  cl0 10.170.0.1/24 ── ext0 [port "ext" 10.170.0.2]
            route to the VIP via pollux
    cap-be  be0 10.170.1.10/24 ── int0 [port "int" 10.170.1.2]
            backend.py: UDP echo on 5353 ("<its address> <payload>")

Virtual server: echo, UDP 192.168.170.10:7170 -> 10.170.1.10:5353 (DNAT,
no SNAT): on port ext a request comes in as client -> VIP and its answer
goes out as VIP -> client. Two workers: every worker has a capture ring,
ctrl merges them.
"""
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netlab import POLLUX, Netns, Pollux, sh, teardown, veth, wait_for

HERE = Path(__file__).parent
VIP, MEMBER, CLIENT = "192.168.170.10", "10.170.1.10", "10.170.0.1"
CPORT = 40170

CONFIG = f"""
instance: {{ name: cap }}
dataplane:
  workers: [0, 1]
  pollMode: adaptive
  eal: ["--no-huge", "-m", "512", "--no-pci", "--vdev=net_af_xdp0,iface=ext0", "--vdev=net_af_xdp1,iface=int0"]
  ports:
    - {{ name: ext, device: net_af_xdp0, selfIps: ["10.170.0.2/24"] }}
    - {{ name: int, device: net_af_xdp1, selfIps: ["10.170.1.2/24"] }}
virtualServers:
  - {{ name: echo, address: {VIP}, port: 7170, protocol: udp, members: [{{ address: {MEMBER}, port: 5353 }}] }}
api: {{ socket: "@SOCKET@" }}
"""

# Sends N datagrams "cap-XXXX" from CLIENT:CPORT to the VIP, one at a
# time, each answered before the next; prints how many were.
SENDER = f"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("{CLIENT}", {CPORT}))
s.settimeout(2)
got = 0
for i in range(int(sys.argv[1])):
    s.sendto(b"cap-%04d" % i, ("{VIP}", 7170))
    data, _ = s.recvfrom(2048)
    assert data == b"{MEMBER} cap-%04d" % i, data
    got += 1
print(got)
"""


@pytest.fixture(scope="module")
def lab():
    dp, cl, be = Netns("cap-dp"), Netns("cap-cl"), Netns("cap-be")
    backend, p = None, None
    try:
        veth(dp, "ext0", cl, "cl0")
        veth(dp, "int0", be, "be0")
        cl.run("ip", "addr", "add", f"{CLIENT}/24", "dev", "cl0")
        cl.run("ip", "route", "add", "192.168.170.0/24", "via", "10.170.0.2")
        be.run("ip", "addr", "add", f"{MEMBER}/24", "dev", "be0")
        be.run("ip", "route", "add", "default", "via", "10.170.1.2")
        backend = be.popen(sys.executable, str(HERE / "backend.py"), MEMBER, stdout=subprocess.PIPE, text=True)
        assert backend.stdout.readline().strip() == "ready"
        p = Pollux(dp, CONFIG)
        p.wait_ready()
        # The path works before anything is captured (ARP both sides).
        wait_for("an echo through the VIP", lambda: send(cl, 1) == 1, timeout=15)
        yield {"pollux": p, "cl": cl, "dir": p.dir}
        assert p.stop() == 0, p.logs()
    finally:
        teardown([backend] if backend else [], p, (dp, cl, be))


def send(cl: Netns, n: int) -> int:
    r = cl.run(sys.executable, "-c", SENDER, str(n), check=False, timeout=60)
    return int(r.stdout.strip() or 0) if r.returncode == 0 else 0


def start(p: Pollux, out: Path, *args: str, stdout: bool = False) -> subprocess.Popen:
    """`pollux capture` in the background, once it said it runs; with
    `stdout`, as `-w -` redirected into `out`."""
    sink = open(out, "wb") if stdout else subprocess.DEVNULL
    c = subprocess.Popen([str(POLLUX), "capture", *args, "-w", "-" if stdout else str(out),
                          "--api", str(p.socket)], stdout=sink, stderr=subprocess.PIPE, text=True)
    if stdout:
        sink.close()  # the child holds its own copy
    line = c.stderr.readline()
    assert line.startswith("capturing on"), line + c.stderr.read()
    return c


def finish(c: subprocess.Popen, timeout: float = 20) -> str:
    """Waits for the CLI; its stderr. It must exit 0."""
    _, err = c.communicate(timeout=timeout)
    assert c.returncode == 0, err
    return err


def tshark(path: Path, *fields: str) -> list[list[str]]:
    args = ["tshark", "-r", str(path), "-T", "fields", "-E", "separator=|"]
    for f in fields:
        args += ["-e", f]
    r = sh(*args, check=False)
    assert r.returncode == 0, f"tshark cannot read {path}: {r.stderr}"
    # Flags print as hex (0x00000001): as decimal.
    norm = lambda v: str(int(v, 16)) if v.startswith("0x") else v  # noqa: E731
    return [[norm(v) for v in line.split("|")] for line in r.stdout.splitlines() if line]


def test_capture_during_traffic_has_the_traffics_frames(lab):
    p, cl = lab["pollux"], lab["cl"]
    n = 20
    out = lab["dir"] / "udp.pcapng"
    c = start(p, out, "ext", "--filter", f"udp/{CPORT}", "--count", str(2 * n))
    assert send(cl, n) == n
    err = finish(c)
    assert f"{2 * n} frames captured, 0 dropped" in err, err
    assert p.show("stats")["capture"] == {"port": "ext", "running": False, "captured": 2 * n,
                                          "capture_dropped": 0}
    # tshark reads it: pcapng, Ethernet, both directions marked.
    kind = sh("capinfos", "-t", "-E", str(out), check=False).stdout
    assert "pcapng" in kind and "Ethernet" in kind, kind
    rows = tshark(out, "frame.packet_flags_direction", "ip.src", "ip.dst", "udp.srcport",
                  "udp.dstport", "udp.payload", "frame.len", "frame.cap_len")
    assert len(rows) == 2 * n, rows
    want = []
    for i in range(n):
        req = f"cap-{i:04d}".encode()
        want.append(["1", CLIENT, VIP, str(CPORT), "7170", req.hex()])
        want.append(["2", VIP, CLIENT, "7170", str(CPORT), (MEMBER.encode() + b" " + req).hex()])
    # Each request (in) before its answer (out), byte for byte, in the
    # order the traffic had.
    got = [r[:6] for r in rows]
    assert got == want, got
    # Whole frames: captured length = frame length.
    assert all(r[6] == r[7] for r in rows), rows


def test_one_capture_at_a_time_and_every_way_to_stop(lab):
    p, cl, d = lab["pollux"], lab["cl"], lab["dir"]
    api = ["--api", str(p.socket)]
    # An unknown port is refused, naming the ports.
    r = sh(str(POLLUX), "capture", "nope", "-w", str(d / "x.pcapng"), *api, check=False)
    assert r.returncode == 1 and "no port named" in r.stderr and "ext" in r.stderr, r.stderr
    # Ctrl-C: the CLI asks the daemon to stop; the file is whole.
    a = start(p, d / "a.pcapng", "int")
    assert p.show("stats")["capture"]["running"] is True
    r = sh(str(POLLUX), "capture", "ext", "-w", str(d / "b.pcapng"), *api, check=False)
    assert r.returncode == 1 and "already running on int" in r.stderr, r.stderr
    assert send(cl, 3) == 3
    a.send_signal(signal.SIGINT)
    err = finish(a)
    assert "frames captured, 0 dropped" in err, err
    # On int: three requests out to the member, three answers in (and
    # maybe ARP): the unfiltered capture has them.
    rows = tshark(d / "a.pcapng", "frame.packet_flags_direction", "ip.dst", "udp.dstport")
    assert sum(r == ["2", MEMBER, "5353"] for r in rows) == 3, rows
    assert sum(r == ["1", CLIENT, str(CPORT)] for r in rows) == 3, rows
    # --duration ends it by itself.
    t0 = time.monotonic()
    b = start(p, d / "b.pcapng", "ext", "--duration", "0.5")
    finish(b)
    assert 0.4 < time.monotonic() - t0 < 10
    tshark(d / "b.pcapng", "frame.len")
    # `pollux capture stop` ends the running one; then there is none.
    c = start(p, d / "c.pcapng", "ext", "--filter", "icmp")
    r = sh(str(POLLUX), "capture", "stop", *api, check=False)
    assert r.returncode == 0 and "capture on ext stopping" in r.stdout, r.stdout + r.stderr
    assert "0 frames captured, 0 dropped" in finish(c)
    assert tshark(d / "c.pcapng", "frame.len") == []
    r = sh(str(POLLUX), "capture", "stop", *api, check=False)
    assert r.returncode == 1 and "no capture is running" in r.stderr, r.stderr
    # A client that vanishes (kill -9) ends its capture too: the next
    # one starts.
    k = start(p, d / "k.pcapng", "ext")
    k.kill()
    k.wait(5)
    wait_for("the killed client's capture to end", lambda: sh(
        str(POLLUX), "capture", "stop", *api, check=False).returncode == 1, timeout=5)
    # `-w -`: the pcapng on standard output.
    e = start(p, d / "e.pcapng", "ext", "--count", "1", "--filter", "udp", stdout=True)
    assert send(cl, 1) == 1
    assert "1 frames captured" in finish(e)
    assert tshark(d / "e.pcapng", "ip.dst", "udp.payload") == [[VIP, b"cap-0000".hex()]]

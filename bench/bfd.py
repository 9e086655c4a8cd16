#!/usr/bin/env python3
"""Bench row (g): BFD detection time at 10 ms x 3, pollux against FRR bfdd,
and what 1 000 sessions cost (issue 8, DESIGN.md §6).

Usage (root):  bench/bfd.py --out DIR [--failures N] [--ref-failures N]
                            [--poll-mode adaptive|busy] [--no-cost] [--build]

  --out DIR          writes DIR/bfd.csv (the table rows), DIR/bfd_runs.csv
                     (every failure) and DIR/logs/ (pollux, FRR bfdd, the
                     packet capture, the cost binary, callgrind)
  --failures N       silent-peer failures pollux must detect (default 50)
  --ref-failures N   frozen-pollux failures FRR bfdd must detect, the
                     reference column (default: as many as --failures)
  --poll-mode M      pollux's dataplane.pollMode (default adaptive, as on a
                     shared 2-core machine; busy takes one CPU whole)
  --no-cost          skip row (g2)
  --build            cargo build --release -p ctrl -p bench first (also done
                     when a binary is missing)
About 2 minutes with the defaults.

Topology (namespaces pxbf-<pid>-dp/-fr; pollux's and FRR's files in
temporary directories; all removed at the end, also on error or Ctrl-C,
after the logs are copied to DIR/logs/):

    ns pxbf-<pid>-dp  dfrr0 [pollux port "tofrr", 10.71.0.2/24, af_xdp]
                        │ veth (kernel side: tx checksum offload off)
    ns pxbf-<pid>-fr  f0 10.71.0.1/24: FRR 8.4 zebra + bfdd, `peer 10.71.0.2`

pollux: the real `target/release/pollux run`, one worker on CPU 1, BFD
10 ms x 3 through a BGP neighbor with `bfd: true` (there is no bgpd: the
BGP session never comes up, which does not concern BFD). FRR bfdd: 10 ms
x 3, SCHED_FIFO like the integration tests (tests/integration/test_bfd.py:
a peer stands in for a router on its own hardware; pollux gets no such help).

(g1) Detection time, one failure at a time; before each, both ends are Up at
10 ms (pollux's detection time 30 ms, FRR `up`) and stay so for a quiet
period of 0.2-0.45 s (random, so failures fall at random points of the
10 ms transmit cycle):
  pollux   SIGSTOP to FRR's bfdd (it stops sending and receiving; carrier
           and kernel stay up: a hung router). t0 = CLOCK_REALTIME just
           before kill(). Detected = pollux's `last_change_unix_ns` from
           `show bfd-sessions` (the worker's own clock reading at the Up ->
           Down change, converted to the system clock: docs/api.md), read
           by polling the API socket every 2 ms; the change must be diag
           ControlDetectionTimeExpired and exactly one more down transition.
           Then SIGCONT, and wait (bounded) for both ends Up again.
  FRR      SIGSTOP to pollux (the whole process: workers and ctrl). t0 as
           above; detected = the microsecond timestamp of bfdd's
           `state-change: ... up -> down reason:control-expired` log line
           (`debug bfd peer`). Then SIGCONT, wait for both Up.
  Both are timed "failure -> Down": the last packet left the frozen side up
  to one transmit interval (10 ms less 0-25 % jitter) before t0, so the
  RFC's bound from the failure is 30 ms, and 20-30 ms is the ideal range;
  what exceeds 30 ms is the detector's wake-up and scheduling latency.
  And "last packet -> Down", the detection time proper (ideal: exactly
  30 ms): tcpdump on FRR's end of the veth timestamps every BFD packet;
  the frozen side's last one before the Down starts the clock. It includes the
  detector's receive latency (the veth, AF_XDP or the socket, its loop)
  as well as its timer's lateness.
  False Downs: any Up -> Down of pollux (`down_transitions`) or FRR (its
  log) inside a quiet period, summed over all quiet periods.

(g2) Cost of 1 000 sessions at 10 ms x 3: bench/src/bin/pollux-bfd-cost.rs
drives the data plane's sans-IO session table (the code the worker runs)
under a virtual clock: 1 000 Up sessions, each peer sending every 10 ms,
the table receiving them (parse, demultiplex, state machine, timers) and
writing its own ~114 000 packets/s, one loop iteration per 10 us. Reported:
CPU milliseconds per second of operation (= per mille of one core; median
of 5 one-second stretches, wall clock, so noisy on a shared machine), ns
per BFD packet handled (received or sent), and, when valgrind is
installed, instructions per second of operation from callgrind
(deterministic: fixed jitter seeds; run twice and compared). Packet I/O
around the table (headers, mbufs, PMD) is not in these numbers.

Rows in bfd.csv: p50 and p99 rows, failure -> Down and last packet ->
Down (nearest-rank percentiles: with 50 failures p99 is the largest;
min/max = the extremes observed, runs = failures), the false-Down row, the
g2 rows; ratio = pollux / reference where there is one. bfd_runs.csv has
every failure: t0 (ns), ms (failure -> Down), last_pkt_ms (the frozen
side's last packet -> t0; negative when one left after kill(), as a
SIGSTOP takes effect when the target next enters the kernel),
from_last_ms (last packet -> Down), seen_ms
(when the bench's poll saw it), log_ms (ctrl's log line of the change, a
cross-check of last_change_unix_ns: it must follow by about a millisecond,
else the bench fails), the false Downs of the quiet period before it, and
recover_s (resume -> both ends Up at 10 ms again; about 1 s, see the
printed summary). DIR/logs/bench.log traces every step.

Exit status: 0 when every failure was measured; non-zero with a message
naming what went wrong otherwise (nothing is written to bfd.csv then).
"""
from __future__ import annotations

import argparse
import bisect
import calendar
import csv
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests/integration"))
from netlab import POLLUX, Netns, Pollux, sh, veth, wait_for  # noqa: E402
from routers import Frr  # noqa: E402

COST = Path(os.environ.get("POLLUX_BFD_COST", ROOT / "target/release/pollux-bfd-cost"))
INTERVAL_MS, MULT = 10, 3
DP_IP, FRR_IP = "10.71.0.2", "10.71.0.1"

CONFIG = f"""
instance: {{ name: pxbf-@PID@ }}
dataplane:
  workers: [1]
  pollMode: @POLLMODE@
  eal: ["--no-huge", "-m", "256", "--no-pci", "--vdev=net_af_xdp0,iface=dfrr0"]
  ports:
    - {{ name: tofrr, device: net_af_xdp0, selfIps: ["{DP_IP}/24"] }}
bgp:
  asn: 65071
  routerId: {DP_IP}
  neighbors:
    - {{ address: {FRR_IP}, asn: 65001, bfd: true }}
bfd: {{ minTxMs: {INTERVAL_MS}, minRxMs: {INTERVAL_MS}, multiplier: {MULT} }}
api: {{ socket: "@SOCKET@" }}
"""

BFDD = f"""
log timestamp precision 6
debug bfd peer
bfd
 peer {DP_IP} local-address {FRR_IP}
  detect-multiplier {MULT}
  receive-interval {INTERVAL_MS}
  transmit-interval {INTERVAL_MS}
 exit
exit
"""

# bfdd (8.4): "2026/11/24 13:01:02.123456 BFD: [XXXXX-XXXXX] state-change:
# [mhop:no peer:10.71.0.2 ...] up -> down reason:control-expired"
FRR_CHANGE = re.compile(r"^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d{6}) .*state-change: \[.*peer:" + re.escape(DP_IP) + r"[ \]].*\] (\w+) -> (\w+)(?: reason:(\S+))?")


class Fail(Exception):
    """Cannot measure: the message says why."""


def api(sock: Path, what: str, timeout: float = 2.0) -> dict:
    """One query on pollux's API socket (what `pollux show` does)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(sock))
        s.sendall(json.dumps({"show": what}).encode() + b"\n")
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    v = json.loads(out)
    if "error" in v:
        raise RuntimeError(v["error"])
    return v


def session(p: Pollux) -> dict:
    return next(s for s in api(p.socket, "bfd-sessions")["sessions"] if s["peer"] == FRR_IP)


def frr_changes(log: Path) -> list[tuple[float, str, str, str]]:
    """(time, from, to, reason) of every state change bfdd logged."""
    out = []
    if not log.exists():
        return out
    for line in log.read_text(errors="replace").splitlines():
        m = FRR_CHANGE.match(line)
        if m:
            ts = time.mktime(time.strptime(m.group(1)[:19], "%Y/%m/%d %H:%M:%S")) + int(m.group(1)[20:]) / 1e6
            out.append((ts, m.group(2), m.group(3), m.group(4) or ""))
    return out


def frr_down_count(log: Path) -> int:
    return sum(1 for _, a, b, _ in frr_changes(log) if a == "up" and b != "up")


class Lab:
    def __init__(self, poll_mode: str, logs: Path):
        self.logs = logs
        self.tag = f"pxbf-{os.getpid()}"
        self.ns: list[Netns] = []
        self.pollux: Pollux | None = None
        self.frr: Frr | None = None
        self.capture: subprocess.Popen | None = None
        self.stopped: list[int] = []  # pids we SIGSTOPped and not yet resumed
        dp, fr = Netns(f"{self.tag}-dp"), Netns(f"{self.tag}-fr")
        self.ns = [dp, fr]
        veth(dp, "dfrr0", fr, "f0")
        fr.run("ip", "addr", "add", f"{FRR_IP}/24", "dev", "f0")
        # Every BFD packet on FRR's end of the link, kernel-timestamped: the
        # last packet the frozen side sent before each failure.
        self.capture_file = open(logs / "bfd-capture.txt", "w")
        self.capture = fr.popen("tcpdump", "-i", "f0", "-n", "-tt", "-l", "udp", "port", "3784",
                                stdout=self.capture_file, stderr=subprocess.DEVNULL)
        self.frr = Frr(fr, {"bfdd": BFDD})
        self.frr_log = self.frr.dir / "bfdd.log"
        # The Frr helper logs at `informational`; the state changes are debug
        # messages: raise bfdd's log level (same file).
        fr.run("vtysh", "--vty_socket", str(self.frr.dir), "-d", "bfdd", "-c", "configure terminal",
               "-c", f"log file {self.frr_log} debugging", timeout=15)
        self.bfdd_pid = int(wait_for("bfdd's pid file", lambda: (self.frr.dir / "bfdd.pid").exists()
                                     and (self.frr.dir / "bfdd.pid").read_text().strip(), timeout=10))
        sh("chrt", "--fifo", "--all-tasks", "--pid", "10", str(self.bfdd_pid))
        cfg = CONFIG.replace("@POLLMODE@", poll_mode).replace("@PID@", str(os.getpid()))
        self.pollux = Pollux(dp, cfg)
        self.pollux.wait_ready()

    def stop_proc(self, pid: int):
        self.stopped.append(pid)
        os.kill(pid, signal.SIGSTOP)

    def cont_proc(self, pid: int):
        os.kill(pid, signal.SIGCONT)
        self.stopped.remove(pid)

    def settled(self, since_ns: int) -> dict | None:
        """Both ends Up again since `since_ns` at the fast timers: pollux's
        last change is a later one, to Up, with a detection time of 3 x 10 ms
        (FRR's Poll Sequence to 10 ms is done), and bfdd's last logged
        change is a later one, to up. (A failure takes both ends down: the
        frozen one times out the other on waking, or is told Down.)"""
        s = session(self.pollux)
        if s["state"] != "Up" or (s.get("last_change_unix_ns") or 0) < since_ns:
            return None
        if s.get("detection_time_ms") != INTERVAL_MS * MULT or s.get("tx_interval_ms") != INTERVAL_MS:
            return None
        changes = frr_changes(self.frr_log)
        if not changes or changes[-1][2] != "up" or changes[-1][0] * 1e9 < since_ns:
            return None
        return s

    def wait_settled(self, what: str, since_ns: int, timeout: float = 10) -> dict:
        try:
            s = wait_for(what, lambda: self.settled(since_ns), timeout=timeout, interval=0.01)
        except AssertionError as e:
            raise Fail(f"{e}; pollux: {self.safe_session()}; FRR's last changes: {frr_changes(self.frr_log)[-3:]}") from None
        self.trace(f"settled: pollux Up since {s['last_change_unix_ns'] / 1e9:.6f}")
        return s

    def trace(self, msg: str):
        with open(self.logs / "bench.log", "a") as fh:
            fh.write(f"{time.time():.6f} {msg}\n")

    def safe_session(self):
        try:
            return session(self.pollux)
        except Exception as e:  # noqa: BLE001 - for a message only
            return repr(e)

    def close(self):
        for pid in list(self.stopped):
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.stopped.clear()
        p = self.pollux
        if p:
            try:
                if p.proc.poll() is None:
                    p.proc.send_signal(signal.SIGINT)  # no drain delay
                    p.proc.wait(15)
            except subprocess.TimeoutExpired:
                p.proc.kill()
                p.proc.wait(5)
            shutil.copy(p.dir / "pollux.log", self.logs / "pollux.log")
            p.log.close()
            shutil.rmtree(p.dir, ignore_errors=True)
        if self.capture:
            self.capture.terminate()
            try:
                self.capture.wait(5)
            except subprocess.TimeoutExpired:
                self.capture.kill()
            self.capture_file.close()
        if self.frr:
            for f in ("bfdd.log", "zebra.log"):
                if (self.frr.dir / f).exists():
                    shutil.copy(self.frr.dir / f, self.logs / f"frr-{f}")
            self.frr.stop()
        for ns in self.ns:
            ns.delete()


def pollux_detects(lab: Lab, quiet: float, since: int) -> dict:
    """One silent-peer failure (bfdd frozen); returns the measurement."""
    s0 = lab.wait_settled("both ends Up at 10 ms before a failure", since)
    q0, frr_downs0 = time.monotonic(), frr_down_count(lab.frr_log)
    time.sleep(quiet)
    s1 = session(lab.pollux)
    false = {"pollux": s1["down_transitions"] - s0["down_transitions"],
             "frr": frr_down_count(lab.frr_log) - frr_downs0, "quiet_s": time.monotonic() - q0}
    if s1["state"] != "Up":
        lab.wait_settled("both ends Up again after a false Down", since)
        s1 = session(lab.pollux)
    t0 = time.time_ns()
    lab.trace("SIGSTOP bfdd")
    lab.stop_proc(lab.bfdd_pid)
    try:
        deadline = time.monotonic() + 2.0
        while True:
            s = session(lab.pollux)
            if s["state"] != "Up":
                seen = time.time_ns()
                break
            if time.monotonic() > deadline:
                raise Fail(f"pollux did not declare the session Down within 2 s of freezing bfdd: {s}")
            time.sleep(0.002)
        # The worker publishes every 10 ms, and ctrl counts the transition
        # when it drains the event ring (every 1 ms, from a thread that
        # shares the CPUs): read until both show the change after t0.
        deadline = time.monotonic() + 1.0
        while ((s.get("last_change_unix_ns") or 0) < t0 or s["down_transitions"] == s1["down_transitions"]) \
                and time.monotonic() < deadline:
            time.sleep(0.002)
            s = session(lab.pollux)
    finally:
        lab.cont_proc(lab.bfdd_pid)
        resumed = time.monotonic()
        lab.trace("SIGCONT bfdd")
    at = s.get("last_change_unix_ns")
    if not at or at < t0:
        raise Fail(f"pollux's session has no state change dated after the failure: {s}")
    if s["diagnostic"] != "ControlDetectionTimeExpired" or s["down_transitions"] != s1["down_transitions"] + 1:
        raise Fail(f"pollux went Down, but not by its detection timer alone: {s} (before: {s1})")
    lab.trace(f"pollux Down after {(at - t0) / 1e6:.3f} ms ({s['diagnostic']}), seen after {(seen - t0) / 1e6:.1f} ms")
    return {"kind": "pollux", "t0": t0, "resumed": resumed, "ms": (at - t0) / 1e6, "seen_ms": (seen - t0) / 1e6, "diag": s["diagnostic"], **false}


def frr_detects(lab: Lab, quiet: float, since: int) -> dict:
    """One frozen-pollux failure; FRR bfdd's detection from its log."""
    s0 = lab.wait_settled("both ends Up at 10 ms before a failure", since)
    q0, frr_downs0 = time.monotonic(), frr_down_count(lab.frr_log)
    time.sleep(quiet)
    s1 = session(lab.pollux)
    n0 = len(frr_changes(lab.frr_log))
    false = {"pollux": s1["down_transitions"] - s0["down_transitions"],
             "frr": frr_down_count(lab.frr_log) - frr_downs0, "quiet_s": time.monotonic() - q0}
    if s1["state"] != "Up":
        lab.wait_settled("both ends Up again after a false Down", since)
        n0 = len(frr_changes(lab.frr_log))
    t0 = time.time_ns()
    lab.trace("SIGSTOP pollux")
    lab.stop_proc(lab.pollux.proc.pid)
    try:
        def down():
            new = frr_changes(lab.frr_log)[n0:]
            return next((c for c in new if c[1] == "up" and c[2] != "up"), None)
        deadline = time.monotonic() + 2.0
        change = None
        while change is None:
            if time.monotonic() > deadline:
                raise Fail("FRR bfdd logged no Up -> Down within 2 s of freezing pollux")
            time.sleep(0.005)
            change = down()
    finally:
        lab.cont_proc(lab.pollux.proc.pid)
        resumed = time.monotonic()
        lab.trace("SIGCONT pollux")
    ts, _, to, reason = change
    if reason != "control-expired":
        raise Fail(f"FRR went {to} for {reason!r}, not by its detection timer")
    lab.trace(f"FRR down after {(ts - t0 / 1e9) * 1e3:.3f} ms ({reason})")
    return {"kind": "frr", "t0": t0, "resumed": resumed, "ms": (ts - t0 / 1e9) * 1e3, "seen_ms": "", "diag": reason, **false}


def captured(path: Path) -> dict[str, list[float]]:
    """Capture times of the BFD packets each address sent, in order."""
    out: dict[str, list[float]] = {DP_IP: [], FRR_IP: []}
    for line in path.read_text(errors="replace").splitlines():
        m = re.match(r"(\d+\.\d+) IP (\d+\.\d+\.\d+\.\d+)\.\d+ > ", line)
        if m and m.group(2) in out:
            out[m.group(2)].append(float(m.group(1)))
    return out


def pollux_log_downs(log: Path) -> list[float]:
    """Times of ctrl's "BFD session ... from=Up to=Down" log lines."""
    out = []
    for line in re.sub(r"\x1b\[[0-9;]*m", "", log.read_text(errors="replace")).splitlines():
        m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d+)Z .*BFD session .*from=Up to=Down", line)
        if m:
            out.append(calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")) + float("0." + m.group(2)))
    return out


def pct(xs: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(xs)
    return s[max(0, min(len(s) - 1, -(-len(s) * p // 100) - 1))] if s else float("nan")


def cost_rows(logs: Path) -> list[list]:
    """Row (g2) from pollux-bfd-cost (wall clock, and callgrind if any)."""
    rows = []
    r = subprocess.run([str(COST), "--sessions", "1000", "--interval-ms", "10", "--reps", "5"],
                       capture_output=True, text=True, timeout=60)
    (logs / "bfd-cost.txt").write_text(r.stdout + r.stderr)
    if r.returncode != 0:
        raise Fail(f"pollux-bfd-cost failed: {r.stderr.strip() or r.stdout.strip()}")
    c = json.loads(r.stdout)
    ms = c["cpu_ms_per_s"]
    name = f"1000 sessions at 10 ms x 3: sans-IO table CPU per second ({c['rx_per_s']} rx + {c['tx_per_s']} tx pkt/s)"
    rows.append(["g2", name, "ms CPU/s", len(ms), f"{statistics.median(ms):.2f}", f"{min(ms):.2f}", f"{max(ms):.2f}",
                 "", "", "", "", "", "<=50 (5% of a core)"])
    ns = c["ns_per_packet"]
    rows.append(["g2", "1000 sessions at 10 ms x 3: table ns per BFD packet (rx or tx)", "ns", len(ns),
                 f"{statistics.median(ns):.1f}", f"{min(ns):.1f}", f"{max(ns):.1f}", "", "", "", "", "", "<=500"])
    if shutil.which("valgrind"):
        irs = []
        for i in range(2):
            out = logs / f"callgrind.bfd-cost.{i}"
            r = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                                "--toggle-collect=*measured_stretch*", str(COST), "--once"],
                               capture_output=True, text=True, timeout=300)
            (logs / f"callgrind.bfd-cost.{i}.txt").write_text(r.stdout + r.stderr)
            m = re.search(r"Collected : (\d+)", r.stderr)
            if r.returncode != 0 or not m:
                raise Fail(f"callgrind run of pollux-bfd-cost failed: {r.stderr[-500:]}")
            irs.append(int(m.group(1)))
        same = "identical" if irs[0] == irs[1] else f"differ: {irs}"
        rows.append(["g2", f"1000 sessions at 10 ms x 3: table instructions per second (callgrind, 2 runs {same})",
                     "M instr/s", 2, f"{irs[0] / 1e6:.2f}", f"{min(irs) / 1e6:.2f}", f"{max(irs) / 1e6:.2f}",
                     "", "", "", "", "", ""])
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--failures", type=int, default=50)
    ap.add_argument("--ref-failures", type=int)
    ap.add_argument("--poll-mode", choices=["adaptive", "busy"], default="adaptive")
    ap.add_argument("--no-cost", action="store_true")
    ap.add_argument("--build", action="store_true")
    a = ap.parse_args()
    if a.ref_failures is None:
        a.ref_failures = a.failures
    if os.geteuid() != 0:
        print("bench/bfd.py: needs root (namespaces, AF_XDP, TAPs)", file=sys.stderr)
        return 2
    if a.failures < 1 or a.ref_failures < 0:
        print("bench/bfd.py: --failures >= 1, --ref-failures >= 0", file=sys.stderr)
        return 2
    if a.build or not POLLUX.exists() or not COST.exists():
        r = subprocess.run(["cargo", "build", "--release", "-q", "-p", "ctrl", "-p", "bench"], cwd=ROOT)
        if r.returncode != 0:
            print("bench/bfd.py: cargo build failed", file=sys.stderr)
            return 1
    for b in (POLLUX, COST):
        if not b.exists():
            print(f"bench/bfd.py: {b} is missing (cargo build --release -p ctrl -p bench)", file=sys.stderr)
            return 1
    for tool in ("vtysh", "chrt", "ethtool"):
        if not shutil.which(tool):
            print(f"bench/bfd.py: {tool} is missing (FRR, util-linux, ethtool)", file=sys.stderr)
            return 1
    out, logs = a.out, a.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    # SIGTERM unwinds like Ctrl-C, so the lab is always taken down.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    start = time.monotonic()
    load0 = os.getloadavg()
    rng = random.Random()
    results: list[dict] = []
    lab = None
    try:
        lab = Lab(a.poll_mode, logs)
        lab.wait_settled("the first BFD session Up at 10 ms x 3", 0, timeout=30)
        since = 0
        # Interleaved, so that both directions see the same machine load.
        for i in range(max(a.failures, a.ref_failures)):
            for kind, n, measure in (("pollux", a.failures, pollux_detects), ("frr", a.ref_failures, frr_detects)):
                if i >= n:
                    continue
                r = {"n": i + 1, **measure(lab, rng.uniform(0.2, 0.45), since)}
                since = r["t0"]
                lab.wait_settled(f"both ends Up again after failure {i + 1} ({kind} detecting)", since)
                r["recover_s"] = time.monotonic() - r.pop("resumed")
                results.append(r)
            print(f"\rfailure {i + 1}: " + "  ".join(f"{r['kind']} {r['ms']:.1f} ms" for r in results if r["n"] == i + 1),
                  end="", flush=True)
        print()
        workers = api(lab.pollux.socket, "stats")["workers"]
    except Fail as e:
        print(f"\nbench/bfd.py: cannot measure: {e}", file=sys.stderr)
        return 1
    except (AssertionError, RuntimeError, OSError, subprocess.SubprocessError, StopIteration, ValueError) as e:
        print(f"\nbench/bfd.py: cannot measure: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nbench/bfd.py: interrupted", file=sys.stderr)
        return 130
    finally:
        if lab:
            lab.close()
    load1 = os.getloadavg()
    # Cross-check of last_change_unix_ns: ctrl logs each change when it
    # drains the workers' ring (every 1 ms), so its log line must follow
    # the dated change by a millisecond or so.
    downs = pollux_log_downs(logs / "pollux.log")
    for r in results:
        if r["kind"] == "pollux":
            after = [t for t in downs if t * 1e9 >= r["t0"]]
            if after:
                r["log_ms"] = f"{(after[0] - r['t0'] / 1e9) * 1e3:.3f}"
    lags = [float(r["log_ms"]) - r["ms"] for r in results if r.get("log_ms")]
    # Detection time proper: from the frozen side's last packet (captured
    # on the wire) to the other side's Down. Last before the Down, not
    # before t0: a SIGSTOP takes effect when the target next enters the
    # kernel, so a packet may still leave a little after kill().
    sent = captured(logs / "bfd-capture.txt")
    for r in results:
        frozen = sent[FRR_IP if r["kind"] == "pollux" else DP_IP]
        t0 = r["t0"] / 1e9
        i = bisect.bisect_left(frozen, t0 + r["ms"] / 1e3)
        if i == 0:
            print(f"bench/bfd.py: cannot measure: no packet of the frozen side captured before failure {r['n']} "
                  f"({r['kind']} detecting)", file=sys.stderr)
            return 1
        r["last_pkt_ms"] = (t0 - frozen[i - 1]) * 1e3
        r["from_last_ms"] = r["ms"] + r["last_pkt_ms"]
    if lags and not -0.1 <= statistics.median(lags) <= 20:
        print(f"bench/bfd.py: pollux's log dates the Downs {statistics.median(lags):.1f} ms (median) after "
              "last_change_unix_ns: the timestamps disagree", file=sys.stderr)
        return 1
    with open(out / "bfd_runs.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["n", "kind", "t0", "ms", "last_pkt_ms", "from_last_ms", "seen_ms", "log_ms",
                                           "diag", "pollux", "frr", "quiet_s", "recover_s"], lineterminator="\n")
        w.writeheader()
        for r in results:
            w.writerow({**r, "ms": f"{r['ms']:.3f}", "seen_ms": r["seen_ms"] and f"{r['seen_ms']:.3f}",
                        "last_pkt_ms": f"{r['last_pkt_ms']:.3f}", "from_last_ms": f"{r['from_last_ms']:.3f}",
                        "log_ms": r.get("log_ms", ""), "quiet_s": f"{r['quiet_s']:.3f}",
                        "recover_s": f"{r['recover_s']:.3f}"})
    quiet = sum(r["quiet_s"] for r in results)
    false_px, false_fr = sum(r["pollux"] for r in results), sum(r["frr"] for r in results)
    ref = "FRR bfdd 8.4 (frozen pollux)"
    rows = []
    for key, what, goals in (("ms", "failure -> Down", ("<=30+jitter", "<=40")),
                             ("from_last_ms", "last packet -> Down", ("30+jitter", "<=40"))):
        px = [r[key] for r in results if r["kind"] == "pollux"]
        fr = [r[key] for r in results if r["kind"] == "frr"]
        for p, goal in zip((50, 99), goals):
            pv = pct(px, p)
            rv = pct(fr, p) if fr else None
            rows.append(["g1", f"BFD detection time p{p}, 10 ms x 3, {what} ({a.poll_mode} poll)", "ms", len(px),
                         f"{pv:.2f}", f"{min(px):.2f}", f"{max(px):.2f}",
                         ref if fr else "", f"{rv:.2f}" if fr else "", f"{min(fr):.2f}" if fr else "",
                         f"{max(fr):.2f}" if fr else "", f"{pv / rv:.2f}" if fr else "", goal])
    rows.append(["g1", f"false Down transitions in {len(results)} quiet periods ({quiet:.0f} s at 10 ms x 3)", "count",
                 len(results), false_px, false_px, false_px, "FRR bfdd 8.4", false_fr, false_fr, false_fr, "", "0"])
    if not a.no_cost:
        try:
            rows += cost_rows(logs)
        except (Fail, subprocess.TimeoutExpired) as e:
            print(f"bench/bfd.py: cannot measure row (g2): {e}", file=sys.stderr)
            return 1
    header = ["row", "name", "unit", "runs", "pollux_median", "pollux_min", "pollux_max",
              "ref_name", "ref_median", "ref_min", "ref_max", "ratio", "goal"]
    with open(out / "bfd.csv", "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    print(f"{'row':4} {'name':92} {'unit':9} {'runs':>4} {'pollux med/min/max':>24} {'ref med/min/max':>24} {'ratio':>6}  goal")
    for r in rows:
        pm = "/".join(str(x) for x in r[4:7])
        rm = "/".join(str(x) for x in r[8:11]) if r[8] != "" else "-"
        print(f"{r[0]:4} {r[1][:92]:92} {r[2]:9} {r[3]:>4} {pm:>24} {rm:>24} {r[11] or '-':>6}  {r[12]}")
    rec = {k: statistics.median(r["recover_s"] for r in results if r["kind"] == k) for k in ("pollux", "frr")
           if any(r["kind"] == k for r in results)}
    print("failure -> both ends Up again (median s): " + ", ".join(f"{k} detecting {v:.2f}" for k, v in rec.items())
          + (f"; ctrl's log line {statistics.median(lags):.2f} ms (median) after last_change_unix_ns" if lags else ""))
    print(f"load average {load0[0]:.2f} before, {load1[0]:.2f} after; CPUs {os.cpu_count()}; "
          f"pollux worker's polls busy/idle/sleeps {[(w_['busy_polls'], w_['idle_polls'], w_.get('sleeps')) for w_ in workers]}, "
          f"longest loop gap {[w_['max_gap_us'] for w_ in workers]} us"
          + (" (a frozen pollux's included)" if a.ref_failures else ""))
    print(f"{time.monotonic() - start:.0f} s in all; files: {out / 'bfd.csv'}, {out / 'bfd_runs.csv'}, {logs}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())

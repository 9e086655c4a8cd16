#!/usr/bin/env python3
"""Bench row (f): 100 000 VIP /32 routes into FRR, pollux's BGP speaker
against BIRD as the reference speaker (issue 8, DESIGN.md §6).

Usage (root):  bench/bgp.py --out DIR [--runs N] [--count N] [--build]

  --out DIR   writes DIR/bgp.csv (the table rows), DIR/bgp_runs.csv (every
              measurement) and DIR/logs/ (bgpd, zebra, speaker logs per run)
  --runs N    repetitions (default 3, at least 1); each repetition measures
              pollux and BIRD back to back, the order alternating (pollux
              first in odd repetitions, BIRD first in even ones)
  --count N   routes (default 100000)
  --build     cargo build --release -p bench --bin pollux-bgp-vips first
              (also done when the binary is missing)
Env: POLLUX_BGP_VIPS (binary, default target/release/pollux-bgp-vips).
About 10 s per measurement here: ~1 min for --runs 3.

Topology, fresh for every measurement (namespaces pxbb-<pid>-f/-s, files
under /run/pxbb-<pid>/, all removed at the end, also on error or Ctrl-C):

    ns pxbb-<pid>-s  s0 10.0.0.2/30 ── veth ── f0 10.0.0.1/30  ns pxbb-<pid>-f
    the speaker, AS 65002:                      FRR 8.4 zebra + bgpd, AS 65001,
    (a) pollux-bgp-vips (bench/src/bin):        one config for both speakers:
        ctrl::bgp::Speaker, pollux's real       neighbor 10.0.0.2 remote-as 65002,
        speaker, VipSet of N /32s, kernel TCP   passive, no ebgp-requires-policy;
    (b) BIRD 2: protocol static with N          routes go to zebra and the kernel
        `route X/32 blackhole;` exported        FIB of pxbb-<pid>-f
        over eBGP, next hop self
    VIPs: 10.64.0.0, 10.64.0.1, ... (N consecutive addresses)

Both speakers connect actively (FRR is passive), so the session comes up
the same way; what is timed starts at Established.

Instants (wall clock, one machine):
  Established  FRR's bgpd log, "%ADJCHANGE ... Up" (microsecond timestamps;
               bgpd logs only neighbor events: no per-update debugging)
  received     FRR's bgpd log, "rcvd End-of-RIB" from the speaker: bgpd
               handles a session's messages in order, so every UPDATE before
               it is in the Adj-RIB-In. Cross-checked: a poll of
               `show bgp ipv4 unicast summary json` must then see pfxRcd == N.
               If no End-of-RIB is logged, the first poll that saw pfxRcd == N
               is used instead (said in bgp_runs.csv, column rcv_src).
  RIB / FIB    zebra's `show ip route summary json`, type ebgp: the first poll
               with rib == N (zebra's RIB) and fib == N (installed: the kernel
               acknowledged them through zebra's dataplane); afterwards
               `ip route show proto bgp` in the FRR namespace must hold N
               routes. Polls (bgpd and zebra until pfxRcd == N, then zebra
               alone) go every ~50 ms and are timed at the end of the
               vtysh call (an upper bound; a busy bgpd/zebra answers in
               50-300 ms, which is the resolution of these two instants).

Rows in bgp.csv (median/min/max over the runs; ratio = pollux median / BIRD
median, so < 1 is better for pollux in the seconds rows, > 1 in the rate row):
  Established -> all received (s), Established -> all in the kernel FIB (s),
  receive rate N / (Established -> all received) (routes/s).
bgp_runs.csv has every measurement, with speaker start -> Established and
the number of UPDATEs bgpd counted (`updatesRecv`, End-of-RIB included).

Exit status: 0 when every measurement completed; non-zero with a message
naming what was missing otherwise (nothing is written to bgp.csv then).
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from netlab import Netns, veth, wait_for  # noqa: E402
from routers import Bird, Frr  # noqa: E402

BIN = Path(os.environ.get("POLLUX_BGP_VIPS", ROOT / "target/release/pollux-bgp-vips"))
FRR_IP, SPK_IP, PREFIX = "10.0.0.1", "10.0.0.2", 30
FRR_AS, SPK_AS = 65001, 65002
FIRST_VIP = 10 << 24 | 64 << 16  # 10.64.0.0
DEADLINE = 40.0  # seconds for one measurement, from the speaker's start


class Fail(Exception):
    pass


class QuietFrr(Frr):
    """The tests' FRR, without per-update debugging: 100 000 log lines per
    run would slow bgpd down and distort what is measured."""

    BGPD_LOG = "log timestamp precision 6\ndebug bgp neighbor-events\n"


BGPD_CONF = f"""router bgp {FRR_AS}
 bgp router-id {FRR_IP}
 no bgp ebgp-requires-policy
 no bgp network import-check
 bgp log-neighbor-changes
 neighbor {SPK_IP} remote-as {SPK_AS}
 neighbor {SPK_IP} passive
"""


def bird_conf(count: int) -> str:
    routes = "\n".join(f"  route {ip4(FIRST_VIP + i)}/32 blackhole;" for i in range(count))
    return f"""log "@RUN@/bird.log" all;
router id {SPK_IP};
protocol device {{ }}
protocol static vips {{
  ipv4;
{routes}
}}
protocol bgp frr {{
  local {SPK_IP} as {SPK_AS};
  neighbor {FRR_IP} as {FRR_AS};
  connect delay time 1;
  ipv4 {{ import none; export where proto = "vips"; next hop self; }};
}}
"""


def ip4(n: int) -> str:
    return ".".join(str(n >> s & 255) for s in (24, 16, 8, 0))


LOG_TS = re.compile(r"^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d+) ")


def log_time(log: str, needle: str) -> float | None:
    """The timestamp (epoch) of the first bgpd log line containing needle."""
    for line in log.splitlines():
        if needle in line:
            m = LOG_TS.match(line)
            if m:
                return dt.datetime.strptime(m.group(1), "%Y/%m/%d %H:%M:%S.%f").timestamp()
    return None


def went_down(log: str, before: float | None = None) -> str:
    """The bgpd log's first session-down line (with the NOTIFICATION before
    it, which says why) up to `before`, as a message tail; "" if none. A
    session that flaps while 100 000 routes go in makes zebra withdraw and
    install them again, and the row measures the churn, not the speaker."""
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if f"%ADJCHANGE: neighbor {SPK_IP}" in line and " Down" in line:
            m = LOG_TS.match(line)
            if before is not None and m and dt.datetime.strptime(
                    m.group(1), "%Y/%m/%d %H:%M:%S.%f").timestamp() > before:
                return ""
            why = next((ln for ln in reversed(lines[:i]) if "%NOTIFICATION" in ln), "")
            return f"; bgpd: {line.strip()}" + (f"; {why.strip()}" if why else "")
    return ""


def two_json(text: str):
    dec = json.JSONDecoder()
    a, i = dec.raw_decode(text)
    b, _ = dec.raw_decode(text[i:].lstrip())
    return a, b


def measure(kind: str, count: int, run: int, logs: Path, bird_text: str) -> dict:
    """One measurement on fresh namespaces and a fresh FRR."""
    tag = f"run{run}-{kind}"
    pid = os.getpid()
    f = s = frr = spk = bird = None
    spk_out = None
    try:
        f = Netns(f"pxbb-{pid}-f")
        s = Netns(f"pxbb-{pid}-s")
        veth(s, "s0", f, "f0")
        f.run("ip", "addr", "add", f"{FRR_IP}/{PREFIX}", "dev", "f0")
        s.run("ip", "addr", "add", f"{SPK_IP}/{PREFIX}", "dev", "s0")
        frr = QuietFrr(f, {"bgpd": BGPD_CONF})
        wait_for("bgpd's vty", lambda: "peers" in frr.json("show bgp ipv4 unicast summary"), timeout=10)

        t_start = time.time()
        if kind == "pollux":
            spk_out = open(logs / f"{tag}-speaker.out", "w")
            spk_err = open(logs / f"{tag}-speaker.log", "w")
            spk = s.popen(str(BIN), "--local", f"{SPK_IP}/{PREFIX}", "--peer", FRR_IP,
                          "--asn", str(SPK_AS), "--peer-asn", str(FRR_AS), "--count", str(count),
                          "--first", ip4(FIRST_VIP), "--seconds", str(int(DEADLINE) + 20),
                          stdout=spk_out, stderr=spk_err, env=dict(os.environ, RUST_LOG="info"))
            spk_err.close()
        else:
            bird = Bird(s, bird_text)

        rcv_poll = rib = fib = None
        peer: dict = {}
        deadline = t_start + DEADLINE
        last = ""
        while time.time() < deadline:
            if spk is not None and spk.poll() is not None:
                raise Fail(f"{tag}: pollux-bgp-vips exited {spk.returncode} (see {logs / (tag + '-speaker.log')})")
            try:
                # Once bgpd has everything, only zebra is asked.
                if rcv_poll is None:
                    out = frr.vtysh("show bgp ipv4 unicast summary json", "show ip route summary json")
                    now = time.time()
                    bgp, zebra = two_json(out)
                    peer = bgp.get("peers", {}).get(SPK_IP, {})
                else:
                    zebra = frr.json("show ip route summary")
                    now = time.time()
            except (subprocess.SubprocessError, ValueError) as e:
                last = repr(e)
                time.sleep(0.05)
                continue
            eb = next((r for r in zebra.get("routes", []) if r.get("type") == "ebgp"), {})
            last = f"state={peer.get('state')} pfxRcd={peer.get('pfxRcd')} zebra={eb}"
            if rcv_poll is None and peer.get("pfxRcd", 0) >= count:
                rcv_poll = now
            if rib is None and eb.get("rib", 0) >= count:
                rib = now
            if fib is None and eb.get("fib", 0) >= count:
                fib = now
            if rcv_poll and rib and fib:
                break
            time.sleep(0.05)
        else:
            raise Fail(f"{tag}: not all {count} routes in FRR within {DEADLINE:.0f} s of the speaker's start"
                       f" (last: {last}){went_down(frr.log())}")

        log = frr.log()
        if down := went_down(log, before=fib):
            raise Fail(f"{tag}: the session did not stay up while the routes went in{down}")
        est = log_time(log, f"%ADJCHANGE: neighbor {SPK_IP}")
        if est is None:
            raise Fail(f"{tag}: no '%ADJCHANGE ... Up' for {SPK_IP} in bgpd's log")
        eor = log_time(log, f"rcvd End-of-RIB for IPv4 Unicast from {SPK_IP}")
        rcv, src = (eor, "eor-log") if eor is not None else (rcv_poll, "poll")
        if rcv > rcv_poll + 0.001:
            raise Fail(f"{tag}: End-of-RIB logged at +{eor - est:.3f} s, after a poll already saw pfxRcd={count} at +{rcv_poll - est:.3f} s")
        kernel = len(f.run("ip", "-4", "-o", "route", "show", "proto", "bgp", timeout=30).stdout.splitlines())
        if kernel != count:
            raise Fail(f"{tag}: zebra reports {count} installed but the kernel holds {kernel} bgp routes")
        nb = frr.json(f"show bgp neighbors {SPK_IP}").get(SPK_IP, {})
        updates = nb.get("messageStats", {}).get("updatesRecv")
        warn = [ln for ln in log.splitlines() if re.search(r"error|malformed|treat-as-withdraw|attribute.*(invalid|discard)|NOTIFICATION", ln, re.I)]
        return {
            "run": run, "speaker": kind, "count": count,
            "start_to_established_s": round(est - t_start, 6),
            "established_to_received_s": round(rcv - est, 6), "rcv_src": src,
            "established_to_received_poll_s": round(rcv_poll - est, 6),
            "established_to_rib_s": round(rib - est, 6),
            "established_to_fib_s": round(fib - est, 6),
            "start_to_received_s": round(rcv - t_start, 6),
            "updates_recv": updates, "kernel_routes": kernel, "bgpd_log_warnings": len(warn),
        }
    finally:
        if frr is not None:
            for name in ("bgpd", "zebra"):
                p = frr.dir / f"{name}.log"
                if p.exists():
                    shutil.copy(p, logs / f"{tag}-{name}.log")
            frr.stop()
        if bird is not None:
            p = bird.dir / "bird.log"
            if p.exists():
                shutil.copy(p, logs / f"{tag}-bird.log")
            bird.stop()
        if spk is not None and spk.poll() is None:
            spk.terminate()
            try:
                spk.wait(5)
            except subprocess.TimeoutExpired:
                spk.kill()
                spk.wait(5)
        if spk_out is not None:
            spk_out.close()
        for ns in (s, f):
            if ns is not None:
                ns.delete()


def stats(xs: list[float]) -> tuple[float, float, float]:
    return statistics.median(xs), min(xs), max(xs)


def fmt(x: float, unit: str) -> str:
    return f"{x:.0f}" if unit == "routes/s" else f"{x:.3f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--build", action="store_true")
    a = ap.parse_args()
    if a.runs < 1 or not 1 <= a.count <= 1_000_000:
        ap.error("--runs must be >= 1 and --count in 1..1000000")
    if os.geteuid() != 0:
        raise Fail("must run as root (network namespaces, FRR, BIRD)")
    for need in ("/usr/lib/frr/zebra", "/usr/lib/frr/bgpd"):
        if not Path(need).exists():
            raise Fail(f"{need} is missing (apt-get install frr)")
    for need in ("vtysh", "bird", "birdc", "ethtool"):
        if shutil.which(need) is None:
            raise Fail(f"{need} is not on PATH (apt-get install frr bird2 ethtool)")
    if a.build or not BIN.exists():
        r = subprocess.run(["cargo", "build", "--release", "-p", "bench", "--bin", "pollux-bgp-vips"], cwd=ROOT, timeout=600)
        if r.returncode != 0 or not BIN.exists():
            raise Fail(f"cannot build {BIN}")
    bird_ver = (subprocess.run(["bird", "--version"], capture_output=True, text=True).stderr
                + subprocess.run(["bird", "--version"], capture_output=True, text=True).stdout)
    m = re.search(r"BIRD version (\S+)", bird_ver)
    ref_name = f"BIRD {m.group(1)}" if m else "BIRD"

    out = a.out
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    work = Path(f"/run/pxbb-{os.getpid()}")
    work.mkdir(mode=0o755, exist_ok=True)
    tempfile.tempdir = str(work)  # the FRR/BIRD run dirs of routers.py go here
    t0 = time.monotonic()
    results = []
    try:
        bird_text = bird_conf(a.count)
        for run in range(1, a.runs + 1):
            order = ("pollux", "bird") if run % 2 else ("bird", "pollux")
            for kind in order:
                r = measure(kind, a.count, run, logs, bird_text)
                results.append(r)
                print(f"run {run} {kind:6}: Established +{r['start_to_established_s']:.3f} s after start; "
                      f"received {r['established_to_received_s']:.3f} s ({r['rcv_src']}), RIB {r['established_to_rib_s']:.3f} s, "
                      f"FIB {r['established_to_fib_s']:.3f} s after Established; {r['updates_recv']} UPDATEs", flush=True)
    finally:
        tempfile.tempdir = None
        shutil.rmtree(work, ignore_errors=True)

    with open(out / "bgp_runs.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(results[0]))
        w.writeheader()
        w.writerows(results)

    n = a.count
    k = f"{n // 1000}k" if n % 1000 == 0 else str(n)
    rows = [
        (f"BGP {k} VIPs into FRR: Established → all received (End-of-RIB; pfxRcd {n}), lower is better", "s",
         lambda r: r["established_to_received_s"]),
        (f"BGP {k} VIPs into FRR: Established → all in the kernel FIB (zebra fib {n}), lower is better", "s",
         lambda r: r["established_to_fib_s"]),
        (f"BGP {k} VIPs into FRR: received routes/s (Established → all received), higher is better", "routes/s",
         lambda r: n / r["established_to_received_s"]),
    ]
    header = "row,name,unit,runs,pollux_median,pollux_min,pollux_max,ref_name,ref_median,ref_min,ref_max,ratio,goal"
    with open(out / "bgp.csv", "w", newline="") as fh:
        fh.write(header + "\n")
        w = csv.writer(fh, lineterminator="\n")
        print(f"\n{'row':<96} {'pollux med (min–max)':>26} {ref_name + ' med (min–max)':>30} {'ratio':>6}")
        for name, unit, get in rows:
            p = stats([get(r) for r in results if r["speaker"] == "pollux"])
            b = stats([get(r) for r in results if r["speaker"] == "bird"])
            ratio = p[0] / b[0] if b[0] else float("nan")
            w.writerow(["f", name, unit, a.runs, *(fmt(x, unit) for x in p), ref_name, *(fmt(x, unit) for x in b), f"{ratio:.3f}", ""])
            print(f"{name + ' [' + unit + ']':<96} {fmt(p[0], unit):>9} ({fmt(p[1], unit)}–{fmt(p[2], unit)}) "
                  f"{fmt(b[0], unit):>12} ({fmt(b[1], unit)}–{fmt(b[2], unit)}) {ratio:>6.3f}")
    upd = {k: sorted({r["updates_recv"] for r in results if r["speaker"] == k}) for k in ("pollux", "bird")}
    print(f"\nUPDATEs received by bgpd (End-of-RIB included): pollux {upd['pollux']}, BIRD {upd['bird']}; "
          f"{time.monotonic() - t0:.0f} s in all; files: {out / 'bgp.csv'}, {out / 'bgp_runs.csv'}, {logs}/")
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        sys.exit(main())
    except Fail as e:
        print(f"bench/bgp.py: cannot measure: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("bench/bgp.py: interrupted", file=sys.stderr)
        sys.exit(130)

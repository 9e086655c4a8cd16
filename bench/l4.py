#!/usr/bin/env python3
"""L4 rows (a), (b), (c) of the benchmarks (issue 8): pollux against
dpdk-testpmd io on the same memif link, with bench/src/bin/pollux-gen.rs as
the traffic generator. Run through bench/l4.sh (see its usage comment).

Topology of one measurement (one "forwarder run"):

    pollux-gen (memif server, mac GEN_MAC, worker lcore on CPU 1)
        ⇅ net_memif, socket /run/pxbl4-<pid>-<run><p|t>.sock
    forwarder (memif client, mac DUT_MAC, worker on CPU 0), either
      pollux run: virtual server VIP:80/udp → 4 members 10.0.1.1-4:8080 on
      the port's subnet, snat none, no health check: NATed packets go back
      on the link to the members, whose ARP the generator answers; or
      dpdk-testpmd --forward-mode=io: frames come back unchanged.

The generator lives as long as the forwarder (a memif peer that goes away
while the other polls can crash it): it is paused (stops polling) before the
forwarder stops, and quits after. Phases, in each forwarder run:

    probe   1 flow at 10 kpps until frames come back (readiness, <= 20 s)
    a       1k flows, 64 B, max rate, after a warm-up that sends every flow once
    lat     1k flows, 64 B, fixed LAT_RATE pps: latency p50/p99 from payload TSCs
    b10k, b100k, b1M, b4M   10k, 100k, 1M, 4M flows, as a (the flow sweep;
                       each with the connection table sized to its flows)
    c       every packet a new 5-tuple (a separate source range), max rate;
            pollux: connections created per second from `show connections`
            (new_flows before/after, over the generator's sending time)

A third forwarder run per repetition, dpdk-testpmd --forward-mode=macswap,
runs phase a only (row a-macswap: a reference that touches every frame).
Runs alternate the order (pollux first in odd runs, last in even ones); the
CSV has median/min/max over the runs and ratio = the medians' quotient.
"""

import argparse
import csv
import io
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GEN = os.environ.get("POLLUX_GEN", str(REPO / "target/release/pollux-gen"))
POLLUX = os.environ.get("POLLUX", str(REPO / "target/release/pollux"))
TESTPMD = os.environ.get("TESTPMD", "dpdk-testpmd")
MEM = os.environ.get("BENCH_MEM", "--no-huge -m 512").split()
TAG = f"pxbl4-{os.getpid()}"
GEN_MAC, DUT_MAC = "02:00:00:00:00:01", "02:00:00:00:00:02"
VIP, VIP_PORT = "192.0.2.10", 80
MEMBERS = [f"10.0.1.{i}" for i in range(1, 5)]
# Connection-table slots per phase: sized to the phase's flows (a tracked
# flow takes two slots; about half full), so that a row pays for the
# table its flows need, not for the largest; row c keeps a big one for the
# millions of new flows of its window.
# (IPv4 slots are 32 bytes: b4M's table is 512 MiB; the IPv6 table, unused
# here, is kept at its minimum.)
SLOTS = {"a": 1 << 16, "lat": 1 << 16, "b10k": 1 << 16, "b100k": 1 << 19, "b1M": 1 << 22, "b4M": 1 << 24,
         "c": 1 << 24}
BUDGET_S = 300  # no new run starts after this
CSV_HEADER = "row,name,unit,runs,pollux_median,pollux_min,pollux_max,ref_name,ref_median,ref_min,ref_max,ratio,goal"

import benchproc  # noqa: E402  (bench/ is on sys.path: the script's folder)
from benchproc import Fail, GenControl, PolluxControl, Proc, log, wait_for  # noqa: E402


class Gen(GenControl):
    """pollux-gen on the memif server side, driven through its stdin."""

    def __init__(self, name, sock, logdir):
        cmd = [GEN, "--stdin", "--timeout", "400", "--dst-mac", DUT_MAC, "--dst-ip", VIP,
               "--dst-port", str(VIP_PORT), "--arp", "10.0.1.0/24", "--",
               "-l", "0,1", "--main-lcore", "0", "--no-pci", f"--file-prefix={TAG}-{name}-gen", *MEM,
               f"--vdev=net_memif0,role=server,id=0,socket={sock},mac={GEN_MAC}"]
        self.proc = Proc(f"pollux-gen ({name})", cmd, logdir / f"{name}-gen.log", stdin=True)
        self.proc.wait_line(lambda l: l.startswith("pollux-gen: running"), 30, "start")


class Pollux(PolluxControl):
    binary = POLLUX

    def __init__(self, name, sock, work, logdir, connections):
        self.api = f"/run/{TAG}-{name}-api.sock"
        cfg = work / f"{name}-pollux.yaml"
        members = "\n".join(f"      - {{ address: {m}, port: 8080 }}" for m in MEMBERS)
        eal = [*MEM, "--no-pci", f"--file-prefix={TAG}-{name}-px",
               f"--vdev=net_memif0,role=client,id=0,socket={sock},mac={DUT_MAC}"]
        cfg.write_text(f"""# written by bench/l4.py
instance: {{ name: {TAG}-{name} }}
dataplane:
  workers: [0]
  pollMode: busy
  eal: {json.dumps(eal)}
  connections: {connections}
  connectionsV6: 64
  newFlowsPerSec: 0                # row c measures the new-flow rate: no flood guard
  ports:
    - name: pxl4{os.getpid() % 100000}{name[-1]}
      device: net_memif0
      selfIps: ["10.0.0.1/16"]
virtualServers:
  - name: l4
    address: {VIP}
    port: {VIP_PORT}
    protocol: udp
    idleTimeout: 30
    snat: none
    members:
{members}
api: {{ socket: {self.api} }}
""")
        self.proc = Proc(f"pollux ({name})", [POLLUX, "run", "--config", str(cfg)], logdir / f"{name}-pollux.log")
        wait_for("pollux workers running", self.ready, 40, 0.1)



    def conns(self):
        w = self.show("connections")["workers"]
        keys = ("new_flows", "untracked", "insert_failed_full", "insert_refused_flood", "entries", "expired")
        return {k: sum(x.get(k, 0) for x in w) for k in keys}

    def worker_counters(self):
        """Summed port and worker counters, for per-phase deltas in the log."""
        s = self.show("stats")
        d = {"rx": 0, "tx": 0, "busy_polls": 0, "idle_polls": 0}
        for p in s["ports"]:
            d["rx"] += p["rx_packets"]
            d["tx"] += p["tx_packets"]
            for k, v in p["drops"].items():
                d["drop_" + k] = d.get("drop_" + k, 0) + v
        for w in s["workers"]:
            d["busy_polls"] += w.get("busy_polls", 0)
            d["idle_polls"] += w.get("idle_polls", 0)
        d["max_gap_us"] = max((w.get("max_gap_us", 0) for w in s["workers"]), default=0)
        return d


class Testpmd:
    def __init__(self, name, sock, logdir, mode="io"):
        # stdbuf: line-buffered stdout, so that "Done." after `stop` shows
        cmd = ["stdbuf", "-oL", TESTPMD, "-l", "0,1", "--main-lcore", "1", "--no-pci", f"--file-prefix={TAG}-{name}-tp", *MEM,
               f"--vdev=net_memif0,role=client,id=0,socket={sock},mac={DUT_MAC}", "--",
               "-i", "--no-flush-rx", "--total-num-mbufs=16384", "--burst=32", f"--forward-mode={mode}"]
        self.proc = Proc(f"testpmd ({name})", cmd, logdir / f"{name}-testpmd.log", stdin=True)
        wait_for("the testpmd prompt", lambda: self._prompt(), 30, 0.05)
        self.proc.send("start")

    def _prompt(self):
        if not self.proc.alive():
            raise Fail(f"testpmd exited (rc {self.proc.p.returncode}); see {self.proc.logpath}")
        return "testpmd> " in self.proc.text()

    def stop_forwarding(self):
        self.proc.send("stop")
        # "stop" prints the forwarding statistics once the lcore has stopped
        wait_for("testpmd to stop forwarding", lambda: "Done." in self.proc.text() or not self.proc.alive(), 10)

    def stop(self):
        self.proc.send("quit")
        return self.proc.reap(20)


def phases(win, cwin, lwin, lat_rate):
    """(key, generator options, timeout s) of one forwarder run, in order."""
    t = lambda w: 20 + 3 * w
    return [
        ("a", f"--flows 1000 --warm once --secs {win}", t(win)),
        ("lat", f"--flows 1000 --warm 0 --rate {lat_rate} --secs {lwin}", t(lwin)),
        ("b10k", f"--flows 10000 --warm once --secs {win}", t(win)),
        ("b100k", f"--flows 100000 --warm once --secs {win}", t(win)),
        ("b1M", f"--flows 1000000 --warm once --secs {win}", t(win)),
        ("b4M", f"--flows 4000000 --warm once --secs {win}", t(win)),
        ("c", f"--flows new --src-ip 100.64.0.0 --src-ips 1048576 --warm 0 --secs {cwin}", t(cwin)),
    ]


def probe(gen):
    """Readiness of the link and the path: a short low-rate burst of 64
    flows (they reach every member, so pollux resolves all of them) must
    come back whole; after 20 s, frames coming back at all is enough."""
    seen = []

    def back():
        r = gen.phase("--flows 64 --rate 20000 --secs 0.1 --warm 0 --drain-ms 20", 10)
        seen.append(r["rx"])
        return r["tx"] > 0 and r["rx"] == r["tx"]
    try:
        wait_for("frames to come back through the forwarder", back, 20, 0.05)
    except Fail:
        if not any(seen):
            raise
        log(f"WARN: the probe never came back whole (returned per probe: {seen[-5:]}); going on")


def by_table(ph):
    """The phases in runs of equal table size (one forwarder per run)."""
    groups = []
    for p in ph:
        if groups and SLOTS[groups[-1][-1][0]] == SLOTS[p[0]]:
            groups[-1].append(p)
        else:
            groups.append([p])
    return groups


def forwarder_run(kind, run, work, logdir, ph):
    """Starts generator + forwarder for each run of phases of one table
    size (`by_table`), runs them, stops both in the memif-safe order.
    Returns {key: value} of what was measured."""
    out = {}
    for g, group in enumerate(by_table(ph)):
        out.update(forwarder_group(kind, run, f"r{run}{kind[0]}{g}", work, logdir, group, SLOTS[group[0][0]]))
    return out


def forwarder_group(kind, run, name, work, logdir, ph, slots):
    """One generator + forwarder pair (`name`) through phases `ph`, the
    pollux connection table at `slots` slots."""
    sock = f"/run/{TAG}-{name}.sock"
    gen = fwd = None
    out = {}
    try:
        gen = Gen(name, sock, logdir)
        if kind == "pollux":
            fwd = Pollux(name, sock, work, logdir, slots)
        else:
            fwd = Testpmd(name, sock, logdir, "macswap" if kind == "macswap" else "io")
        probe(gen)
        for key, args, timeout in ph:
            before = fwd.conns() if kind == "pollux" and key == "c" else None
            wc0 = fwd.worker_counters() if kind == "pollux" else None
            r = gen.phase(args, timeout)
            if wc0 is not None:
                wc1 = fwd.worker_counters()
                d = {k: wc1[k] - wc0[k] for k in wc0 if k != "max_gap_us" and wc1[k] != wc0[k]}
                busy = d.get("busy_polls", 0)
                log(f"run {run} pollux {key}: worker rx +{d.get('rx', 0)} tx +{d.get('tx', 0)}, "
                    f"{d.get('rx', 0) / busy if busy else 0:.1f} packets per busy poll, idle polls +{d.get('idle_polls', 0)}, "
                    f"max gap {wc1['max_gap_us']} us (since start); other changes: "
                    f"{ {k: v for k, v in d.items() if k.startswith('drop_')} }")
            out[key] = r["rx_mpps"]
            if key == "lat":
                out["lat_p50"], out["lat_p99"] = r["lat_p50_us"], r["lat_p99_us"]
            if before is not None:
                after = fwd.conns()
                d = {k: after[k] - before[k] for k in after}
                secs = r["window_s"]
                out["c_flows"] = d["new_flows"] / secs / 1e6 if secs > 0 else 0.0
                log(f"run {run} {kind} c: new_flows +{d['new_flows']} untracked +{d['untracked']} "
                    f"insert_failed_full +{d['insert_failed_full']} refused_flood +{d['insert_refused_flood']} "
                    f"over {secs:.3f} s; generator sent {r['tx']:.0f}; table entries {after['entries']}")
                if d["untracked"] or d["insert_failed_full"]:
                    log(f"WARN: run {run}: the connection table refused flows in row c (untracked)")
            log(f"run {run} {kind} {key}: sent {r['tx_mpps']:.3f} back {r['rx_mpps']:.3f} Mpps, "
                f"loss {r['loss']:.6f}, rewritten {r['rx_rewritten']:.0f}/{r['rx']:.0f}, "
                f"lat p50 {r['lat_p50_us']} p99 {r['lat_p99_us']} us, refused {r['tx_refused']:.0f}")
        if kind == "pollux":
            (logdir / f"{name}-stats.json").write_text(json.dumps(fwd.show("stats"), indent=1))
            (logdir / f"{name}-connections.json").write_text(json.dumps(fwd.show("connections"), indent=1))
            (logdir / f"{name}-virtual-servers.json").write_text(json.dumps(fwd.show("virtual-servers"), indent=1))
    finally:
        stop_pair(gen, fwd)
        try:
            os.unlink(sock)
        except OSError:
            pass
    return out


def stop_pair(gen, fwd):
    """memif-safe: forwarding stops, the generator stops polling, the
    forwarder closes its port, then the generator goes."""
    try:
        if isinstance(fwd, Testpmd) and fwd.proc.alive():
            fwd.stop_forwarding()
    except Fail as e:
        log(f"WARN: {e}")
    try:
        if gen:
            gen.pause()
    except Fail as e:
        log(f"WARN: {e}")
    if fwd:
        fwd.stop()
    if gen:
        rc = gen.quit()
        if rc != 0:
            log(f"WARN: pollux-gen exited with rc {rc}; see {gen.proc.logpath}")



def cleanup():
    benchproc.cleanup(TAG)


def m3(xs):
    return (statistics.median(xs), min(xs), max(xs)) if xs else None


def fmt(x, nd):
    """A number with nd decimals; empty for what is not one (a phase that
    got no samples, e.g. no frame back in a latency window)."""
    return f"{x:.{nd}f}" if isinstance(x, (int, float)) and not isinstance(x, bool) else ""


ROWS = [
    # row, name, unit, pollux key, ref key, ref name, digits, goal, ratio?
    ("a", "L4 NAT established, 1k flows, 64 B, 1 worker", "Mpps", "a", "a", "testpmd io", 3, ">=0.85", True),
    ("a-macswap", "L4 NAT established, 1k flows, 64 B, 1 worker", "Mpps", "a", "a", "testpmd macswap", 3, "", True),
    ("b-1k", "L4 NAT established, 1k flows, 64 B, 1 worker (= row a)", "Mpps", "a", "a", "testpmd io", 3, ">=0.85", True),
    ("b-10k", "L4 NAT established, 10k flows, 64 B, 1 worker", "Mpps", "b10k", "b10k", "testpmd io", 3, "", True),
    ("b-100k", "L4 NAT established, 100k flows, 64 B, 1 worker", "Mpps", "b100k", "b100k", "testpmd io", 3, ">=0.7", True),
    ("b-1M", "L4 NAT established, 1M flows, 64 B, 1 worker", "Mpps", "b1M", "b1M", "testpmd io", 3, ">=0.7", True),
    ("b-4M", "L4 NAT established, 4M flows, 64 B, 1 worker", "Mpps", "b4M", "b4M", "testpmd io", 3, "", True),
    ("c", "new flows per second per worker, every packet a new 5-tuple, 64 B", "M flows/s", "c_flows", "c",
     "testpmd io (returned Mpps; same traffic)", 3, ">=2 M/s", True),
    ("c-returned", "new-flow traffic returned to the generator, 64 B", "Mpps", "c", "c", "testpmd io", 3, "", True),
    ("a-lat-p50", "latency p50, 1k flows, 64 B, fixed rate (LAT_RATE)", "us", "lat_p50", "lat_p50", "testpmd io", 2, "", True),
    ("a-lat-p99", "latency p99, 1k flows, 64 B, fixed rate (LAT_RATE)", "us", "lat_p99", "lat_p99", "testpmd io", 2, "", True),
]


def table(results, lat_rate):
    """CSV lines and the names of rows that could not be measured."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_HEADER.split(","))
    missing = []
    for row, name, unit, pk, rk, rname, nd, goal, ratio in ROWS:
        name = name.replace("LAT_RATE", f"{lat_rate / 1e6:g} Mpps")
        pv = [r[pk] for r in results["pollux"] if isinstance(r.get(pk), float)]
        ref = results["macswap" if "macswap" in rname else "testpmd"]
        rv = [r[rk] for r in ref if isinstance(r.get(rk), float)]
        p, t = m3(pv), m3(rv)
        if not p or not t:
            missing.append(row)
        q = p[0] / t[0] if p and t and t[0] > 0 and ratio else None
        w.writerow([row, name, unit, str(min(len(pv), len(rv))),
                 fmt(p and p[0], nd), fmt(p and p[1], nd), fmt(p and p[2], nd), rname,
                 fmt(t and t[0], nd), fmt(t and t[1], nd), fmt(t and t[2], nd), fmt(q, 3), goal])
    return buf.getvalue().splitlines(), missing


def main():
    ap = argparse.ArgumentParser(description="pollux L4 bench rows (a), (b), (c) against testpmd io")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="1 run, short windows (development)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("l4: run as root (DPDK needs /var/run/dpdk and hugepages)")
    runs = 1 if a.quick else a.runs
    if runs < 1:
        sys.exit("l4: --runs must be >= 1")
    win = float(os.environ.get("WIN", 1.0 if a.quick else 2.0))
    cwin = float(os.environ.get("CWIN", 0.5 if a.quick else 1.0))
    lwin = float(os.environ.get("LWIN", 0.5 if a.quick else 1.0))
    lat_rate = float(os.environ.get("LAT_RATE", 5e5))
    for b in (GEN, POLLUX):
        if not os.access(b, os.X_OK):
            sys.exit(f"l4: {b} is missing: cargo build --release -p ctrl -p bench")
    if not shutil.which(TESTPMD):
        sys.exit(f"l4: {TESTPMD} not found (apt-get install dpdk)")
    logdir = a.out / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    benchproc.LOG = open(logdir / "l4.log", "w")
    work = Path(tempfile.mkdtemp(prefix=f"{TAG}-"))
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    log(f"l4: {runs} run(s), windows {win}/{cwin}/{lwin} s, latency at {lat_rate:.0f} pps, EAL memory {' '.join(MEM)}; "
        f"{cpu}, {os.cpu_count()} CPUs; load {open('/proc/loadavg').read().split()[:3]}; out {a.out}")

    def on_signal(sig, _frame):
        raise KeyboardInterrupt(f"signal {sig}")
    signal.signal(signal.SIGTERM, on_signal)
    ph = phases(win, cwin, lwin, lat_rate)
    results = {"pollux": [], "testpmd": [], "macswap": []}
    keys = ["a", "lat_p50", "lat_p99", "b10k", "b100k", "b1M", "b4M", "c", "c_flows"]
    raw = ["run,forwarder," + ",".join(keys)]
    t0 = time.monotonic()
    rc = 0
    try:
        for run in range(1, runs + 1):
            if time.monotonic() - t0 > BUDGET_S:
                log(f"time budget ({BUDGET_S} s) used: stopping after {run - 1} run(s)")
                break
            order = ["pollux", "testpmd", "macswap"] if run % 2 else ["testpmd", "macswap", "pollux"]
            for kind in order:
                try:
                    # macswap: the second reference, for row (a) only
                    r = forwarder_run(kind, run, work, logdir, ph[:1] if kind == "macswap" else ph)
                except Fail as e:
                    log(f"run {run} {kind}: FAILED: {e}")
                    continue
                results[kind].append(r)
                raw.append(f"{run},{kind}," + ",".join(fmt(r.get(k), 4) for k in keys))
    except KeyboardInterrupt as e:
        log(f"interrupted ({e})")
        rc = 130
    finally:
        cleanup()
        shutil.rmtree(work, ignore_errors=True)
    (a.out / "l4-runs.csv").write_text("\n".join(raw) + "\n")
    lines, missing = table(results, lat_rate)
    (a.out / "l4.csv").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    log(f"l4: done in {time.monotonic() - t0:.0f} s; {a.out / 'l4.csv'}")
    if rc:
        return rc
    if missing:
        log(f"l4: FAILED: no measurement for row(s) {', '.join(missing)} (pollux and testpmd both needed); see {logdir}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

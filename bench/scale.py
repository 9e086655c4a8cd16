#!/usr/bin/env python3
"""Row (h) of the benchmarks (issues 8 and 13): pollux's L4 NAT throughput
at 1, 2, 4, 8 workers, each beside dpdk-testpmd --forward-mode=io with the
same number of forwarding cores on the same memif link(s), in the same run.
Run it through bench/scale.sh (the usage comment there has the
device-machine steps). Two layouts (--mode):

queues (row h, the default): one memif link with N queue pairs, one
pollux-gen (`--queues N`, one lcore) sending 1k flows per worker, flow i on
queue i % N as a NIC's RSS keeps a flow on one queue; pollux has one port
with N queues (`queues: N`), worker w polls queue w; testpmd io forwards
queue q back to queue q with N cores. Each queue pair carries whole flows
both ways, so pollux hands nothing over but what its own flow ownership
(a hash of the client) puts on another worker. N + 1 CPUs (+1 spare).

links (row h-links, --mode links): N memif links of one queue each, N
pollux-gen processes; each pollux port has one queue (`queues: 1`): port i
is polled by its home worker i, and a flow whose owner (a hash of its
client) is another worker is handed over both ways (issue 13) — the
misdirected mix of a device with fewer queues than workers. 2N CPUs:

    pollux-gen i (memif server, own socket /run/pxbsc-<pid>-<run>-<i>.sock,
                  own --file-prefix pxbsc-<pid>-..., one worker lcore on CPU G_i;
                  sends 1k flows to VIP_i = 192.0.2.(10+i):80/udp, answers ARP
                  for 10.(i+1).1.0/24)
        ⇅ net_memif i
    forwarder (memif client on all N links), either
      pollux: workers [F_0..F_{N-1}], port i (self IP 10.(i+1).0.1/16) on
        worker i, virtual server i = VIP_i → members 10.(i+1).1.1-4:8080 on
        port i's subnet (snat none): each link carries its own flows, NATed
        frames go back on the link they came from; or
      dpdk-testpmd io, --nb-cores=N --port-topology=loop: port i → port i.

CPUs in links mode (from this process's affinity): with 2N+1 or more, one spare CPU takes
the housekeeping threads (pollux's ctrl, testpmd's main lcore, every
generator's main lcore), then N forwarder CPUs, then N generator CPUs.
With exactly 2N CPUs (N=1 on 2 cores; N=8 on 16) there is no spare: the
forwarder's housekeeping shares generator 0's CPU and the generators' share
forwarder 0's (both are mostly idle). Fewer than 2N CPUs: refused, unless
--oversubscribe (CPUs reused; the numbers then mean nothing, and the CSV
says so).

One measurement ("forwarder run"): start the N generators, start the
forwarder, probe every link until 64 flows come back whole, then every
generator runs `--flows 1000 --warm once --secs WIN` at the same moment; the
figure is the sum of what came back to the N generators (Mpps). Stop order
(memif: a peer that goes away while the other polls can crash it): testpmd
stops forwarding, every generator pauses, the forwarder quits, then the
generators. pollux and testpmd alternate their order from run to run.
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
BUNDLE = REPO / ".bundle/bin"


def binary(env, name, fallback):
    if os.environ.get(env):
        return os.environ[env]
    b = BUNDLE / name
    return str(b) if b.exists() else fallback


GEN = binary("POLLUX_GEN", "pollux-gen", str(REPO / "target/release/pollux-gen"))
POLLUX = binary("POLLUX", "pollux", str(REPO / "target/release/pollux"))
TESTPMD = binary("TESTPMD", "dpdk-testpmd", "dpdk-testpmd")
PMD_ARGS = os.environ.get("DPDK_PMD_ARGS", "").split()
TAG = f"pxbsc-{os.getpid()}"
VIP_PORT = 80
# Flows per worker: 1k (rows h), or SCALE_FLOWS, with the connection table
# then sized to them as bench/l4.py sizes it (a flow takes two slots; about
# half full); else pollux's default table (2^18 slots).
FLOWS = int(os.environ.get("SCALE_FLOWS", "1000"))
SLOTS = max(1 << 16, 1 << (4 * FLOWS - 1).bit_length()) if "SCALE_FLOWS" in os.environ else 1 << 18
# testpmd's RX/TX burst (its default, 32; TESTPMD_BURST: a control that the
# reference is not held back by its burst size when pollux's differs).
TESTPMD_BURST = int(os.environ.get("TESTPMD_BURST", "32"))
DEBUG = bool(os.environ.get("SCALE_DEBUG"))
CSV_HEADER = "row,name,unit,runs,pollux_median,pollux_min,pollux_max,ref_name,ref_median,ref_min,ref_max,ratio,goal"

import benchproc  # noqa: E402  (bench/ is on sys.path: the script's folder)
from benchproc import Fail, GenControl, PolluxControl, Proc, log, wait_for  # noqa: E402


def flows_label(n):
    """1000 -> "1k", 1000000 -> "1M"."""
    for unit, size in (("M", 1_000_000), ("k", 1000)):
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


def gen_mac(i):
    return f"02:00:00:00:00:{i + 1:02x}"


def dut_mac(i):
    return f"02:00:00:00:01:{i + 1:02x}"


def vip(i):
    return f"192.0.2.{10 + i}"


def members(i):
    return [f"10.{i + 1}.1.{h}" for h in range(1, 5)]


class Gen(GenControl):
    """pollux-gen i: memif server of link i (`queues` queue pairs), driven
    through its stdin."""

    def __init__(self, name, i, sock, cpu, house, mem, logdir, queues=1):
        self.i, self.label = i, f"generator {i}"
        cmd = [GEN, "--stdin", "--timeout", "900", "--lcore", "1", "--queues", str(queues),
               "--dst-mac", dut_mac(i), "--dst-ip", vip(i),
               "--dst-port", str(VIP_PORT), "--arp", f"10.{i + 1}.1.0/24", "--",
               f"--lcores=0@{house},1@{cpu}", "--main-lcore", "0", "--no-pci",
               f"--file-prefix={TAG}-{name}-g{i}", *mem, *PMD_ARGS,
               f"--vdev=net_memif0,role=server,id=0,socket={sock},mac={gen_mac(i)}"]
        self.proc = Proc(f"pollux-gen {i} ({name})", cmd, logdir / f"{name}-gen{i}.log", stdin=True)

    def started(self):
        self.proc.wait_line(lambda l: l.startswith("pollux-gen: running"), 30, "start")


class Pollux(PolluxControl):
    binary = POLLUX

    def __init__(self, name, socks, cpus, house, mem, work, logdir, poll="busy", queues=1):
        n = len(socks)
        self.api = f"/run/{TAG}-{name}-api.sock"
        cfg = work / f"{name}-pollux.yaml"
        eal = [*mem, *PMD_ARGS, "--no-pci", f"--file-prefix={TAG}-{name}-px"]
        eal += [f"--vdev=net_memif{i},role=client,id=0,socket={s},mac={dut_mac(i)}" for i, s in enumerate(socks)]
        ports = "\n".join(f"    - {{ name: pxsc{os.getpid() % 100000}p{i}, device: net_memif{i}, "
                          f"selfIps: [\"10.{i + 1}.0.1/16\"], queues: {queues} }}" for i in range(n))
        vss = "\n".join(
            f"  - name: vs{i}\n    address: {vip(i)}\n    port: {VIP_PORT}\n    protocol: udp\n"
            f"    idleTimeout: 30\n    snat: none\n    members:\n"
            + "\n".join(f"      - {{ address: {m}, port: 8080 }}" for m in members(i))
            for i in range(n))
        cfg.write_text(f"""# written by bench/scale.py: {len(cpus)} worker(s), {n} memif port(s) of {queues} queue(s), a virtual server each
instance: {{ name: {TAG}-{name} }}
dataplane:
  workers: {json.dumps(cpus)}
  pollMode: {poll}
  newFlowsPerSec: 0
  connections: {SLOTS}
  eal: {json.dumps(eal)}
  ports:
{ports}
virtualServers:
{vss}
api: {{ socket: {self.api} }}
""")
        # pollux's ctrl threads run on the allowed CPUs that are no worker's:
        # the affinity given here makes that the housekeeping CPU
        allowed = ",".join(str(c) for c in sorted(set(cpus) | {house}))
        self.proc = Proc(f"pollux ({name})", ["taskset", "-c", allowed, POLLUX, "run", "--config", str(cfg)],
                         logdir / f"{name}-pollux.log")
        self.n = len(cpus)  # workers

    def wait_ready(self):
        wait_for("pollux workers running", self.ready, 60, 0.1)



    def port_counters(self):
        s = self.show("stats")
        return [(p.get("rx_packets", 0), p.get("tx_packets", 0), dict(p.get("drops", {}))) for p in s["ports"]]

    def stop_forwarding(self):
        pass


class Testpmd:
    def __init__(self, name, socks, cpus, house, mem, logdir, queues=1):
        n = len(socks)
        lcores = ",".join([f"0@{house}"] + [f"{k + 1}@{c}" for k, c in enumerate(cpus)])
        cmd = ["stdbuf", "-oL", TESTPMD, f"--lcores={lcores}", "--main-lcore", "0", "--no-pci",
               f"--file-prefix={TAG}-{name}-tp", *mem, *PMD_ARGS]
        cmd += [f"--vdev=net_memif{i},role=client,id=0,socket={s},mac={dut_mac(i)}" for i, s in enumerate(socks)]
        cmd += ["--", "-i", "--no-flush-rx", f"--total-num-mbufs={16384 * max(n, queues)}", f"--burst={TESTPMD_BURST}",
                "--forward-mode=io", f"--nb-cores={len(cpus)}", "--port-topology=loop",
                f"--rxq={queues}", f"--txq={queues}"]
        self.proc = Proc(f"testpmd ({name})", cmd, logdir / f"{name}-testpmd.log", stdin=True)
        # one stream per forwarding core: port i (queue q) back to itself
        self.n = len(cpus)

    def wait_ready(self):
        wait_for("the testpmd prompt", self._prompt, 40, 0.05)
        self.proc.send("start")
        # the stream list `start` prints: port i must forward to itself, one core each
        streams = lambda: [l for l in self.proc.text().splitlines() if "RX P=" in l]
        try:
            wait_for("testpmd's stream list", lambda: len(streams()) >= self.n or self._prompt_dead(), 10)
        except Fail:
            pass
        streams = streams()
        loops = [l for l in streams if self._port(l, "RX") == self._port(l, "TX")]
        if len(loops) != self.n:
            raise Fail(f"testpmd: expected {self.n} streams port i → port i, got: {streams}; see {self.proc.logpath}")

    @staticmethod
    def _port(line, side):
        k = line.find(f"{side} P=")
        return line[k + 5:].split("/")[0] if k >= 0 else None

    def _prompt_dead(self):
        if not self.proc.alive():
            raise Fail(f"testpmd exited (rc {self.proc.p.returncode}); see {self.proc.logpath}")
        return False

    def _prompt(self):
        self._prompt_dead()
        return "testpmd> " in self.proc.text()

    def port_counters(self):
        return None

    def stop_forwarding(self):
        if self.proc.alive():
            self.proc.send("stop")
            wait_for("testpmd to stop forwarding", lambda: "Done." in self.proc.text() or not self.proc.alive(), 10)

    def stop(self):
        self.proc.send("quit")
        return self.proc.reap(20)


# ---------------------------------------------------------------- one run

def probe(gens, slow):
    """Every link: 64 flows at a low rate must come back whole (readiness of
    the link, and of pollux's ARP for all members); after 20 s, frames
    coming back at all is enough (with a warning)."""
    args = "--flows 64 --rate 20000 --secs 0.1 --warm 0 --drain-ms 20"
    pending = set(range(len(gens)))
    seen = {i: 0 for i in pending}
    rounds = 0
    end = time.monotonic() + 20 * slow
    while pending:
        for i in pending:
            gens[i].send_phase(args)
        rounds += 1
        for i in list(pending):
            r = gens[i].result(args, 10 * slow)
            seen[i] = max(seen[i], r["rx"])
            if DEBUG:
                log(f"probe round {rounds} link {i}: tx {r['tx']:.0f} rx {r['rx']:.0f}")
            if r["tx"] > 0 and r["rx"] == r["tx"]:
                pending.discard(i)
        if pending and time.monotonic() > end:
            dead = [i for i in pending if not seen[i]]
            if dead:
                raise Fail(f"nothing came back on link(s) {dead} within {20 * slow} s")
            log(f"WARN: link(s) {sorted(pending)} never came back whole (best {[seen[i] for i in sorted(pending)]} of 2000); going on")
            break
        if pending:
            time.sleep(0.05)


def forwarder_run(kind, n, run, lay, mem, win, work, logdir, mode):
    """links: N generators + one forwarder on N links; queues: one
    generator and the forwarder on one link of N queues. Returns (summed
    Mpps, per-link Mpps)."""
    name = f"n{n}-r{run}-{kind}"
    links, queues = (n, 1) if mode == "links" else (1, n)
    socks = [f"/run/{TAG}-n{n}r{run}{kind[0]}-{i}.sock" for i in range(links)]
    gens, fwd = [], None
    try:
        for i in range(links):
            gens.append(Gen(name, i, socks[i], lay["gen"][i], lay["gen_house"], mem, logdir, queues))
        for g in gens:
            g.started()
        if kind == "pollux":
            # oversubscribed, a busy-polling pollux worker was seen to starve the
            # generator beside it for tens of seconds: let it sleep when idle
            fwd = Pollux(name, socks, lay["fwd"], lay["fwd_house"], mem, work, logdir,
                         "adaptive" if lay["over"] else "busy", queues)
        else:
            fwd = Testpmd(name, socks, lay["fwd"], lay["fwd_house"], mem, logdir, queues)
        fwd.wait_ready()
        # oversubscribed, memif moves about one ring per time slice: be patient
        slow = 4 if lay["over"] else 1
        probe(gens, slow)
        args = f"--flows {FLOWS * queues} --warm once --secs {win}"
        c0 = fwd.port_counters()
        for g in gens:
            g.send_phase(args)
        rs = [g.result(args, (30 + 3 * win) * slow) for g in gens]
        c1 = fwd.port_counters()
        per = [r["rx_mpps"] for r in rs]
        extra = ""
        if c0 and c1:
            def drops(a, b):
                d = {k: v - a[2].get(k, 0) for k, v in b[2].items() if v != a[2].get(k, 0)}
                return ",".join(f"{k}+{v}" for k, v in d.items()) or "none"
            extra = "; pollux ports rx/tx (drops) " + " ".join(
                f"+{b[0] - a[0]}/+{b[1] - a[1]} ({drops(a, b)})" for a, b in zip(c0, c1))
        log(f"N={n} run {run} {kind}: back {sum(per):.3f} Mpps = " + " + ".join(f"{x:.3f}" for x in per)
            + "; sent " + " ".join(f"{r['tx_mpps']:.3f}" for r in rs)
            + "; loss " + " ".join(f"{r['loss']:.4f}" for r in rs)
            + "; rewritten " + " ".join(f"{r['rx_rewritten']:.0f}/{r['rx']:.0f}" for r in rs) + extra)
        if kind == "pollux":
            st = fwd.show("stats")
            (logdir / f"{name}-stats.json").write_text(json.dumps(st, indent=1))
            log(f"N={n} run {run} pollux workers (lcore@cpu): "
                + " ".join(f"{w.get('lcore')}@{w.get('cpu')}" for w in st["workers"]))
        return sum(per), per
    finally:
        stop_all(gens, fwd)
        for s in socks:
            try:
                os.unlink(s)
            except OSError:
                pass


def stop_all(gens, fwd):
    """memif-safe: forwarding stops, every generator stops polling, the
    forwarder closes its ports, then the generators go."""
    try:
        if fwd and fwd.proc.alive():
            fwd.stop_forwarding()
    except Fail as e:
        log(f"WARN: {e}")
    for g in gens:
        try:
            g.pause()
        except Fail as e:
            log(f"WARN: {e}")
    if fwd:
        fwd.stop()
    for g in gens:
        rc = g.quit()
        if rc != 0:
            log(f"WARN: pollux-gen {g.i} exited with rc {rc}; see {g.proc.logpath}")



def cleanup():
    benchproc.cleanup(TAG)


# ---------------------------------------------------------------- layout, memory

def layout(n, cpus, oversubscribe, mode="links"):
    """CPU roles for N workers, or an error string. links: N generators;
    queues: one."""
    c = len(cpus)
    g = n if mode == "links" else 1
    if n + g > c:
        if not oversubscribe:
            fit = [k for k in (1, 2, 4, 8, 12, 16, 32) if k + (k if mode == "links" else 1) <= c]
            return f"{n} workers need {n + g} CPUs ({g} generator(s) + N forwarder cores, one more as a spare " \
                   f"for housekeeping), this process may use {c} ({','.join(map(str, cpus))}); " \
                   f"worker counts that fit: {fit or 'none'} (or --oversubscribe: meaningless numbers)"
        if n > c:
            return f"{n} workers: pollux pins one worker per distinct CPU and only {c} are allowed, even oversubscribed"
    spare = cpus[0] if c >= n + g + 1 else None
    rest = cpus[1:] if spare is not None else cpus
    fwd = [rest[k % len(rest)] for k in range(n)]
    gen = [rest[(n + k) % len(rest)] for k in range(g)]
    return {"fwd": fwd, "gen": gen, "spare": spare,
            "fwd_house": spare if spare is not None else gen[0],
            "gen_house": spare if spare is not None else fwd[0],
            "over": n + g > c}


def memory_args():
    """BENCH_MEM if set; else 2 MiB hugepages when a hugetlbfs mount has >= 1 GiB
    free; else --no-huge -m 1024."""
    if os.environ.get("BENCH_MEM"):
        return os.environ["BENCH_MEM"].split(), "BENCH_MEM"
    try:
        free = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("HugePages_Free"))
        size = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("Hugepagesize"))
        mnt = next((l.split()[1] for l in open("/proc/mounts")
                    if l.split()[2] == "hugetlbfs" and "pagesize=1G" not in l), None)
    except (OSError, StopIteration, ValueError):
        free, size, mnt = 0, 0, None
    if mnt and size == 2048 and free * size >= 1 << 20:
        return ["--huge-dir", mnt, "--huge-unlink"], f"hugepages: {free} x 2 MiB free on {mnt}"
    return ["--no-huge", "-m", "1024"], "no hugepages (fewer than 512 free 2 MiB pages or no hugetlbfs mount)"


# ---------------------------------------------------------------- main

def m3(xs):
    return (statistics.median(xs), min(xs), max(xs)) if xs else None


def fmt(x, nd=3):
    return "" if x is None else f"{x:.{nd}f}"


def main():
    ap = argparse.ArgumentParser(description="pollux row (h): L4 NAT throughput at N workers vs testpmd io, memif")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--workers", default="1 2 4 8", help='worker counts, e.g. "1 2 4 8"')
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mode", choices=["queues", "links"], default="queues",
                    help="queues: one link of N queues, one generator (row h); links: N one-queue links, "
                         "flows handed over between workers (row h-links)")
    ap.add_argument("--oversubscribe", action="store_true",
                    help="allow worker counts that need more CPUs than there are (code-path check: numbers meaningless)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("scale: run as root (DPDK needs /var/run/dpdk, /run sockets, TAPs)")
    try:
        ns = [int(x) for x in a.workers.replace(",", " ").split()]
    except ValueError:
        sys.exit(f"scale: --workers {a.workers!r}: a list of integers, e.g. \"1 2 4 8\"")
    if not ns or min(ns) < 1 or max(ns) > 64 or a.runs < 1:
        sys.exit("scale: --workers needs counts 1..64, --runs >= 1")
    cpus = sorted(os.sched_getaffinity(0))
    lays = {}
    for n in ns:
        lay = layout(n, cpus, a.oversubscribe, a.mode)
        if isinstance(lay, str):
            sys.exit(f"scale: refused: {lay}")
        lays[n] = lay
    for b in (GEN, POLLUX):
        if not os.access(b, os.X_OK):
            sys.exit(f"scale: {b} is missing: cargo build --release -p ctrl -p bench")
    if not (os.access(TESTPMD, os.X_OK) or shutil.which(TESTPMD)):
        sys.exit(f"scale: {TESTPMD} not found (apt-get install dpdk, or the bundle: see bench/scale.sh)")
    win = float(os.environ.get("WIN", 2.0))
    mem, mem_desc = memory_args()
    logdir = a.out / "logs" / "scale"
    logdir.mkdir(parents=True, exist_ok=True)
    benchproc.LOG = open(logdir / "scale.log", "w")
    work = Path(tempfile.mkdtemp(prefix=f"{TAG}-"))
    model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    log(f"scale: mode {a.mode}, workers {ns}, {a.runs} run(s), window {win} s, {FLOWS} flows per worker, 64 B; "
        f"EAL memory {' '.join(mem)} ({mem_desc}); PMD args {' '.join(PMD_ARGS) or 'none'}; "
        f"{model}, CPUs {','.join(map(str, cpus))}; load {open('/proc/loadavg').read().split()[:3]}; out {a.out}")
    sib = sorted({Path(f"/sys/devices/system/cpu/cpu{c}/topology/thread_siblings_list").read_text().strip()
                  for c in cpus if Path(f"/sys/devices/system/cpu/cpu{c}/topology/thread_siblings_list").exists()})
    if any("," in x or "-" in x for x in sib):
        log(f"SMT: hardware threads share cores ({' '.join(sib)}): a forwarder and a generator may be siblings")
    for n in ns:
        L = lays[n]
        log(f"N={n}: forwarder lcores on CPUs {L['fwd']}, generators on {L['gen']}, "
            + (f"housekeeping on spare CPU {L['spare']}" if L["spare"] is not None else
               f"no spare CPU: forwarder housekeeping on CPU {L['fwd_house']}, generators' on {L['gen_house']}")
            + (" — OVERSUBSCRIBED: CPUs shared by busy pollers, the numbers mean nothing "
               "(pollux in pollMode adaptive)" if L["over"] else ""))

    def on_signal(sig, _frame):
        raise KeyboardInterrupt(f"signal {sig}")
    signal.signal(signal.SIGTERM, on_signal)
    res = {n: {"pollux": [], "testpmd": []} for n in ns}
    raw = ["workers,run,forwarder,mpps,per_link_mpps"]
    failed = []
    rc = 0
    t0 = time.monotonic()
    try:
        for n in ns:
            for run in range(1, a.runs + 1):
                order = ["pollux", "testpmd"] if run % 2 else ["testpmd", "pollux"]
                for kind in order:
                    try:
                        tot, per = forwarder_run(kind, n, run, lays[n], mem, win, work, logdir, a.mode)
                    except Fail as e:
                        log(f"N={n} run {run} {kind}: FAILED: {e}")
                        failed.append(f"N={n} run {run} {kind}")
                        continue
                    res[n][kind].append(tot)
                    raw.append(f"{n},{run},{kind},{tot:.4f},{' '.join(f'{x:.4f}' for x in per)}")
    except KeyboardInterrupt as e:
        log(f"interrupted ({e})")
        rc = 130
    finally:
        cleanup()
        shutil.rmtree(work, ignore_errors=True)

    tag = "" if a.mode == "queues" else "-links"
    (a.out / f"scale{tag}-runs.csv").write_text("\n".join(raw) + "\n")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_HEADER.split(","))
    med = {n: {k: m3(v) for k, v in res[n].items()} for n in ns}
    one = med.get(1, {})
    missing = []
    for n in ns:
        p, t = med[n]["pollux"], med[n]["testpmd"]
        if not p or not t:
            missing.append(n)
        over = " (OVERSUBSCRIBED: meaningless)" if lays[n]["over"] else ""
        runs = min(len(res[n]["pollux"]), len(res[n]["testpmd"]))
        # oversubscribed: no ratio (report.py would plot it as a bar)
        q = p[0] / t[0] if p and t and t[0] > 0 and not lays[n]["over"] else None
        where = (f"one link of {n} queue(s)" if a.mode == "queues"
                 else f"{n} one-queue link(s), flows handed over between workers")
        w.writerow([f"h{tag}", f"L4 NAT established, {flows_label(FLOWS)} flows per worker, 64 B, {n} workers, {where}{over}", "Mpps", runs,
                    fmt(p and p[0]), fmt(p and p[1]), fmt(p and p[2]), "testpmd io",
                    fmt(t and t[0]), fmt(t and t[1]), fmt(t and t[2]), fmt(q), ""])
    for n in ns:
        if n == 1:
            continue
        over = " (OVERSUBSCRIBED: meaningless)" if lays[n]["over"] or lays.get(1, {}).get("over") else ""

        def eff(kind):
            a_, b_ = med[n][kind], one.get(kind)
            return a_[0] / (n * b_[0]) if a_ and b_ and b_[0] > 0 else None
        pe, te = eff("pollux"), eff("testpmd")
        w.writerow([f"h{tag}", f"scaling efficiency Mpps(N) / (N x Mpps(1)), {n} workers{over}", "fraction",
                    min(len(res[n]["pollux"]), len(res[n]["testpmd"])),
                    fmt(pe), "", "", "testpmd io", fmt(te), "", "", "", ""])
    lines = buf.getvalue().splitlines()
    (a.out / f"scale{tag}.csv").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    log(f"scale: done in {time.monotonic() - t0:.0f} s; {a.out / f'scale{tag}.csv'}")
    if rc:
        return rc
    if missing or failed:
        log(f"scale: FAILED: {'; '.join(failed) or ''} {'no measurement for N=' + str(missing) if missing else ''}; see {logdir}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

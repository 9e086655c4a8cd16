"""Process plumbing shared by the bench scripts (l4.py, scale.py): a log
that goes to stderr and a file, bounded polling, child processes whose
output is read incrementally from their log file, and `result k=v ...`
lines of pollux-gen."""

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

LOG = None  # the calling script's own log file (set by it), or None


def log(msg):
    line = f"[{time.strftime('%H:%M:%S')}] {msg}"
    print(line, file=sys.stderr, flush=True)
    if LOG:
        LOG.write(line + "\n")
        LOG.flush()


class Fail(Exception):
    pass


def wait_for(what, fn, timeout, every=0.05):
    """Polls fn() until it returns a truthy value; Fail after timeout s."""
    end = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > end:
            raise Fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


class Proc:
    """A child process with its output in a log file, read incrementally."""

    live = []  # every Proc not yet reaped, for the cleanup

    def __init__(self, name, cmd, logpath, stdin=False):
        self.name, self.logpath = name, logpath
        self.out = open(logpath, "w")
        self.out.write(" ".join(cmd) + "\n")
        self.out.flush()
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                  stdout=self.out, stderr=subprocess.STDOUT, text=True,
                                  start_new_session=True)
        self.pos = 0
        Proc.live.append(self)

    def alive(self):
        return self.p.poll() is None

    def new_lines(self):
        with open(self.logpath, "rb") as f:
            f.seek(self.pos)
            data = f.read()
        cut = data.rfind(b"\n") + 1
        self.pos += cut
        return data[:cut].decode(errors="replace").splitlines()

    def text(self):
        return Path(self.logpath).read_text(errors="replace")

    def send(self, line):
        if self.alive() and self.p.stdin:
            try:
                self.p.stdin.write(line + "\n")
                self.p.stdin.flush()
            except (BrokenPipeError, OSError):
                pass

    def wait_line(self, pred, timeout, what):
        def seen():
            for line in self.new_lines():
                if pred(line):
                    return line
            if not self.alive():
                raise Fail(f"{self.name} exited (rc {self.p.returncode}) while waiting for {what}; see {self.logpath}")
            return None
        return wait_for(f"{what} from {self.name}", seen, timeout, 0.02)

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.alive():
            try:
                self.p.send_signal(sig)
            except ProcessLookupError:
                pass
        return self.reap(timeout)

    def reap(self, timeout):
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            log(f"{self.name} did not exit within {timeout} s: SIGKILL")
            self.p.kill()
            rc = self.p.wait(5)
        if self.p.stdin:
            try:
                self.p.stdin.close()
            except OSError:
                pass
        self.out.close()
        if self in Proc.live:
            Proc.live.remove(self)
        return rc


def kv(line):
    """`result k=v k=v ...` → dict (numbers as floats where they parse)."""
    d = {}
    for tok in line.split()[1:]:
        if "=" in tok:
            k, v = tok.split("=", 1)
            try:
                d[k] = float(v)
            except ValueError:
                d[k] = v
    return d


class GenControl:
    """A pollux-gen started with --stdin (self.proc, a Proc): phases go in
    as lines, each answered by one `result k=v ...` line."""

    proc: Proc
    label = "pollux-gen"

    def send_phase(self, args):
        self.proc.send(args)

    def result(self, args, timeout):
        line = self.proc.wait_line(lambda l: l.startswith("result ") or l.startswith("pollux-gen: error"),
                                   timeout, f"the result of phase `{args}`")
        if not line.startswith("result "):
            raise Fail(f"{self.label} refused phase `{args}`: {line}")
        r = kv(line)
        if r.get("aborted"):
            raise Fail(f"{self.label}: phase `{args}` was aborted")
        return r

    def phase(self, args, timeout):
        self.send_phase(args)
        return self.result(args, timeout)

    def pause(self):
        if self.proc.alive():
            self.proc.send("pause")
            self.proc.wait_line(lambda l: l == "pollux-gen: paused", 10, "pause")

    def quit(self):
        if self.proc.alive():
            self.proc.send("quit")
            try:
                self.proc.p.stdin.close()
            except OSError:
                pass
        return self.proc.reap(15)


def cleanup(tag):
    """Stops whatever is still running — generators paused first (memif in
    DPDK 22.11 crashes the side that polls when its peer goes) — and
    removes the sockets and DPDK runtime folders named after `tag`."""
    for p in list(Proc.live):
        if p.name.startswith("pollux-gen") and p.alive():
            p.send("pause")
    time.sleep(0.3)
    for p in list(Proc.live):
        if not p.name.startswith("pollux-gen"):
            p.stop(signal.SIGTERM, 15)
    for p in list(Proc.live):
        p.stop(signal.SIGTERM, 10)
    for f in Path("/run").glob(f"{tag}-*.sock"):
        f.unlink(missing_ok=True)
    for d in Path("/var/run/dpdk").glob(f"{tag}-*"):
        shutil.rmtree(d, ignore_errors=True)


class PolluxControl:
    """A `pollux run` child (self.proc) queried through its API socket
    (self.api) with the `pollux` binary (self.binary); self.n, when set,
    is how many workers it must report."""

    proc: Proc
    api: str
    binary: str
    n = None

    def show(self, what):
        r = subprocess.run([self.binary, "show", what, "--json", "--api", self.api],
                           capture_output=True, text=True, timeout=10)
        if r.returncode != 0:
            raise Fail(f"pollux show {what}: {r.stderr.strip()}")
        return json.loads(r.stdout)

    def ready(self):
        """Every worker running (for wait_for); Fail if pollux exited."""
        if not self.proc.alive():
            raise Fail(f"pollux exited (rc {self.proc.p.returncode}); see {self.proc.logpath}")
        try:
            s = self.show("stats")
        except (Fail, json.JSONDecodeError, subprocess.TimeoutExpired):
            return None
        workers = s.get("workers", [])
        return (s.get("workers_running") and all(w["running"] for w in workers)
                and (self.n is None or len(workers) == self.n))

    def stop(self):
        """SIGTERM (pollux drains), bounded wait; a non-zero exit is logged."""
        rc = self.proc.stop(signal.SIGTERM, 20)
        if rc != 0:
            log(f"WARN: pollux exited with rc {rc}; see {self.proc.logpath}")
        return rc

"""Process plumbing shared by the bench scripts (l4.py, scale.py): a log
that goes to stderr and a file, bounded polling, child processes whose
output is read incrementally from their log file, and `result k=v ...`
lines of pollux-gen."""

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

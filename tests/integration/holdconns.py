"""Many TCP connections held open, for connection-table and SNAT tests.

listen PORT ADDR...: one listening socket per address, backlog 65535, never
accepting: the kernel completes each handshake into the accept queue (raise
net.core.somaxconn in the namespace), so no file descriptor is used per
connection. Prints "ready", then waits for stdin to close.
connect HOST PORT N DEADLINE_S: N non-blocking connects, 200 at a time; prints
"connected K" once all N are connected or DEADLINE_S has passed (K = how
many connected), then "errors {...}" (failed connects by errno), then holds them until stdin closes. N must stay under the
process's file limit (RLIMIT_NOFILE: raised to the hard limit here).
IP literals only.
"""
import errno
import resource
import selectors
import socket
import sys
import time
from collections import Counter


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def listen(port: int, addrs: list[str]):
    socks = []
    for a in addrs:
        s = socket.socket(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((a, port))
        s.listen(65535)
        socks.append(s)
    print("ready", flush=True)
    sys.stdin.read()


def connect(host: str, port: int, n: int, deadline_s: float, chunk: int = 200):
    """Connects in chunks of `chunk` (the next chunk once this one is done):
    a burst of thousands of SYNs at once overflows the receiving AF_XDP
    ring, and the synchronized retransmissions overflow it again."""
    raise_nofile()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sel = selectors.DefaultSelector()
    socks = []
    errors = Counter()
    connected = 0
    deadline = time.monotonic() + deadline_s
    while len(socks) < n and time.monotonic() < deadline:
        pending = 0
        for _ in range(min(chunk, n - len(socks))):
            s = socket.socket(family, socket.SOCK_STREAM)
            s.setblocking(False)
            socks.append(s)
            e = s.connect_ex((host, port))
            if e not in (0, errno.EINPROGRESS):
                errors[errno.errorcode.get(e, e)] += 1
                continue
            sel.register(s, selectors.EVENT_WRITE)
            pending += 1
        while pending and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=0.5):
                s = key.fileobj
                sel.unregister(s)
                pending -= 1
                e = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if e == 0:
                    connected += 1
                else:
                    errors[errno.errorcode.get(e, e)] += 1
    print(f"connected {connected}", flush=True)
    print(f"errors {dict(errors)}", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    if sys.argv[1] == "listen":
        listen(int(sys.argv[2]), sys.argv[3:])
    else:
        connect(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))

"""Load for the scale-out tests (issue 15): many short requests, and long
paced streams checked byte for byte. IP literals only.

serve HOST PORT
    Stream server, one thread per connection: reads a line "N RATE", sends
    N deterministic bytes at RATE bytes/s, closes.
streams SECONDS_LIMIT N BYTES RATE HOST:PORT
    N streams in parallel; prints one JSON line: {"ok": k, "failed": [..]}.
load SECONDS RATE HOST:PORT [HOST:PORT ...]
    Opens RATE new connections per second (round robin over the targets)
    for SECONDS; each sends an HTTP/1.0 GET and reads the answer to EOF
    (backend.py answers "<member> <client address it saw>"). Prints one
    JSON line: {"sent", "failed", "conns": [[start, end, ok, seen_as], ...]}
    with times in seconds since the epoch.
"""
import hashlib
import json
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor


def payload(n: int) -> bytes:
    out = bytearray()
    block = hashlib.sha256(b"scaleload").digest()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block * 64
    return bytes(out[:n])


def serve(host: str, port: int):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    ls = socket.socket(family, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, port))
    ls.listen(128)
    print("ready", flush=True)

    def one(c):
        with c:
            c.settimeout(30)
            line = b""
            while not line.endswith(b"\n") and len(line) < 64:
                b = c.recv(1)
                if not b:
                    return
                line += b
            n, rate = (int(x) for x in line.split())
            data = payload(n)
            t0 = time.monotonic()
            sent, chunk = 0, 16384
            while sent < n:
                c.sendall(data[sent:sent + chunk])
                sent += min(chunk, n - sent)
                ahead = sent / rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)

    while True:
        c, _ = ls.accept()
        threading.Thread(target=one, args=(c,), daemon=True).start()


def target(s: str):
    host, port = s.rsplit(":", 1)
    return host.strip("[]"), int(port)


def stream(dst, n: int, rate: int, limit: float):
    try:
        with socket.create_connection(dst, timeout=limit) as c:
            c.sendall(f"{n} {rate}\n".encode())
            got = bytearray()
            while True:
                b = c.recv(65536)
                if not b:
                    break
                got += b
        if bytes(got) != payload(n):
            return f"{len(got)} of {n} bytes, or corrupt"
        return None
    except OSError as e:
        return repr(e)


def streams(limit: float, count: int, n: int, rate: int, dst):
    with ThreadPoolExecutor(count) as ex:
        res = list(ex.map(lambda _: stream(dst, n, rate, limit), range(count)))
    print(json.dumps({"ok": res.count(None), "failed": [r for r in res if r]}), flush=True)


def request(dst, timeout: float = 5.0):
    start = time.time()
    try:
        with socket.create_connection(dst, timeout=timeout) as c:
            c.settimeout(timeout)
            c.sendall(b"GET / HTTP/1.0\r\n\r\n")
            got = bytearray()
            while True:
                b = c.recv(4096)
                if not b:
                    break
                got += b
        text = got.decode(errors="replace")
        ok = text.startswith("HTTP/1.0 200") or text.startswith("HTTP/1.1 200")
        seen = text.rstrip().rsplit("\n", 1)[-1].split()[-1] if ok else ""
        return [start, time.time(), ok, seen]
    except OSError as e:
        return [start, time.time(), False, repr(e)]


def load(seconds: float, rate: float, dsts):
    conns, futures = [], []
    with ThreadPoolExecutor(128) as ex:
        t0 = time.monotonic()
        i = 0
        while True:
            due = t0 + i / rate
            now = time.monotonic()
            if due - t0 >= seconds:
                break
            if due > now:
                time.sleep(due - now)
            futures.append(ex.submit(request, dsts[i % len(dsts)]))
            i += 1
        conns = [f.result() for f in futures]
    failed = sum(1 for c in conns if not c[2])
    print(json.dumps({"sent": len(conns), "failed": failed, "conns": conns}), flush=True)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "serve":
        serve(sys.argv[2], int(sys.argv[3]))
    elif mode == "streams":
        streams(float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), target(sys.argv[6]))
    elif mode == "load":
        load(float(sys.argv[2]), float(sys.argv[3]), [target(t) for t in sys.argv[4:]])
    else:
        sys.exit(f"unknown mode {mode}")

"""Moves N bytes each way over one TCP connection and checks them.

serve HOST PORT: accept one connection, read until EOF, answer the SHA-256
of what arrived (64 hex chars), then send N deterministic bytes and close.
client HOST PORT N [M]: send N deterministic bytes, half-close, check the
server's hash of them and the M (default N; the server's own N) bytes that
come back. Exit 0 only if both
directions arrived intact. IP literals only (no DNS in test namespaces).
"""
import hashlib
import socket
import sys


def payload(n: int, seed: bytes) -> bytes:
    out = bytearray()
    block = hashlib.sha256(seed).digest()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block * 64
    return bytes(out[:n])


def serve(host: str, port: int, n: int):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as ls:
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((host, port))
        ls.listen(1)
        print("listening", flush=True)
        ls.settimeout(30)
        c, _ = ls.accept()
        with c:
            c.settimeout(30)
            h = hashlib.sha256()
            while True:
                b = c.recv(65536)
                if not b:
                    break
                h.update(b)
            c.sendall(h.hexdigest().encode())
            c.sendall(payload(n, b"server"))


def client(host: str, port: int, n: int, m: int) -> int:
    data = payload(n, b"client")
    with socket.create_connection((host, port), timeout=30) as c:
        c.sendall(data)
        c.shutdown(socket.SHUT_WR)
        got = bytearray()
        while True:
            b = c.recv(65536)
            if not b:
                break
            got += b
    echoed, back = got[:64].decode(errors="replace"), bytes(got[64:])
    ok_up = echoed == hashlib.sha256(data).hexdigest()
    ok_down = back == payload(m, b"server")
    print(f"sent {n} bytes: {'intact' if ok_up else 'CORRUPT'}; received {len(back)} bytes: {'intact' if ok_down else 'CORRUPT'}")
    return 0 if ok_up and ok_down else 1


if __name__ == "__main__":
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 10_000_000
    m = int(sys.argv[5]) if len(sys.argv) > 5 else n
    sys.exit(serve(host, port, n) if mode == "serve" else client(host, port, n, m))

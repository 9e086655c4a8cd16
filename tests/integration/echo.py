"""Persistent TCP connections for the reload tests.

serve ADDR PORT: for every connection, read (4-byte length, payload)
records and answer each with "<ADDR> <sha256 of payload>\\n".
client HOST PORT: one connection; for every line N on stdin, send N
deterministic random bytes and print "ok <member>" if the answer's hash
matches, "corrupt <member>" if not, "error <exception>" if the
connection failed (then exit). IP literals only."""
import hashlib
import os
import socket
import sys
import threading


def recv_exactly(s: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        b = s.recv(n - len(out))
        if not b:
            raise ConnectionError("closed")
        out += b
    return bytes(out)


def handle(c: socket.socket, addr: str):
    with c:
        try:
            while True:
                n = int.from_bytes(recv_exactly(c, 4), "big")
                h = hashlib.sha256(recv_exactly(c, n)).hexdigest()
                c.sendall(f"{addr} {h}\n".encode())
        except OSError:
            pass


def serve(addr: str, port: int):
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    ls = socket.socket(family, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, port))
    ls.listen(64)
    print("ready", flush=True)
    while True:
        c, _ = ls.accept()
        threading.Thread(target=handle, args=(c, addr), daemon=True).start()


def client(host: str, port: int):
    try:
        s = socket.create_connection((host, port), timeout=5)
    except OSError as e:
        print(f"error {type(e).__name__}", flush=True)
        return
    print("connected", flush=True)
    for line in sys.stdin:
        data = os.urandom(int(line))
        try:
            s.sendall(len(data).to_bytes(4, "big") + data)
            reply = b""
            while not reply.endswith(b"\n"):
                b = s.recv(256)
                if not b:
                    raise ConnectionError("closed")
                reply += b
        except OSError as e:
            print(f"error {type(e).__name__}", flush=True)
            return
        member, h = reply.decode().split()
        ok = h == hashlib.sha256(data).hexdigest()
        print(f"{'ok' if ok else 'corrupt'} {member}", flush=True)


if __name__ == "__main__":
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    serve(host, port) if mode == "serve" else client(host, port)

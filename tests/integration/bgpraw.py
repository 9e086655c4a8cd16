"""A raw BGP peer that replays the malformed corpus (bgp_corpus.json,
exported from the pollux-bgp crate's `testing` module) at a running
pollux, one case per TCP connection, and prints one JSON line per case
with what pollux answered.

    bgpraw.py LISTEN_ADDR CORPUS_JSON [PORT] [--only=NAME,...] [--keep-writing=BYTES]

pollux connects to us (its neighbor address is LISTEN_ADDR). Cases sent
`instead_of_open` replace our OPEN; `established` cases follow a full
handshake. Every wait is bounded.

--only replays just the named cases. --keep-writing=BYTES makes the peer
behave as a real one that is still sending (its KEEPALIVE, queued UPDATEs)
when pollux rejects the case: BYTES of KEEPALIVEs follow the case in one
blocking write, and a write that fails ("connection reset", "broken
pipe": pollux closed with unread data) is reported as `write_error`.
"""
from __future__ import annotations

import ipaddress
import json
import socket
import struct
import sys
import time

MARKER = b"\xff" * 16
KEEPALIVE = MARKER + b"\x00\x13\x04"


def message(kind: int, body: bytes) -> bytes:
    return MARKER + struct.pack("!HB", 19 + len(body), kind) + body


def cap(code: int, value: bytes) -> bytes:
    return bytes([2, len(value) + 2, code, len(value)]) + value


def our_open(asn: int, peer_id: str, hold: int = 90) -> bytes:
    caps = cap(1, b"\x00\x01\x00\x01") + cap(2, b"") + cap(65, struct.pack("!I", asn))
    body = struct.pack("!BHH4sB", 4, asn if asn < 65536 else 23456, hold, ipaddress.IPv4Address(peer_id).packed, len(caps)) + caps
    return message(1, body)


def recv_exact(s: socket.socket, n: int, deadline: float) -> bytes | None:
    buf = b""
    while len(buf) < n:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = s.recv(n - len(buf))
        except socket.timeout:
            raise TimeoutError("no answer")
        except ConnectionResetError:
            return None
        if not chunk:
            return None
        buf += chunk
    return buf


def read_msg(s: socket.socket, timeout: float = 5.0) -> bytes | None:
    """One whole message, or None when the connection closed."""
    deadline = time.monotonic() + timeout
    h = recv_exact(s, 19, deadline)
    if h is None:
        return None
    (length,) = struct.unpack("!H", h[16:18])
    body = recv_exact(s, max(0, length - 19), deadline)
    if body is None:
        return None
    return h + body


def establish(s: socket.socket, asn: int, peer_id: str):
    m = read_msg(s)
    assert m and m[18] == 1, f"expected OPEN, got {m!r}"
    s.sendall(our_open(asn, peer_id) + KEEPALIVE)
    while True:
        m = read_msg(s)
        assert m is not None, "closed while establishing"
        assert m[18] != 3, f"NOTIFICATION while establishing: {m.hex()}"
        if m[18] == 2 and len(m) == 23:  # IPv4 End-of-RIB
            return


def outcome(s: socket.socket, timeout: float = 5.0) -> dict:
    """The first NOTIFICATION before the close, or a close without one,
    each message within `timeout` seconds."""
    while True:
        try:
            m = read_msg(s, timeout)
        except TimeoutError:
            return {"timeout": True}
        if m is None:
            return {"notification": None}
        if m[18] == 3:
            return {"notification": {"code": m[19], "subcode": m[20], "data": m[21:].hex()}}


def still_up(s: socket.socket) -> dict:
    """Asks for the table again (ROUTE-REFRESH IPv4 unicast): an UPDATE
    back proves the session survived the case."""
    s.sendall(message(5, b"\x00\x01\x00\x01"))
    while True:
        try:
            m = read_msg(s)
        except TimeoutError:
            return {"still_up": False, "why": "no UPDATE after ROUTE-REFRESH"}
        if m is None:
            return {"still_up": False, "why": "closed"}
        if m[18] == 3:
            return {"still_up": False, "why": f"NOTIFICATION {m[19]}/{m[20]}"}
        if m[18] == 2 and len(m) > 23:
            return {"still_up": True}


def order(cases: list[dict]) -> list[dict]:
    """Each case sent instead of an OPEN is followed by one that
    establishes first, so pollux's restart damping (longer delays after
    three failures in a row) never builds up."""
    early = [c for c in cases if c["when"] == "instead_of_open"]
    late = [c for c in cases if c["when"] == "established"]
    out = []
    while early or late:
        if early:
            out.append(early.pop(0))
        if late:
            out.append(late.pop(0))
    return out


def main():
    flags = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--")}
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    addr, corpus_path = args[0], args[1]
    port = int(args[2]) if len(args) > 2 else 179
    keep_writing = int(flags.get("--keep-writing", "0"))
    corpus = json.load(open(corpus_path))
    if "--only" in flags:
        names = flags["--only"].split(",")
        corpus["cases"] = [c for c in corpus["cases"] if c["name"] in names]
    asn, peer_id = corpus["peer_as"], corpus["peer_id"]
    lsock = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if keep_writing:
        # Segments well under the MTU: the burst tests pollux's close, not
        # how the exception path carries full-size frames.
        lsock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
    lsock.bind((addr, port))
    lsock.listen(4)
    print(json.dumps({"listening": True}), flush=True)
    for i, case in enumerate(order(corpus["cases"])):
        t0 = time.monotonic()
        # The first connection comes from a pollux that is just starting:
        # if its first attempt is lost it retries after ConnectRetryTime
        # (30 s) plus the 5 s connect timeout, as RFC 4271 has it. After a
        # case, its damped restart takes a few seconds.
        wait = 45 if i == 0 else 20
        lsock.settimeout(wait)
        try:
            s, _ = lsock.accept()
        except socket.timeout:
            print(json.dumps({"name": case["name"], "error": f"pollux did not connect within {wait} s"}), flush=True)
            continue
        res = {"name": case["name"]}
        try:
            if case["when"] == "instead_of_open":
                m = read_msg(s)
                assert m and m[18] == 1, f"expected OPEN, got {m!r}"
            else:
                establish(s, asn, peer_id)
            s.sendall(bytes.fromhex(case["bytes"]))
            if keep_writing:
                s.settimeout(30)
                try:
                    s.sendall(KEEPALIVE * (keep_writing // len(KEEPALIVE)))
                except OSError as e:
                    res["write_error"] = repr(e)
            if case["expected"]["kind"] in ("notification", "close"):
                # After a burst through pollux's punt path the answer may
                # need a TCP retransmission or two (RTO backoff on a loaded
                # 2-core host: CI once waited more than 5 s).
                res.update(outcome(s, 15.0 if keep_writing else 5.0))
            else:
                res.update(still_up(s))
        except Exception as e:  # noqa: BLE001 - reported per case
            res["error"] = repr(e)
        finally:
            s.close()
        res["secs"] = round(time.monotonic() - t0, 2)
        print(json.dumps(res), flush=True)
    print(json.dumps({"done": True}), flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A tiny passive BGP peer that records what FRR sends (fixture capture).

Run inside the peer namespace by capture-frr.sh. Phase 1 accepts FRR's
connection, answers OPEN + KEEPALIVE, and records every message until FRR
sends a NOTIFICATION (the script shuts the neighbor down with a shutdown
message). Phase 2 accepts FRR's next connection and answers with an OPEN
announcing the wrong AS, recording FRR's NOTIFICATION (Bad Peer AS).
Each message is written as one hex line to OUT/<name>.hex.
"""
import os
import socket
import struct
import sys
import time

OUT = sys.argv[1]
LOCAL_AS = 65002
ROUTER_ID = bytes([10, 99, 0, 2])
DEADLINE_S = 60


def cap(code, value=b""):
    # One Capabilities optional parameter (type 2) per capability.
    c = bytes([code, len(value)]) + value
    return bytes([2, len(c)]) + c


def open_msg(asn):
    caps = (
        cap(1, struct.pack("!HBB", 1, 0, 1))      # MP IPv4 unicast
        + cap(1, struct.pack("!HBB", 2, 0, 1))    # MP IPv6 unicast
        + cap(2)                                  # route refresh
        + cap(65, struct.pack("!I", asn))         # 4-octet AS
        # graceful restart: no flags, 120 s, IPv4 and IPv6 unicast with F
        + cap(64, struct.pack("!HHBBHBB", 120, 1, 1, 0x80, 2, 1, 0x80))
    )
    body = struct.pack("!BHH4sB", 4, asn if asn < 65536 else 23456, 9,
                       ROUTER_ID, len(caps)) + caps
    return b"\xff" * 16 + struct.pack("!HB", 19 + len(body), 1) + body


KEEPALIVE = b"\xff" * 16 + struct.pack("!HB", 19, 4)
# End-of-RIB: empty UPDATE (IPv4); UPDATE with an empty MP_UNREACH (IPv6).
EOR_V4 = b"\xff" * 16 + struct.pack("!HBHH", 23, 2, 0, 0)
EOR_V6 = b"\xff" * 16 + struct.pack("!HBHHBBBHB", 29, 2, 0, 6, 0x80, 15, 3, 2, 1)


def read_exact(conn, n, deadline):
    buf = b""
    while len(buf) < n:
        conn.settimeout(max(0.1, deadline - time.monotonic()))
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise EOFError("peer closed")
        buf += chunk
    return buf


def read_msg(conn, deadline):
    hdr = read_exact(conn, 19, deadline)
    length = struct.unpack("!H", hdr[16:18])[0]
    return hdr + read_exact(conn, length - 19, deadline)


def save(name, msg):
    with open(os.path.join(OUT, name + ".hex"), "w") as f:
        f.write(msg.hex() + "\n")
    print(f"saved {name}: type {msg[18]} len {len(msg)}", flush=True)


def main():
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("10.99.0.2", 179))
    srv.listen(4)
    srv.settimeout(DEADLINE_S)

    # Phase 1: a full session.
    conn, _ = srv.accept()
    deadline = time.monotonic() + DEADLINE_S
    updates = 0
    seen = set()
    while True:
        msg = read_msg(conn, deadline)
        kind = msg[18]
        if kind == 1:
            save("frr_open", msg)
            conn.sendall(open_msg(LOCAL_AS) + KEEPALIVE + EOR_V4 + EOR_V6)
        elif kind == 4:
            conn.sendall(KEEPALIVE)  # FRR's keepalive paces ours
            if "ka" not in seen:
                save("frr_keepalive", msg)
                seen.add("ka")
        elif kind == 2:
            updates += 1
            save(f"frr_update_{updates}", msg)
            conn.sendall(KEEPALIVE)
        elif kind == 3:
            save("frr_notification_shutdown", msg)
            break
    conn.close()

    # Phase 2: OPEN with the wrong AS; FRR must answer Bad Peer AS.
    conn, _ = srv.accept()
    deadline = time.monotonic() + DEADLINE_S
    while True:
        msg = read_msg(conn, deadline)
        if msg[18] == 1:
            conn.sendall(open_msg(65099))
        elif msg[18] == 3:
            save("frr_notification_bad_peer_as", msg)
            break
    conn.close()
    print("done", flush=True)


if __name__ == "__main__":
    main()

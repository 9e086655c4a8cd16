#!/usr/bin/env python3
"""Writes the committed seed corpora of the fuzz targets (fuzz/seeds/<target>/).

Deterministic: rerun after changing it and commit the result. The formats
are those documented at the top of each target in fuzz/fuzz_targets/.
"""
import json
import shutil
import struct
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parents[1]

# ----------------------------------------------------------------- frames

OUR_MAC = bytes([2, 0, 0, 0, 0, 2])
PEER_MAC = bytes([2, 0x50, 0, 0, 0, 1])


def csum(b: bytes) -> int:
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def a4(s):
    return bytes(int(x) for x in s.split("."))


def a6(s):
    import ipaddress
    return ipaddress.IPv6Address(s).packed


def l4(proto, sport, dport, flags=0x02, payload=b"", seq=1000, ack=0):
    if proto == 6:
        return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def fix_l4(proto, seg, pseudo):
    off = 16 if proto == 6 else 6
    c = csum(pseudo + seg)
    if proto == 17 and c == 0:
        c = 0xFFFF
    return seg[:off] + struct.pack("!H", c) + seg[off + 2:]


def v4(src, dst, proto, seg, ttl=64, frag=0, vlan=False):
    s, d = a4(src), a4(dst)
    if proto in (6, 17):
        seg = fix_l4(proto, seg, s + d + struct.pack("!BBH", 0, proto, len(seg)))
    elif proto == 1:
        seg = seg[:2] + struct.pack("!H", csum(seg)) + seg[4:]
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(seg), 1, frag, ttl, proto, 0, s, d)
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    eth = OUR_MAC + PEER_MAC + (b"\x81\x00\x00\x64" if vlan else b"") + b"\x08\x00"
    return eth + h + seg


def v6(src, dst, proto, seg, hops=64, ext=b"", first=None):
    s, d = a6(src), a6(dst)
    if proto in (6, 17, 58):
        pseudo = s + d + struct.pack("!IxxxB", len(seg), proto)
        if proto == 58:
            seg = seg[:2] + struct.pack("!H", csum(pseudo + seg)) + seg[4:]
        else:
            seg = fix_l4(proto, seg, pseudo)
    nh = proto if first is None else first
    h = struct.pack("!IHBB16s16s", 6 << 28, len(ext) + len(seg), nh, hops, s, d)
    return OUR_MAC + PEER_MAC + b"\x86\xdd" + h + ext + seg


def records(*frames):
    """[(ctl, frame)] as the l4_path input."""
    out = b""
    for ctl, f in frames:
        out += bytes([ctl]) + struct.pack("<H", len(f)) + f
    return out


CL, VIP, VIPS, VIPU, VIPA = "203.0.113.7", "192.168.77.128", "192.168.77.129", "192.168.77.130", "192.168.77.131"
M1, SELF = "10.1.0.10", "10.1.0.2"
SYN, SA, A, FA, R = 0x02, 0x12, 0x10, 0x11, 0x04


def l4_seeds():
    syn = v4(CL, VIP, 6, l4(6, 40001, 80, SYN))
    fwd_syn = v4(CL, M1, 6, l4(6, 40001, 8080, SYN), ttl=63)
    seeds = {
        "dnat_tcp_flow": records(
            (0, syn),
            (0, v4(M1, CL, 6, l4(6, 8080, 40001, SA, seq=5000, ack=1001))),
            (0x20, v4(CL, VIP, 6, l4(6, 40001, 80, A, b"GET / HTTP/1.0\r\n\r\n", 1001, 5001))),
            (0x20, v4(M1, CL, 6, l4(6, 8080, 40001, A, b"HTTP/1.0 200 OK\r\n", 5001, 1019))),
            (0, v4(CL, VIP, 6, l4(6, 40001, 80, FA, b"", 1019, 5018))),
            (7, b""), (7, b""), (0x17, v4(M1, CL, 6, l4(6, 8080, 40001, A, b"", 5018, 1020))),
        ),
        "snat_automap_tcp": records(
            (0, v4(CL, VIPS, 6, l4(6, 40002, 80, SYN))),
            (0, v4(M1, SELF, 6, l4(6, 8080, 40000, SA, seq=5000, ack=1001))),
            (0, v4(M1, SELF, 6, l4(6, 8080, 40003, SA, seq=5000, ack=1001))),
            (0x20, v4(CL, VIPS, 6, l4(6, 40002, 80, A, b"x", 1001, 5001))),
            (0, v4(CL, VIPS, 6, l4(6, 40009, 80, A, b"stray ack", 1, 1))),
        ),
        "snat_pool_udp_and_all_ports": records(
            (0, v4(CL, VIPU, 17, l4(17, 33333, 53, payload=b"query"))),
            (0, v4("10.1.0.12", "10.1.0.50", 17, l4(17, 5353, 40000, payload=b"answer"))),
            (0, v4(CL, VIPA, 17, l4(17, 1234, 9999, payload=b"any port"))),
            (0, v4("10.1.0.13", CL, 17, l4(17, 9999, 1234, payload=b"back"))),
            (0, v4(CL, VIP, 17, l4(17, 1, 80, payload=b"closed"))),
        ),
        "icmp_errors": records(
            (0, syn),
            # Fragmentation needed from a router on the member side, quoting
            # what pollux forwarded; port unreachable from the client side.
            (0, v4("10.1.0.1", CL, 1, struct.pack("!BBHHH", 3, 4, 0, 0, 1400) + fwd_syn[14:14 + 28])),
            (0, v4(CL, VIP, 1, struct.pack("!BBHI", 3, 3, 0, 0) + v4(M1, CL, 6, l4(6, 8080, 40001, SA))[14:14 + 28])),
            (0, v4(CL, VIP, 1, struct.pack("!BBHHH", 8, 0, 0, 1, 1) + b"ping")),
        ),
        "ipv6_ext_headers": records(
            # Hop-by-hop (PadN) then destination options, then TCP.
            (0, v6("2001:db8::7", "fd00:77::80", 6, l4(6, 40001, 443, SYN),
                   ext=bytes([60, 0, 1, 4, 0, 0, 0, 0]) + bytes([6, 0, 1, 4, 0, 0, 0, 0]), first=0)),
            (0, v6("fd01::10", "2001:db8::7", 6, l4(6, 443, 40001, SA, seq=5000, ack=1001))),
            # A fragment header to a VIP; UDP to the SNAT VS; ICMPv6 too big.
            (0, v6("2001:db8::7", "fd00:77::81", 17, l4(17, 5000, 53, payload=b"q"),
                   ext=bytes([17, 0, 0, 1, 0, 0, 0, 1]), first=44)),
            (0, v6("2001:db8::7", "fd00:77::81", 17, l4(17, 5000, 53, payload=b"q"))),
            (0, v6("fd01::11", "fd01::2", 17, l4(17, 53, 40000, payload=b"a"))),
            (0, v6("fd01::1", "2001:db8::7", 58, struct.pack("!BBHI", 2, 0, 0, 1280) +
                   v6("2001:db8::7", "fd01::10", 6, l4(6, 40001, 443, SYN))[14:14 + 60])),
        ),
        "vlan_and_fragments": records(
            (8, v4(CL, VIP, 6, l4(6, 40005, 80, SYN), vlan=True)),
            (0, v4(CL, VIP, 6, l4(6, 40006, 80, SYN), frag=0x2000)),
            (0, v4(CL, VIP, 47, b"\0" * 8)),
            (0, v4(CL, VIP, 6, l4(6, 40007, 80, SYN), ttl=1)),
        ),
    }
    return seeds


# ----------------------------------------------------------------- BGP

def bgp(type_, body):
    return b"\xff" * 16 + struct.pack("!HB", 19 + len(body), type_) + body


def open_msg(asn=65001, hold=90, bgp_id="192.0.2.2"):
    caps = bytes([1, 4, 0, 1, 0, 1]) + bytes([65, 4]) + struct.pack("!I", asn) + bytes([2, 0])
    params = bytes([2, len(caps)]) + caps
    return bgp(1, struct.pack("!BHH4sB", 4, asn if asn < 65536 else 23456, hold, a4(bgp_id), len(params)) + params)


KEEPALIVE = bgp(4, b"")


def update_v4(prefix="198.51.100.0", plen=24):
    attrs = (bytes([0x40, 1, 1, 0])  # ORIGIN IGP
             + bytes([0x40, 2, 6, 2, 1]) + struct.pack("!I", 65001)  # AS_PATH
             + bytes([0x40, 3, 4]) + a4("192.0.2.2"))  # NEXT_HOP
    nlri = bytes([plen]) + a4(prefix)[: (plen + 7) // 8]
    return bgp(2, struct.pack("!H", 0) + struct.pack("!H", len(attrs)) + attrs + nlri)


def bgp_seeds():
    up = open_msg() + KEEPALIVE
    seeds = {
        "established_keepalive": bytes([255, 0]) + up + KEEPALIVE,
        "established_updates_in_small_chunks": bytes([6, 0]) + up + update_v4() + update_v4("203.0.113.0", 25)
        + bgp(2, struct.pack("!HH", 4, 0) + bytes([24]) + a4("198.51.100.0")[:3]) + KEEPALIVE,
        "hold_3_timers": bytes([40, 1]) + open_msg(hold=3) + KEEPALIVE + KEEPALIVE,
        "notification": bytes([255, 0]) + up + bgp(3, bytes([6, 2])),
        "route_refresh": bytes([255, 0]) + up + bgp(5, struct.pack("!HBB", 1, 0, 1)),
    }
    corpus = json.loads((ROOT / "tests/integration/bgp_corpus.json").read_text())
    for c in corpus["cases"]:
        b = bytes.fromhex(c["bytes"])
        prefix = up if c["when"] == "established" else b""
        seeds[f"corpus_{c['name']}"] = bytes([255, 0]) + prefix + b
    return seeds


# ----------------------------------------------------------------- configs

CONFIG_FULL = """instance: { name: fz }
dataplane:
  workers: [1]
  connections: 4096
  ports:
    - { name: ext, device: net_null0, selfIps: ["10.0.0.2/24", "fd00::2/64"], puntRate: 100,
        neighbors: [{ address: 10.0.0.9, mac: "02:00:00:00:00:09" }] }
  routes: [{ prefix: 0.0.0.0/0, via: 10.0.0.1 }]
virtualServers:
  - name: web
    address: 192.168.77.128
    port: 80
    snat: automap
    idleTimeout: 300
    resetOnTimeout: true
    healthCheck: { type: http, intervalMs: 300, timeoutMs: 250, rise: 2, fall: 2, path: /, expectStatus: 200 }
    members: [{ address: 10.0.0.10, port: 8080, weight: 2 }, { address: 10.0.0.11, port: 8080 }]
  - { name: dns, address: 192.168.77.129, port: 53, protocol: udp, snat: [10.0.0.50], members: [{ address: 10.0.0.12, port: 5353 }] }
bgp:
  asn: 65000
  routerId: 10.0.0.2
  neighbors:
    - { address: 10.0.0.1, asn: 65001, bfd: true, holdTime: 9, minHoldTime: 3, maxPrefixes: 100, ttlSecurity: true, password: secret }
bfd: { minTxMs: 50, minRxMs: 50, multiplier: 3 }
api: { socket: /run/pollux/api.sock }
"""


def write(target, seeds):
    d = HERE / target
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    for name, data in sorted(seeds.items()):
        (d / name).write_bytes(data)


def bfd_seeds():
    def ctl(state, my, your, flags=0, mult=3, tx=10000, rx=10000, length=24):
        return struct.pack("!BBBBIIIII", 1 << 5, (state << 6) | flags, mult, length, my, your, tx, rx, 0)
    return {
        "down_no_your": ctl(1, 0x1234, 0),
        "init_your_1": ctl(2, 0x1234, 1),
        "up_poll": ctl(3, 0x1234, 1, flags=0x20),
        "up_final": ctl(3, 0x1234, 1, flags=0x10),
        "admin_down": ctl(0, 0x1234, 1),
        "auth_bit": ctl(3, 0x1234, 1, flags=0x04, length=28) + bytes([1, 4, 1, 0]),
    }


def l4_frames():
    """Each frame of the l4_path seeds alone (the wire_frame target)."""
    frames = {}
    for name, data in l4_seeds().items():
        i, rest = 0, data
        while len(rest) >= 3:
            n = struct.unpack("<H", rest[1:3])[0]
            if n:
                frames[f"{name}_{i}"] = rest[3:3 + n]
            rest = rest[3 + n:]
            i += 1
    arp = (b"\xff" * 6 + PEER_MAC + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)
           + PEER_MAC + a4("10.0.0.1") + b"\0" * 6 + a4("10.0.0.2"))
    frames["arp_request"] = arp
    return frames


if __name__ == "__main__":
    write("l4_path", l4_seeds())
    write("wire_frame", l4_frames())
    write("bfd_packet", bfd_seeds())
    write("bgp_message", {k: v[2:] for k, v in bgp_seeds().items()})
    write("bgp_stream", bgp_seeds())
    cfgs = {p.stem: p.read_bytes() for p in sorted((ROOT / "configs").glob("*.yaml"))}
    cfgs["full"] = CONFIG_FULL.encode()
    write("config", cfgs)

#!/usr/bin/env python3
"""Write the pcap pktgen-dpdk replays in pcap mode for the flow rows: one frame
per flow, every pair of SRC_IPS source addresses x SRC_PORTS source ports
(exactly their product, unlike range mode, which steps both together), to the
VIP. Load it with `pktgen ... -- -s 0:FILE ...` and run pollux-range.lua with
PCAP=on (bench/pktgen/README.md). Standard library only (and the
checksum of tests/integration/wirecsum.py).

    bench/pktgen/flows-pcap.py --vip-mac 02:00:00:00:18:02 --src-ips 256 \
        --src-ports 256 --size 64 -o /tmp/flows-64k.pcap
"""

from __future__ import annotations

import argparse
import ipaddress
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "integration"))
from wirecsum import csum  # noqa: E402  (the repository's one Internet checksum)


def frame(dst_mac: bytes, src_mac: bytes, src: int, dst: int, sport: int, dport: int, proto: str,
          size: int) -> bytes:
    """One Ethernet frame of `size` bytes with the FCS (the pcap holds size - 4)."""
    l4_len = 8 if proto == "udp" else 20
    payload = bytes(size - 4 - 14 - 20 - l4_len)
    s, d = struct.pack("!I", src), struct.pack("!I", dst)
    pnum = 17 if proto == "udp" else 6
    if proto == "udp":
        l4 = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload  # checksum 0: none
    else:
        hdr = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, 0x02, 65535, 0, 0)  # SYN
        pseudo = s + d + struct.pack("!BBH", 0, pnum, len(hdr) + len(payload))
        c = csum(pseudo + hdr + payload)
        l4 = hdr[:16] + struct.pack("!H", c) + hdr[18:] + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0, 64, pnum, 0, s, d)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return dst_mac + src_mac + b"\x08\x00" + ip + l4


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vip-mac", required=True, help="pollux's MAC on port 0's link")
    ap.add_argument("--src-mac", default="02:00:00:00:00:00", help="the frames' source MAC")
    ap.add_argument("--vip", default="192.0.2.10")
    ap.add_argument("--vip-port", type=int, default=80)
    ap.add_argument("--src-ip", default="198.18.0.1", help="first client address")
    ap.add_argument("--src-ips", type=int, default=256)
    ap.add_argument("--src-ports", type=int, default=256, help="source ports from 10000")
    ap.add_argument("--proto", choices=("udp", "tcp"), default="udp")
    ap.add_argument("--size", type=int, default=64, help="frame size with the FCS, 64..1518")
    ap.add_argument("-o", "--output", required=True)
    a = ap.parse_args()
    if not 64 <= a.size <= 1518:
        ap.error("--size must be 64..1518")
    if not 1 <= a.src_ports <= 65535 - 10000 or a.src_ips < 1:
        ap.error("--src-ips >= 1 and 1 <= --src-ports <= 55535")
    dst_mac, src_mac = (bytes.fromhex(m.replace(":", "")) for m in (a.vip_mac, a.src_mac))
    first, vip = int(ipaddress.IPv4Address(a.src_ip)), int(ipaddress.IPv4Address(a.vip))
    with open(a.output, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))  # Ethernet
        for i in range(a.src_ips):
            for p in range(a.src_ports):
                fr = frame(dst_mac, src_mac, first + i, vip, 10000 + p, a.vip_port, a.proto, a.size)
                f.write(struct.pack("<IIII", 0, 0, len(fr), len(fr)) + fr)
    print(f"{a.output}: {a.src_ips * a.src_ports} flows, {a.size} B frames, {a.proto} to {a.vip}:{a.vip_port}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

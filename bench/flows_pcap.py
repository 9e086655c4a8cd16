#!/usr/bin/env python3
"""Write the deterministic input of bench/callgrind.sh: a pcap of 64-byte
(60 + FCS) IPv4/UDP frames from FLOWS clients toward one VIP, PASSES times
over, preceded by one ARP request from the member asking for pollux's self
IP (pollux learns the member's MAC from it, so nothing waits for a
neighbor). Stdlib only.

Usage: flows_pcap.py OUT.pcap --flows N --passes K --dst-mac MAC
           [--vip 10.0.0.100] [--vport 80] [--self-ip 10.0.0.2]
           [--member 10.0.0.50] [--member-mac 02:00:00:00:00:50]
Client i is 10.1.(i/256).(i%256), source port 10000 + i % 50000."""
import argparse
import struct


def csum(b: bytes) -> int:
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s >> 16) + (s & 0xFFFF)
    return ~s & 0xFFFF


def mac(s: str) -> bytes:
    return bytes(int(x, 16) for x in s.split(":"))


def ip4(s: str) -> bytes:
    return bytes(int(x) for x in s.split("."))


def arp_request(smac: bytes, sip: bytes, tip: bytes) -> bytes:
    eth = b"\xff" * 6 + smac + b"\x08\x06"
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + smac + sip + b"\0" * 6 + tip
    return (eth + arp).ljust(60, b"\0")


def udp_frame(dst_mac: bytes, src_mac: bytes, src: bytes, sport: int, dst: bytes, dport: int) -> bytes:
    payload = b"\0" * (60 - 14 - 20 - 8)
    ulen = 8 + len(payload)
    pseudo = src + dst + struct.pack("!BBH", 0, 17, ulen)
    udp = struct.pack("!HHHH", sport, dport, ulen, 0) + payload
    udp = udp[:6] + struct.pack("!H", csum(pseudo + udp) or 0xFFFF) + udp[8:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + ulen, 0, 0, 64, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return dst_mac + src_mac + b"\x08\x00" + ip + udp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--flows", type=int, required=True)
    ap.add_argument("--passes", type=int, default=1)
    ap.add_argument("--dst-mac", required=True, help="pollux's port MAC")
    ap.add_argument("--vip", default="10.0.0.100")
    ap.add_argument("--vport", type=int, default=80)
    ap.add_argument("--self-ip", default="10.0.0.2")
    ap.add_argument("--member", default="10.0.0.50")
    ap.add_argument("--member-mac", default="02:00:00:00:00:50")
    a = ap.parse_args()
    client_mac = mac("02:00:00:00:01:01")
    frames = [arp_request(mac(a.member_mac), ip4(a.member), ip4(a.self_ip))]
    flows = [
        udp_frame(mac(a.dst_mac), client_mac, bytes([10, 1, i // 256 % 256, i % 256]),
                  10000 + i % 50000, ip4(a.vip), a.vport)
        for i in range(a.flows)
    ]
    frames += flows * a.passes
    with open(a.out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, fr in enumerate(frames):
            f.write(struct.pack("<IIII", i // 1_000_000, i % 1_000_000, len(fr), len(fr)) + fr)
    print(len(frames))


if __name__ == "__main__":
    main()

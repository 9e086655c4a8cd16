"""Raw frames from many spoofed senders, for the hardening tests.

    floodsend.py IFACE KIND COUNT DST_MAC TARGET [SECONDS [PPS]]

KIND:
  arp   ARP requests for TARGET (an IPv4 self IP), each from another sender
        (10.200.x.y at 02:ee:00:xx:xx:xx)
  na    unsolicited Neighbor Advertisements (O flag set) to TARGET (an IPv6
        self IP), each announcing another address (fd99::x) at another MAC
  udp   UDP datagrams to TARGET:9 (IPv4), each from another source port
With SECONDS, the COUNT frames are sent again and again until that much
time has passed (a flood); with PPS, at most PPS frames a second (paced: a
receiver descheduled for a moment on a loaded host still finds room in its
ring). Prints the number of frames sent.
"""
import errno
import socket
import struct
import sys
import time
from wirecsum import csum


def mac(i: int) -> bytes:
    return bytes([0x02, 0xEE]) + i.to_bytes(4, "big")


def arp(dst_mac: bytes, target: str, i: int) -> bytes:
    sip = bytes([10, 200, (i >> 8) & 0xFF, i & 0xFF])
    body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac(i) + sip + b"\0" * 6 + socket.inet_aton(target)
    return b"\xff" * 6 + mac(i) + b"\x08\x06" + body + b"\0" * 18


def na(dst_mac: bytes, target: str, i: int) -> bytes:
    src = socket.inet_pton(socket.AF_INET6, f"fd99::{i & 0xffff:x}:{i >> 16:x}")
    dst = socket.inet_pton(socket.AF_INET6, target)
    icmp = struct.pack("!BBHI", 136, 0, 0, 0x2000_0000) + src + bytes([2, 1]) + mac(i)
    pseudo = src + dst + struct.pack("!I3xB", len(icmp), 58)
    icmp = icmp[:2] + struct.pack("!H", csum(pseudo + icmp)) + icmp[4:]
    ip6 = struct.pack("!IHBB", 0x6000_0000, len(icmp), 58, 255) + src + dst
    return dst_mac + mac(i) + b"\x86\xdd" + ip6 + icmp


def udp(dst_mac: bytes, target: str, i: int) -> bytes:
    src = bytes([10, 201, (i >> 8) & 0xFF, i & 0xFF])
    payload = b"flood" * 4
    u = struct.pack("!HHHH", 1024 + (i % 60000), 9, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(u), i & 0xFFFF, 0, 64, 17, 0, src, socket.inet_aton(target))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return dst_mac + mac(i) + b"\x08\x00" + ip + u


def main():
    iface, kind, count, dst_mac, target = sys.argv[1:6]
    seconds = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
    pps = float(sys.argv[7]) if len(sys.argv) > 7 else 0.0
    build = {"arp": arp, "na": na, "udp": udp}[kind]
    dm = bytes.fromhex(dst_mac.replace(":", ""))
    frames = [build(dm, target, i) for i in range(int(count))]
    sent = 0
    start = time.monotonic()
    end = start + seconds
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((iface, 0))
        while True:
            for k, f in enumerate(frames):
                if pps and k % 100 == 0:
                    # the n-th frame sent no earlier than n / PPS s after the start
                    time.sleep(max(0.0, start + sent / pps - time.monotonic()))
                try:
                    s.send(f)
                    sent += 1
                except (BlockingIOError, OSError) as e:
                    # A full veth queue (ENOBUFS): this frame is not sent;
                    # the flood goes on (the sender counts only what left).
                    if isinstance(e, BlockingIOError) or e.errno == errno.ENOBUFS:
                        continue
                    raise
            if time.monotonic() >= end:
                break
    print(sent)


if __name__ == "__main__":
    main()

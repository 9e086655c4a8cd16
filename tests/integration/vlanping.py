"""Pings through an 802.1Q tag from a raw socket (this kernel has no 8021q
module, so a VLAN sub-interface is not an option).

vlanping.py IFACE VID SRC_IP DST_IP COUNT
Resolves DST's MAC with a tagged ARP request (IPv4) or Neighbor
Solicitation (IPv6), then sends COUNT tagged echo requests and waits for
each tagged reply. Exit 0 only if every reply came back tagged with VID.
"""
import ipaddress
import os
import socket
import struct
import sys
import time
from wirecsum import csum


def tag(vid: int, ethertype: int) -> bytes:
    return struct.pack("!HHH", 0x8100, vid, ethertype)


def icmp6(src: bytes, dst: bytes, body: bytes) -> bytes:
    pseudo = src + dst + struct.pack("!IxxxB", len(body), 58)
    c = csum(pseudo + body)
    return body[:2] + struct.pack("!H", c) + body[4:]


def main():
    iface, vid, src, dst, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    # The kernel untags in software before packet sockets see a frame; the
    # tag comes back as PACKET_AUXDATA (SOL_PACKET 263, option 8).
    s.setsockopt(263, 8, 1)
    s.bind((iface, 0))
    s.settimeout(0.2)
    mine = s.getsockname()[4][:6]
    v6 = ":" in dst
    sa, da = ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed

    def await_frame(pred, what):
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                f, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(20))
            except socket.timeout:
                continue
            for level, kind, data in anc:
                if level == 263 and kind == 8 and len(data) >= 20:
                    status, _, _, _, _, tci, tpid = struct.unpack("IIIHHHH", data[:20])
                    if status & 0x10:  # TP_STATUS_VLAN_VALID: put the tag back in the bytes
                        f = f[:12] + struct.pack("!HH", tpid or 0x8100, tci) + f[12:]
            if len(f) > 18 and f[12:14] == b"\x81\x00" and struct.unpack("!H", f[14:16])[0] & 0xFFF == vid and pred(f):
                return f
        sys.exit(f"no tagged {what} from {dst}")

    if v6:
        group = bytes.fromhex("ff0200000000000000000001ff") + da[13:]
        ns = icmp6(sa, group, struct.pack("!BBHI", 135, 0, 0, 0) + da + bytes([1, 1]) + mine)
        ip = struct.pack("!IHBB", 0x60000000, len(ns), 58, 255) + sa + group
        s.send(b"\x33\x33" + group[12:] + mine + tag(vid, 0x86DD) + ip + ns)
        f = await_frame(lambda f: f[16:18] == b"\x86\xdd" and f[58] == 136, "neighbor advertisement")
    else:
        arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mine + sa + bytes(6) + da
        s.send(b"\xff" * 6 + mine + tag(vid, 0x0806) + arp)
        f = await_frame(lambda f: f[16:18] == b"\x08\x06" and f[24:26] == b"\x00\x02", "ARP reply")
    theirs = f[6:12]
    for seq in range(1, count + 1):
        if v6:
            echo = icmp6(sa, da, struct.pack("!BBHHH", 128, 0, 0, os.getpid() & 0xFFFF, seq) + b"pollux-vlan")
            ip = struct.pack("!IHBB", 0x60000000, len(echo), 58, 64) + sa + da
            s.send(theirs + mine + tag(vid, 0x86DD) + ip + echo)
            await_frame(lambda f: f[16:18] == b"\x86\xdd" and f[58] == 129 and struct.unpack("!H", f[64:66])[0] == seq, f"echo reply {seq}")
        else:
            body = struct.pack("!BBHHH", 8, 0, 0, os.getpid() & 0xFFFF, seq) + b"pollux-vlan"
            body = body[:2] + struct.pack("!H", csum(body)) + body[4:]
            h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), seq, 0, 64, 1, 0, sa, da)
            h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
            s.send(theirs + mine + tag(vid, 0x0800) + h + body)
            await_frame(lambda f: f[16:18] == b"\x08\x00" and f[38] == 0 and struct.unpack("!H", f[44:46])[0] == seq, f"echo reply {seq}")
    print(f"{count}/{count} tagged replies from {dst} on VLAN {vid}")


main()

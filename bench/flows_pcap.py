#!/usr/bin/env python3
"""Write the deterministic input of bench/callgrind.sh: a pcap of 64-byte
(60 + FCS) IPv4 frames of FLOWS flows through one VIP, preceded by ARP
requests from the member and from the router toward the clients, both
asking for pollux's self IP (pollux learns their MACs from them, so
nothing waits for a neighbor). Stdlib only.

Modes (--mode), each flow's frames in order:
  udp   creation: client -> VIP (UDP);        each pass: client -> VIP
  udp2  creation: client -> VIP (UDP);        each pass: client -> VIP,
                                                         member -> client
  tcp   creation: SYN, SYN-ACK, ACK, ACK (the handshake, and each
        direction's first ACK: the state changes), in rounds (every
        flow's SYN, then every SYN-ACK, ...: see main);
                                              each pass: client PSH-ACK,
                                                         member ACK
  udp6  creation: client -> VIP (UDP over IPv6); each pass: client -> VIP
        (IPv6 has no fast path yet: this row is the slow path's cost)
  snat  as udp (callgrind.sh runs it through a `snat: automap` virtual
        server: source and destination rewritten; the member's replies go
        to ports pollux picks, so the file has none)
  tcpclose  creation: as tcp;             one pass: client FIN-ACK, member
        FIN-ACK, client ACK (the close; use --passes 2)
  (--passes 1 writes the creation frames only; --passes 1+K adds K passes.)

Prints two numbers: frames in the file, and the frames the virtual server
forwards (both directions; every frame but the ARP requests and, for
udp6, the member's neighbour solicitation).

Usage: flows_pcap.py OUT.pcap --flows N --passes K --dst-mac MAC [--mode M]
           [--vip 10.0.0.100] [--vport 80] [--self-ip 10.0.0.2]
           [--member 10.0.0.50] [--member-mac 02:00:00:00:00:50]
           [--router 10.0.0.1] [--router-mac 02:00:00:00:00:01]
Client i is 10.1.(i/256).(i%256), source port 10000 + i % 50000; the
member answers the client's address (snat none)."""
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


def tcp_frame(dst_mac: bytes, src_mac: bytes, src: bytes, sport: int, dst: bytes, dport: int,
              flags: int, seq: int, ack: int) -> bytes:
    tlen = 20
    pseudo = src + dst + struct.pack("!BBH", 0, 6, tlen)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + tlen, 0, 0, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return (dst_mac + src_mac + b"\x08\x00" + ip + tcp).ljust(60, b"\0")


FIN, SYN, RST, PSH, ACK = 1, 2, 4, 8, 16

VIP6, MEMBER6, SELF6 = "fd00::100", "fd00::50", "fd00::2"


def ip6(s: str) -> bytes:
    import ipaddress
    return ipaddress.IPv6Address(s).packed


def ipv6_frame(dst_mac: bytes, src_mac: bytes, src: bytes, dst: bytes, nh: int, hlim: int, l4: bytes) -> bytes:
    ip = struct.pack("!IHBB", 6 << 28, len(l4), nh, hlim) + src + dst
    return (dst_mac + src_mac + b"\x86\xdd" + ip + l4).ljust(60, b"\0")


def l4_csum6(src: bytes, dst: bytes, nh: int, l4: bytes, at: int) -> bytes:
    pseudo = src + dst + struct.pack("!IxxxB", len(l4), nh)
    c = csum(pseudo + l4) or 0xFFFF
    return l4[:at] + struct.pack("!H", c) + l4[at + 2:]


def neighbor_solicitation(smac: bytes, src: bytes, target: bytes) -> bytes:
    """An NS from `src` for `target`, with our link-layer address option."""
    snm = bytes.fromhex("ff0200000000000000000001ff") + target[13:]
    icmp = struct.pack("!BBHI", 135, 0, 0, 0) + target + bytes([1, 1]) + smac
    icmp = l4_csum6(src, snm, 58, icmp, 2)
    return ipv6_frame(b"\x33\x33" + snm[12:], smac, src, snm, 58, 255, icmp)


def udp6_frame(dst_mac: bytes, src_mac: bytes, src: bytes, sport: int, dst: bytes, dport: int) -> bytes:
    payload = b"\0" * 4
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    return ipv6_frame(dst_mac, src_mac, src, dst, 17, 64, l4_csum6(src, dst, 17, udp, 6))


def flow_frames(a, mode: str, i: int, passes: int) -> list:
    """Creation frames then `passes - 1` passes of one flow's frames."""
    us, client_mac, member_mac = mac(a.dst_mac), mac("02:00:00:00:01:01"), mac(a.member_mac)
    c, cport = bytes([10, 1, i // 256 % 256, i % 256]), 10000 + i % 50000
    vip, m = ip4(a.vip), ip4(a.member)
    if mode == "udp6":
        c6 = ip6("fd01::")[:12] + struct.pack("!I", i + 1)
        fwd = udp6_frame(us, client_mac, c6, cport, ip6(VIP6), a.vport)
        return [fwd], [fwd]
    if mode in ("udp", "udp2", "snat"):
        fwd = udp_frame(us, client_mac, c, cport, vip, a.vport)
        back = udp_frame(us, member_mac, m, 8080, c, cport)
        return [fwd], [fwd, back] if mode == "udp2" else [fwd]
    t = lambda fl, seq, ack: tcp_frame(us, client_mac, c, cport, vip, a.vport, fl, seq, ack)
    r = lambda fl, seq, ack: tcp_frame(us, member_mac, m, 8080, c, cport, fl, seq, ack)
    create = [t(SYN, 1, 0), r(SYN | ACK, 100, 2), t(ACK, 2, 101), r(ACK, 101, 2)]
    if mode == "tcpclose":
        return create, [t(FIN | ACK, 2, 101), r(FIN | ACK, 101, 3), t(ACK, 3, 102)]
    return create, [t(PSH | ACK, 2, 101), r(ACK, 101, 2)]


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
    ap.add_argument("--router", default="10.0.0.1")
    ap.add_argument("--router-mac", default="02:00:00:00:00:01")
    ap.add_argument("--mode", choices=("udp", "udp2", "tcp", "udp6", "snat", "tcpclose"), default="udp")
    a = ap.parse_args()
    frames = [arp_request(mac(a.member_mac), ip4(a.member), ip4(a.self_ip)),
              arp_request(mac(a.router_mac), ip4(a.router), ip4(a.self_ip))]
    if a.mode == "udp6":
        frames.append(neighbor_solicitation(mac(a.member_mac), ip6(MEMBER6), ip6(SELF6)))
    per_flow = [flow_frames(a, a.mode, i, a.passes) for i in range(a.flows)]
    # Creation in rounds: every flow's first frame, then every flow's
    # second, and so on. A TCP handshake's frames are a round trip apart
    # on a real link (the SYN-ACK answers the SYN pollux forwarded), never
    # in one receive burst: frames of one flow in one burst would meet
    # stages that run before the burst's first decision (the probe sees
    # no entry for the handshake's ACKs and prepares them as new flows).
    for k in range(max(len(create) for create, _ in per_flow)):
        frames += [create[k] for create, _ in per_flow if k < len(create)]
    for _ in range(a.passes - 1):
        for _, each in per_flow:
            frames += each
    with open(a.out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, fr in enumerate(frames):
            f.write(struct.pack("<IIII", i // 1_000_000, i % 1_000_000, len(fr), len(fr)) + fr)
    print(len(frames), len(frames) - (3 if a.mode == "udp6" else 2))


if __name__ == "__main__":
    main()

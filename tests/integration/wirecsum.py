"""The Internet checksum (RFC 1071) for the raw-frame helpers and tests
(vlanping.py, floodsend.py, test_foundation.py, bench/pktgen/flows-pcap.py):
one copy."""
import struct


def csum(b: bytes) -> int:
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF

"""Sends a raw Ethernet frame (hex) COUNT times on an interface."""
import socket
import sys

iface, frame, count = sys.argv[1], bytes.fromhex(sys.argv[2]), int(sys.argv[3])
with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
    s.bind((iface, 0))
    for _ in range(count):
        s.send(frame)

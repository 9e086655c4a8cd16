"""A test backend: HTTP on ADDR:8080 and ADDR:8081 answering "<its
address> <client address>", and UDP on ADDR:5353 echoing "<its address>
<payload>". IP literals only (no DNS in the namespaces). (8081: a second
virtual server's members must differ from the first's for a reply to map
back to one of them without state.)"""
import http.server
import socket
import socketserver
import sys
import threading

addr = sys.argv[1]
family = socket.AF_INET6 if ":" in addr else socket.AF_INET


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        body = f"{addr} {self.client_address[0]}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


class S(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    address_family = family


def udp():
    u = socket.socket(family, socket.SOCK_DGRAM)
    u.bind((addr, 5353))
    while True:
        data, peer = u.recvfrom(2048)
        u.sendto(addr.encode() + b" " + data, peer)


threading.Thread(target=udp, daemon=True).start()
second = S((addr, 8081), H)
threading.Thread(target=second.serve_forever, daemon=True).start()
with S((addr, 8080), H) as s:
    print("ready", flush=True)
    s.serve_forever()

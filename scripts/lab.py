"""`make lab`: pollux in a network namespace on a real DPDK port (af_xdp on a
veth), a kernel client in another namespace, and what the client sees.

At this stage: the client pings pollux's self IPs (answered by the data
plane) and fetches a page from an HTTP server listening on pollux's self IP
behind the kernel TAP (the exception path); pollux's own counters show
which path each took. Later capabilities (virtual servers, BGP with FRR, a
second instance, BFD) grow this lab.
"""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests/integration"))
from netlab import POLLUX, Netns, Pollux, sh, veth, wait_for  # noqa: E402

CONFIG = """
instance: { name: lab-a }
dataplane:
  workers: 1
  pollMode: adaptive
  eal: ["--no-huge", "-m", "256", "--no-pci", "--vdev=net_af_xdp0,iface=ext0"]
  ports:
    - { name: external, device: net_af_xdp0, selfIps: ["10.0.0.2/24", "fd00::2/64"] }
api: { socket: "@SOCKET@", metrics: "127.0.0.1:9464" }
"""

HTTP_SERVER = """
import socketserver, http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello from a kernel socket behind pollux's TAP\\n"
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
socketserver.ThreadingTCPServer.allow_reuse_address = True
with socketserver.ThreadingTCPServer(("10.0.0.2", 8080), H) as s:
    print("ready", flush=True); s.serve_forever()
"""


def step(msg):
    print(f"\n== {msg}", flush=True)


def main():
    dp, client = Netns("pxlab-pollux"), Netns("pxlab-client")
    p = srv = None
    ok = True
    try:
        step("topology: pxlab-client (10.0.0.1, fd00::1) <-veth-> pxlab-pollux: pollux port 'external' (10.0.0.2, fd00::2) on DPDK net_af_xdp")
        veth(dp, "ext0", client, "cli0")
        client.run("ip", "addr", "add", "10.0.0.1/24", "dev", "cli0")
        client.run("ip", "addr", "add", "fd00::1/64", "dev", "cli0", "nodad")
        p = Pollux(dp, CONFIG)
        p.wait_ready()
        print(sh(str(POLLUX), "show", "interfaces", "--api", str(p.socket)).stdout, end="")

        step("the client pings pollux: answered by the data plane")
        for addr in ("10.0.0.2", "fd00::2"):
            r = client.run("ping", "-c", "3", "-i", "0.2", "-W", "2", addr, check=False)
            print(f"ping {addr}: " + (r.stdout.strip().splitlines()[-2] if r.stdout.strip() else r.stderr.strip()))
            ok &= r.returncode == 0

        step("the client reaches a TCP service on pollux's self IP (kernel socket behind the TAP)")
        srv = dp.popen(sys.executable, "-c", HTTP_SERVER, stdout=subprocess.PIPE, text=True)
        assert srv.stdout.readline().strip() == "ready"
        r = client.run("curl", "-sS", "--max-time", "5", "http://10.0.0.2:8080/", check=False)
        print(f"curl http://10.0.0.2:8080/ -> {r.stdout.strip() or r.stderr.strip()}")
        ok &= r.returncode == 0

        step("pollux's counters (pollux show stats)")
        # Workers publish counters every 10 ms: wait for the pings to show.
        wait_for("echo replies counted", lambda: p.port("external")["echo_replies"] >= 6, timeout=3)
        print(sh(str(POLLUX), "show", "stats", "--api", str(p.socket)).stdout, end="")
        s = p.port("external")
        print(f"\nSeen: {s['echo_replies']} echo replies from the data plane, {s['arp_replies']} ARP and "
              f"{s['nd_replies']} ND answers, {s['to_tap']} frames to the kernel and {s['from_tap']} from it (TCP).")
    finally:
        step("cleaning up")
        if srv:
            srv.kill()
        if p:
            rc = p.stop()
            print(f"pollux stopped on SIGTERM, exit code {rc}")
            ok &= rc == 0
        dp.delete()
        client.delete()
    print("\nlab: OK" if ok else "\nlab: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

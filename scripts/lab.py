"""`make lab`: the product in miniature, in network namespaces, printed.

    client ── FRR router ──[ext]── pollux a, b ──[int]── FRR (backends' router) ── backends
      (BGP + BFD 10 ms x 3, ECMP over a and b, both sides)

Two identical pollux instances on real DPDK ports (af_xdp on veths) peer
with both routers (BGP + BFD) and advertise two VIPs: one with SNAT
automap, one with `snat: none` (the backends' router reaches the clients
through the instances: docs/scale-out.md). The lab then shows what an
operator does with instances, under load:

1. requests spread over both instances and all members;
2. drain (SIGTERM of a) while a client opens 150 connections/s and long
   transfers run: requests sent / failed, transfers intact, exit code;
3. a joins again while DNAT transfers run through b;
4. kill -9 of a: time until FRR's kernel FIB drops it (beside FRR's own
   BFD detection), requests failed, long transfers that survived.

Everything is torn down at the end (tests/integration/scaleout_lab.py
builds the topology; namespaces pxlab-*).
"""
import json
import signal
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests/integration"))
from netlab import wait_for  # noqa: E402
from scaleout_lab import VIP_D, VIP_S, ScaleOutLab, ext_ip, int_ip  # noqa: E402

DRAIN_MS = 4000


def step(msg):
    print(f"\n== {msg}", flush=True)


def result(p, timeout=90) -> dict:
    out, err = p.communicate(timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(err)
    return json.loads(out.strip().splitlines()[-1])


def new_flows(p, suffix: str) -> int:
    return sum(v["new_flows"] for v in p.show("virtual-servers")["virtual_servers"] if v["name"].endswith(suffix))


def redirected(p) -> int:
    return sum(w["redirected"] for w in p.show("connections")["workers"])


def main() -> int:
    sys.stdout.reconfigure(line_buffering=True)
    ok = True
    lab = None
    try:
        step("topology: client -- FRR (AS 65001) -- pollux a, b (AS 65150) -- FRR (AS 65002) -- backends")
        lab = ScaleOutLab("pxlab", drain_ms=DRAIN_MS, bfd_ms=10)
        print(lab.rt.vtysh("show bfd peers brief"))
        print("FRR's kernel FIB:\n" + lab.ns["rt"].run("ip", "route", "show", VIP_S).stdout
              + lab.ns["rt"].run("ip", "route", "show", VIP_D).stdout)
        print("backends' router, route to the clients:\n" + lab.ns["brt"].run("ip", "route", "show", "10.150.9.0/24").stdout)

        step("60 requests to each VIP (SNAT automap; snat: none)")
        ld = result(lab.client("load", "1", "120", f"{VIP_S}:80", f"{VIP_D}:80"))
        seen = Counter(c[3] for c in ld["conns"] if c[2])
        print(f"{ld['sent'] - ld['failed']}/{ld['sent']} answered; the members saw the clients as {dict(sorted(seen.items()))}")
        print(f"(SNAT flows show the instance's int address: {int_ip('a')} = a, {int_ip('b')} = b)")
        ok &= ld["failed"] == 0

        step(f"drain: SIGTERM to pollux-a under 150 new connections/s, 24 transfers of 2.4 MB running (drain {DRAIN_MS} ms)")
        a, b = lab.pollux["a"], lab.pollux["b"]
        r0 = redirected(b)
        load = lab.client("load", "7", "150", f"{VIP_S}:80", f"{VIP_D}:80")
        streams = [lab.client("streams", "30", "12", "2400000", "1000000", f"{v}:9000") for v in (VIP_S, VIP_D)]
        wait_for("the transfers on a", lambda: new_flows(a, "streams") > 0, timeout=5)
        time.sleep(0.3)
        on_a = new_flows(a, "streams")
        t0 = time.monotonic()
        a.proc.send_signal(signal.SIGTERM)
        rc = a.proc.wait(DRAIN_MS / 1000 + 15)
        took = time.monotonic() - t0
        res = [result(s) for s in streams]
        ld = result(load)
        print(f"requests sent {ld['sent']}, failed {ld['failed']}")
        print(f"transfers: {sum(r['ok'] for r in res)}/24 byte-exact ({on_a} of them through a when it got SIGTERM); "
              f"b handed {redirected(b) - r0} of a's packets back to it (second chance)")
        print(f"pollux-a exit code {rc} after {took:.1f} s")
        ok &= ld["failed"] == 0 and all(not r["failed"] for r in res) and rc == 0

        step("a joins while 16 DNAT transfers run through b")
        s = lab.client("streams", "30", "16", "3000000", "1000000", f"{VIP_D}:9000")
        time.sleep(0.3)
        t0 = time.monotonic()
        a = lab.start("a")
        lab.wait_up()
        joined = time.monotonic() - t0
        r = result(s)
        print(f"a back in both routers' FIBs after {joined:.1f} s; transfers {r['ok']}/16 byte-exact; "
              f"a took {new_flows(a, 'streams')} of them up mid-flow")
        ok &= not r["failed"]

        step("kill -9 of pollux-a under load, 12 DNAT transfers running (BFD 10 ms x 3)")
        b0 = new_flows(b, "dnat-streams")
        a0 = new_flows(a, "dnat-streams")
        snat = lab.client("load", "3", "60", f"{VIP_S}:80")
        dnat = lab.client("load", "3", "60", f"{VIP_D}:80")
        s = lab.client("streams", "30", "12", "3000000", "1500000", f"{VIP_D}:9000")
        wait_for("the transfers under way", lambda: new_flows(a, "dnat-streams") - a0 + new_flows(b, "dnat-streams") - b0 >= 12, timeout=5)
        on_a = new_flows(a, "dnat-streams") - a0
        t_kill, m0 = time.time(), time.monotonic()
        a.proc.kill()
        wait_for("FRR to drop pollux-a", lambda: lab.nexthops("rt", VIP_S) == [ext_ip("b")], timeout=15, interval=0.002)
        fib = (time.monotonic() - m0) * 1000
        a.proc.wait(5)
        downs = lab.bfd_down_times(t_kill, peer=ext_ip("a"))
        ls, ldn, r = result(snat), result(dnat), result(s)
        bfd = f"{(downs[0] - t_kill) * 1000:.0f} ms" if downs else "not seen"
        print(f"VIP's next hop out of FRR's kernel FIB {fib:.0f} ms after the kill (FRR's bfdd said Down after {bfd})")
        print(f"requests: SNAT {ls['failed']}/{ls['sent']} failed (flows a held die with it), "
              f"DNAT {ldn['failed']}/{ldn['sent']} failed")
        print(f"long DNAT transfers: {r['ok']}/12 byte-exact, {on_a} of them through a when it died")
        ok &= not r["failed"] and ldn["failed"] == 0
    finally:
        step("cleaning up")
        if lab:
            for name, p in lab.pollux.items():
                if p.proc.poll() is None:
                    rc = p.stop()
                    print(f"pollux-{name} stopped on SIGTERM, exit code {rc}")
                    ok &= rc == 0
            lab.close()
    print("\nlab: OK" if ok else "\nlab: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

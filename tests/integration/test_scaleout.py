"""Issue 15: scale-out you can operate. Two pollux instances behind FRR
(BGP + BFD 10 ms x 3, ECMP), the backends behind their own FRR router that
reaches the clients through the instances (scaleout_lab.py, namespaces
h15-*): drain on SIGTERM under load, kill -9, an instance joining.
"""
import json
import os
import signal
import statistics
import subprocess
import time

import pytest

from netlab import wait_for
from scaleout_lab import VIP_D, VIP_S, ScaleOutLab, ext_ip, int_ip

DRAIN_MS = 4000


# BFD 50 ms x 3 for the drain and join tests: on two shared cores, FRR's
# bfdd itself misses 30 ms now and then under this load (both of its
# sessions expire at the same instant), which is no drain's doing. The
# kill -9 tests run at 10 ms x 3, as the issue asks, with a lighter load.
@pytest.fixture(scope="module")
def lab():
    lab = ScaleOutLab("h15", drain_ms=DRAIN_MS, bfd_ms=50)
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture(scope="module")
def lab10(lab):
    # After `lab`'s tests (module order); `lab` idles meanwhile.
    lab.close()
    lab10 = ScaleOutLab("h15k", drain_ms=DRAIN_MS, bfd_ms=10)
    try:
        yield lab10
    finally:
        lab10.close()


def result(p: subprocess.Popen, timeout: float) -> dict:
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def redirected(p) -> int:
    return sum(w["redirected"] for w in p.show("connections")["workers"])


def test_sigterm_drain_under_load_loses_nothing(lab):
    """SIGTERM of a while the client opens 150 new connections/s through
    both VIPs: none fails; paced streams running through a (shorter than
    the drain) complete byte-exact through b's second chance; exit 0."""
    lab.start("a")
    lab.wait_up()
    a, b = lab.pollux["a"], lab.pollux["b"]
    r0 = redirected(b)
    load = lab.client("load", "7", "150", f"{VIP_S}:80", f"{VIP_D}:80")
    # 2.4 s each at 1 MB/s; 12 per VIP so that some surely hash to a.
    streams = [lab.client("streams", "30", "12", "2400000", "1000000", f"{vip}:9000") for vip in (VIP_S, VIP_D)]
    time.sleep(0.5)  # the streams are under way (not a readiness wait)
    active = {n: p.show("virtual-servers") for n, p in lab.pollux.items()}
    a_streams = sum(v["active_flows"] for v in active["a"]["virtual_servers"] if v["name"].endswith("streams"))
    mon = lab.ns["rt"].popen("ip", "-ts", "monitor", "route", stdout=subprocess.PIPE, text=True)
    t0, t_term = time.monotonic(), time.time()
    a.proc.send_signal(signal.SIGTERM)
    rc = a.proc.wait(DRAIN_MS / 1000 + 15)
    took = time.monotonic() - t0
    res = [result(s, 60) for s in streams]
    ld = result(load, 60)
    print(f"drain: exit {rc} after {took:.1f} s (drain {DRAIN_MS} ms); requests sent {ld['sent']}, failed {ld['failed']}; "
          f"streams through a at SIGTERM: {a_streams}; streams ok {[r['ok'] for r in res]} of 12 each; "
          f"b redirected {redirected(b) - r0} packets to a")
    assert rc == 0, a.logs()
    assert "every peer knows this instance drains" in a.logs(), a.logs()[-2000:]
    mon.terminate()
    routes = mon.communicate(timeout=5)[0]
    failed = [(round(c[0] - t_term, 3), c[3]) for c in ld["conns"] if not c[2]]
    assert ld["failed"] == 0, f"failed (s after SIGTERM, why): {failed[:5]}; rt's routes:\n{routes}\n{lab.bfd_log_tail()}"
    assert ld["sent"] >= 7 * 150 * 0.9
    assert all(r["failed"] == [] for r in res), res
    assert a_streams > 0, "no stream went through a: the drain was not tested"
    assert redirected(b) > r0, "b never redirected a packet to the draining a"
    # b stops redirecting once a said it is done.
    assert wait_for("b to forget a's drain", lambda: "peer drain state changed" in b.logs() and "Done" in b.logs(), timeout=5)


def active(p, suffix: str) -> int:
    return sum(v["active_flows"] for v in p.show("virtual-servers")["virtual_servers"] if v["name"].endswith(suffix))


def new_flows(p, suffix: str) -> int:
    # active_flows counts entries until they expire (a closed flow's too):
    # new flows since a snapshot say where fresh streams went.
    return sum(v["new_flows"] for v in p.show("virtual-servers")["virtual_servers"] if v["name"].endswith(suffix))


def test_dnat_instance_joining_breaks_no_flow(lab):
    """`snat: none`: with b alone, paced streams to the DNAT VIP; a joins
    (rt and brt rehash part of them to a, which has no state): a picks them
    up mid-flow on the same Maglev member and the replies are reversed by
    whichever instance brt sends them to. All complete byte-exact."""
    if lab.pollux["a"].proc.poll() is None:
        lab.pollux["a"].proc.kill()
        lab.pollux["a"].proc.wait(5)
    lab.wait_up(["b"])
    streams = lab.client("streams", "30", "16", "3000000", "1000000", f"{VIP_D}:9000")
    wait_for("the streams on b", lambda: active(lab.pollux["b"], "dnat-streams") >= 16, timeout=5)
    t0 = time.monotonic()
    a = lab.start("a")
    lab.wait_up()
    joined = time.monotonic() - t0
    res = result(streams, 60)
    picked = sum(w["new_flows"] for w in a.show("connections")["workers"])
    print(f"join: a in rt's and brt's FIB {joined:.1f} s after its start; streams ok {res['ok']}/16; "
          f"a took {picked} flows (mid-flow pickups included)")
    assert res["failed"] == [], res
    assert picked > 0, "a took no flow: the join moved nothing, nothing was tested"


class TestKill:
    """kill -9 of a at BFD 10 ms x 3."""

    def test_kill9_leaves_at_bfd_speed_and_survivors_see_nothing(self, lab10):
        lab = lab10
        tries = int(os.environ.get("POLLUX_H15_KILL_TRIES", "3"))
        fib, bfd, void, streams_on_a = [], [], 0, []
        for i in range(tries + 3):  # bounded: a few tries may be void
            if len(fib) == tries:
                break
            a = lab.start("a")
            lab.wait_up()
            t_start = time.time()
            b = lab.pollux["b"]
            a0, b0 = new_flows(a, "dnat-streams"), new_flows(b, "dnat-streams")
            snat = lab.client("load", "3", "60", f"{VIP_S}:80")
            dnat = lab.client("load", "3", "60", f"{VIP_D}:80")
            streams = lab.client("streams", "30", "12", "3000000", "1500000", f"{VIP_D}:9000")
            # 15 s: a SYN lost while the routers settle (after a void try's
            # flap) is retried 1 s, then 3 s, then 7 s later.
            wait_for("the streams under way", lambda: new_flows(a, "dnat-streams") - a0 + new_flows(b, "dnat-streams") - b0 >= 12, timeout=15)
            on_a = new_flows(a, "dnat-streams") - a0
            t_kill, m0 = time.time(), time.monotonic()
            a.proc.kill()
            wait_for("rt's FIB without a", lambda: lab.nexthops("rt", VIP_S) == [ext_ip("b")], timeout=10, interval=0.002)
            took = (time.monotonic() - m0) * 1000
            t_fib = time.time()
            a.proc.wait(5)
            ls, ld, st = result(snat, 60), result(dnat, 60), result(streams, 60)
            downs = lab.bfd_down_times(t_kill, peer=ext_ip("a"))
            line = (f"try {i}: FIB {took:.0f} ms, FRR BFD Down {(downs[0] - t_kill) * 1000 if downs else float('nan'):.0f} ms; "
                    f"snat {ls['failed']}/{ls['sent']} failed, dnat {ld['failed']}/{ld['sent']} failed; "
                    f"dnat streams on a {on_a}, intact {st['ok']}/12")
            # On two shared cores BFD at 10 ms x 3 flaps now and then
            # (control-expired without any kill): a try in which rt's bfdd
            # dropped b, or had a down before the kill, measures the
            # machine, not pollux; it is void, and reported.
            # brt (the DNAT replies' router) likewise.
            brt_a = lab.bfd_down_times(t_start, peer=int_ip("a"), router="brt")
            if (not downs or lab.bfd_down_times(t_start, peer=ext_ip("b")) or lab.bfd_down_times(t_start, peer=ext_ip("a"))[0] < t_kill
                    or not brt_a or brt_a[0] < t_kill or lab.bfd_down_times(t_start, peer=int_ip("b"), router="brt")):
                void += 1
                print(line + " -- VOID: BFD flapped without the kill (CPU starvation)")
                continue
            print(line)
            streams_on_a.append(on_a)
            fib.append(took)
            bfd.append((downs[0] - t_kill) * 1000)
            late = [c for c in ls["conns"] + ld["conns"] if not c[2] and c[0] > t_fib]
            assert late == [], f"requests begun after the FIB change failed: {late[:3]}"
            # DNAT: b picks a's flows up mid-flow, brt's return path follows;
            # the long transfers through a complete byte-exact through b.
            assert ld["failed"] == 0, [c for c in ld["conns"] if not c[2]][:3]
            assert st["failed"] == [], st
            # SNAT: only requests a was carrying can fail (their state and
            # SNAT address died with it): a handful at 60/s.
            assert ls["failed"] <= 3, ls["failed"]
        # wait_up() saw BFD Up on both routers before every try, so a pollux
        # whose BFD does not work fails there, not here.
        if not fib and os.getloadavg()[0] > os.cpu_count():
            pytest.skip(f"every try void: BFD 10 ms x 3 flapped on its own, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        assert fib, f"{void} tries void: BFD 10 ms x 3 kept flapping without a kill"
        fs = sorted(fib)
        print(f"kill -9, {len(fs)} valid tries ({void} void): VIP's next hop out of rt's kernel FIB p50 {statistics.median(fs):.0f} ms, worst {fs[-1]:.0f} ms "
              f"(polled every ~2 ms); FRR's own BFD detection p50 {statistics.median(bfd):.0f} ms, worst {max(bfd):.0f} ms (BFD 10 ms x 3)")
        assert max(fs) < 1000, "slower than BFD explains (BGP hold time 9 s)"
        assert sum(streams_on_a) > 0, "no DNAT stream ran through the killed instance: nothing was tested"

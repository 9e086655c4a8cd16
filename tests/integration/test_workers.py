"""Issue 13: two workers, each with its own queue on a two-queue memif port;
every flow lives on exactly one worker, whichever queue its frames arrive on.

    dpdk-testpmd (memif client, 2 queues, txonly, multi-flow)
        ⇅ net_memif, socket in the test's temp dir
    pollux (memif server, 2 queues, workers: [0, 1]), one-armed:
        VIP 198.18.0.2:9/udp (testpmd's default destination) → member
        198.18.200.10, whose MAC is a static neighbour (testpmd's port)

testpmd's multi-flow mode varies the source address over 256 values per
forwarding lcore ((dst | n << 8) + lcore id, n = 0..255), and each lcore
sends on its own queue: 512 flows, 256 on each queue. The owner of a flow
is a hash of its client, so about half of each queue's flows belong to the
worker that polls the other queue and are handed over. If a worker created
an entry for a flow it does not own, that flow would be counted twice.
"""
import json
import os
import re
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from netlab import Netns, Pollux, wait_for

TESTPMD = os.environ.get("TESTPMD", "dpdk-testpmd")
POLLUX_MAC = "02:50:58:0d:00:01"
GEN_MAC = "02:50:58:0d:00:02"
FLOWS = 512  # 256 source addresses per testpmd lcore, two lcores


@pytest.fixture()
def memif_pair():
    ns = Netns("pxw-dp")
    work = Path(tempfile.mkdtemp(prefix="pxw-"))
    sock = work / "memif.sock"
    eal = ["--no-huge", "-m", "512", "--no-pci",
           f"--vdev=net_memif0,role=server,id=0,socket={sock},mac={POLLUX_MAC}"]
    config = f"""
instance: {{ name: pxw }}
dataplane:
  workers: [0, 1]
  pollMode: adaptive
  connections: 16384
  newFlowsPerSec: 0
  eal: {json.dumps(eal)}
  ports:
    - name: mem
      device: net_memif0
      selfIps: ["198.18.0.1/16"]
      neighbors: [{{ address: 198.18.200.10, mac: "{GEN_MAC}" }}]
virtualServers:
  - {{ name: gen, address: 198.18.0.2, port: 9, protocol: udp, members: [{{ address: 198.18.200.10, port: 9 }}] }}
api: {{ socket: "@SOCKET@" }}
"""
    p = Pollux(ns, config)
    gen = None
    try:
        p.wait_ready(30)
        # Three lcores on two CPUs: the main one and one per queue.
        gen = ns.popen(
            TESTPMD, "--lcores=0@0,1@0,2@1", "--no-pci", "--no-huge", "-m", "512",
            f"--file-prefix=pxw-gen-{os.getpid()}",
            f"--vdev=net_memif0,role=client,id=0,socket={sock},mac={GEN_MAC}", "--",
            "--forward-mode=txonly", "--txonly-multi-flow", "--total-num-mbufs=16384", "--rxq=2", "--txq=2", "--nb-cores=2",
            f"--eth-peer=0,{POLLUX_MAC}", "--auto-start", "--stats-period=1",
            stdin=subprocess.DEVNULL, stdout=open(work / "testpmd.log", "w"), stderr=subprocess.STDOUT)
        yield p, gen, work
    finally:
        if gen and gen.poll() is None:
            gen.kill()
            gen.wait(10)
        code = p.stop()
        ns.delete()
        assert code == 0, p.logs()


def test_each_worker_owns_its_share_of_the_flows_and_no_flow_is_on_two(memif_pair):
    p, gen, work = memif_pair
    mem = p.show("interfaces")["interfaces"][0]
    assert (mem["name"], mem["queues"]) == ("mem", 2), mem

    def all_flows():
        if gen.poll() is not None:
            raise AssertionError(f"testpmd exited {gen.returncode}: {(work / 'testpmd.log').read_text()[-2000:]}")
        w = p.show("connections")["workers"]
        return sum(x["new_flows"] for x in w) >= FLOWS and w
    workers = wait_for(f"{FLOWS} flows created", all_flows, timeout=60, interval=0.2)
    # Traffic goes on: any flow a worker wrongly created would show now.
    stats = wait_for("both workers handed frames over", lambda: (
        s := p.show("stats"))["workers"] and all(w["handoff"]["out"] > 100 for w in s["workers"]) and s,
        timeout=30, interval=0.2)
    workers = p.show("connections")["workers"]
    per_worker = [w["new_flows"] for w in workers]
    print("flows per worker", per_worker, "handoffs", [w["handoff"] for w in stats["workers"]])
    assert sum(per_worker) == FLOWS, f"a flow was created on two workers: {per_worker}"
    assert all(n > FLOWS // 8 for n in per_worker), f"flows not shared: {per_worker}"
    # Each worker received on its own queue and took frames from the other.
    assert all(w["handoff"]["in"] > 0 for w in stats["workers"])
    # Every frame counted received once: a worker counts its whole burst
    # and takes back out each frame it hands over, which the other counts
    # in its own burst. Once testpmd stops (SIGINT: it prints its totals),
    # the port's count is what testpmd sent.
    gen.send_signal(signal.SIGINT)
    gen.wait(30)
    log = (work / "testpmd.log").read_text()
    totals = re.findall(r"Accumulated forward statistics.*?TX-packets:\s+(\d+)", log, re.S)
    assert totals, log[-2000:]
    sent = int(totals[-1])
    assert sent > 0
    try:
        wait_for("the port to count every frame sent", lambda: p.port("mem")["rx_packets"] == sent,
                 timeout=10, interval=0.2)
    except AssertionError:
        raise AssertionError(f"testpmd sent {sent} frames, the port counted {p.port('mem')['rx_packets']}")

"""bench/pktgen/pollux-range.lua against pktgen-dpdk's Lua API, without pktgen.

pktgen_api.lua stands in for pktgen 23.03.0's bindings (app/lpktgenlib.c:
argument counts and luaL_check* types, the same error messages) and models
its range mode (app/pktgen.c pktgen_setup_cb, app/pktgen-range.c
pktgen_range_ctor: a 24576-mbuf pool per TX queue, every field stepped once
per packet). The model's flow counts are the ones measured with real pktgen
23.03 and pollux on memif (bench/pktgen/README.md): 256 x 256 -> 256 flows,
256 x 255 -> 24576. Run by Debian's lua5.3 (scripts/setup.sh installs it).
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SCRIPT = REPO / "bench" / "pktgen" / "pollux-range.lua"
README = REPO / "bench" / "pktgen" / "README.md"
HARNESS = HERE / "pktgen_api.lua"
LUA = shutil.which("lua5.3") or "lua5.3"
VIP_MAC = "02:00:00:00:18:02"
# the script's parameters: none comes from the caller's environment
PARAMS = ("VIP_MAC", "VIP", "VIP_PORT", "SRC_IP", "SRC_IPS", "SRC_PORTS", "P1_IP", "SIZES", "RATE",
          "DURATION", "PROTO", "PCAP", "QUIT")


def run(tmp_path: Path, script: Path = SCRIPT, **env: str) -> tuple[int, list[list[str]], str]:
    """Run `script` in the harness from a directory holding nothing (as a
    user's checkout holds no Pktgen.lua); return the exit code, the recorded
    calls (split on tabs) and stderr."""
    record = tmp_path / "calls.tsv"
    cwd = tmp_path / "cwd"
    cwd.mkdir(exist_ok=True)
    e = {k: v for k, v in os.environ.items() if k not in PARAMS}
    e.update(env)
    r = subprocess.run([LUA, str(HARNESS), str(script), str(record)], cwd=cwd, env=e,
                       capture_output=True, text=True, timeout=60)
    calls = [line.split("\t") for line in record.read_text().splitlines()] if record.exists() else []
    return r.returncode, calls, r.stderr


def named(calls: list[list[str]], name: str) -> list[list[str]]:
    return [c for c in calls if c[0] == name]


def snippet(tmp_path: Path, code: str, **env: str) -> tuple[int, list[list[str]], str]:
    f = tmp_path / "snippet.lua"
    f.write_text(code)
    return run(tmp_path, f, **env)


def readme_default_flows() -> tuple[int, int, int]:
    """The range-mode default the README states: "16 × 63 = 1 008 flows"."""
    m = re.search(r"default (\d+) × (\d+) = ([\d  ]+) flows", README.read_text())
    assert m, "bench/pktgen/README.md states the range default as 'default A × B = N flows'"
    return int(m[1]), int(m[2]), int(re.sub(r"\D", "", m[3]))


def test_harness_gives_pktgens_errors(tmp_path):
    """What pktgen 23.03 said to the old script's imix line, word for word; and
    no Pktgen.lua outside pktgen's folder."""
    rc, _, err = snippet(tmp_path, 'pktgen.set("0", "imix", "on")\n')
    assert rc == 1 and "bad argument #3 to 'set' (number expected, got string)" in err
    rc, _, err = snippet(tmp_path, 'pktgen.set("0", "imix", 0)\n')
    assert rc == 1 and "set does not support imix" in err
    rc, _, err = snippet(tmp_path, 'pktgen.range.pkt_size("0", "start", 60.5)\n')
    assert rc == 1 and "number has no integer representation" in err
    rc, _, err = snippet(tmp_path, 'pktgen.start("0", "now")\n')
    assert rc == 1 and "start, wrong number of arguments" in err
    rc, _, err = snippet(tmp_path, 'require "Pktgen"\n')
    assert rc == 1 and "module 'Pktgen' not found" in err


@pytest.mark.parametrize("ips,ports,flows", [(256, 256, 256), (256, 255, 24576), (16, 63, 1008)])
def test_range_model_matches_real_pktgen(tmp_path, ips, ports, flows):
    code = f"""
pktgen.range.dst_ip("0", "inc", "0.0.0.0")
pktgen.range.dst_port("0", "inc", 0)
pktgen.range.src_ip("0", "start", "198.18.0.1")
pktgen.range.src_ip("0", "inc", "0.0.0.1")
pktgen.range.src_ip("0", "min", "198.18.0.1")
pktgen.range.src_ip("0", "max", "198.18.{(ips - 1) // 256}.{(ips - 1) % 256 + 1}")
pktgen.range.src_port("0", "start", 10000)
pktgen.range.src_port("0", "inc", 1)
pktgen.range.src_port("0", "min", 10000)
pktgen.range.src_port("0", "max", {10000 + ports - 1})
pktgen.set_range("0", "on")
pktgen.start("0")
"""
    rc, calls, err = snippet(tmp_path, code)
    assert rc == 0, err
    assert named(calls, "flows") == [["flows", str(flows)]]


def test_default_run_is_what_the_readme_says(tmp_path):
    ips, ports, flows = readme_default_flows()
    rc, calls, err = run(tmp_path, VIP_MAC=VIP_MAC, DURATION="1")
    assert rc == 0, err
    assert ips * ports == flows
    sizes = [64, 128, 256, 512, 1024, 1518]
    starts = named(calls, "flows")
    assert [int(c[1]) for c in starts] == [flows] * len(sizes), "one row per size, each with the README's flows"
    assert named(calls, "src_ip")[-1] == ["src_ip", "0", "max", f"198.18.0.{ips}"]
    assert named(calls, "src_port")[-1] == ["src_port", "0", "max", str(10000 + ports - 1)]
    assert named(calls, "set") == [["set", "0", "rate", "100"]]
    assert named(calls, "pcap") == [["pcap", "0", "off"]]
    assert named(calls, "set_range") == [["set_range", "0", "on"]]
    # frame sizes with the FCS, as integers: pktgen takes the 4 bytes off itself
    starts = [int(c[3]) for c in named(calls, "pkt_size") if c[2] == "start"]
    assert starts == sizes
    assert not any("imix" in " ".join(c).lower() for c in calls)


def test_quit_and_sizes(tmp_path):
    rc, calls, err = run(tmp_path, VIP_MAC=VIP_MAC, SIZES="64,1518", DURATION="2", QUIT="1")
    assert rc == 0, err
    assert [c[3] for c in named(calls, "pkt_size") if c[2] == "max"] == ["64", "1518"]
    assert named(calls, "delay")[:2] == [["delay", "2000"], ["delay", "1500"]]
    assert calls[-1] == ["quit"]


def test_pcap_mode_sends_the_pcap_only(tmp_path):
    rc, calls, err = run(tmp_path, VIP_MAC=VIP_MAC, PCAP="on", DURATION="1")
    assert rc == 0, err
    assert named(calls, "pcap") == [["pcap", "0", "on"]]
    assert named(calls, "set_range") == [["set_range", "0", "off"]]
    assert not named(calls, "flows") and not named(calls, "pkt_size") and not named(calls, "src_ip")
    assert named(calls, "start") == [["start", "0"]]


@pytest.mark.parametrize("env,message", [
    ({"SIZES": "64,imix"}, "no pktgen release has IMIX"),
    ({"SRC_IPS": "256", "SRC_PORTS": "256"}, "lcm = 256 flows, not 65536"),
    ({"SRC_IPS": "256", "SRC_PORTS": "255"}, "use pcap mode"),
    ({"DURATION": "2.5"}, "DURATION must be a whole number"),
    ({}, "VIP_MAC must be set"),
])
def test_refused_before_any_traffic(tmp_path, env, message):
    if env:
        env = {"VIP_MAC": VIP_MAC, **env}
    rc, calls, err = run(tmp_path, **env)
    assert rc == 1 and message in err
    assert not named(calls, "start")


def test_flows_pcap_holds_every_pair(tmp_path):
    out = tmp_path / "f.pcap"
    subprocess.run([sys.executable, str(REPO / "bench/pktgen/flows-pcap.py"), "--vip-mac", VIP_MAC,
                    "--src-ips", "4", "--src-ports", "3", "--size", "128", "-o", str(out)],
                   check=True, capture_output=True, timeout=60)
    data = out.read_bytes()
    assert struct.unpack("<IHHiIII", data[:24])[0] == 0xA1B2C3D4
    off, flows = 24, set()
    while off < len(data):
        _, _, incl, orig = struct.unpack("<IIII", data[off:off + 16])
        fr = data[off + 16:off + 16 + incl]
        off += 16 + incl
        assert incl == orig == 124 and fr[:6] == bytes.fromhex(VIP_MAC.replace(":", ""))
        src, dst = fr[26:30], fr[30:34]
        sport, dport = struct.unpack("!HH", fr[34:38])
        assert dst == bytes([192, 0, 2, 10]) and dport == 80
        flows.add((src, sport))
    assert len(flows) == 12

#!/usr/bin/env bash
# L4 benchmark rows of issue 8, pollux against dpdk-testpmd io on the same
# memif link in the same run, traffic from pollux-gen (bench/src/bin/pollux-gen.rs):
#   (a) L4 NAT, established UDP flows (1k, after a warm-up), 64 B, 1 worker: Mpps back, ratio (goal >= 0.85)
#   (b) the same at 1k, 100k and 1M flows
#   (c) new flows per second per worker, every packet a new 5-tuple (goal >= 2 M/s),
#       from pollux's own counters; reference: testpmd io's returned Mpps, same traffic
#   and the generator's latency p50/p99 at a fixed rate for row (a)'s traffic.
#   Row (a) is also given against testpmd macswap (row a-macswap).
#
# Usage: sudo bench/l4.sh --out DIR [--runs N] [--quick]
#   --runs N   repetitions (default 3; pollux and testpmd alternate their order)
#   --quick    1 run, short windows (development)
# Writes DIR/l4.csv (row,name,unit,runs,pollux_median,pollux_min,pollux_max,
# ref_name,ref_median,ref_min,ref_max,ratio,goal), DIR/l4-runs.csv (per run) and
# DIR/logs/. Exits non-zero, naming the rows, if a row could not be measured.
# Needs target/release/{pollux,pollux-gen} (cargo build --release -p ctrl -p bench).
# Env: BENCH_MEM (EAL memory args for all three processes, default
# "--no-huge -m 512"), WIN (2 s), CWIN (row c, 1 s), LWIN (latency, 1 s),
# LAT_RATE (5e5 pps: well below both forwarders, also in the VM's slow mode), POLLUX, POLLUX_GEN, TESTPMD (binaries).
# Own names only: DPDK --file-prefix pxbl4-<pid>-*, memif sockets
# /run/pxbl4-<pid>-*.sock; every wait is bounded; the Python side stops what
# it started on exit, SIGINT or SIGTERM (generator paused before its memif
# peer quits). The work is done by bench/l4.py.
set -eu
exec python3 "$(dirname "$0")/l4.py" "$@"

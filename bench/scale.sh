#!/usr/bin/env bash
# Row (h) of issues 8 and 13: pollux's L4 NAT throughput at 1, 2, 4, 8
# workers, each beside dpdk-testpmd --forward-mode=io with the same number of
# forwarding cores on the same memif link(s), in the same run; the ratio per
# worker count and the scaling efficiency Mpps(N) / (N x Mpps(1)) of both.
#   --mode queues (default, row h): one memif link of N queue pairs, one
#     pollux-gen (--queues N: flow i on queue i % N, as RSS keeps a flow on
#     one queue); pollux one port with N queues, testpmd --rxq/--txq N.
#   --mode links (row h-links): N one-queue links, N generators; pollux's
#     ports have one queue each (dealt round-robin to the workers), so a
#     flow owned by another worker crosses the hand-off rings both ways.
# Details: the docstring of bench/scale.py.
#
# Usage: sudo bench/scale.sh --out DIR [--mode queues|links] [--workers "1 2 4 8"] [--runs 3] [--oversubscribe]
#   --workers     worker counts (default "1 2 4 8"); each needs N forwarder
#                 CPUs and one generator CPU (queues) or N (links), plus one
#                 spare for the housekeeping threads when there is one;
#                 counts that do not fit the CPUs this process may use are
#                 refused
#   --runs N      repetitions per worker count (default 3; pollux and testpmd
#                 alternate their order)
#   --oversubscribe  run counts that do not fit anyway (checks the code path
#                 only: the numbers mean nothing, and the CSV says so)
# Writes DIR/scale.csv, or scale-links.csv (the schema of bench/report.py: row h, one line per N
# with pollux median/min/max, testpmd io, ratio; one line per N > 1 with the
# scaling efficiency of both), DIR/scale-runs.csv (per run and link), and logs
# under DIR/logs/scale/. Exits non-zero if a measurement failed.
# Env: BENCH_MEM (EAL memory args of every DPDK process; default: 2 MiB
# hugepages from a hugetlbfs mount with >= 1 GiB free, else "--no-huge -m
# 1024"), WIN (measurement window, 2 s), DPDK_PMD_ARGS (added to every EAL
# command line; set by .bundle/env.sh, which this script sources if it exists
# and DPDK_PMD_ARGS is unset), POLLUX, POLLUX_GEN, TESTPMD (binaries; default
# .bundle/bin/<name> if there, else target/release/<name> and dpdk-testpmd),
# SCALE_FLOWS (flows per worker instead of 1k, the connection table sized to
# them as bench/l4.py sizes it: pairs of runs at 1M flows, row b's traffic,
# alternated like row h's), TESTPMD_BURST (testpmd's --burst, default 32).
# Own names only: DPDK --file-prefix pxbsc-<pid>-*, memif sockets
# /run/pxbsc-<pid>-*.sock, TAPs pxsc<pid>p<i>; every wait is bounded; what it
# started is stopped on exit, SIGINT or SIGTERM (generators paused before
# their memif peer quits).
#
# On the 16-core device machine (../shared/lab/device.md; it has no DPDK):
#   here, in the project root:
#     cargo build --release -p ctrl -p bench
#     echo /.bundle/ >> .git/info/exclude
#     ../shared/lab/dpdk-bundle.sh .bundle target/release/pollux target/release/pollux-gen $(command -v dpdk-testpmd)
#   copy the tree with .bundle/ (and bench/) to the device machine, not under
#   /tmp (EAL refuses -d drivers below a world-writable folder); there, as
#   root, in the tree's root (binaries: .bundle/bin/ first):
#     . .bundle/env.sh
#     echo 2048 > /proc/sys/vm/nr_hugepages; mkdir -p /dev/hugepages
#     mountpoint -q /dev/hugepages || mount -t hugetlbfs -o pagesize=2M nodev /dev/hugepages
#     bash bench/scale.sh --out /tmp/scale --workers "1 2 4 8"
#     bash bench/scale.sh --out /tmp/scale --mode links --workers "1 2 4 8"
#     cat /tmp/scale/scale.csv /tmp/scale/scale-links.csv
#   (16 CPUs: N=1,2,4 get a spare housekeeping CPU, N=8 uses all 16 with the
#   housekeeping threads sharing a generator's / a forwarder's CPU.)
# Smoke test on a 2-core machine: sudo bench/scale.sh --out /tmp/s --workers 1 --runs 1
set -eu
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "${DPDK_PMD_ARGS:-}" ] && [ -f "$here/../.bundle/env.sh" ]; then
  # shellcheck disable=SC1091
  . "$here/../.bundle/env.sh"
  export LD_LIBRARY_PATH DPDK_PMD_ARGS
fi
exec python3 "$here/scale.py" "$@"

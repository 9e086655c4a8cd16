#!/usr/bin/env bash
# `make bench`: every benchmark row of pollux, each beside its reference
# measured in the same run, printed as one table (DESIGN.md §6, issue 8).
#
#   loop  bench/loop.sh       pollux's loop vs testpmd io, memif (floor)
#   a b c bench/l4.sh         L4 NAT vs testpmd io on memif, pollux-gen as
#         (+ latency)         the generator: 1k/100k/1M flows, new flows/s
#   d e   bench/callgrind.sh  instructions/packet (deterministic), and the
#                             connection table's bytes per flow
#   f     bench/bgp.py        100 000 VIPs into FRR, pollux vs BIRD
#   g     bench/bfd.py        BFD detection time p50/p99 at 10 ms x 3
#                             against FRR bfdd, and 1 000 sessions' cost
#   h     bench/scale.sh      1/2/4/8 workers on one memif link of N queues
#                             (one generator): the counts that fit (N + 1
#                             CPUs; 1 on 2 cores), the 16-core machine of
#                             ../shared/lab/device.md runs them all; the
#                             hand-off cost is row h-handoff of callgrind.sh
#                             (`scale.sh --mode links` measures it as
#                             throughput where 2N CPUs fit)
#
# Each row script writes DIR/<name>.csv in the schema of bench/report.py;
# report.py prints the table and writes DIR/bench.csv, table.md, bench.png.
# A row script that fails is reported and the others still run; the exit
# status is non-zero if any failed.
#
# Usage: sudo bench/run.sh [--runs N] [--only "loop a d f g"] [--no-huge]
#   --runs N   repetitions of the throughput rows (default 3)
#   --only     a subset of: loop l4 callgrind bgp bfd scale
#   --no-huge  EAL --no-huge for every DPDK process
# Results: bench/results/<stamp>/ (gitignored).
set -u -o pipefail

RUNS=3; ONLY="loop l4 callgrind bgp bfd scale"; NOHUGE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS=${2:?}; shift 2 ;;
    --only) ONLY=${2:?}; shift 2 ;;
    --no-huge) NOHUGE=1; shift ;;
    -h|--help) sed -n '2,/^set -u/p' "$0" | sed 's/^# \{0,1\}//; /^set -u/d'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

REPO=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"
[ "$(id -u)" = 0 ] || die "run as root (sudo make bench)"
STAMP=$(date +%Y%m%d-%H%M%S)
OUT=$REPO/bench/results/$STAMP
mkdir -p "$OUT/logs" || die "cannot create $OUT"
TAG=pxbench-$$

for b in pollux pollux-fwd pollux-gen pollux-bgp-vips pollux-bfd-cost; do
  [ -x "$REPO/target/release/$b" ] || {
    log "building (cargo build --release -p ctrl -p bench)"
    (cd "$REPO" && cargo build --release --quiet -p ctrl -p bench) || die "build failed"
    break
  }
done

trap 'hp_down' EXIT
trap 'log "interrupted"; exit 130' INT TERM
if [ "$NOHUGE" = 0 ] && hp_up 1024 "$TAG"; then
  export BENCH_MEM="--huge-dir=$HP_MNT --huge-unlink -m 512"
  MEM_DESC="2 MiB hugepages ($HP_FREE free, private hugetlbfs)"
else
  [ "$NOHUGE" = 1 ] && HP_WHY="--no-huge given"
  export BENCH_MEM="--no-huge -m 512"
  MEM_DESC="no hugepages: $HP_WHY"
fi
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
log "results: $OUT ($MEM_DESC)"

FAILED=()
row() { # NAME CMD...: runs one row script, its output in logs/NAME.out
  local name=$1 t0=$SECONDS; shift
  case " $ONLY " in *" $name "*) ;; *) return 0 ;; esac
  log "$name: $*"
  if "$@" >"$OUT/logs/$name.out" 2>&1; then
    log "$name: done in $((SECONDS - t0)) s"
  else
    FAILED+=("$name"); log "$name: FAILED after $((SECONDS - t0)) s; last lines:"
    tail -5 "$OUT/logs/$name.out" >&2
  fi
}
row loop "$REPO/bench/loop.sh" --out "$OUT" --runs "$RUNS"
row l4 "$REPO/bench/l4.sh" --out "$OUT" --runs "$RUNS"
row callgrind "$REPO/bench/callgrind.sh" --out "$OUT" --twice --cache-flows 1048576   # checks the counts repeat; d-cache at 1 M flows
row bgp python3 "$REPO/bench/bgp.py" --out "$OUT" --runs "$RUNS"
row bfd python3 "$REPO/bench/bfd.py" --out "$OUT"
WORKERS=""
for n in 1 2 4 8; do [ $((n + 1)) -le "$(nproc)" ] && WORKERS="$WORKERS $n"; done
row scale "$REPO/bench/scale.sh" --out "$OUT" --runs "$RUNS" --workers "${WORKERS# }"

echo
PY=python3; [ -x "$REPO/.venv/bin/python3" ] && PY=$REPO/.venv/bin/python3   # matplotlib
"$PY" "$REPO/bench/report.py" "$OUT" \
  --header "pollux bench — $(date '+%Y-%m-%d %H:%M %Z') — $(git -C "$REPO" describe --always --dirty 2>/dev/null)" \
  --header "machine: $(machine_line); $MEM_DESC" \
  --header "load average $LOAD0 at start, $(cut -d' ' -f1-3 /proc/loadavg) at end; took $((SECONDS / 60)) min $((SECONDS % 60)) s" \
  --header "medians of $RUNS runs (min–max) unless the row says otherwise; ratio = pollux / reference in the same run" \
  --header "${FAILED[*]:+FAILED rows (see $OUT/logs): ${FAILED[*]}}"
[ ${#FAILED[@]} -eq 0 ]

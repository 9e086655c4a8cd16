#!/usr/bin/env bash
# The loop row of `make bench` (bench/run.sh; DESIGN.md §6, issues 3 and 8).
#
# Row "loop rx→tx, 64 B, 1 worker, memif": pollux's worker loop with no
# per-packet work (bench/src/bin/pollux-fwd.rs) against
# `dpdk-testpmd --forward-mode=io` on the same memif link, in the same run.
#
#   generator  dpdk-testpmd --forward-mode=flowgen --txpkts=64, memif SERVER,
#              main lcore 0, forwarding lcore 1 (CPU 1)
#   forwarder  memif CLIENT, main lcore 1, forwarding/worker lcore 0 (CPU 0):
#              (a) dpdk-testpmd --forward-mode=io   (the reference)
#              (b) pollux-fwd                        (pollux's loop)
#   metric     the generator's Rx-pps = packets that made the round trip
#              (lab/README.md §2: "use the flowgen (round trip) rows"),
#              over a WIN s window after WARM s of warm-up.
#   2nd row    the forwarder's busy TSC cycles per packet over its whole
#              forwarding run: testpmd --record-core-cycles ("CPU
#              cycles/packet") and pollux-fwd --record-cycles, both summing
#              the ticks of the iterations that received packets. It does
#              not depend on which side of the link is the bottleneck.
# Each repetition runs (a) and (b) back to back (order alternating); RUNS repetitions (default 5, at least 3);
# the table shows median/min/max Mpps of each and the ratio of the medians.
# Nothing is asserted: the numbers are printed and written as CSV under
# DIR (--out; default bench/results/<stamp>/, gitignored): loop.csv in the
# common schema of bench/report.py, loop-runs.csv per run, loop.txt.
#
# Usage: sudo bench/loop.sh [--out DIR] [--runs N] [--no-huge] [--build]
#   --out DIR   where results and logs go
#   --runs N    repetitions (>= 3; default 5: this shared VM switches
#               between a fast and a slow mode for seconds at a time)
#   --no-huge   do not try hugepages (EAL --no-huge -m 256)
#   --build     cargo build --release -p bench first (also done when the
#               binary is missing)
# Env: POLLUX_FWD (binary, default target/release/pollux-fwd), TESTPMD
# (default dpdk-testpmd), WARM (2), WIN (5), HUGEPAGES (2 MiB pages, 1024),
# ORDER (alt, the default: testpmd then pollux in odd repetitions, pollux
# then testpmd in even ones, so that a drift of the shared machine does not
# favour one side; ab: testpmd then pollux in every repetition).
#
# Memory: BENCH_MEM (EAL memory arguments, set by bench/run.sh) when given;
# otherwise reserves HUGEPAGES 2 MiB pages, mounts hugetlbfs at a private
# mount point, gives every process --huge-dir there and --huge-unlink, and
# restores nr_hugepages on exit (bench/lib.sh). Falls back to --no-huge (and
# says so) when that fails.
# Every process gets its own --file-prefix (pxbench-<pid>-...) and --no-pci.
# Every wait is bounded; an EXIT trap stops what this script started (memif
# peers are told to stop forwarding before either side quits: a peer that
# disconnects while the other polls can segfault it in DPDK 22.11).
set -u -o pipefail

RUNS=5; NOHUGE=0; BUILD=0; OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=${2:?--out needs a folder}; shift 2 ;;
    --runs) RUNS=${2:?--runs needs a number}; shift 2 ;;
    --no-huge) NOHUGE=1; shift ;;
    --build) BUILD=1; shift ;;
    -h|--help) sed -n '2,/^set -u/p' "$0" | sed 's/^# \{0,1\}//; /^set -u/d'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ "$RUNS" -ge 3 ] 2>/dev/null || { echo "--runs must be a number >= 3" >&2; exit 2; }

REPO=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"
FWD=${POLLUX_FWD:-$REPO/target/release/pollux-fwd}
TP=${TESTPMD:-dpdk-testpmd}
WARM=${WARM:-2}
WIN=${WIN:-5}
HUGEPAGES=${HUGEPAGES:-1024}
ORDER=${ORDER:-alt}   # ab: testpmd then pollux in every repetition; alt: ab, ba, ab, ...
BUDGET=270            # seconds: stop starting new repetitions after this
TAG=pxbench-$$
STAMP=$(date +%Y%m%d-%H%M%S)
OUT=${OUT:-$REPO/bench/results/$STAMP}
LOGS=$OUT/logs/loop
APP="--no-flush-rx --total-num-mbufs=16384 --burst=32"

[ "$(id -u)" = 0 ] || die "run as root (sudo bench/run.sh): DPDK needs hugepages and /var/run/dpdk"
command -v "$TP" >/dev/null || die "$TP not found (apt-get install dpdk)"
if [ "$BUILD" = 1 ] || [ ! -x "$FWD" ]; then
  command -v cargo >/dev/null || die "$FWD is missing and cargo is not on PATH: run 'cargo build --release -p bench' first"
  log "building pollux-fwd (cargo build --release -p bench)"
  (cd "$REPO" && timeout 900 cargo build --release -p bench) || die "build failed"
fi
mkdir -p "$LOGS" || die "cannot create $LOGS"
WORK=$(mktemp -d "/tmp/$TAG.XXXXXX") || die "mktemp"

# ---------------------------------------------------------------- cleanup
declare -A TP_FD=() TP_PID=()
FWD_PID=""

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# Waits up to $2 tenths of a second for PID $1 to exit; then TERM, then KILL.
reap() {
  local p=$1 n=${2:-50} i
  [ -n "$p" ] || return 0
  for ((i = 0; i < n; i++)); do alive "$p" || break; sleep 0.1; done
  if alive "$p"; then
    kill -TERM "$p" 2>/dev/null
    for ((i = 0; i < 30; i++)); do alive "$p" || break; sleep 0.1; done
    alive "$p" && kill -KILL "$p" 2>/dev/null
  fi
  wait "$p" 2>/dev/null
}

tp_cmd() { [ -n "${TP_FD[$1]:-}" ] && printf '%s\n' "$2" >&"${TP_FD[$1]}" 2>/dev/null; return 0; }

tp_quit() {
  local id=$1
  [ -n "${TP_PID[$id]:-}" ] || return 0
  tp_cmd "$id" quit
  reap "${TP_PID[$id]}" 100
  local fd=${TP_FD[$id]:-}
  [ -n "$fd" ] && exec {fd}>&-
  unset "TP_FD[$id]" "TP_PID[$id]"
}

fwd_stop() { # SIGTERM pollux-fwd, wait for its clean exit (bounded)
  [ -n "$FWD_PID" ] || return 0
  alive "$FWD_PID" && kill -TERM "$FWD_PID" 2>/dev/null
  reap "$FWD_PID" 100
  FWD_PID=""
}

cleanup() {
  local rc=$? id
  trap - EXIT INT TERM
  # memif: stop forwarding everywhere before anybody disconnects
  for id in "${!TP_FD[@]}"; do tp_cmd "$id" stop; done
  [ ${#TP_FD[@]} -gt 0 ] && sleep 0.5
  fwd_stop
  for id in fwd gen "${!TP_PID[@]}"; do tp_quit "$id"; done
  rm -rf "$WORK" /var/run/dpdk/"$TAG"-* 2>/dev/null
  hp_down
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ------------------------------------------------------------- memory
MEM_NOTE=""
if [ -n "${BENCH_MEM:-}" ]; then
  MEM=$BENCH_MEM
  MEM_DESC="EAL memory: $BENCH_MEM"
elif [ "$NOHUGE" = 0 ] && hp_up "$HUGEPAGES" "$TAG"; then
  MEM="--huge-dir=$HP_MNT --huge-unlink"
  MEM_DESC="hugepages (2 MiB, $HP_FREE free, private hugetlbfs, --huge-unlink)"
else
  [ "$NOHUGE" = 1 ] && HP_WHY="--no-huge given"
  MEM="--no-huge -m 256"
  MEM_DESC="no hugepages (--no-huge -m 256)"
  MEM_NOTE="NOTE: running without hugepages: ${HP_WHY}"
  log "$MEM_NOTE"
fi

# ------------------------------------------------------------- processes
# tp_start ID LOG CMD...: interactive testpmd fed through a FIFO; waits
# (<= 30 s) for its prompt.
tp_start() {
  local id=$1 lg=$2; shift 2
  local fifo=$WORK/$id.fifo i
  rm -f "$fifo"; mkfifo "$fifo" || return 1
  timeout -k 5 150 "$@" <"$fifo" >"$lg" 2>&1 &
  TP_PID[$id]=$!
  local fd
  exec {fd}>"$fifo"
  TP_FD[$id]=$fd
  for ((i = 0; i < 300; i++)); do
    grep -q 'testpmd> ' "$lg" 2>/dev/null && return 0
    alive "${TP_PID[$id]}" || { log "testpmd $id exited early, see $lg"; tp_quit "$id"; return 1; }
    sleep 0.1
  done
  log "testpmd $id: no prompt after 30 s, see $lg"; tp_quit "$id"; return 1
}

# wait_log FILE REGEX TENTHS
wait_log() { local i; for ((i = 0; i < $3; i++)); do grep -Eq "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; return 1; }

# Last "Rx-pps"/"Tx-pps" of port 0 in a testpmd log (after it quit: stdout
# is block-buffered into the file).
tp_pps() { awk -v d="$2" 'd=="rx" && /Rx-pps:/ {v=$2} d=="tx" && /Tx-pps:/ {v=$2} END {print (v==""?0:v)}' "$1"; }
# testpmd --record-core-cycles: "CPU cycles/packet=516.05 (...) at 2600 MHz Clock"
tp_cycles() { sed -n 's/.*CPU cycles\/packet=\([0-9.]*\).* at \([0-9]*\) MHz.*/\1 \2/p' "$1" | tail -1; }
# bytes per received frame in the last stats block of a testpmd log
tp_frame() { awk '/RX-packets:.*RX-bytes:/ {p=$2; b=$6} END {if (p>0) printf "%.0f", b/p; else print "?"}' "$1"; }

gen_cmd() { # prefix socket
  echo "$TP -l 0,1 --main-lcore 0 --no-pci --file-prefix=$1 $MEM --vdev=net_memif0,role=server,id=0,socket=$2 -- -i $APP --forward-mode=flowgen --txpkts=64"
}

# Sets R_GEN_RX R_GEN_TX R_FWD_RX R_FRAME R_CPP (busy cycles/packet) R_MHZ;
# returns non-zero on failure.
run_testpmd() {
  local i=$1 sock=/run/$TAG-t$i.sock
  local lg=$LOGS/run$i-testpmd-gen.log lf=$LOGS/run$i-testpmd-fwd.log
  local cg cf
  cg=$(gen_cmd "$TAG-t$i-gen" "$sock")
  cf="$TP -l 0,1 --main-lcore 1 --no-pci --file-prefix=$TAG-t$i-fwd $MEM --vdev=net_memif0,role=client,id=0,socket=$sock -- -i $APP --forward-mode=io --record-core-cycles"
  printf '%s\n%s\n' "$cg" "$cf" >"$LOGS/run$i-testpmd.cmd"
  # shellcheck disable=SC2086
  tp_start gen "$lg" $cg || return 1
  # shellcheck disable=SC2086
  tp_start fwd "$lf" $cf || { tp_quit gen; return 1; }
  tp_cmd fwd start                          # the forwarder polls from here on,
  sleep 1                                   # as pollux-fwd does; memif connects
  tp_cmd gen start
  sleep "$WARM"
  tp_cmd gen "show port stats all"; tp_cmd fwd "show port stats all"
  sleep "$WIN"
  tp_cmd gen "show port stats all"; tp_cmd fwd "show port stats all"
  tp_cmd gen stop; tp_cmd fwd stop; sleep 1  # both stop polling before anyone quits
  tp_quit fwd; tp_quit gen
  rm -f "$sock"
  R_GEN_RX=$(tp_pps "$lg" rx); R_GEN_TX=$(tp_pps "$lg" tx); R_FWD_RX=$(tp_pps "$lf" rx); R_FRAME=$(tp_frame "$lg")
  read -r R_CPP R_MHZ <<<"$(tp_cycles "$lf")"
  [ "$R_GEN_RX" -gt 0 ] 2>/dev/null
}

run_pollux() {
  local i=$1 sock=/run/$TAG-p$i.sock
  local lg=$LOGS/run$i-pollux-gen.log lf=$LOGS/run$i-pollux-fwd.log
  local cg cf
  cg=$(gen_cmd "$TAG-p$i-gen" "$sock")
  cf="$FWD --seconds 60 --record-cycles -- -l 0,1 --main-lcore 1 --no-pci --file-prefix=$TAG-p$i-fwd $MEM --vdev=net_memif0,role=client,id=0,socket=$sock"
  printf '%s\n%s\n' "$cg" "$cf" >"$LOGS/run$i-pollux.cmd"
  # shellcheck disable=SC2086
  tp_start gen "$lg" $cg || return 1
  # pollux-fwd bounds itself with --seconds 60 (and the trap kills it)
  # shellcheck disable=SC2086
  $cf >"$lf" 2>&1 &
  FWD_PID=$!
  if ! wait_log "$lf" '^pollux-fwd: running' 300; then
    log "pollux-fwd did not start, see $lf"; tp_cmd gen stop; fwd_stop; tp_quit gen; return 1
  fi
  sleep 1                                   # memif connects
  tp_cmd gen start
  sleep "$WARM"
  tp_cmd gen "show port stats all"; kill -USR1 "$FWD_PID"
  sleep "$WIN"
  tp_cmd gen "show port stats all"; kill -USR1 "$FWD_PID"
  tp_cmd gen stop; sleep 1                  # generator stops polling first,
  fwd_stop                                  # then pollux-fwd closes its port,
  tp_quit gen                               # then the server goes
  rm -f "$sock"
  R_GEN_RX=$(tp_pps "$lg" rx); R_GEN_TX=$(tp_pps "$lg" tx); R_FRAME=$(tp_frame "$lg")
  R_FWD_RX=$(awk '/^pollux-fwd: window / {for (i=1;i<=NF;i++) if ($i ~ /^rx_pps=/) {split($i,a,"="); v=a[2]}} END {print (v==""?0:v)}' "$lf")
  read -r R_CPP R_MHZ <<<"$(sed -n 's/^pollux-fwd: busy cycles\/packet=\([0-9.]*\) .* at \([0-9]*\) MHz.*/\1 \2/p' "$lf" | tail -1)"
  R_FWD_VER=$(sed -n 's/^pollux-fwd: DPDK \([^;]*\);.*/\1/p' "$lf" | head -1)
  [ "$R_GEN_RX" -gt 0 ] 2>/dev/null
}

# ------------------------------------------------------------- machine
CPU_MODEL=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
NCPU=$(grep -c '^processor' /proc/cpuinfo)
DPDK_VER=$(pkg-config --modversion libdpdk 2>/dev/null || dpkg-query -W -f='${Version}' dpdk 2>/dev/null || echo "?")
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)

CSV=$OUT/loop-runs.csv
echo "stamp,run,forwarder,mem,frame_bytes,gen_rx_pps,gen_tx_pps,fwd_rx_pps,fwd_busy_cycles_per_pkt,tsc_mhz,fwd_busy_fraction" >"$CSV"
T_RX=(); P_RX=(); T_CPP=(); P_CPP=(); PAIRED=(); FAILS=0; DONE=0; FRAME="?"; R_FWD_VER=""; MHZ="?"
# busy fraction of the forwarder's lcore in the window = cycles/pkt × pps / Hz
busy() { awk -v c="$1" -v p="$2" -v m="$3" 'BEGIN {if (c+0 > 0 && m+0 > 0) printf "%.2f", c*p/(m*1e6); else print "?"}'; }
one() { # forwarder-name array-suffix: runs one measurement and records it
  local name=$1 fn=$2 b
  R_GEN_RX=0; R_GEN_TX=0; R_FWD_RX=0; R_FRAME="?"; R_CPP=""; R_MHZ=""
  if "$fn" "$i"; then
    FRAME=$R_FRAME; MHZ=${R_MHZ:-$MHZ}
    b=$(busy "${R_CPP:-0}" "$R_FWD_RX" "${R_MHZ:-0}")
    echo "$STAMP,$i,$name,${MEM%% *},$R_FRAME,$R_GEN_RX,$R_GEN_TX,$R_FWD_RX,${R_CPP:-},${R_MHZ:-},$b" >>"$CSV"
    log "run $i $name: generator rx $R_GEN_RX pps (tx $R_GEN_TX), forwarder rx $R_FWD_RX pps, ${R_CPP:-?} busy cycles/pkt, lcore busy $b, ${R_FRAME} B frames"
    return 0
  fi
  FAILS=$((FAILS + 1)); log "run $i $name: FAILED (logs in $LOGS)"; return 1
}
log "results and logs: $OUT"
for ((i = 1; i <= RUNS; i++)); do
  if [ "$SECONDS" -ge "$BUDGET" ]; then log "time budget ($BUDGET s) used: stopping after $DONE runs"; break; fi
  t_rx=""; p_rx=""
  order="t p"; [ "$ORDER" = alt ] && [ $((i % 2)) = 0 ] && order="p t"
  for f in $order; do
    case $f in
      t) if one testpmd-io run_testpmd; then T_RX+=("$R_GEN_RX"); t_rx=$R_GEN_RX; [ -n "$R_CPP" ] && T_CPP+=("$R_CPP"); fi ;;
      p) if one pollux-fwd run_pollux; then P_RX+=("$R_GEN_RX"); p_rx=$R_GEN_RX; [ -n "$R_CPP" ] && P_CPP+=("$R_CPP"); fi ;;
    esac
  done
  [ -n "$t_rx" ] && [ -n "$p_rx" ] && PAIRED+=("$(awk -v p="$p_rx" -v t="$t_rx" 'BEGIN {printf "%.3f", p/t}')")
  DONE=$i
done
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------------------------------- table
stats3() { # -> "min median max" of the args, or "- - -"
  [ $# -gt 0 ] || { echo "- - -"; return; }
  printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {m = (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2; print a[1], m, a[NR]}'
}
mpps() { [ "$1" = - ] && { echo "-"; return; }; awk -v v="$1" 'BEGIN {printf "%.2f", v/1e6}'; }
num() { [ "$1" = - ] && { echo "-"; return; }; awk -v v="$1" 'BEGIN {printf "%.1f", v}'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN {if (a != "-" && b != "-" && b+0 > 0) printf "%.3f", a/b; else print "-"}'; }
read -r tmin tmed tmax <<<"$(stats3 "${T_RX[@]+"${T_RX[@]}"}")"
read -r pmin pmed pmax <<<"$(stats3 "${P_RX[@]+"${P_RX[@]}"}")"
read -r tcmin tcmed tcmax <<<"$(stats3 "${T_CPP[@]+"${T_CPP[@]}"}")"
read -r pcmin pcmed pcmax <<<"$(stats3 "${P_CPP[@]+"${P_CPP[@]}"}")"
RATIO=$(div "$pmed" "$tmed")          # throughput: pollux / testpmd
CRATIO=$(div "$tcmed" "$pcmed")       # cycles: testpmd / pollux (≥ 1: pollux needs no more)
ROW="loop rx→tx, 64 B, 1 worker, memif"
CROW="same loop, forwarder busy cycles/packet"
list() { local f=$1 v; shift; for v in "$@"; do printf '%s ' "$("$f" "$v")"; done; }

{
  echo "pollux bench — $(date '+%Y-%m-%d %H:%M:%S %Z') — $(hostname)"
  echo "machine: $CPU_MODEL, $NCPU CPUs, TSC ${MHZ} MHz, kernel $(uname -r); $MEM_DESC; DPDK $DPDK_VER (pollux-fwd built against ${R_FWD_VER:-?})"
  echo "load average: $LOAD0 at start, $LOAD1 at end (shared machine: other jobs may run beside the bench)"
  [ -n "$MEM_NOTE" ] && echo "$MEM_NOTE"
  echo "method: dpdk-testpmd flowgen --txpkts=64 (memif server, lcore on CPU 1) ⇄ forwarder (memif client, lcore on CPU 0);"
  echo "        Mpps = generator Rx-pps (round trip) over ${WIN} s after ${WARM} s warm-up; frames ${FRAME} B + 4 B FCS;"
  echo "        cycles = forwarder's busy TSC cycles / packets received (testpmd --record-core-cycles, pollux-fwd --record-cycles);"
  echo "        ${#T_RX[@]} testpmd-io and ${#P_RX[@]} pollux runs, alternating in this job; median (min–max)."
  [ "$FAILS" -gt 0 ] && echo "WARNING: $FAILS run(s) failed and are not in the table (logs in $LOGS)"
  echo
  echo "| row | testpmd io | pollux | ratio (goal ≥ 0.95) |"
  echo "| --- | ---: | ---: | ---: |"
  echo "| $ROW, Mpps | $(mpps "$tmed") ($(mpps "$tmin")–$(mpps "$tmax")) | $(mpps "$pmed") ($(mpps "$pmin")–$(mpps "$pmax")) | $RATIO (pollux/testpmd) |"
  echo "| $CROW | $(num "$tcmed") ($(num "$tcmin")–$(num "$tcmax")) | $(num "$pcmed") ($(num "$pcmin")–$(num "$pcmax")) | $CRATIO (testpmd/pollux) |"
  echo
  read -r rmin rmed rmax <<<"$(stats3 "${PAIRED[@]+"${PAIRED[@]}"}")"
  echo "paired: pollux/testpmd of the two runs of each repetition: median $rmed ($rmin–$rmax), per repetition: ${PAIRED[*]+"${PAIRED[*]}"}"
  echo "best runs: $(mpps "$pmax") / $(mpps "$tmax") Mpps = $(div "$pmax" "$tmax") (pollux/testpmd); $(num "$tcmin") / $(num "$pcmin") cycles = $(div "$tcmin" "$pcmin") (testpmd/pollux)"
  echo "per run, generator Rx Mpps: testpmd io: $(list mpps "${T_RX[@]+"${T_RX[@]}"}")| pollux: $(list mpps "${P_RX[@]+"${P_RX[@]}"}")"
  echo "per run, busy cycles/pkt:   testpmd io: $(list num "${T_CPP[@]+"${T_CPP[@]}"}")| pollux: $(list num "${P_CPP[@]+"${P_CPP[@]}"}")"
  echo "csv: $CSV"
} | tee "$OUT/loop.txt" >&2

# The common schema of bench/report.py.
{
  echo "row,name,unit,runs,pollux_median,pollux_min,pollux_max,ref_name,ref_median,ref_min,ref_max,ratio,goal"
  m() { [ "$1" = - ] && return; awk -v v="$1" 'BEGIN {printf "%.3f", v/1e6}'; }
  echo "loop,\"$ROW (pollux-fwd)\",Mpps,${#P_RX[@]},$(m "$pmed"),$(m "$pmin"),$(m "$pmax"),testpmd io,$(m "$tmed"),$(m "$tmin"),$(m "$tmax"),${RATIO/-/},>=0.95"
  echo "loop,\"$CROW (lower is better)\",cycles/pkt,${#P_CPP[@]},${pcmed/-/},${pcmin/-/},${pcmax/-/},testpmd io,${tcmed/-/},${tcmin/-/},${tcmax/-/},$(div "$pcmed" "$tcmed" | sed 's/^-$//'),"
} >"$OUT/loop.csv"
[ "${#T_RX[@]}" -gt 0 ] && [ "${#P_RX[@]}" -gt 0 ]

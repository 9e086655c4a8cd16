#!/usr/bin/env bash
# Row (d) of `make bench`: pollux's own instructions per packet, counted by
# callgrind — deterministic, so it is the regression number (issue 8).
#
# Method
#   input     a pcap (bench/flows_pcap.py): one ARP request from the member
#             (pollux learns its MAC), then FLOWS UDP flows toward a
#             virtual server (snat none, one member), 64-byte frames.
#             new.pcap: every flow once (all new flows);
#             est.pcap: every flow 1 + PASSES times (new, then established).
#   pollux    the real `pollux run` binary on net_pcap (rx_pcap = the file,
#             no infinite loop: exactly the file's packets), under
#             `valgrind --tool=callgrind --collect-atstart=no
#             --toggle-collect=*Worker*wire_burst*`: only what the worker
#             does with each received burst is counted — parsing, host
#             logic, connection table, NAT, routing, neighbor, queueing for
#             TX; not the PMD's rx/tx, not empty polls, not timers. The
#             hash seed is fixed (POLLUX_HASH_SEED) so buckets repeat.
#             Stopped (SIGTERM) once the port counted every frame.
#   figures   established = (Ir(est) − Ir(new)) / (PASSES × FLOWS)
#             new flow    =  Ir(new) / FLOWS   (first packet of a flow;
#                                               the ARP frame included)
#   reference dpdk-testpmd --forward-mode=io on the same PMD (net_pcap,
#             infinite_rx, tx dropped) under callgrind --separate-threads:
#             the forwarding lcore's instructions / RX-packets — what the
#             PMD and testpmd's loop cost per packet. pollux's figure
#             excludes exactly that part (its PMD calls are outside
#             wire_burst), so it is "pollux minus testpmd io" measured
#             directly rather than by subtraction.
#
# Usage: sudo bench/callgrind.sh --out DIR [--flows N] [--passes K] [--twice]
#   --twice   run each pollux case twice and check the counts are identical
# Writes DIR/callgrind.csv (the common bench schema, see bench/report.py)
# and DIR/logs/callgrind/*.
set -u -o pipefail

OUT=""; FLOWS=1024; PASSES=4; TWICE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=${2:?}; shift 2 ;;
    --flows) FLOWS=${2:?}; shift 2 ;;
    --passes) PASSES=${2:?}; shift 2 ;;
    --twice) TWICE=1; shift ;;
    -h|--help) sed -n '2,/^set -u/p' "$0" | sed 's/^# \{0,1\}//; /^set -u/d'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$OUT" ] || { echo "--out DIR is required" >&2; exit 2; }

REPO=$(cd "$(dirname "$0")/.." && pwd)
POLLUX=${POLLUX:-$REPO/target/release/pollux}
TP=${TESTPMD:-dpdk-testpmd}
LOGS=$OUT/logs/callgrind
TAG=pxcg-$$
SEED=1234567
# net_pcap's first port MAC (02:'p':'c':'a':'p':00): the frames' destination.
PCAP_MAC=02:70:63:61:70:00

log() { printf '[%s] callgrind: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root"
command -v valgrind >/dev/null || die "valgrind not found (apt-get install valgrind)"
[ -x "$POLLUX" ] || die "$POLLUX missing: cargo build --release -p ctrl"
mkdir -p "$LOGS" || die "cannot create $LOGS"
WORK=$(mktemp -d "/tmp/$TAG.XXXXXX") || die "mktemp"

PIDS=()
cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  for p in "${PIDS[@]+"${PIDS[@]}"}"; do kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$WORK" /var/run/dpdk/"$TAG"-* /run/"$TAG"-*.sock
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

python3 "$REPO/bench/flows_pcap.py" "$WORK/new.pcap" --flows "$FLOWS" --passes 1 --dst-mac $PCAP_MAC >"$WORK/new.n" || die "pcap"
python3 "$REPO/bench/flows_pcap.py" "$WORK/est.pcap" --flows "$FLOWS" --passes $((1 + PASSES)) --dst-mac $PCAP_MAC >"$WORK/est.n" || die "pcap"

# config NAME PCAP: a one-port pollux on net_pcap with one UDP virtual server
config() {
  cat <<EOF
instance: { name: $TAG-$1 }
dataplane:
  workers: [0]
  pollMode: busy
  eal: ["--no-huge", "-m", "128", "--no-pci", "--file-prefix=$TAG-$1", "--vdev=net_pcap0,rx_pcap=$2"]
  connections: $((FLOWS * 8))
  mbufs: 4095
  ports:
    - { name: cg$$$1, device: net_pcap0, selfIps: ["10.0.0.2/24"] }
virtualServers:
  - name: bench
    address: 10.0.0.100
    port: 80
    protocol: udp
    snat: none
    members: [{ address: 10.0.0.50, port: 8080 }]
api: { socket: /run/$TAG-$1.sock }
EOF
}

# show NAME WHAT FILE: `pollux show WHAT --json` into FILE; retried (<= 60 s)
# because an instance under valgrind may miss the CLI's 5 s read timeout
show() {
  local i
  for ((i = 0; i < 60; i++)); do
    "$POLLUX" show "$2" --json --api "/run/$TAG-$1.sock" >"$3" 2>/dev/null &&
      python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$3" 2>/dev/null && return 0
    sleep 1
  done
  return 1
}

rx_packets() { # NAME -> the port's rx_packets (empty if no answer)
  "$POLLUX" show stats --json --api "/run/$TAG-$1.sock" 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["ports"][0]["rx_packets"])' 2>/dev/null
}

# start_case NAME PCAP: pollux under callgrind, in the background
start_case() {
  local name=$1 pcap=$2
  config "$name" "$pcap" >"$WORK/$name.yaml"
  # exec: $! is valgrind itself, which the deadline below and the EXIT
  # trap can stop
  (POLLUX_HASH_SEED=$SEED POLLUX_CLOCK_STEP_NS=1000 exec valgrind --tool=callgrind --fair-sched=yes --collect-atstart=no \
    "--toggle-collect=*Worker*wire_burst*" --callgrind-out-file="$LOGS/$name.out" \
    "$POLLUX" run --config "$WORK/$name.yaml" >"$LOGS/$name.log" 2>&1) &
  PIDS+=($!)
  eval "PID_$name=$!"
}

# finish_case NAME FRAMES: waits (<= 300 s) until pollux counted FRAMES,
# stops it, sets IR[NAME] to the instructions collected (not in a
# subshell: `wait` needs the shell that started the process)
finish_case() {
  local name=$1 want=$2 pid n="" i
  pid=$(eval echo "\$PID_$name")
  for ((i = 0; i < 1500; i++)); do
    n=$(rx_packets "$name")
    [ "$n" = "$want" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  [ "$n" = "$want" ] || { log "$name: port counted '${n}' of $want frames; see $LOGS/$name.log"; return 1; }
  check_case "$name" || return 1
  kill -TERM "$pid"
  wait "$pid" || { log "$name: pollux exited $?; see $LOGS/$name.log"; return 1; }
  IR[$name]=$(sed -n 's/^totals: *//p' "$LOGS/$name.out" | head -1)
  [ -n "${IR[$name]}" ]
}

# The run must have done what the figure claims: every UDP frame forwarded
# by the virtual server, none dropped.
check_case() {
  local name=$1
  show "$name" virtual-servers "$LOGS/$name.vs.json" && show "$name" stats "$LOGS/$name.stats.json" &&
    show "$name" connections "$LOGS/$name.conn.json" ||
    { log "$name: no answer from its API"; return 1; }
  python3 - "$LOGS/$name.vs.json" "$LOGS/$name.stats.json" "$(( $(cat "$WORK/${name%2}.n") - 1 ))" <<'EOF' || return 1
import json, sys
vs = json.load(open(sys.argv[1]))["virtual_servers"][0]
st = json.load(open(sys.argv[2]))["ports"][0]
want = int(sys.argv[3])
drops = {k: v for k, v in st["drops"].items() if v}
if vs["packets_in"] != want or drops:
    sys.exit(f"virtual server forwarded {vs['packets_in']} of {want} frames; drops {drops}")
EOF
}

t0=$SECONDS
log "pollux under callgrind: $FLOWS flows, new.pcap and est.pcap (1 + $PASSES passes), in parallel"
cases="new est"; [ "$TWICE" = 1 ] && cases="new est new2 est2"
for c in $cases; do start_case "$c" "$WORK/${c%2}.pcap"; done
declare -A IR=()
for c in $cases; do
  finish_case "$c" "$(cat "$WORK/${c%2}.n")" || die "$c failed"
  log "$c: ${IR[$c]} instructions in wire_burst"
done

log "dpdk-testpmd io on net_pcap under callgrind (reference)"
(sleep 12; echo) | timeout -k 5 120 valgrind --tool=callgrind --separate-threads=yes \
  --callgrind-out-file="$LOGS/testpmd.out" "$TP" -l 0,1 --no-pci --no-huge -m 128 \
  --file-prefix="$TAG-tp" --vdev="net_pcap0,rx_pcap=$WORK/new.pcap,infinite_rx=1" -- \
  --forward-mode=io --no-flush-rx --total-num-mbufs=4096 --burst=32 --nb-cores=1 \
  >"$LOGS/testpmd.log" 2>&1
TP_RX=$(awk '/RX-packets:/ {print $2; exit}' "$LOGS/testpmd.log")
# the forwarding lcore is the thread that executed the most
TP_IR=$(cat "$LOGS"/testpmd.out-* 2>/dev/null | sed -n 's/^totals: *//p' | sort -n | tail -1)
[ -n "$TP_RX" ] && [ "${TP_RX:-0}" -gt 0 ] && [ -n "$TP_IR" ] || die "testpmd reference failed; see $LOGS/testpmd.log"

read -r EST NEW TPP <<<"$(awk -v e="${IR[est]}" -v n="${IR[new]}" -v f="$FLOWS" -v k="$PASSES" \
  -v ti="$TP_IR" -v tr="$TP_RX" 'BEGIN {printf "%.1f %.1f %.1f", (e-n)/(k*f), n/f, ti/tr}')"
log "established $EST, new flow $NEW instructions/packet; testpmd io on net_pcap $TPP ($(( SECONDS - t0 )) s)"
if [ "$TWICE" = 1 ]; then
  if [ "${IR[new]}" = "${IR[new2]}" ] && [ "${IR[est]}" = "${IR[est2]}" ]; then
    log "identical across two runs: new ${IR[new]} = ${IR[new2]}, est ${IR[est]} = ${IR[est2]}"
  else
    die "counts differ between runs: new ${IR[new]} vs ${IR[new2]}, est ${IR[est]} vs ${IR[est2]}"
  fi
fi

# Row (e): the connection table's memory per tracked flow, from the running
# pollux: bytes per slot × slots the flows took.
BPF=$(python3 - "$LOGS/est.conn.json" "$LOGS/est.vs.json" <<'EOF'
import json, sys
w = json.load(open(sys.argv[1]))["workers"][0]
flows = json.load(open(sys.argv[2]))["virtual_servers"][0]["new_flows"]
print(f'{w["table_bytes"] / w["capacity"] * w["entries"] / flows:.1f}')
EOF
) || die "bytes per flow"
log "connection table: $BPF bytes per tracked flow"

N=1; SAME=""
[ "$TWICE" = 1 ] && { N=2; SAME=", identical in 2 runs"; }
CSV=$OUT/callgrind.csv
{
  echo "row,name,unit,runs,pollux_median,pollux_min,pollux_max,ref_name,ref_median,ref_min,ref_max,ratio,goal"
  echo "d,\"pollux's own instructions/packet, established UDP flow ($FLOWS flows, callgrind$SAME)\",instr/pkt,$N,$EST,$EST,$EST,testpmd io (PMD + loop),$TPP,$TPP,$TPP,,<=100"
  echo "d,\"pollux's own instructions/packet, first packet of a new flow (callgrind$SAME)\",instr/pkt,$N,$NEW,$NEW,$NEW,testpmd io (PMD + loop),$TPP,$TPP,$TPP,,"
  echo "e,\"connection table bytes per tracked flow (buckets + entries)\",B/flow,1,$BPF,$BPF,$BPF,,,,,,<=64"
} >"$CSV"

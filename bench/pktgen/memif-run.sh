#!/usr/bin/env bash
# pollux and pktgen-dpdk end to end on one machine, over two memif links (no
# NICs, no namespaces, root): the recipe of bench/pktgen/README.md.
#
#   bench/pktgen/memif-run.sh [range|pcap]     (default range)
#
# pollux: 1 worker, memif servers (its "external" and "internal" ports).
# pktgen: lcore 0 main, lcore 1 both ports, memif clients; runs
# pollux-range.lua with QUIT=1. Afterwards: pollux's connection entries (the
# flows pktgen produced) and its per-port drops. A functional check: memif
# throughput on shared cores says nothing about a NIC.
#
# Environment: PKTGEN (pktgen binary, default `pktgen`), POLLUX (default
# target/release/pollux), SIZES, DURATION, RATE, SRC_IPS, SRC_PORTS as the
# script; TIMEOUT (seconds for pktgen's whole run, default 120).
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=${1:-range}
PKTGEN=${PKTGEN:-pktgen}
POLLUX=${POLLUX:-$PWD/target/release/pollux}
TIMEOUT=${TIMEOUT:-120}
export SIZES=${SIZES:-64,512,1518} DURATION=${DURATION:-3} RATE=${RATE:-100}
VIP=192.0.2.10 VIP_MAC=02:00:00:00:18:02 PG0_MAC=02:00:00:00:18:01
PX1_MAC=02:00:00:00:19:02 PG1_MAC=02:00:00:00:19:01
tag=pkg-$$
work=$(mktemp -d /tmp/pkg-run.XXXXXX)
px="" pg=""
# stop PID: SIGTERM, up to 10 s, then SIGKILL
stop() {
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 0
  kill -TERM "$1"
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
}
cleanup() {
  stop "$pg"; stop "$px"
  rm -rf "$work" "/var/run/dpdk/$tag-px" "/var/run/dpdk/$tag-pg"
}
trap cleanup EXIT

cat >"$work/pollux.yaml" <<EOF
instance: { name: $tag }
dataplane:
  workers: [1]
  pollMode: busy
  eal: ["--no-huge", "-m", "512", "--no-pci", "--file-prefix=$tag-px",
        "--vdev=net_memif0,role=server,id=0,socket=$work/ext.sock,mac=$VIP_MAC",
        "--vdev=net_memif1,role=server,id=0,socket=$work/int.sock,mac=$PX1_MAC"]
  connections: 262144
  newFlowsPerSec: 0
  ports:
    - { name: pkge$(( $$ % 100000 )), device: net_memif0, selfIps: ["198.18.255.254/16"] }
    - name: pkgi$(( $$ % 100000 ))
      device: net_memif1
      selfIps: ["198.19.0.2/24"]
      neighbors: [{ address: 198.19.0.1, mac: "$PG1_MAC" }]   # pktgen answers no ARP
virtualServers:
  - name: bench
    address: $VIP
    port: 80
    protocol: udp
    idleTimeout: 300
    snat: none
    members: [{ address: 198.19.0.1, port: 8080 }]
api: { socket: $work/api.sock }
EOF
"$POLLUX" check --config "$work/pollux.yaml" >/dev/null
"$POLLUX" run --config "$work/pollux.yaml" >"$work/pollux.log" 2>&1 &
px=$!
show() { "$POLLUX" show "$@" --json --api "$work/api.sock"; }
deadline=$((SECONDS + 40))
until show stats 2>/dev/null | python3 -c 'import json,sys; s=json.load(sys.stdin); sys.exit(0 if s.get("workers_running") else 1)' 2>/dev/null; do
  kill -0 "$px" 2>/dev/null || { cat "$work/pollux.log"; echo "pollux exited" >&2; exit 1; }
  [ $SECONDS -lt $deadline ] || { tail -20 "$work/pollux.log"; echo "pollux not running after 40 s" >&2; exit 1; }
  sleep 0.2
done

pcap_arg=()
if [ "$mode" = pcap ]; then
  bench/pktgen/flows-pcap.py --vip-mac "$VIP_MAC" --src-mac "$PG0_MAC" --src-ips "${SRC_IPS:-256}" \
    --src-ports "${SRC_PORTS:-256}" --size "${SIZES%%,*}" -o "$work/flows.pcap"
  pcap_arg=(-s "0:$work/flows.pcap")
  export PCAP=on
fi
# pktgen redraws its screen on stdout; the script's rows are picked from it.
# It prints "pollux done" after its last row; pktgen's own quit does not
# always return on memif, so it is stopped from here.
VIP_MAC=$VIP_MAC QUIT=1 setsid "$PKTGEN" -l 0-1 -n 4 --no-huge -m 4096 --no-pci --file-prefix="$tag-pg" \
  --vdev="net_memif0,role=client,id=0,socket=$work/ext.sock,mac=$PG0_MAC" \
  --vdev="net_memif1,role=client,id=0,socket=$work/int.sock,mac=$PG1_MAC" \
  -- -P -m "1.[0-1]" "${pcap_arg[@]}" -f bench/pktgen/pollux-range.lua </dev/null >"$work/pktgen.log" 2>&1 &
pg=$!
deadline=$((SECONDS + TIMEOUT)) ok=0
while kill -0 "$pg" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
  if grep -aq "pollux done" "$work/pktgen.log"; then ok=1; break; fi
  sleep 0.2
done
grep -aq "pollux done" "$work/pktgen.log" && ok=1
stop "$pg"
wait "$pg" 2>/dev/null || true
sed 's/\x1b\[[0-9;]*[A-Za-z]/\n/g' "$work/pktgen.log" | grep -a "^pollux \|Error\|error\|PANIC\|Cannot" || true
[ "$ok" = 1 ] || { echo "pktgen did not finish the script in $TIMEOUT s (log: above)" >&2; exit 1; }
show connections | python3 -c '
import json, sys
w = json.load(sys.stdin)["workers"]
print("pollux connections:", {k: sum(x.get(k, 0) for x in w) for k in ("entries", "new_flows", "insert_failed_full")})'
show stats | python3 -c '
import json, sys
for p in json.load(sys.stdin)["ports"]:
    per = p["rx_bytes"] / p["rx_packets"] if p["rx_packets"] else 0  # frames without the FCS
    print("pollux port", p["name"], "rx", p["rx_packets"], "(%.1f B each)" % per, "tx", p["tx_packets"],
          "drops", {k: v for k, v in p["drops"].items() if v})'

#!/bin/bash
# Captures real FRR 8.4 BGP messages as fixtures (ctrl/bgp/tests/fixtures).
#
# Topology: netns pxbgpcap-frr (FRR, AS 65001, 10.99.0.1/30, fd99::1/64)
#   -- veth -- netns pxbgpcap-py (peer.py, AS 65002, 10.99.0.2/30, fd99::2/64).
# FRR announces two IPv4 /32s and one IPv6 /128 (MP-BGP over the IPv4
# session) with communities 65001:100 and GRACEFUL_SHUTDOWN, then is shut
# down with a shutdown message, then re-enabled to meet a wrong-AS OPEN.
# Run as root: ctrl/bgp/tests/capture/capture-frr.sh [OUTDIR]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$HERE/../fixtures}
RUN=$(mktemp -d /tmp/pxbgpcap-run.XXXXXX)
NF=pxbgpcap-frr NP=pxbgpcap-py
PYPID=

cleanup() {
    [ -n "$PYPID" ] && kill "$PYPID" 2>/dev/null || true
    for p in bgpd zebra; do
        [ -f "$RUN/$p.pid" ] && kill "$(cat "$RUN/$p.pid")" 2>/dev/null || true
    done
    ip netns del $NF 2>/dev/null || true
    ip netns del $NP 2>/dev/null || true
    rm -rf "$RUN"
}
trap cleanup EXIT

ip netns add $NF
ip netns add $NP
ip link add pxcap0 netns $NF type veth peer name pxcap1 netns $NP
ip -n $NF addr add 10.99.0.1/30 dev pxcap0
ip -n $NF addr add fd99::1/64 dev pxcap0 nodad
ip -n $NP addr add 10.99.0.2/30 dev pxcap1
ip -n $NP addr add fd99::2/64 dev pxcap1 nodad
for n in $NF $NP; do ip -n $n link set lo up; done
ip -n $NF link set pxcap0 up
ip -n $NP link set pxcap1 up

cat > "$RUN/zebra.conf" <<CONF
hostname pxbgpcap-zebra
log file $RUN/zebra.log informational
CONF
cat > "$RUN/bgpd.conf" <<CONF
hostname pxbgpcap-bgpd
log file $RUN/bgpd.log debugging
!
route-map CAP permit 10
 set community 65001:100 graceful-shutdown
exit
!
router bgp 65001
 bgp router-id 10.99.0.1
 no bgp ebgp-requires-policy
 no bgp network import-check
 bgp graceful-restart
 timers bgp 3 9
 neighbor 10.99.0.2 remote-as 65002
 neighbor 10.99.0.2 timers connect 1
 !
 address-family ipv4 unicast
  network 10.255.0.1/32 route-map CAP
  network 10.255.0.2/32 route-map CAP
 exit-address-family
 !
 address-family ipv6 unicast
  network 2001:db8:ff::1/128 route-map CAP
  neighbor 10.99.0.2 activate
 exit-address-family
exit
CONF
chown -R frr:frr "$RUN"
C="-d -z $RUN/zserv.api --vty_socket $RUN -P 0 -u frr -g frr"

# The peer listens first, so FRR's first connect succeeds.
ip netns exec $NP python3 "$HERE/peer.py" "$OUT" &
PYPID=$!
deadline=$((SECONDS + 10))
until ip netns exec $NP ss -ltn | grep -q '10.99.0.2:179'; do
    [ $SECONDS -lt $deadline ] || { echo "peer did not listen"; exit 1; }
    sleep 0.1
done

ip netns exec $NF /usr/lib/frr/zebra $C -f "$RUN/zebra.conf" -i "$RUN/zebra.pid"
ip netns exec $NF /usr/lib/frr/bgpd $C -f "$RUN/bgpd.conf" -i "$RUN/bgpd.pid"

vty() { vtysh --vty_socket "$RUN" "$@"; }
# Wait until FRR has sent its UPDATEs (IPv4, IPv6 and both End-of-RIBs).
deadline=$((SECONDS + 40))
until [ -f "$OUT/frr_update_4.hex" ]; do
    [ $SECONDS -lt $deadline ] || { echo "no UPDATEs"; vty -c 'show bgp summary'; tail -50 "$RUN/bgpd.log"; exit 1; }
    sleep 0.2
done
sleep 1 # let late UPDATEs (EoR) land before the shutdown
vty -c 'conf t' -c 'router bgp 65001' \
    -c 'neighbor 10.99.0.2 shutdown message pollux fixture capture'
vty -c 'conf t' -c 'router bgp 65001' -c 'no neighbor 10.99.0.2 shutdown'
deadline=$((SECONDS + 30))
while kill -0 $PYPID 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || { echo "peer did not finish"; exit 1; }
    sleep 0.2
done
wait $PYPID
PYPID=
ls -l "$OUT"

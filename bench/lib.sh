# Shared by the bench scripts (sourced): logging and private hugepages.
#
# hp_up reserves HUGEPAGES 2 MiB pages (adding only what is missing), mounts
# hugetlbfs at a private mount point and sets HP_MNT and HP_FREE; on failure
# it says why in HP_WHY and leaves nothing behind. hp_down undoes exactly
# what hp_up did. Every DPDK process then gets --huge-dir=$HP_MNT
# --huge-unlink, so no hugepage file outlives its process.

HP_SYS=/sys/kernel/mm/hugepages/hugepages-2048kB
HP_MNT=""; HP_ADDED=0; HP_WHY=""; HP_FREE=0

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

hp_down() {
  if [ -n "$HP_MNT" ]; then
    rm -f "$HP_MNT"/* 2>/dev/null
    umount "$HP_MNT" 2>/dev/null || log "WARN: could not unmount $HP_MNT"
    rmdir "$HP_MNT" 2>/dev/null
    HP_MNT=""
  fi
  if [ "$HP_ADDED" -gt 0 ]; then
    local cur; cur=$(cat "$HP_SYS/nr_hugepages")
    echo $((cur > HP_ADDED ? cur - HP_ADDED : 0)) >"$HP_SYS/nr_hugepages" 2>/dev/null
    HP_ADDED=0
  fi
}

# hp_up PAGES TAG
hp_up() {
  local want_pages=$1 tag=$2 prev free want got err
  [ -w "$HP_SYS/nr_hugepages" ] || { HP_WHY="$HP_SYS/nr_hugepages is not writable"; return 1; }
  prev=$(cat "$HP_SYS/nr_hugepages"); free=$(cat "$HP_SYS/free_hugepages")
  want=$((want_pages > free ? want_pages - free : 0))
  if [ "$want" -gt 0 ]; then
    echo $((prev + want)) >"$HP_SYS/nr_hugepages" 2>/dev/null
    got=$(cat "$HP_SYS/nr_hugepages"); HP_ADDED=$((got > prev ? got - prev : 0))
  fi
  free=$(cat "$HP_SYS/free_hugepages")
  if [ "$free" -lt $((want_pages / 2)) ]; then
    HP_WHY="only $free free 2 MiB hugepages (asked for $want_pages)"; hp_down; return 1
  fi
  HP_MNT=$(mktemp -d "/tmp/$tag-hugepages.XXXXXX") || { HP_WHY="mktemp"; hp_down; return 1; }
  if ! err=$(mount -t hugetlbfs -o pagesize=2M nodev "$HP_MNT" 2>&1); then
    HP_WHY="mount -t hugetlbfs failed: $err"; rmdir "$HP_MNT"; HP_MNT=""; hp_down; return 1
  fi
  HP_FREE=$free
}

# The machine, for the header of every table.
machine_line() {
  local cpu ncpu dpdk
  cpu=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)
  ncpu=$(grep -c '^processor' /proc/cpuinfo)
  dpdk=$(pkg-config --modversion libdpdk 2>/dev/null || echo "?")
  echo "$cpu, $ncpu CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r), DPDK $dpdk"
}

#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine, run as root by every make
# target: system packages, hugepages, the Python venv for the tests, and the
# release build. Quiet when everything is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "setup: run as root (sudo make ...)" >&2; exit 1; }
say() { echo "setup: $*"; }

# System packages: DPDK 22.11 and bindgen's libclang, the routing peers, the
# traffic tools (tshark reads the captures), Lua 5.3 for the pktgen script's
# test. Nothing is started (no systemd needed).
PKGS=(dpdk dpdk-dev libdpdk-dev pkg-config clang libclang-dev iproute2 iputils-ping
      tcpdump tshark ethtool socat curl frr bird2 iperf3 python3-venv valgrind lua5.3)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Rust: the machine's toolchain (Debian 12's rustc is too old for the crates).
if ! command -v cargo >/dev/null; then
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null || { echo "setup: cargo not found: install Rust >= 1.85 (rustup) first" >&2; exit 1; }

# Hugepages for the benchmarks (tests run with --no-huge and need none).
if [ "$(cat /proc/sys/vm/nr_hugepages)" -lt 512 ] 2>/dev/null; then
  echo 512 > /proc/sys/vm/nr_hugepages 2>/dev/null || say "could not reserve hugepages (benchmarks fall back to --no-huge)"
fi
# (/proc/mounts reads "nodev /dev/hugepages hugetlbfs ...": match the fields.)
if ! awk '$2 == "/dev/hugepages" && $3 == "hugetlbfs" { found = 1 } END { exit !found }' /proc/mounts; then
  mkdir -p /dev/hugepages && mount -t hugetlbfs -o pagesize=2M nodev /dev/hugepages 2>/dev/null || true
fi

# Python venv for the integration and chart tests (and the bench's plot).
if [ ! -x .venv/bin/pytest ] || [ tests/helm/requirements.txt -nt .venv/.stamp ] ||
   [ bench/requirements.txt -nt .venv/.stamp ]; then
  say "creating the Python venv (.venv)"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r tests/helm/requirements.txt -r bench/requirements.txt
  touch .venv/.stamp
fi

# One release build shared by the integration tests, the lab and the bench.
cargo build --release --quiet -p ctrl -p bench

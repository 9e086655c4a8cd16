#!/usr/bin/env bash
# Runs every fuzz target (or those named) for SECONDS each, one after the
# other, from its committed seeds (fuzz/seeds/TARGET, read only) and its
# scratch corpus (fuzz/corpus/TARGET, gitignored: new inputs go there).
# Stable toolchain, no sanitizer (`-s none`); the fuzz profile keeps debug
# assertions, so an arithmetic overflow is a crash too. Prints one line per
# target: executions, executions per second, crashes. Exits non-zero if any
# target crashed (the input is in fuzz/artifacts/TARGET/).
#
#   scripts/fuzz.sh SECONDS [TARGET...]     make test: 20; make fuzz: FUZZ_SECS
set -uo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:?usage: scripts/fuzz.sh SECONDS [TARGET...]}; shift
command -v cargo-fuzz >/dev/null || cargo install --quiet cargo-fuzz >/dev/null 2>&1
cargo fuzz build -s none >/dev/null 2>&1 || { cargo fuzz build -s none; echo "fuzz targets do not build"; exit 1; }
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
logs=../target/fuzz-logs
mkdir -p "$logs"
bad=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "seeds/$t"
  log=$logs/$t.log
  # -timeout: one input slower than 10 s is a hang (a crash).
  cargo fuzz run -s none "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1
  rc=$?
  execs=$(grep -Eo "stat::number_of_executed_units: *[0-9]+" "$log" | grep -Eo "[0-9]+$" | tail -1)
  rate=$(grep -Eo "stat::average_exec_per_sec: *[0-9]+" "$log" | grep -Eo "[0-9]+$" | tail -1)
  if [ $rc -eq 0 ]; then crashes=0; else crashes=1; bad=1; fi
  printf "%-12s %12s execs %8s exec/s  %s crashes  (%s s)\n" "$t" "${execs:-?}" "${rate:-?}" "$crashes" "$secs"
  [ $rc -eq 0 ] || grep -E "panicked|ERROR|SUMMARY|artifact" "$log" | head -5
done
exit $bad

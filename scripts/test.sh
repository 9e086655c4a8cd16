#!/usr/bin/env bash
# Every test: unit and property tests (cargo, release; then once more in the
# dev profile, whose overflow checks turn a silent wrap into a failure),
# clippy and rustfmt, every fuzz target for 20 s, the chart tests (real Helm
# library), the pktgen script against pktgen's Lua API (lua5.3), and the integration tests (real DPDK vdevs in namespaces). Ends with one line "N passed, N failed" and exits
# non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
logs=target/test-logs
mkdir -p "$logs"
passed=0 failed=0 broken=()

# cargo test: sum the "test result:" lines of every test binary.
# suite_cargo NAME [CARGO TEST ARGS...]
suite_cargo() {
  local name=$1; shift
  local log=$logs/$name.log
  if ! cargo test --workspace --quiet "$@" 2>&1 | tee "$log" | grep -E "^test .*FAILED|panicked|^error" ; then :; fi
  local p f
  p=$(grep -Eo "test result: [A-Za-z]+\. [0-9]+ passed" "$log" | awk '{s+=$4} END {print s+0}')
  f=$(grep -Eo "[0-9]+ failed" "$log" | awk '{s+=$1} END {print s+0}')
  if grep -q "^error" "$log"; then f=$((f + 1)); broken+=("$name build"); fi
  passed=$((passed + p)); failed=$((failed + f))
  echo "$name: $p passed, $f failed"
}

# One command that passes or fails as a whole, counted as one test.
# suite_step NAME COMMAND...
suite_step() {
  local name=$1; shift
  local t0=$SECONDS
  if "$@" >"$logs/$name.log" 2>&1; then
    passed=$((passed + 1)); echo "$name: ok ($((SECONDS - t0)) s)"
  else
    failed=$((failed + 1)); broken+=("$name"); echo "$name: FAILED (see $logs/$name.log)"
    tail -n 20 "$logs/$name.log"
  fi
}

# Every fuzz target runs FUZZ_CI_SECS (default 20) from its committed seeds
# (scripts/fuzz.sh; stable toolchain, no sanitizer): one test per target, a
# crash or a hang is a failure.
suite_fuzz() {
  local out t0=$SECONDS
  out=$(scripts/fuzz.sh "${FUZZ_CI_SECS:-20}" 2>&1)
  echo "$out" >"$logs/fuzz.log"
  if ! grep -q " execs " <<<"$out"; then
    failed=$((failed + 1)); broken+=("fuzz build"); echo "fuzz: FAILED (see $logs/fuzz.log)"; return
  fi
  local p f
  p=$(grep -c " 0 crashes" <<<"$out"); f=$(grep -c " 1 crashes" <<<"$out")
  passed=$((passed + p)); failed=$((failed + f))
  [ "$f" -eq 0 ] || broken+=("fuzz")
  echo "$out" | grep " execs "
  echo "fuzz: $p passed, $f failed ($((SECONDS - t0)) s)"
}

# pytest suites: read the counts from the junit XML.
suite_pytest() {
  local name=$1; shift
  local xml=$logs/$name.xml
  POLLUX_BIN=$PWD/target/release/pollux .venv/bin/pytest -q -p no:cacheprovider --junitxml="$xml" "$@" >"$logs/$name.log" 2>&1
  tail -n 15 "$logs/$name.log"
  local counts p f
  counts=$(python3 - "$xml" <<'PY'
import sys, xml.etree.ElementTree as ET
r = ET.parse(sys.argv[1]).getroot()
s = r if r.tag == "testsuite" else r.find("testsuite")
t, f, e, k = (int(s.get(x, 0)) for x in ("tests", "failures", "errors", "skipped"))
print(t - f - e - k, f + e)
PY
  ) || counts="0 1"
  read -r p f <<<"$counts"
  passed=$((passed + p)); failed=$((failed + f))
  echo "$name: $p passed, $f failed"
}

suite_cargo cargo-test --release
# The dev profile has overflow-checks on: the same tests once more, where an
# arithmetic overflow panics instead of wrapping (target/debug: the release
# build above stays warm).
suite_cargo cargo-test-overflow
suite_step "clippy" cargo clippy --workspace --all-targets --quiet -- -D warnings
suite_step "rustfmt" cargo fmt --all --check
suite_fuzz
suite_pytest helm tests/helm
suite_pytest pktgen tests/pktgen
suite_pytest bench tests/bench
suite_pytest integration tests/integration

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

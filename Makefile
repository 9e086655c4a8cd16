# pollux: the three commands of the contract (DESIGN.md §4). Each runs as
# root on a fresh Debian 12 machine and first runs the idempotent set-up.
.PHONY: lab test bench setup build fuzz

setup:
	@scripts/setup.sh

build: setup

## make lab: the self-contained lab (namespaces, real DPDK vdevs), printed.
lab: setup
	@.venv/bin/python scripts/lab.py

## make test: every test; ends with "N passed, N failed".
test: setup
	@scripts/test.sh

## make fuzz: a long campaign, every fuzz target FUZZ_SECS seconds (default
## 1800) in turn from fuzz/seeds + fuzz/corpus; docs/hardening.md records a run.
FUZZ_SECS ?= 1800
fuzz: setup
	@scripts/fuzz.sh $(FUZZ_SECS)

## make bench: the benchmarks, printed as a table (bench/results/ has CSV).
bench: setup
	@bench/run.sh

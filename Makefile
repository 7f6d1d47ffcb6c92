# mtlbench — the README's commands. Every target sets up libtorch first.
#   make demo    build, train the embedded demo grid, write results/ + reports/, update README
#   make test    the whole test suite
#   make bench   criterion benchmarks
#   make perf    bench-perf: MMOE and PLE side by side with a PyTorch eager reference (docs/performance.md)
#   make perf-setup  only install the reference's Python (torch 2.11 CUDA wheels, ~4.3 GB; not needed by make test)
#   make perf-rechub bench-perf rechub: a small tabular MMOE side by side with torch-rechub 0.9.0 (installs it)
#   make setup   only install libtorch 2.11.0 (CPU) into ~/.cache/mtlbench and link ./libtorch
#   make setup-cuda  the full CUDA libtorch set for GPU users

SHELL := /bin/bash
CARGO ?= cargo
# Release everywhere: the demo, the tests and the benchmarks share one build.
PROFILE_FLAGS := --release
# Where cargo builds (its own CARGO_TARGET_DIR where the user set one).
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
BENCH := $(TARGET_DIR)/release/bench
BENCH_PERF := $(TARGET_DIR)/release/bench-perf
# libtorch's OpenMP workers must not spin (docs/architecture.md, Known pitfalls).
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: all setup setup-cuda build demo test bench perf perf-build perf-paired perf-setup perf-rechub clean-results

all: demo

setup:
	@scripts/setup-libtorch.sh

setup-cuda:
	@scripts/setup-libtorch.sh --cuda

build: setup
	$(CARGO) build $(PROFILE_FLAGS) --bin bench

demo: build
	$(BENCH) run experiments/demo.toml
	$(BENCH) report --out reports
	$(BENCH) leaderboard
	$(BENCH) readme --readme README.md
	@echo
	@echo "Done: database results/bench.sqlite, report reports/index.html, leaderboard above, table in README.md."
	@echo "Next: $(BENCH) list | $(BENCH) show <run-id> | $(BENCH) leaderboard --format md | $(BENCH) report --open"

# Library tests one at a time: they share libtorch's global generator, and a
# test that seeds it (tch::manual_seed) and builds the same thing twice must
# not see another test draw from it in between. The integration tests run
# bench in child processes and stay parallel.
test: setup
	$(CARGO) test $(PROFILE_FLAGS) --lib -- --test-threads=1
	$(CARGO) test $(PROFILE_FLAGS) --bins --test integration

bench: setup
	$(CARGO) bench

perf-setup:
	@scripts/setup-perf-python.sh >/dev/null

# The developer binary of the comparison (not part of `bench`).
perf-build: setup
	$(CARGO) build $(PROFILE_FLAGS) --bin bench-perf

# Side by side with PyTorch eager: about an hour on 2 cores at 15 rounds
# (make perf PERF_ROUNDS=5 for a quicker, noisier AUC comparison).
PERF_ROUNDS ?= 15
perf: perf-build perf-setup
	$(BENCH_PERF) --rounds $(PERF_ROUNDS) --python "$$(scripts/setup-perf-python.sh --print)" --json results/perf.json

# Same dropout masks on both sides (libtorch's): each round's test AUCs pair up.
perf-paired: perf-build perf-setup
	$(BENCH_PERF) --rounds 5 --masks libtorch --auc-rows 0 --python "$$(scripts/setup-perf-python.sh --print)" --json results/perf-same-masks.json

# Small tabular MMOE against torch-rechub's MTLTrainer (fast loader and its
# own DataLoader), one thread per side: a few minutes on 2 cores.
RECHUB_ROUNDS ?= 5
perf-rechub: perf-build perf-setup
	$(BENCH_PERF) rechub --rounds $(RECHUB_ROUNDS) --python "$$(scripts/setup-perf-python.sh --rechub)" --json results/perf-rechub.json

clean-results:
	rm -rf results/bench.sqlite* results/predictions reports/*.html reports/*.svg

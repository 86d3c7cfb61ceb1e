# py_rt: the two commands of the README.
#   make demo   set everything up, then run the main job (the local paper deployment)
#   make test   set everything up, then run every check (lint, type checks, Rust and Python tests)
# Needs only Python 3.11+, a Rust toolchain (cargo on PATH or in ~/.cargo/bin) and the package
# registries.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(HOME)/.cargo/bin:$(PATH)
# maturin must never try to download a Rust toolchain (no network but the registries).
export MATURIN_NO_INSTALL_RUST := 1
# The extension is built with the dev profile (dependencies are optimised, see Cargo.toml).
export MATURIN_PEP517_ARGS := --profile dev
export RT_ENGINE_BIN := $(CURDIR)/target/debug/rt-engine

.PHONY: setup lock demo test lint check-python check-rust bench bench-optimize bench-compare bench-onnx clean test-systemd test-systemd-fleet fuzz fuzz-okx-kraken

# The Python dependency set, pinned with hashes as Cargo.lock pins the Rust one (`make lock`
# regenerates both files from pyproject.toml and requirements-build.in). The package's extras:
# research (backtest, optimize, reports), deploy (appliance apply), dev (tests, lints, uv); the
# lock holds all of them, so both README commands get everything.
LOCK := requirements.lock
BUILD_LOCK := requirements-build.lock
PIP := $(BIN)/python -m pip --disable-pip-version-check
UV_COMPILE := $(BIN)/uv pip compile --quiet --generate-hashes --python-version 3.11 --universal \
	--custom-compile-command 'make lock'

setup: $(VENV)/.locked
	@command -v cargo >/dev/null || { echo "py_rt needs a Rust toolchain (cargo) on PATH" >&2; exit 1; }
	# The package itself (its dependencies come from the lock), which builds the extension.
	$(PIP) install --quiet --no-deps --no-build-isolation -e .
	cargo build --quiet -p rt-engine

# Installs the locks into the venv (only when they changed): the build tools first, then every
# dependency, each file checked against its hash. Without build isolation: antlr4 (a Hydra
# dependency) is an sdist, built with the locked setuptools and wheel.
$(VENV)/.locked: $(BUILD_LOCK) $(LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "py_rt needs Python 3.11+, found " + sys.version.split()[0])'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --require-hashes -r $(BUILD_LOCK)
	$(PIP) install --quiet --require-hashes --no-build-isolation -r $(LOCK)
	touch $@

# Re-pins after an edit of pyproject.toml's dependencies (kept versions stay unless they must
# move); `make lock UPGRADE=--upgrade` moves everything to the newest allowed.
UPGRADE ?=
lock: $(VENV)/.locked
	$(UV_COMPILE) $(UPGRADE) pyproject.toml --extra research --extra deploy --extra dev -o $(LOCK)
	$(UV_COMPILE) $(UPGRADE) requirements-build.in -o $(BUILD_LOCK)

# The main job: compile paper_local, load it in Rust, trade it for a bounded time against the
# sim venue over loopback (real recorded data), then backtest the same manifest in process.
# The engine and the sim run as release builds, so the latency table shows what the engine
# does (a debug build is several times slower; the tests use it).
DEMO_SECONDS ?= 30
DEMO_ENGINE := $(CURDIR)/target/release/rt-engine
demo: setup
	cargo build --release --quiet -p rt-engine
	$(BIN)/appliance compile
	@for m in build/paper_local/*.manifest.json; do $(DEMO_ENGINE) check --manifest "$$m"; done
	RT_ENGINE_BIN=$(DEMO_ENGINE) $(BIN)/appliance run --duration $(DEMO_SECONDS)
	$(BIN)/appliance backtest

check-rust:
	cargo fmt --all -- --check
	cargo clippy --quiet --workspace --all-targets -- -D warnings
	cargo test --quiet --workspace
	# The SPSC ring, model-checked with loom (its own target dir: --cfg loom rebuilds all).
	RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --quiet -p rt-ring --release --test loom

check-python:
	$(BIN)/ruff check appliance tests bench
	$(BIN)/ruff format --check appliance tests bench
	$(BIN)/mypy appliance tests
	$(BIN)/appliance schema --check
	$(BIN)/pytest -q

test: setup check-rust check-python

# The production service path under real systemd as PID 1: a Debian root made with debootstrap
# (cached under /var/tmp), booted with systemd-nspawn, `appliance apply` to "/" inside it with
# the hardened units (tests/systemd). Needs root; minutes; not part of `make test`.
test-systemd: setup
	tests/systemd/nspawn.sh

# The fleet roll-out under real systemd: three such containers (sshd in each on its own
# loopback port), the controller outside reaching them over SSH; a soak failure on host 2 and
# a real reboot (tests/systemd/fleet.sh). Needs root; minutes; not part of `make test`.
test-systemd-fleet: setup
	tests/systemd/fleet.sh

# Coverage-guided fuzzing of every decoder (engine/fuzz, AFL++ through cargo-afl on the stable
# toolchain; installs cargo-afl and AFL++ under target/fuzz-tools the first time). Each target runs
# until FUZZ_EXECS executions or FUZZ_SECONDS, one after another, and the executions, time, crashes
# and hangs of each are printed (exit 1 on any crash or hang). `cargo test` runs the targets over
# their seeds; this is not part of `make test`. `make fuzz FUZZ_TARGETS="okx kraken"` runs some.
FUZZ_EXECS ?= 1000000
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?= binance_market binance_user_stream binance_rest okx okx_orders kraken manifest journal
fuzz:
	FUZZ_EXECS=$(FUZZ_EXECS) FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_TARGETS="$(FUZZ_TARGETS)" engine/fuzz/fuzz.sh

# The OKX and Kraken decoders and their checked books alone (issue 16).
fuzz-okx-kraken:
	$(MAKE) fuzz FUZZ_TARGETS="okx kraken"

SHARED_DATA ?= $(CURDIR)/../shared/data/binance

# Benchmarks print p50/p99 and throughput with the machine they ran on.
bench: setup
	cargo bench -p rt-manifest
	cargo bench -p rt-core --bench book --bench backtest
	cargo bench -p rt-venues --bench parse
	cargo bench -p rt-venues --bench features
	cargo bench -p rt-ring --bench hop
	$(BIN)/appliance compile deployment=paper_multi --out $(CURDIR)/build
	cargo bench -p rt-venues --bench tick_to_order
	$(BIN)/python bench/compile_bench.py
	cargo build --release --quiet -p rt-engine
	$(BIN)/python bench/live_bench.py --seconds 30 --speed 4
	$(BIN)/python bench/optimize_bench.py

# appliance optimize on the bundled data: trials/min with 1 and 2 workers, where a trial's time
# goes (outside the Rust replay: goal <= 10%), and how often the JSON capture is parsed (once).
bench-optimize: setup
	$(BIN)/python bench/optimize_bench.py

# One-row ONNX inference: Rust (rt-model, timed in Rust) against Python's onnxruntime on the same
# models and rows, with the machine; goals: Rust p50 <= 5 us, p99 <= 15 us, >= 2x Python.
bench-onnx: setup
	$(BIN)/python bench/onnx_bench.py

# Side by side with hftbacktest 2.4.4 (bench-only, in its own venv) on the USD-M capture; the
# extension is rebuilt in release mode for a fair figure (`make setup` restores the dev build).
bench-compare: setup
	test -x .venv-bench/bin/python || $(PYTHON) -m venv .venv-bench
	.venv-bench/bin/python -m pip install --quiet 'hftbacktest==2.4.4'
	.venv-bench/bin/python bench/hftbacktest_side.py --data $(SHARED_DATA)/usdm_btcusdt_20240808.gz --out build/hftbacktest.json
	VIRTUAL_ENV=$(CURDIR)/$(VENV) PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/maturin develop --release --quiet
	$(BIN)/python bench/compare_hftbacktest.py --data $(SHARED_DATA)/usdm_btcusdt_20240808.gz --hftbacktest-json build/hftbacktest.json

clean:
	rm -rf build target $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis

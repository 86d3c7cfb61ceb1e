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

.PHONY: setup demo test lint check-python check-rust bench clean

setup:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "py_rt needs Python 3.11+, found " + sys.version.split()[0])'
	@command -v cargo >/dev/null || { echo "py_rt needs a Rust toolchain (cargo) on PATH" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check 'maturin>=1.7,<2'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-build-isolation -e '.[dev]'
	cargo build --quiet -p rt-engine

demo: setup
	$(BIN)/appliance compile
	@for m in build/paper_local/*.manifest.json; do $(RT_ENGINE_BIN) check --manifest "$$m"; done

check-rust:
	cargo fmt --all -- --check
	cargo clippy --quiet --workspace --all-targets -- -D warnings
	cargo test --quiet --workspace

check-python:
	$(BIN)/ruff check appliance tests bench
	$(BIN)/ruff format --check appliance tests bench
	$(BIN)/mypy appliance tests
	$(BIN)/appliance schema --check
	$(BIN)/pytest -q

test: setup check-rust check-python

bench: setup
	cargo bench -p rt-manifest
	$(BIN)/python bench/compile_bench.py

clean:
	rm -rf build target $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis

# Two commands do everything on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export BMFLEET_CACHE ?= $(CURDIR)/.cache

.PHONY: setup venv controlplane toolchains lint generate test unit integration demo bench clean-sandbox

setup: venv controlplane toolchains

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

controlplane:
	bash hack/build-control-plane.sh
	bash hack/build-helm.sh

toolchains:
	bash hack/setup-tpu-mlir.sh

generate: venv
	$(BIN)/bmfleet generate

lint: venv
	$(BIN)/ruff check operator tests bench
	$(BIN)/ruff format --check operator tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/bmfleet generate --check

unit: venv
	$(BIN)/pytest tests/unit

integration: setup
	$(BIN)/pytest tests/integration

test: setup lint
	$(BIN)/pytest tests

demo: setup
	$(BIN)/bmfleet demo

bench: setup
	$(BIN)/python bench/reconcile_latency.py
	$(BIN)/python bench/build_parallel.py

clean-sandbox: venv
	$(BIN)/bmfleet sandbox down

# Two commands do everything on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export BMFLEET_CACHE ?= $(CURDIR)/.cache

.PHONY: setup venv controlplane toolchains tools lint generate docs lock test unit integration demo bench clean-sandbox

setup: venv controlplane toolchains tools

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

# The OCI registry, oras and an S3 server for the store tests; Chromium for the gate report test.
tools:
	bash hack/build-oci-tools.sh
	bash hack/setup-browser.sh

generate: venv
	$(BIN)/bmfleet generate

docs: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -d $(BMFLEET_CACHE)/site

lock: venv
	PYTHON=$(BIN)/python sh hack/install-runtime.sh lock .

lint: venv
	$(BIN)/ruff check operator tests bench
	$(BIN)/ruff format --check operator tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/bmfleet generate --check
	$(BIN)/hadolint --config .hadolint.yaml Dockerfile
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -q -d $(BMFLEET_CACHE)/site

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

# Two commands do everything on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export BMFLEET_CACHE ?= $(CURDIR)/.cache

.PHONY: setup venv agent-venv controlplane toolchains tools lint agent-lint agent-test generate docs lock test unit integration demo bench clean-sandbox

setup: venv agent-venv controlplane toolchains tools

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# The device agent runs on the boxes' Python 3.8 with the standard library only: its tests run under 3.8 with
# nothing but pytest installed, and mypy 1.14 (the last that targets 3.8) checks it for 3.8.
PY38 ?= $(shell pyenv prefix 3.8.18 2>/dev/null || echo /root/.pyenv/versions/3.8.18)/bin/python3.8
AGENT_VENV := $(BMFLEET_CACHE)/agent-py38
AGENT_MYPY := $(BMFLEET_CACHE)/agent-mypy

agent-venv: $(AGENT_VENV)/.installed $(AGENT_MYPY)/.installed

$(AGENT_VENV)/.installed:
	$(PY38) -m venv $(AGENT_VENV)
	$(AGENT_VENV)/bin/pip install --quiet 'pytest>=8.3,<8.4'
	touch $@

$(AGENT_MYPY)/.installed:
	$(PYTHON) -m venv $(AGENT_MYPY)
	$(AGENT_MYPY)/bin/pip install --quiet 'mypy==1.14.1'
	touch $@

agent-lint: venv agent-venv
	$(BIN)/ruff check agent
	$(BIN)/ruff format --check agent
	$(BIN)/mypy --config-file agent/pyproject.toml
	$(AGENT_MYPY)/bin/mypy --config-file agent/pyproject.toml --python-version 3.8

# The cross-check with the operator's bmodel writer needs bmfleet, which the 3.8 environment must not have: it
# runs again under the project's venv (it skips under 3.8).
agent-test: venv agent-venv
	cd agent && $(AGENT_VENV)/bin/python -m pytest -q tests
	cd agent && ../$(BIN)/python -m pytest -q tests/test_bmodel.py -k agrees_with_the_operator_writer

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

test: setup lint agent-lint agent-test
	$(BIN)/pytest tests

demo: setup
	$(BIN)/bmfleet demo

bench: setup
	$(BIN)/python bench/reconcile_latency.py
	$(BIN)/python bench/build_parallel.py
	$(BIN)/python bench/gates.py

clean-sandbox: venv
	$(BIN)/bmfleet sandbox down

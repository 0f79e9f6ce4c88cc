# Everyday commands. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA ?= $(CURDIR)/.yurt
LISTEN ?= 127.0.0.1:7100
PYTEST_ARGS ?=
LINT_DIRS := controller tests $(wildcard bench)

.PHONY: venv deps system-deps lint format test test-fast test-live demo stop bench clean check-cluster

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

# System packages some test tiers need; installed only when missing and running as root.
system-deps:
	@bash scripts/system-deps.sh

lint: $(STAMP)
	$(BIN)/ruff check $(LINT_DIRS)
	$(BIN)/ruff format --check $(LINT_DIRS)
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format $(LINT_DIRS)
	$(BIN)/ruff check --fix $(LINT_DIRS)

test: $(STAMP) system-deps lint
	$(BIN)/pytest -n 2 -m "not live" $(PYTEST_ARGS)

test-live: $(STAMP)
	$(BIN)/pytest -m live -rs tests/live $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/pytest -n 2 -m "not live" tests/unit $(PYTEST_ARGS)

demo: $(STAMP) system-deps
	@bash scripts/demo.sh "$(DATA)" "$(LISTEN)"

stop:
	@bash scripts/stop.sh "$(DATA)"

# Benchmarks of the local runtime (not tests): writes BENCHMARKS.md; see bench/run.
bench: $(STAMP)
	@bash bench/run


# Static checks of the `vagrant up` demo cluster (no VM boots): `vagrant validate` when Vagrant
# is installed, else `ruby -c Vagrantfile`, then tests/cluster. See docs/cluster.md.
check-cluster: $(STAMP)
	@if command -v vagrant >/dev/null; then \
	  dot=$$(mktemp -d) && VAGRANT_DOTFILE_PATH=$$dot vagrant validate; rc=$$?; rm -rf "$$dot"; exit $$rc; \
	elif command -v ruby >/dev/null; then \
	  echo "vagrant is not installed; checking Vagrantfile syntax with ruby -c"; ruby -c Vagrantfile; \
	else \
	  echo "Neither vagrant nor ruby is installed: apt-get install -y ruby (or vagrant)" >&2; exit 1; \
	fi
	$(BIN)/pytest -q tests/cluster $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

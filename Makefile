# The README's two commands: `make demo` and `make test`. Both install what they need first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
RIDECAST := $(VENV)/bin/ridecast
PYTEST_ARGS ?=

.PHONY: install demo test test-unit test-integration validate-k8s down bench lint

install:
	@bash scripts/bootstrap.sh

demo: install
	@$(RIDECAST) demo

test: install
	@$(PY) -m pytest --cov --cov-report=term:skip-covered $(PYTEST_ARGS)

test-unit: install
	@$(PY) -m pytest -m unit $(PYTEST_ARGS)

test-integration: install
	@$(PY) -m pytest -m integration $(PYTEST_ARGS)

# the offline Kubernetes validation alone (helm, CRDs, checkov, actionlint, terraform fmt); also part of `make test`
validate-k8s: install
	@$(PY) -m pytest tests/integration/test_k8s_offline.py $(PYTEST_ARGS)

down:
	@if [ -x $(RIDECAST) ]; then $(RIDECAST) down; fi

# ruff (style, bugs) and import-linter (the layer contracts in pyproject.toml)
lint: install
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/lint-imports

bench: install
	@$(PY) -m benchmarks.run_all

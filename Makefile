# `make test` is the one test command (README, .ci/run): it builds or refreshes the
# virtual environment in .venv/, then runs lint, types and the tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test venv lint types unit crds bench-plan clean

test: lint types unit

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	@touch $@

venv: $(STAMP)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

types: venv
	$(VENV)/bin/mypy

unit: venv
	$(VENV)/bin/pytest -q

crds: venv
	$(VENV)/bin/bgplb gen-crds --output crds

bench-plan: venv
	$(PY) bench/bench_plan.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis

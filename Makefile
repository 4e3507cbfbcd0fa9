# `make test` is the one test command (README, .ci/run): it builds or refreshes the
# virtual environment in .venv/, then runs lint, types and the tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

STUBS := operator/bgplb/agent/speaker/stubs/gobgp_pb2.py
GOBGP_PROTO := /usr/share/gocode/src/github.com/osrg/gobgp/api/gobgp.proto

.PHONY: test deps venv lint types unit crds bench-plan bench-speaker bench-controller bench-lab bench-lab-up bench-soak bench-failover bench-versus bench-create-path bench-pass bench-agent-change bench-idle lab lab-status lab-down clean

test: lint types unit

# System packages (gobgpd, FRR, BIRD, GoBGP protos, etcd, containerd, runc, CNI
# plugins, buildah, mmdebstrap) via apt when missing, and the Kubernetes binaries built
# from their Go module into ~/.cache/bgplb (once per version).
deps:
	@bash scripts/install-system-deps.sh
	@bash scripts/build-kube.sh >/dev/null

# The shipped package and webhooks, with the lab (its own distribution) beside them.
$(STAMP): pyproject.toml lab/pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]' -e ./lab
	@touch $@

# GoBGP stubs are build output, generated from the Debian protos at install time.
$(STUBS): $(STAMP) operator/bgplb/agent/speaker/protogen.py | deps
	$(PY) -m bgplb.agent.speaker.protogen

# helm (for the chart tests), cached outside the clone.
HELM_STAMP := $(VENV)/.helm
$(HELM_STAMP): $(STAMP) scripts/install-helm.sh
	PYTHON=$(PY) bash scripts/install-helm.sh > $@

venv: deps $(STAMP) $(STUBS) $(HELM_STAMP)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

types: venv
	$(VENV)/bin/mypy

unit: venv
	$(VENV)/bin/pytest -q

# The chart carries its own copy (helm installs CRDs from the chart's crds/).
crds: venv
	$(VENV)/bin/bgplb gen-crds --output crds
	$(VENV)/bin/bgplb gen-crds --output charts/bgplb/crds

bench-plan: venv
	$(PY) bench/bench_plan.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis

bench-speaker: venv
	$(PY) bench/bench_speaker.py

bench-controller: venv
	$(PY) bench/bench_controller.py

bench-lab: venv
	$(PY) bench/bench_lab.py

bench-soak: venv
	$(PY) bench/bench_soak.py

bench-failover: venv
	$(PY) bench/bench_failover.py

bench-versus: venv
	$(PY) bench/bench_versus.py

bench-create-path: venv
	$(PY) bench/bench_create_path.py --metallb

bench-pass: venv
	$(PY) bench/bench_pass.py

bench-agent-change: venv
	$(PY) bench/bench_agent_change.py

bench-lab-up: venv
	$(PY) bench/bench_lab_up.py

bench-idle: venv
	$(PY) bench/bench_idle.py

# The lab: a whole cluster in network namespaces (see README). Needs root.
lab: venv
	$(VENV)/bin/bgplb-lab up

lab-status: venv
	$(VENV)/bin/bgplb-lab status

lab-down: venv
	$(VENV)/bin/bgplb-lab down

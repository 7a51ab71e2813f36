# TraderBot Operator: one entry point for setting up, running and testing.
# `make demo` sets up and runs the main job; `make test` runs every test tier.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml devtools/pyproject.toml | sha1sum | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: help
help: ## list targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml devtools/pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]' -e ./devtools
	@rm -f $(VENV)/.installed-* && touch $@

.PHONY: setup
setup: system-deps $(STAMP) ## install the system packages, then create .venv with the project and its tools

.PHONY: system-deps
system-deps: ## install the Debian packages scripts and tests need (PostgreSQL, Redis, python3-venv, git, curl, unzip) when missing
	bash hack/install-system-deps.sh

.PHONY: lint
lint: $(STAMP) ## ruff, mypy --strict, import-linter layer contracts
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

.PHONY: fmt
fmt: $(STAMP) ## format and auto-fix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

.PHONY: test
test: setup k8s-binaries promtool ## lint, then every test tier (unit, integration, cluster)
	$(MAKE) lint
	$(PY) -m pytest $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: $(STAMP) ## pure tests, no servers
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

.PHONY: test-integration
test-integration: setup ## tests against real PostgreSQL and Redis started by the suite
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

.PHONY: run
run: $(STAMP) ## run trader-api alone (embedded store, paper mode) on :3000
	$(VENV)/bin/trader-api

.PHONY: bench-storage
bench-storage: setup ## klines ingest vs psql \copy, order latency at 200/s (own durable PostgreSQL)
	$(PY) bench/storage_ingest.py

.PHONY: bench-operator
bench-operator: $(STAMP) k8s-binaries ## 100 TraderBots to Ready on the local control plane, then 5 min of steady state
	$(PY) bench/operator_scale.py

.PHONY: crd-docs
crd-docs: $(STAMP) ## regenerate docs/crd-reference.md from crds/ (a unit test fails when it is stale)
	$(PY) -m traderbot_operator.crd_reference

.PHONY: test-cluster
test-cluster: setup k8s-binaries ## tests against a local Kubernetes control plane (tests/cluster)
	$(PY) -m pytest tests/cluster $(PYTEST_ARGS)

.PHONY: k8s-binaries
k8s-binaries: ## build (once, ~30 min cold) or reuse etcd, kube-*, kwok, kubectl, helm, kubelet, kube-proxy, coredns
	@bash hack/k8s-binaries.sh >&2

.PHONY: promtool
promtool: ## build (once, 5-8 min cold) or reuse the pinned promtool that tests the chart's alert rules
	@bash hack/promtool.sh >&2

.PHONY: cluster-up
cluster-up: ## start a local control plane; prints `export KUBECONFIG=...` (to eval)
	@$(MAKE) --no-print-directory $(STAMP) k8s-binaries >&2
	@$(VENV)/bin/traderbot-cluster up

.PHONY: cluster-down
cluster-down: $(STAMP) ## stop the local control plane, leaving no process behind
	@$(VENV)/bin/traderbot-cluster down

# real: real pods (root; hack/images.sh's images, the chart); kwok: fake pods; auto: real where possible.
DEMO_NODE ?= auto

.PHONY: demo
demo: setup k8s-binaries ## cluster + operator + examples/traderbot-minimal.yaml until Ready on real pods (else kwok; DEMO_NODE=real|kwok), then what to look at
	@$(VENV)/bin/traderbot-cluster demo --node $(DEMO_NODE)

.PHONY: demo-down
demo-down: $(STAMP) ## stop the demo: operator, pods, local control plane, volumes, the real node's host changes
	@$(VENV)/bin/traderbot-cluster down

.PHONY: tools
tools: ## install the pinned delivery linters (hadolint, checkov) into ~/.cache/traderbot/tools
	@bash hack/install-tools.sh >&2

.PHONY: chart-crds
chart-crds: $(STAMP) ## sync the charts with crds/ and the operator's RBAC rules (copies, generated files)
	rm -f charts/traderbot-operator/crds/*.yaml
	cp crds/*.yaml charts/traderbot-operator/crds/
	$(PY) tests/unit/delivery/bots_schema.py
	$(PY) tests/unit/delivery/chart_rbac.py

.PHONY: krew-archive
krew-archive: $(STAMP) ## write dist/kubectl-traderbot-v<version>.tar.gz, the archive plugins/traderbot.yaml names
	$(PY) -m traderbot_operator.plugin.krew dist

.PHONY: lint-docker
lint-docker: tools ## hadolint the Dockerfile (warnings fail)
	"$$(bash hack/install-tools.sh --print-dir)/hadolint" --config .hadolint.yaml Dockerfile

.PHONY: lint-chart
lint-chart: $(STAMP) k8s-binaries promtool ## helm lint --strict, schema-validate the rendered chart, for every value set; promtool on its alert rules
	$(PY) -m pytest tests/unit/delivery/test_chart.py tests/unit/delivery/test_bots_chart.py tests/unit/delivery/test_prometheus_rules.py $(PYTEST_ARGS)

.PHONY: scan
scan: $(STAMP) k8s-binaries tools ## checkov over the Dockerfile, the rendered charts and the operator's manifests
	$(PY) -m pytest tests/unit/delivery/test_scan.py $(PYTEST_ARGS)

.PHONY: images
images: ## build every image here (own dockerd, Debian and PyPI packages, no image registry); prints name= ref= id= archive= lines
	bash hack/images.sh

.PHONY: e2e-kind
e2e-kind: ## end to end on kind (needs Docker, kind, kubectl, helm): build, load, install, trade, back up
	bash hack/e2e-kind.sh

.PHONY: clean
clean: ## remove the virtualenv and caches (not the control-plane binaries)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

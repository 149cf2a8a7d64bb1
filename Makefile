# VibeBox: `make run` serves it, `make test` tests it. Both prepare everything first
# (virtualenv, Docker engine, Redis, sandbox images, migrations) and are fast when it is in place.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export VIBEBOX_DATA_DIR ?= $(CURDIR)/var
export VIBEBOX_HOST ?= 127.0.0.1
export VIBEBOX_PORT ?= 8000
export REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: setup host browser typescript monitoring postgres proxies venv images images-all sandboxd helm-render migrate run test test-postgres test-postgres-all test-ha test-compose test-templates test-marketplace lint format bench clean-containers

setup: host venv migrate images

host:
	@bash scripts/host-setup.sh

browser:
	@bash scripts/browser-setup.sh

typescript:
	@bash scripts/typescript-setup.sh

# Debian's prometheus + prometheus-alertmanager for the monitoring tests (tests/monitoring/).
monitoring:
	@bash scripts/monitoring-setup.sh

# Debian's haproxy and nginx for the deployment and HA tests (deploy/'s configurations, started on loopback).
proxies:
	@bash scripts/proxies-setup.sh

# Debian's postgresql for `make test-postgres` (installed when missing; its own service stays off).
postgres:
	@bash scripts/postgres-setup.sh

venv: $(VENV)/.deps

$(VENV)/.deps: requirements.txt requirements-dev.txt sdk/python/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing Python requirements into $(VENV)" >&2
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

migrate: venv
	@$(BIN)/python manage.py migrate --noinput -v 0

# The templates the warm pools fill (node-20, python-3.13) are built before anything serves; the
# others are listed as queued and built in the background by the worker (`make run`), or all at
# once by `make images-all`.
images: venv host migrate
	@$(BIN)/python manage.py buildimages --pooled
	@$(BIN)/python manage.py sandboxd

images-all: images
	@$(BIN)/python manage.py buildimages

# sandboxd alone (gofmt + go vet + build): `make lint` needs no templates or database.
sandboxd: venv host
	@$(BIN)/python manage.py sandboxd

# The Helm chart's test renderer (deploy/kubernetes/helm/render, docs/kubernetes.md): gofmt + go vet +
# build from Debian's Go and Sprig on the base image, once per source (tests/deploy/test_helm_chart.py).
helm-render: venv host
	@$(BIN)/python manage.py shell -v 0 -c 'from tests.deploy.helm_render import build; build()'

# Logs (docs/monitoring.md, "Traces and logs"): text when make's output is a terminal (honcho's pipes
# hide it from the processes), else JSON lines; VIBEBOX_LOG_FORMAT in the environment wins.
run: export VIBEBOX_LOG_FORMAT ?= $(shell test -t 2 && echo text || echo json)
run: setup
	@$(BIN)/python manage.py bootstrap
	@$(BIN)/python manage.py reconcile --startup
	@$(BIN)/python manage.py warmpools --fill >/dev/null
	@$(BIN)/python manage.py buildimages --background
	@# Metrics (docs/monitoring.md): every process records into one directory, emptied at each start.
	@export PROMETHEUS_MULTIPROC_DIR="$${PROMETHEUS_MULTIPROC_DIR:-$(VIBEBOX_DATA_DIR)/metrics}"; \
		mkdir -p "$$PROMETHEUS_MULTIPROC_DIR" && find "$$PROMETHEUS_MULTIPROC_DIR" -maxdepth 1 -name '*.db' -delete; \
		exec $(BIN)/honcho start -f Procfile

# make test's pytest arguments (and test-postgres-all's).
SUITE_ARGS := -n 3 --dist loadfile --no-loadscope-reorder --durations=40 --ignore=tests/ha \
	--ignore=tests/nodes/test_live_restore.py --ignore=tests/nodes/test_three_nodes.py

test: setup browser typescript monitoring proxies helm-render
	@$(BIN)/python manage.py sandboxd --check
	@# The nodes' relay image (tests/nodes prepare nodes with it): built here once, not in a test.
	@$(BIN)/python manage.py sandboxd --relay
	@# --durations: the slowest tests are listed at the end, where CI's time goes (it must stay < 90 min).
	@# --no-loadscope-reorder: files in tests/conftest.py's order, the longest first (HEAVY_FIRST).
	@# tests/ha and the nodes' drills (live-restore, three nodes) are make test-ha's (its own Redis and PostgreSQL: the drills need both).
	@$(BIN)/pytest $(SUITE_ARGS)

# The tests where the database matters, against a real PostgreSQL on loopback: a fresh cluster in
# var/postgres on a free port, started before pytest and stopped after it (scripts/test-postgres.sh
# keeps the list of tests and why; docs/operations.md, "PostgreSQL").
# (setup builds sandboxd; its go tests are make test's, the same on either database.)
test-postgres: setup postgres
	@bash scripts/test-postgres.sh

# The whole of `make test` against a real PostgreSQL (about 40 min here: not in .ci/run, whose hour
# has no room for a second whole pass; run it before a release, docs/operations.md "PostgreSQL").
test-postgres-all: setup browser typescript monitoring proxies postgres
	@$(BIN)/python manage.py sandboxd --relay
	@bash scripts/test-postgres.sh $(SUITE_ARGS)

# Several processes behind HAProxy, and the failover drills (docs/operations.md, "Several processes
# and HAProxy"): three web processes, Celery workers, a Redis and a PostgreSQL of the run's own,
# HAProxy with deploy/haproxy/haproxy.cfg in front (scripts/test-ha.sh keeps the list of tests).
test-ha: setup postgres proxies
	@bash scripts/test-ha.sh

# The production layout for real: deploy/Dockerfile and deploy/compose.yaml, built from Debian with
# debootstrap (no registry) and run with Docker Compose v2 (Debian 13's) on free ports: `up --wait`,
# a smoke test through HAProxy, Prometheus's scrape, `down -v` (docs/deploy.md, "What is run").
# Reuses the sandbox images `make images` built; scripts/test-compose.sh does the rest.
test-compose: setup
	@bash scripts/test-compose.sh

bench: setup
	@cd bench && ../$(BIN)/python run_all.py

# Every built-in template: build its image (the first time), create a sandbox, run its smoke command;
# then every test marked `templates` (compiled languages, each package manager).
test-templates: images-all
	@$(BIN)/pytest -m templates -n 2 --dist loadfile tests sdk/typescript/test

# Every community template (marketplace/community/) through the real submission pipeline: built
# FROM the built-in templates, so after images-all; two builds at a time, each may use both cores.
test-marketplace: images-all
	@VIBEBOX_TEMPLATE_BUILD_CPUS=2 $(BIN)/pytest -m marketplace -n 2 --dist load tests/marketplace/test_community.py

lint: venv typescript sandboxd helm-render
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@cd sdk/typescript && node node_modules/typescript/bin/tsc -p tsconfig.test.json --noEmit

format: venv
	@$(BIN)/ruff check --fix .
	@$(BIN)/ruff format .

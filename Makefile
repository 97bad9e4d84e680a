# llmpulse — the two commands a user needs: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help

.PHONY: help venv install demo test test-unit test-integration lint format bench schema clean

help:
	@echo "make demo   - create .venv, install, simulate a day of traffic with incidents, ingest it, print a summary"
	@echo "make test   - install everything the tests need (incl. a real Kafka broker) and run lint + all tests"
	@echo "make lint   - ruff and mypy"
	@echo "make bench  - run the benchmarks in bench/ (results go to bench/RESULTS.md by hand)"
	@echo "make dashboards - regenerate the Grafana dashboard JSON from dashboards/catalog.py"

include Makefile.kafka.mk
include Makefile.alertmanager.mk
include Makefile.chromium.mk
include Makefile.dashboards.mk

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Reinstall when the dependency list changes.
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install --quiet -e '.[dev,otel-tests]'
	touch $(STAMP)

venv install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/llmpulse demo --duration 1d

schema: $(STAMP)
	$(VENV)/bin/llmpulse schema --out docs/event-schema.json

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy collector analyzers alerts dashboards llmpulse
	$(VENV)/bin/mypy --explicit-package-bases bench

# Real components are installed here, not assumed: a missing one fails the run.
test-deps: $(STAMP) kafka-cache alertmanager-deps chromium-deps

# The suite takes 5-10 minutes; a hang anywhere (a test, or threads at interpreter exit) fails it after 40
# instead of running into CI's own limit. SIGINT first, so pytest still reports what failed.
SUITE_LIMIT ?= 40m

test: test-deps lint
	timeout --signal=INT --kill-after=60 $(SUITE_LIMIT) $(PY) -m pytest -q -p no:cacheprovider --durations=15

test-unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

test-integration: test-deps
	$(PY) -m pytest -q tests/integration tests/e2e

bench: $(STAMP) kafka-cache
	$(PY) bench/ingest_http.py
	$(PY) bench/ingest_kafka.py
	$(PY) bench/ingest_otlp.py
	$(PY) bench/detection.py
	$(PY) bench/analyzers_perf.py
	$(PY) bench/drift_perf.py
	$(PY) bench/drift_vs_evidently.py
	$(PY) bench/chaos_soak.py

clean:
	rm -rf .llmpulse/sim .pytest_cache .mypy_cache .ruff_cache

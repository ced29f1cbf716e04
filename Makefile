# The README's two commands are `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo up down test test-fast lint bench

$(STAMP): pyproject.toml scripts/install.sh
	bash scripts/install.sh
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Whole suite (what CI runs): lint, then every test, with real Redis, worker, services, browser.
test: $(STAMP)
	bash scripts/ensure_redis.sh >/dev/null
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

# The stack on localhost in the background (Redis if none answers, detector, worker, gateway);
# returns once /readyz is green. `make down` stops exactly what `make up` started.
up: $(STAMP)
	bash scripts/up.sh

down:
	bash scripts/down.sh

# Install, bring the stack up, then detect a sample, clone a voice and detect the clone.
demo: $(STAMP)
	bash scripts/up.sh
	$(PY) scripts/demo.py

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

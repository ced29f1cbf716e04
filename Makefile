# The README's two commands are `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo up down test test-fast lint typecheck imports bench

$(STAMP): pyproject.toml scripts/install.sh
	bash scripts/install.sh
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# mypy on shared/ and the services' serving code (scope: [tool.mypy] in pyproject.toml).
# typecheck and imports use the installed .venv as it is (`make install` first), so a pre-commit hook
# never reinstalls because pyproject.toml changed.
typecheck:
	$(VENV)/bin/mypy

# The import rules between packages ([tool.importlinter] in pyproject.toml), then the cycle check
# and the reasons of function-local imports (tests/test_architecture.py, a second; also in pytest).
imports:
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q tests/test_architecture.py

# Whole suite (what CI runs), failing fast: lint, formatting, types, import rules, then every test,
# with real Redis, worker, services, browser.
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	bash scripts/ensure_redis.sh >/dev/null
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

# The README's two commands are `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo up down test test-fast lint typecheck imports bench fuzz

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

# Longer fuzzing than the suite's (docs/reliability.md, "Fuzzing and malformed input"): the schema
# fuzz of both services (FUZZ_EXAMPLES cases each), the hypothesis decoder fuzz, then atheris on
# the decoder (FUZZ_RUNS inputs; `fuzz` extra). Redis must answer (the gateway's job store).
FUZZ_EXAMPLES ?= 20000
FUZZ_RUNS ?= 200000
fuzz: $(STAMP)
	bash scripts/ensure_redis.sh >/dev/null
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_DECODER_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -q -s \
		tests/gateway/test_schema_fuzz.py tests/detector/test_schema_fuzz.py tests/shared/test_audio_fuzz.py
	$(PY) -c "import atheris" 2>/dev/null || $(PY) -m pip install -q -e '.[fuzz]'
	mkdir -p var/fuzz/decoder
	set -o pipefail; $(PY) scripts/fuzz_decoder.py var/fuzz/decoder -atheris_runs=$(FUZZ_RUNS) -rss_limit_mb=2048 2>&1 \
		| grep -E '^(#|Done|==|INFO: (Seed|Running))' | tail -n 5

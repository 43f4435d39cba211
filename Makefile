# mixtral-serve: the two commands a user needs.
#   make serve   set up .venv (first time) and serve the embedded tiny Mixtral on 127.0.0.1:8000
#   make test    set up .venv (first time) and run the whole suite: ruff, mypy, tests under a
#                coverage floor on server/ and clients/ (COV= runs them without it)
# ENGINE=cpu|gpu picks the engine (default: gpu when nvidia-smi is present). Extra flags: ARGS="...".
# One tier of tests (a folder of tests/): make pytest ARGS="-m unit", likewise integration, e2e,
# deploy, fuzz, conformance, gpu; ARGS='-m "not engine"' runs everything that needs no engine.
#   make test-fleet  the tiers past one host (tests/multihost: two replicas behind HAProxy sharing
#                    Redis; one engine over two network namespaces, needs root; LoRA on a 4-bit
#                    base, two engines): 9 tests in about 3 min; CI runs it after make test

VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=
# The floor is the whole suite's measured coverage (e2e's server processes are not measured).
COV ?= --cov=server --cov=clients --cov-report=term:skip-covered --cov-fail-under=85

.PHONY: setup serve test test-fleet lint typecheck pytest clean

setup:
	@bash scripts/setup-venv.sh

serve: setup
	$(VENV)/bin/mixtral-serve $(ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup
	$(VENV)/bin/mypy

pytest: setup
	$(PY) -m pytest $(ARGS)

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -ra $(COV) --ignore=tests/multihost $(ARGS)

test-fleet: setup
	$(PY) -m pytest -ra tests/multihost $(ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .coverage

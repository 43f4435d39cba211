# mixtral-serve: the two commands a user needs.
#   make serve   set up .venv (first time) and serve the embedded tiny Mixtral on 127.0.0.1:8000
#   make test    set up .venv (first time) and run the whole suite: tests, ruff, mypy
# ENGINE=cpu|gpu picks the engine (default: gpu when nvidia-smi is present). Extra flags: ARGS="...".

VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=

.PHONY: setup serve test lint typecheck pytest clean

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
	$(PY) -m pytest -ra $(ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

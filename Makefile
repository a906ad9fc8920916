# One entry point for humans and CI. `make demo` and `make test` set up everything they need
# (a virtualenv in .venv with the pinned dependencies) on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: demo test lint typecheck imports unit bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/neikong demo --fresh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check ledger producers projections alerts ops

typecheck: $(STAMP)
	$(BIN)/mypy

imports: $(STAMP)
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

test: lint typecheck imports unit

bench: $(STAMP)
	$(BIN)/neikong bench --json

clean:
	rm -rf $(VENV) neikong-data .mypy_cache .ruff_cache .hypothesis

# The targets README and CI run. Each creates the virtual environment it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test lint soak bench bench-quick clean

## run: install imgpipe into .venv and start it embedded (SQLite, ./data, in-process queue)
run: $(VENV)/.installed
	$(BIN)/imgpipe run

## test: install everything the tests need, lint, then run unit, contract, e2e, browser and CLI tests
test: lint
	scripts/ensure-chromium
	$(BIN)/pytest

## lint: ruff's checks and formatting, and mypy (strict), over the code
lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

## soak: the full fault soak, 1,000 uploads while workers are killed at random (CI runs 200)
soak: $(VENV)/.installed-dev
	IMGPIPE_SOAK_JOBS=1000 $(BIN)/pytest tests/faults/test_soak.py

## bench: the benchmark harness; regenerates docs/benchmarks.md
bench: $(VENV)/.installed-bench
	$(BIN)/python -m bench

## bench-quick: the same harness on a small corpus, no targets asserted (CI smoke)
bench-quick: $(VENV)/.installed-bench
	$(BIN)/python -m bench --quick

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

$(VENV)/.installed-bench: pyproject.toml | $(VENV)/bin/python
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $@ $(VENV)/.installed-dev $(VENV)/.installed

clean:
	rm -rf $(VENV) data test-artifacts .pytest_cache .mypy_cache .ruff_cache

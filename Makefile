# voxwarden — two commands do everything on a fresh Debian machine with Python 3.11:
#   make demo   install (Debian packages, virtualenv, package) and scan the bundled example clips
#   make test   install the same plus test/training extras and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip

.PHONY: demo test install install-dev system-deps lint bench clean

system-deps:
	@bash scripts/system-deps.sh

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e '.[dev,train]'
	@touch $@ $(VENV)/.installed

install: system-deps $(VENV)/.installed

install-dev: system-deps $(VENV)/.installed-dev

demo: install
	@echo "== voxwarden scan examples/audio (exit 1 = something flagged, which the demo expects)"
	$(BIN)/voxwarden scan examples/audio; rc=$$?; [ $$rc -le 1 ] || exit $$rc
	$(BIN)/voxwarden scan examples/audio --format jsonl --out out/demo-scan.jsonl; rc=$$?; [ $$rc -le 1 ] || exit $$rc
	@echo "== JSON lines written to out/demo-scan.jsonl"

test: install-dev
	$(BIN)/ruff check src tests benchmarks recipes
	$(BIN)/python -m pytest -q -ra $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check src tests benchmarks recipes

bench: install-dev
	$(PIP) install -q -e '.[dev,train,bench]'
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) out build dist .pytest_cache .ruff_cache

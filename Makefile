# creditops: the README's commands. Everything lands in .venv; nothing global.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= creditops.toml

.PHONY: run test lint bench clean setup

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

## run: set up, then run the main job on the embedded defaults
run: $(STAMP)
	$(BIN)/creditops --config $(CONFIG) train --promote

## test: set up, lint, type-check and run the whole test suite
test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/quality.py
	$(BIN)/python bench/train.py

clean:
	rm -rf $(VENV) mlflow.db mlartifacts runs reports state data/cache

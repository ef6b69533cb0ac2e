# creditops: the README's commands. Everything lands in .venv; nothing global.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= creditops.toml

.PHONY: run test test-quick lint bench clean setup postgres-start postgres-stop

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

## run: set up, then run the main job on the embedded defaults
run: $(STAMP)
	$(BIN)/creditops --config $(CONFIG) pipeline

## test: set up, lint, type-check and run the whole test suite; the tests marked
## `postgres` run against a throwaway PostgreSQL (installed from Debian if absent)
## that scripts/with-postgres.sh starts before pytest and stops after, pass or fail;
## the dashboard's browser test uses Chromium (installed from Debian if absent)
test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	CREDITOPS_TEST_CHROMIUM=$$(bash scripts/chromium.sh) bash scripts/with-postgres.sh $(BIN)/pytest

## test-quick: the suite without starting PostgreSQL (its tests skip unless
## CREDITOPS_TEST_POSTGRES_URL names a server)
test-quick: $(STAMP)
	$(BIN)/pytest

## postgres-start / postgres-stop: a cluster to try creditops at scale by hand
postgres-start:
	bash scripts/postgres.sh start

postgres-stop:
	bash scripts/postgres.sh stop

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/quality.py
	$(BIN)/python bench/train.py

clean:
	rm -rf $(VENV) mlflow.db mlartifacts runs reports state data/cache

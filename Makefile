# Every target does its own set-up: a fresh clone needs nothing but python3 >= 3.11.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# The official data sits beside the repo in ../shared; point the package at it when present.
SHARED_DATA := $(abspath ../shared/valueportrait)
ifneq ($(wildcard $(SHARED_DATA)/README.md),)
export VPBATCH_DATA ?= $(SHARED_DATA)
endif
SHARED_PAPER := $(abspath ../shared/paper)
ifneq ($(wildcard $(SHARED_PAPER)/README.md),)
export VPBATCH_PAPER ?= $(SHARED_PAPER)
endif

.PHONY: setup run run-local test bench lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: setup
	$(BIN)/python -m vpbatch.demo

run-local: setup
	$(BIN)/python -m vpbatch.local_demo

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python -m bench

lint: setup
	$(BIN)/ruff check vpbatch tests bench
	$(BIN)/mypy vpbatch

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

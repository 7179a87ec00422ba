# Edge Monitor: the two commands a new user runs, and a few more.
#   make demo   install what the demo runs into .venv, then synth -> train -> evaluate -> stream -> MQTT alerts
#   make test   install everything (TensorFlow, test and lint tools too) into .venv, then run the test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
# One stamp per install set: `make demo` then `make test` adds the rest; `make test` then `make demo` is quick.
DEMO_STAMP := $(VENV)/.installed-demo
TEST_STAMP := $(VENV)/.installed-test
# pip prints what it downloads and a progress bar: the first run takes minutes.
PIP    := $(BIN)/pip install --progress-bar on

.PHONY: demo test lint bench venv clean help

help:
	@echo "make demo   - install into $(VENV) and run the end-to-end demo"
	@echo "make test   - install into $(VENV) and run the test suite"
	@echo "make lint   - ruff, mypy (strict on edge_monitor/) and vulture (code nothing calls); settings in pyproject.toml"
	@echo "make bench  - run the benchmarks (bench/run.sh), results in bench/RESULTS.md"

venv: $(TEST_STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip

# The demo's set: the runtime, [report] (metrics, plots) and the embedded broker; no TensorFlow (the
# default detectors are NumPy: trainer/defaults.py), no test or lint tools.
$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(PIP) -e '.[demo]'
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(PIP) -e '.[train,dev,demo]'
	touch $@

demo: $(DEMO_STAMP)
	$(BIN)/python -m devtools.demo

test: $(TEST_STAMP)
	$(BIN)/python -m pytest -ra $(PYTEST_ARGS)

# Not a dependency of `test`: .ci/run calls both, lint first.
lint: $(TEST_STAMP)
	$(BIN)/ruff check edge_monitor trainer devtools
	$(BIN)/mypy edge_monitor trainer devtools
	$(BIN)/vulture

bench: $(TEST_STAMP)
	bash bench/run.sh

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache demo-out

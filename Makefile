# `make run` and `make test` build .venv from nothing. pip (not uv/poetry) takes torch from the
# machine's local wheel cache; the extension in setup.py compiles the fused CPU kernel.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: all venv run report test lint perf perf-gate clean

all: test

$(STAMP): pyproject.toml setup.py ogan/_csrc/ortho_cpu.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m bench run
	$(BIN)/python -m bench report results/default

report: $(STAMP)
	$(BIN)/python -m bench report results/default

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

perf: $(STAMP)
	$(BIN)/python -m bench perf

clean:
	rm -rf $(VENV) build *.egg-info ogan/*.so .pytest_cache .benchmarks

# `make run` and `make test` build .venv from nothing. pip (not uv/poetry) takes torch from the
# machine's local wheel cache; the extension in setup.py compiles the fused CPU kernel.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: all venv run report test test-cpus lint perf perf-gate clean

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

# The whole suite, and beside it (on the core pytest leaves idle) the numerical tests under other
# CPUs' kernel selections (tests/emulate_cpus.py): a tolerance that holds on one instruction set
# only fails here, not on a user's machine. Its log is printed when both are done.
test: $(STAMP)
	$(BIN)/ruff check .
	@$(BIN)/python tests/emulate_cpus.py > $(VENV)/emulate_cpus.log 2>&1 & cpus=$$!; \
	$(BIN)/python -m pytest -q; suite=$$?; \
	wait $$cpus; emulated=$$?; \
	echo "-- the numerical tests under other CPUs' kernel selections:"; \
	grep -E '^(==|numerical|FAILED|ERROR)|passed|failed' $(VENV)/emulate_cpus.log; \
	test $$emulated -eq 0 || cat $(VENV)/emulate_cpus.log; \
	test $$suite -eq 0 && test $$emulated -eq 0

# Only the emulated CPUs (the numerical tests under each kernel selection, one after another).
test-cpus: $(STAMP)
	$(BIN)/python tests/emulate_cpus.py

perf: $(STAMP)
	$(BIN)/python -m bench perf

clean:
	rm -rf $(VENV) build *.egg-info ogan/*.so .pytest_cache .benchmarks

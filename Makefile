# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
TEST_WORKERS ?= 2
LAVA_SPEC ?= lava-nc==0.10.0 lava-dl==0.6.0
PIP := $(BIN)/python -m pip --disable-pip-version-check

.PHONY: install demo test test-slow lint clean

install: $(VENV)/.installed

# Re-runs only when the project's requirements change.
$(VENV)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -e ".[dev,interop]"
	# Lava's declared pins (Python <3.11, torch <2.4) cannot be met; what it
	# needs at run time is in pyproject.toml, and the workarounds are in
	# gac_deploy/lava_compat.py.
	$(PIP) install -q --no-deps --ignore-requires-python $(LAVA_SPEC)
	# the emulator's compiled neuron passes, into numba's disk cache (once, ~25 s)
	$(BIN)/python -c "from gac_deploy.chip.neuron_passes import compile_all; compile_all()"
	touch $@

demo: install
	$(BIN)/gac-deploy demo --out runs/demo

lint: install
	$(BIN)/ruff check gac_deploy tests bench

test: install lint
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal tests

test-slow: install
	$(BIN)/python -m pytest -q -m slow tests

clean:
	rm -rf runs .pytest_cache

# The two commands of the README: `make demo` (the main job) and `make test`.
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test test-all benchmarks

$(VENV)/.installed: pyproject.toml setup.py constraints.txt scripts/setup.sh frontend/package-lock.json
	bash scripts/setup.sh

setup: $(VENV)/.installed

demo: setup
	$(BIN)/mmbind run recipes/digits.toml

test: setup
	$(BIN)/python -m pytest -q

test-all: setup
	$(BIN)/python -m pytest -q -m "slow or not slow"

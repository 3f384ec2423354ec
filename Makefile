# swarmpod — developer entry points. Everything runs inside ./.venv (created on demand).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SDK_STAMP := .venv-sdk/.runpod-1.12.0
CORE_STAMP := .venv-core/.installed

.PHONY: run test lint bench soak diagrams clean venv sdk-venv core-venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

## sdk-venv: the official runpod SDK in .venv-sdk (for the cross-check tests only)
sdk-venv: $(SDK_STAMP)

$(SDK_STAMP): tests/sdk_env.py | $(STAMP)
	$(BIN)/python tests/sdk_env.py

## core-venv: swarmpod with no extras in .venv-core (for the no-extras install test only)
core-venv: $(CORE_STAMP)

$(CORE_STAMP): pyproject.toml tests/core_env.py | $(STAMP)
	$(BIN)/python tests/core_env.py

## run: generate a few images through the embedded emulator into ./output/
run: $(STAMP)
	$(BIN)/swarmpod demo --out output

## test: lint, then the whole suite (virtual time, no network; one process per core, up to 4)
test: lint $(SDK_STAMP) $(CORE_STAMP)
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4

## lint: ruff + mypy --strict on the packages
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## bench: benchmarks (figures as ratios measured side by side)
bench: $(STAMP)
	$(BIN)/python -m benchmarks

## soak: 5000 generations in bursts with 5 % faults (SOAK_ARGS="--generations 20000 --protocol v1")
soak: $(STAMP)
	$(BIN)/python -m benchmarks.soak --generations 5000 $(SOAK_ARGS)

## diagrams: regenerate statecharts/diagrams/ from the chart classes
diagrams: $(STAMP)
	$(BIN)/python -m observability.diagrams

clean:
	rm -rf $(VENV) .venv-sdk .venv-core output .mypy_cache .ruff_cache

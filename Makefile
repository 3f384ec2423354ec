# swarmpod — developer entry points. Everything runs inside ./.venv (created on demand).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench diagrams clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

## run: generate a few images through the embedded emulator into ./output/
run: $(STAMP)
	$(BIN)/swarmpod demo --out output

## test: lint, then the whole suite (virtual time, no network)
test: lint
	$(BIN)/python -m pytest -q

## lint: ruff + mypy --strict on the packages
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## bench: benchmarks (figures as ratios measured side by side)
bench: $(STAMP)
	$(BIN)/python -m benchmarks

## diagrams: regenerate statecharts/diagrams/ from the chart classes
diagrams: $(STAMP)
	$(BIN)/python -m statecharts

clean:
	rm -rf $(VENV) output .mypy_cache .ruff_cache

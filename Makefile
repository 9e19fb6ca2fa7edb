# gastrodistill — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
# GPU users: make setup TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export NO_ALBUMENTATIONS_UPDATE := 1
export WANDB_MODE ?= offline
export PYTHONUNBUFFERED := 1

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -v torch='$(TORCH)' -v venv='$(VENV)' \
		'BEGIN {FS = ":.*?## "}; {gsub(/\$$\(TORCH\)/, torch, $$2); gsub(/\$$\(VENV\)/, venv, $$2); \
		printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'
	@echo "  Every command has --help (e.g. .venv/bin/gastrodistill-distill --help)."

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP) ## Create .venv: torch first ($(TORCH)), then the package with its dev extra

# make test runs the tests in TEST_WORKERS processes (pytest-xdist; a file's tests stay in one process),
# one torch thread each; TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= 2
PYTEST := OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile

test: setup ## Run the fast test suite (CI), in TEST_WORKERS=2 processes
	$(PYTEST)

test-full: setup ## Run all tests, slow ones included
	$(PYTEST) -m ''

lint: setup ## ruff check + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup ## Apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

generate: setup ## Write the synthetic gastric data set (Hydra overrides: ARGS="synthetic=full")
	$(BIN)/gastrodistill-generate $(ARGS)

patches: setup ## Build the patch store of paths.data_root (ARGS="paths.data_root=/data/xrays")
	$(BIN)/gastrodistill-patches $(ARGS)

reproduce: setup ## The whole study on the embedded synthetic data (12-25 min on 2 CPU cores with bfloat16 units, 28-33 min on an AVX2-only CPU)
	$(BIN)/gastrodistill-reproduce $(if $(findstring experiment=,$(ARGS)),,experiment=cpu) $(ARGS)

reproduce-full: setup ## The paper's scale (GPU): experiment=full
	$(BIN)/gastrodistill-reproduce $(if $(findstring experiment=,$(ARGS)),,experiment=full) $(ARGS)

bench: setup ## Run the benchmarks in benchmarks/
	$(BIN)/python benchmarks/bench_patch_store.py
	$(BIN)/python benchmarks/bench_meta_step.py

clean: ## Remove outputs and caches (keeps .venv)
	rm -rf outputs multirun gpu_check_out .pytest_cache .ruff_cache wandb
	find . -name __pycache__ -type d -prune -not -path './.venv/*' -exec rm -rf {} +

distclean: clean ## Also remove .venv
	rm -rf $(VENV)

.PHONY: help setup test test-full lint format generate patches reproduce reproduce-full bench clean distclean

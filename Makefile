# litlab — `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Sweep knobs: make sweep-liver DATA=/path TRIALS=50 SAMPLER=tpe GPUS=0,1
DATA    ?=
TRIALS  ?= 6
SAMPLER ?= tpe
GPUS    ?=
PRUNER  ?= median
EPOCHS  ?= 4
STUDY   ?= liver-$(SAMPLER)
EXTRA   ?=

.PHONY: help install test test-full lint format train-fer2013 train-ckplus train-faceexpr \
        train-autism train-liver sweep-liver bench report clean

help: ## Show this help
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install litlab with dev extras (other targets do this first)

test: $(STAMP) ## Run the fast test suite (no slow tests)
	$(BIN)/pytest -m "not slow" -q

test-full: $(STAMP) ## Run every test, slow ones included
	$(BIN)/pytest -q

lint: $(STAMP) ## Lint with ruff
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(STAMP) ## Format and auto-fix with ruff
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

train-fer2013: $(STAMP) ## Train the FER2013 ResNet-50 preset (embedded data unless DATA=file.csv)
	$(BIN)/litlab fit --config fer2013-resnet50 $(if $(DATA),--data.csv_path $(DATA)) $(EXTRA)

sweep-liver: $(STAMP) ## Optuna sweep of the liver DeepLabV3Plus preset (DATA= TRIALS= SAMPLER= GPUS= PRUNER= EPOCHS=)
	$(BIN)/litlab sweep --config liver-deeplabv3plus --sampler $(SAMPLER) --n-trials $(TRIALS) \
	  --pruner $(PRUNER) --study-name $(STUDY) $(if $(GPUS),--gpus $(GPUS)) \
	  --trainer.max_epochs=$(EPOCHS) $(if $(DATA),--data.root=$(DATA)) $(EXTRA)

bench: $(STAMP) ## Benchmarks: CSV parsing, cache reload, litlab vs raw PyTorch throughput
	$(BIN)/python -m benchmarks.run

clean: ## Remove caches, build outputs and runs (keeps .venv)
	rm -rf .pytest_cache .ruff_cache .hypothesis build dist *.egg-info runs lightning_logs wandb
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

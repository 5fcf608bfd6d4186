# Dagster on ECS Fargate with Ansible. `make rehearsal` deploys the whole stack offline.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements/constraints.txt | sha1sum | cut -c1-12)
PLAYBOOK := $(BIN)/ansible-playbook
PYTEST_ARGS ?=

.PHONY: help venv rehearsal deploy dags teardown down test test-unit test-integration lint constraints clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements/constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade 'pip>=24'
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e '.[offline,dagster,dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP) ## Create .venv and install the pinned dependencies

rehearsal: venv ## Install everything and deploy the whole stack offline (emulator on 127.0.0.1:4566)
	$(PLAYBOOK) site.yml

deploy: venv ## Deploy to real AWS (inventory/production; uses your AWS credentials)
	$(PLAYBOOK) -i inventory/production site.yml

teardown: venv ## Delete everything of the project in the offline profile (INVENTORY=inventory/production for AWS)
	$(PLAYBOOK) -i $(or $(INVENTORY),inventory/localstack) playbooks/teardown.yml

down: venv ## Stop what the offline profile started on this machine (the emulator)
	$(PLAYBOOK) playbooks/down.yml

test: venv ## Run every test (lint, unit, emulator, integration), one test file per CPU
	$(BIN)/pytest -n auto --dist loadfile $(PYTEST_ARGS)

test-unit: venv ## Only the fast tests (no ansible-playbook runs)
	$(BIN)/pytest -m "not integration" $(PYTEST_ARGS)

test-integration: venv ## Only the tests that drive ansible-playbook against a fresh emulator
	$(BIN)/pytest -m integration $(PYTEST_ARGS)

lint: venv ## ansible-lint (production profile), yamllint, ruff
	$(BIN)/ansible-lint --profile production
	$(BIN)/yamllint -s .
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

constraints: venv ## Re-pin requirements/constraints.txt from the current venv
	{ echo "# Full resolved dependency set of .[offline,dagster,dev] on Python 3.11 (pip freeze)."; \
	  echo "# Regenerate with: make constraints"; \
	  $(BIN)/pip freeze --exclude-editable | grep -v '^-e' | sort -f; } > requirements/constraints.txt

clean: down ## Stop local processes and remove the venv and local state
	rm -rf $(VENV) .state .pytest_cache .ruff_cache

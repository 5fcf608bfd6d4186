# Dagster on ECS Fargate with Ansible. `make rehearsal` deploys the whole stack offline.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml container/pyproject.toml localstack/pyproject.toml requirements/constraints.txt | sha1sum | cut -c1-12)
PLAYBOOK := $(BIN)/ansible-playbook
PYTEST_ARGS ?=
# The offline profile's AWS endpoint; another port when something else (LocalStack, say) holds 4566.
DEFAULT_ENDPOINT := http://127.0.0.1:4566
ENDPOINT ?= $(DEFAULT_ENDPOINT)
OFFLINE_ARGS := $(if $(filter-out $(DEFAULT_ENDPOINT),$(ENDPOINT)),-e dagster_ecs_aws_endpoint_url=$(ENDPOINT))

.PHONY: help venv machine rehearsal deploy dags teardown down test test-unit test-integration molecule coverage sanity lint bench constraints clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml container/pyproject.toml localstack/pyproject.toml requirements/constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade 'pip>=24'
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e '.[dev]' -e ./container -e ./localstack
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP) ## Create .venv and install the pinned dependencies

machine: ## Install the Debian packages the offline profile needs when missing (nginx-light, postgresql)
	scripts/machine-packages rehearsal

rehearsal: venv machine ## Install everything and deploy the whole stack offline (emulator on 127.0.0.1:4566; ENDPOINT=http://127.0.0.1:PORT for another)
	$(PLAYBOOK) site.yml $(OFFLINE_ARGS)

deploy: venv ## Deploy to real AWS (inventory/production; uses your AWS credentials)
	$(PLAYBOOK) -i inventory/production site.yml

dags: venv ## Publish dags/ (validated; only what changed); ROLLBACK=previous|<version> rolls back; INVENTORY=inventory/production for AWS
	$(PLAYBOOK) -i $(or $(INVENTORY),inventory/localstack) site.yml --tags dags $(if $(ROLLBACK),-e dags_rollback_to=$(ROLLBACK)) $(if $(INVENTORY),,$(OFFLINE_ARGS))

teardown: venv ## Delete everything of the project in the offline profile (INVENTORY=inventory/production for AWS)
	$(PLAYBOOK) -i $(or $(INVENTORY),inventory/localstack) playbooks/teardown.yml $(if $(INVENTORY),,$(OFFLINE_ARGS))

down: venv ## Stop what the offline profile started on this machine (the emulator, the local tasks)
	$(PLAYBOOK) playbooks/down.yml $(OFFLINE_ARGS)

test: venv ## Run every test (lint, sanity, coverage, unit, molecule, emulator, integration), one test file per CPU
	scripts/machine-packages test
	$(BIN)/pytest -n auto --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

test-unit: venv ## Only the fast tests (no ansible-playbook runs, no ansible-test)
	$(BIN)/pytest -m "not integration and not slow" -n auto --dist loadfile $(PYTEST_ARGS)

test-integration: venv ## Only the tests that drive ansible-playbook against a fresh emulator
	$(BIN)/pytest -m integration $(PYTEST_ARGS)

molecule: venv ## Every role's molecule scenario, in site.yml's order, on one fresh emulator (molecule/run.py)
	$(BIN)/python molecule/run.py

coverage: venv ## Line coverage of the collection's Python by its unit tests (fails under 90 %)
	$(BIN)/pytest collections/ansible_collections/dagster_ecs/fargate/tests/unit -n auto --dist loadfile --cov --cov-report=term-missing

sanity: venv ## ansible-test sanity on the collection, offline (tests/support/ansible_sanity.py)
	$(BIN)/python tests/support/ansible_sanity.py

lint: venv ## ansible-lint (production profile), yamllint, ruff, hadolint: the commands tests/test_lint.py holds
	$(BIN)/pytest -p no:cacheprovider tests/test_lint.py $(PYTEST_ARGS)

bench: venv ## Benchmarks: DAG publish/sync with 1,000 files vs aws s3 sync; deploy latency, DAG dependencies vs the image path (needs PyPI), RSS per task, run launch ECS vs default launcher (after make rehearsal), controller CPU vs Ansible's default poll interval
	$(BIN)/python tests/bench/dags.py
	$(BIN)/python tests/bench/deps.py
	$(BIN)/python tests/bench/rss.py
	$(BIN)/python tests/bench/runs.py
	$(BIN)/python tests/bench/controller.py

constraints: venv ## Re-pin requirements/constraints.txt from the current venv, and the image's pins (DAG layers resolve against them)
	{ echo "# Full resolved dependency set of .[dev], ./container and ./localstack on Python 3.11 (pip freeze)."; \
	  echo "# Regenerate with: make constraints"; \
	  $(BIN)/pip freeze --exclude-editable | grep -v '^-e' | sort -f; } > requirements/constraints.txt
	$(BIN)/python tests/support/image_pins.py

clean: ## Stop local processes (when there is a venv to do it with) and remove the venv and local state
	if [ -x $(PLAYBOOK) ]; then $(MAKE) down; fi
	rm -rf $(VENV) .state .pytest_cache .ruff_cache

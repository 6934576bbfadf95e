# changegate — the commands the README documents and CI runs.
#
#   make demo   start a local AWS, file a request, approve it, watch access
#               granted, revoked and notified (about a minute after the build)
#   make test   unit tests, integration tests against the local AWS, the built
#               binaries through the Lambda Runtime API, and the template linters
#
# Both install what they need: Python virtualenvs with the pinned local-AWS
# tools (.venv: moto, boto3, cfn-lint) and checkov (.venv-checkov), and the
# Rust crates from crates.io.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CARGO   ?= cargo
PYTHON  ?= python3
VENV    := .venv
# checkov pins an older boto3 than moto needs, so it lives in its own venv.
CHECKOV_VENV := .venv-checkov
PY      := $(VENV)/bin/python

.PHONY: help venv checkov-venv build-debug test unit lint demo clean

help:
	@echo "make demo   - run the whole flow on a local AWS (README: Try it)"
	@echo "make test   - every test and linter (what CI runs)"
	@echo "make lint   - cfn-lint and checkov on template.yaml (and proof that they catch breakage)"
	@echo "make clean  - remove target/ and .venv/"

venv: $(VENV)/.installed

$(VENV)/.installed: tests/localaws/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/localaws/requirements.txt
	touch $@

checkov-venv: $(CHECKOV_VENV)/.installed

$(CHECKOV_VENV)/.installed: tests/template/requirements.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/template/requirements.txt
	touch $@

# The integration tests drive these debug binaries through the Runtime API.
build-debug:
	$(CARGO) build --workspace --bins

unit:
	$(CARGO) test -p changegate

test: venv build-debug
	$(PY) tests/localaws/selfcheck.py
	$(CARGO) test --workspace
	$(MAKE) --no-print-directory lint

lint: venv checkov-venv
	tests/template/lint.sh $(VENV) $(CHECKOV_VENV)

demo: venv build-debug
	$(PY) tests/localaws/demo.py

clean:
	rm -rf target $(VENV) $(CHECKOV_VENV)

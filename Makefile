# changegate — the commands the README documents and CI runs.
#
#   make demo   start a local AWS, file a request, approve it, watch access
#               granted, revoked and notified (about a minute after the build)
#   make test   unit tests, integration tests against the local AWS, the built
#               binaries through the Lambda Runtime API, and the template linters
#
# Both install what they need: a Python virtualenv in .venv with the pinned
# local-AWS tools (moto, boto3, cfn-lint), and the Rust crates from crates.io.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CARGO   ?= cargo
PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python

.PHONY: help venv build-debug test unit lint demo clean

help:
	@echo "make demo   - run the whole flow on a local AWS (README: Try it)"
	@echo "make test   - every test and linter (what CI runs)"
	@echo "make lint   - cfn-lint on template.yaml (and proof that it catches breakage)"
	@echo "make clean  - remove target/ and .venv/"

venv: $(VENV)/.installed

$(VENV)/.installed: tests/localaws/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/localaws/requirements.txt
	touch $@

# The integration tests drive these debug binaries through the Runtime API.
build-debug:
	$(CARGO) build --workspace --bins

unit:
	$(CARGO) test -p changegate

test: venv build-debug
	$(CARGO) test --workspace
	$(MAKE) --no-print-directory lint

lint: venv
	tests/template/lint.sh $(VENV)/bin/cfn-lint

demo: venv build-debug
	$(PY) tests/localaws/demo.py

clean:
	rm -rf target $(VENV)

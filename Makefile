# changegate — the commands the README documents and CI runs.
#
#   make demo   start a local AWS, file a request, approve it, watch access
#               granted, revoked and notified (about a minute after the build)
#   make test   unit tests, integration tests against the local AWS, the built
#               binaries through the Lambda Runtime API, and the template linters
#   make build  release Lambda zips for arm64 (cargo-lambda), in target/lambda/
#   make deploy sam build + sam deploy (needs AWS credentials and samconfig.toml)
#   make bench  measure cold start, memory, sweeps and zip sizes (docs/benchmarks.md)
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
# checkov pins an older boto3 than moto needs, so it lives in its own venv;
# so do the build (cargo-lambda) and deploy (AWS SAM CLI) tools.
CHECKOV_VENV := .venv-checkov
BUILD_VENV   := .venv-build
SAM_VENV     := .venv-sam
PY      := $(VENV)/bin/python

.PHONY: help venv checkov-venv build-venv sam-venv build-debug build deploy bench test unit lint demo clean

help:
	@echo "make demo   - run the whole flow on a local AWS (README: Try it)"
	@echo "make test   - every test and linter (what CI runs)"
	@echo "make lint   - cfn-lint and checkov on template.yaml (and proof that they catch breakage)"
	@echo "make build  - release Lambda zips for arm64 in target/lambda/ (cargo-lambda)"
	@echo "make deploy - sam build + sam deploy (see README: Deploying)"
	@echo "make bench  - benchmarks, written to docs/benchmarks.md"
	@echo "make clean  - remove target/ and the virtualenvs"

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

build-venv: $(BUILD_VENV)/.installed

$(BUILD_VENV)/.installed: tools/build-requirements.txt
	$(PYTHON) -m venv $(BUILD_VENV)
	$(BUILD_VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/build-requirements.txt
	touch $@

sam-venv: $(SAM_VENV)/.installed

$(SAM_VENV)/.installed: tools/deploy-requirements.txt
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/deploy-requirements.txt
	touch $@

# One zip per function: target/lambda/<function>/bootstrap.zip (arm64, provided.al2023).
build: build-venv
	rustup target add aarch64-unknown-linux-gnu
	PATH="$(CURDIR)/$(BUILD_VENV)/bin:$$PATH" $(CARGO) lambda build --release --arm64 \
		--output-format zip --lambda-dir target/lambda \
		--bin grant --bin revoke --bin notify
	@ls -l target/lambda/*/bootstrap.zip

# sam build runs cargo-lambda for each function (BuildMethod: rust-cargolambda);
# sam deploy reads samconfig.toml (copy samconfig.toml.example first).
deploy: build-venv sam-venv
	@test -f samconfig.toml || { echo "copy samconfig.toml.example to samconfig.toml and fill it in first" >&2; exit 1; }
	rustup target add aarch64-unknown-linux-gnu
	PATH="$(CURDIR)/$(BUILD_VENV)/bin:$(CURDIR)/$(SAM_VENV)/bin:$$PATH" sam build
	PATH="$(CURDIR)/$(SAM_VENV)/bin:$$PATH" sam deploy

# Release binaries for this machine (cold start and memory are measured on them)
# and the deployment zips (their sizes); then the measurements.
bench: venv build
	$(CARGO) build --release --workspace --bins
	$(PY) tools/bench.py

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
	rm -rf target $(VENV) $(CHECKOV_VENV) $(BUILD_VENV) $(SAM_VENV)

# changegate — the commands the README documents and CI runs.
#
#   make demo   start a local AWS, file a request, approve it, watch access
#               granted, revoked and notified (about a minute after the build)
#   make test   everything make lint does, the local-AWS tooling's tests
#               (pytest), unit tests, the integration tests against the
#               local AWS (the built binaries through the Lambda Runtime API)
#               and the demo's flow
#   make lint   cargo fmt --check, ruff, clippy -D warnings on every target
#               (built as the tests use them), and the template linters
#               (cfn-lint, checkov)
#   make build  release Lambda zips for arm64 (cargo-lambda), in target/lambda/
#   make deploy sam build + sam deploy (needs AWS credentials and samconfig.toml)
#   make bench  measure start-up (beside a bare echo), memory, sweeps, a burst of
#               200 approvals and zip sizes (docs/benchmarks.md)
#
# They install what they need: Python virtualenvs with the pinned local-AWS
# tools (.venv: moto, boto3, cfn-lint, pytest, ruff) and checkov
# (.venv-checkov), and the Rust crates from crates.io. A virtualenv is
# installed again only when its requirements file's content changes.

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
# make demo SOURCE=change-manager|automation (default: demo.py's own)
SOURCE  ?=

# One stamp per requirements content: a fresh checkout (new mtimes) with the
# same pins installs nothing; a changed pin installs once.
stamp = $(1)/.installed-$(shell sha256sum $(2) | cut -c1-16)
VENV_STAMP         := $(call stamp,$(VENV),tests/localaws/requirements.txt)
CHECKOV_VENV_STAMP := $(call stamp,$(CHECKOV_VENV),tests/template/requirements.txt)
BUILD_VENV_STAMP   := $(call stamp,$(BUILD_VENV),tools/build-requirements.txt)
SAM_VENV_STAMP     := $(call stamp,$(SAM_VENV),tools/deploy-requirements.txt)
# --no-compile: Python compiles a module when it is first imported, so only
# what the tools import gets compiled (pip would compile every file: a quarter
# of its CPU time here, mostly botocore's and checkov's modules no tool here loads).
PIP_FLAGS := --quiet --disable-pip-version-check --no-input --progress-bar off --no-compile

.PHONY: help mutants venv checkov-venv build-venv sam-venv build-debug build-linted build deploy bench test local-aws-pool test-py test-rust test-demo unit lint lint-code lint-templates demo clean

help:
	@echo "make demo   - run the whole flow on a local AWS (README: Try it); SOURCE=automation|change-manager"
	@echo "make test   - every test and linter (what CI runs)"
	@echo "make lint   - cargo fmt --check, ruff, clippy on every target, cfn-lint and checkov (and proof that they catch breakage)"
	@echo "make build  - release Lambda zips for arm64 in target/lambda/ (cargo-lambda)"
	@echo "make deploy - sam build + sam deploy (see README: Deploying)"
	@echo "make bench  - benchmarks, written to docs/benchmarks.md"
	@echo "make mutants - mutation testing of the pure crate's access logic (slow; docs/mutants.md)"
	@echo "make clean  - remove target/ and the virtualenvs"

venv: $(VENV_STAMP)

$(VENV_STAMP):
	rm -f $(VENV)/.installed*
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_FLAGS) -r tests/localaws/requirements.txt
	touch $@

checkov-venv: $(CHECKOV_VENV_STAMP)

$(CHECKOV_VENV_STAMP):
	rm -f $(CHECKOV_VENV)/.installed*
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install $(PIP_FLAGS) -r tests/template/requirements.txt
	touch $@

build-venv: $(BUILD_VENV_STAMP)

$(BUILD_VENV_STAMP):
	rm -f $(BUILD_VENV)/.installed*
	test -x $(BUILD_VENV)/bin/python || $(PYTHON) -m venv $(BUILD_VENV)
	$(BUILD_VENV)/bin/pip install $(PIP_FLAGS) -r tools/build-requirements.txt
	touch $@

sam-venv: $(SAM_VENV_STAMP)

$(SAM_VENV_STAMP):
	rm -f $(SAM_VENV)/.installed*
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install $(PIP_FLAGS) -r tools/deploy-requirements.txt
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

# Release binaries for this machine (start-up and memory are measured on them,
# beside tools/echo, the floor) and, where the arm64 target is installed, the
# deployment zips (their sizes); then the measurements, the burst included
# (a few minutes). BURST=0 skips the burst; BENCH_ARGS goes to tools/bench.py
# (e.g. BENCH_ARGS='--burst-size 20 --burst-seeds 1' for a quick try).
BURST ?= 1
BENCH_ARGS ?=
bench: venv
	@if rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then \
	  $(MAKE) --no-print-directory build; \
	else echo "make bench: no aarch64-unknown-linux-gnu target here, so no arm64 zips (x86_64 stand-ins instead)"; fi
	$(CARGO) build --release --workspace --bins
	$(PY) tools/bench.py $(if $(filter 0,$(BURST)),--no-burst) $(BENCH_ARGS)

# Mutation testing of the pure crate's access logic (cargo-mutants; slow, so
# not part of make test): every mutant of these files must make a test fail,
# or docs/mutants.md says why it cannot change behaviour. MUTANTS_FILES
# narrows it (e.g. MUTANTS_FILES=shared/src/window.rs); results in mutants.out/.
MUTANTS_FILES ?= shared/src/check.rs shared/src/approval.rs shared/src/window.rs \
  shared/src/session.rs shared/src/record.rs shared/src/operator.rs shared/src/versions.rs \
  shared/src/protocol/grant.rs shared/src/protocol/revocation.rs shared/src/protocol/ending.rs \
  shared/src/protocol/locate.rs shared/src/admission.rs shared/src/eligibility.rs shared/src/sweep.rs
mutants:
	command -v cargo-mutants >/dev/null || $(CARGO) install cargo-mutants --locked
	$(CARGO) mutants -p changegate $(foreach f,$(MUTANTS_FILES),--file $(f)) --test-tool cargo --timeout-multiplier 3

# The integration tests drive these debug binaries through the Runtime API.
build-debug:
	$(CARGO) build --workspace --bins

# Clippy as the workspace's compiler: cargo builds every target (the
# functions, the unit and integration tests) with clippy-driver wrapping rustc
# for the workspace's own crates, which is how `cargo clippy` runs it, with
# `-D warnings`. So the lint gate and the test build are one build: the
# dependencies compile once, not once for clippy's check build and again for
# the tests. (Plain `cargo build` afterwards recompiles only the workspace.)
# The + lets cargo take its jobs from make's job slots when make runs with -j.
CLIPPY_DRIVER = $(shell rustup which clippy-driver 2>/dev/null || command -v clippy-driver)
LINTED = RUSTC_WORKSPACE_WRAPPER="$(CLIPPY_DRIVER)" CLIPPY_ARGS=-Dwarnings

build-linted:
	@test -n "$(CLIPPY_DRIVER)" || { echo "clippy is missing: rustup component add clippy" >&2; exit 1; }
	+$(LINTED) $(CARGO) build --workspace --all-targets

unit:
	$(CARGO) test -p changegate

# One make graph, four jobs at a time, each job's output printed whole when
# it ends (-O): the tools (pip) and the linted build side by side; the code
# gates; then, as soon as each one's tools are in, the template linters, the
# local AWS's own tests (pytest) and, once the build is done, the Rust tests.
# The tests take their local AWS servers from one pool (tests/localaws/pool.py:
# moto imported once, a fresh forked server per test in milliseconds), which
# is stopped however this ends; its log is printed if something failed.
test:
	pool_dir=$$(mktemp -d); \
	trap 'status=$$?; kill $$(cat "$$pool_dir/pid" 2>/dev/null) 2>/dev/null; \
	  if [ $$status -ne 0 ] && [ -s "$$pool_dir/pool.log" ]; then echo "--- local AWS pool log (tail)"; tail -n 40 "$$pool_dir/pool.log"; fi; \
	  rm -rf "$$pool_dir"' EXIT; \
	export CHANGEGATE_LOCALAWS_POOL="$$pool_dir/pool.sock" CHANGEGATE_POOL_PARENT=$$$$; \
	$(MAKE) --no-print-directory -j4 -O lint-code lint-templates test-py test-rust test-demo

# The README's `make demo` flow, on the binaries the tests build: its last
# lines when it passes, the whole run when it fails.
test-demo: build-linted venv
	@log=$$(mktemp); \
	if $(PY) tests/localaws/demo.py >"$$log" 2>&1; then tail -n 2 "$$log"; rm -f "$$log"; \
	else cat "$$log"; rm -f "$$log"; exit 1; fi

# make test's pool (see above); it exits with the shell that started make test.
local-aws-pool: venv
	@test -n "$${CHANGEGATE_LOCALAWS_POOL:-}" || { echo "local-aws-pool: only make test starts it" >&2; exit 1; }
	@dir=$$(dirname "$$CHANGEGATE_LOCALAWS_POOL"); \
	$(PY) tests/localaws/pool.py --socket "$$CHANGEGATE_LOCALAWS_POOL" --parent-pid "$$CHANGEGATE_POOL_PARENT" \
	  >/dev/null 2>"$$dir/pool.log" & echo $$! >"$$dir/pid"; \
	until [ -S "$$CHANGEGATE_LOCALAWS_POOL" ]; do \
	  kill -0 "$$(cat "$$dir/pid")" 2>/dev/null || { echo "the local AWS pool did not start:" >&2; cat "$$dir/pool.log" >&2; exit 1; }; \
	  sleep 0.1; \
	done

test-py: venv local-aws-pool
	$(PY) -m pytest tests/localaws/tests

# Built by build-linted already: the same wrapper, so nothing recompiles.
test-rust: build-linted local-aws-pool
	+$(LINTED) $(CARGO) test --workspace

lint: lint-code build-linted lint-templates

lint-code: venv
	$(CARGO) fmt --all --check
	$(VENV)/bin/ruff check

lint-templates: venv checkov-venv
	tests/template/lint.sh $(VENV) $(CHECKOV_VENV)

demo:
	$(MAKE) --no-print-directory -j2 venv build-debug
	$(PY) tests/localaws/demo.py $(if $(SOURCE),--source $(SOURCE))

clean:
	rm -rf target $(VENV) $(CHECKOV_VENV) $(BUILD_VENV) $(SAM_VENV)

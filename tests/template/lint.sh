#!/usr/bin/env bash
# Lints template.yaml with cfn-lint (as written, and after the SAM transform,
# where cfn-lint also checks IAM action names) and checkov, checks what the
# stack deploys for each RequestSources value (with Automation alone, nothing
# needs Change Manager), then proves that the pinned linters and the check
# still catch the mistakes we rely on them for: a linter that passes
# everything proves nothing.
#
# usage: lint.sh VENV CHECKOV_VENV    (make lint passes .venv and .venv-checkov)
set -euo pipefail
venv=${1:-.venv}
checkov_venv=${2:-.venv-checkov}
cd "$(dirname "$0")/../.."
cfn_lint="$venv/bin/cfn-lint"
python="$venv/bin/python"
checkov="$checkov_venv/bin/checkov"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# cfn-lint skips its IAM action check on templates that use the SAM transform,
# so the expanded template is linted too.
lint_both() {
  "$cfn_lint" "$1" || return 1
  "$python" tests/template/sam_transform.py "$1" >"$tmp/expanded.json" || return 1
  "$cfn_lint" "$tmp/expanded.json"
}

lint_both template.yaml
echo "cfn-lint: template.yaml has no findings (as written and after the SAM transform)"
"$checkov" -f template.yaml --framework cloudformation --compact --quiet --skip-download
echo "checkov: no findings (each suppression in template.yaml carries its reason)"
"$python" tests/template/sources_check.py template.yaml
echo "sources: Automation alone deploys no change template and no Change Manager rule; each source gets its own"

must_fail() {
  local name=$1 expr=$2
  sed "$expr" template.yaml >"$tmp/broken.yaml"
  if cmp -s template.yaml "$tmp/broken.yaml"; then
    echo "lint.sh: the '$name' breakage no longer applies to template.yaml; update lint.sh" >&2
    exit 1
  fi
  if lint_both "$tmp/broken.yaml" >/dev/null 2>&1; then
    echo "lint.sh: cfn-lint accepted a deliberately broken template ($name)" >&2
    exit 1
  fi
  echo "cfn-lint: rejects a template with $name"
}
must_fail "an unknown runtime" 's/provided\.al2023/provided.al2099/'
must_fail "a malformed schedule" 's/rate(1 minute)/rate(1 minutes)/'
must_fail "a misspelt IAM action" 's/iam:DeleteUserPolicy/iam:DeleteUsrPolicy/'

# Without its suppression, a known finding must come back.
sed 's/- id: CKV_AWS_117/- id: CKV_AWS_UNSUPPRESSED/' template.yaml >"$tmp/unsuppressed.yaml"
if "$checkov" -f "$tmp/unsuppressed.yaml" --framework cloudformation --compact --quiet --skip-download >/dev/null 2>&1; then
  echo "lint.sh: checkov passed a template with an unsuppressed finding" >&2
  exit 1
fi
echo "checkov: reports a finding once its suppression is gone"

# The sources check must notice a Change Manager resource left unconditional.
sources_must_fail() {
  local name=$1 expr=$2
  sed "$expr" template.yaml >"$tmp/broken.yaml"
  if cmp -s template.yaml "$tmp/broken.yaml"; then
    echo "lint.sh: the '$name' breakage no longer applies to template.yaml; update lint.sh" >&2
    exit 1
  fi
  if "$python" tests/template/sources_check.py "$tmp/broken.yaml" >/dev/null 2>&1; then
    echo "lint.sh: sources_check.py accepted a deliberately broken template ($name)" >&2
    exit 1
  fi
  echo "sources: rejects a template with $name"
}
sources_must_fail "an unconditional change template" '/^  ChangeTemplate:$/,/^    Condition: UseChangeManager$/{/^    Condition: UseChangeManager$/d}'
sources_must_fail "an unconditional Change Manager rule" '/^  GrantChangeRequestStatusRule:$/,/^    Condition: UseChangeManager$/{/^    Condition: UseChangeManager$/d}'
sources_must_fail "a change template that allows auto-approval" 's/^        autoApprovable: false$/        autoApprovable: true/'

# The production-account stack: plain CloudFormation (no transform), so
# cfn-lint checks its IAM actions as written.
production=templates/production-account.yaml
"$cfn_lint" "$production"
echo "cfn-lint: $production has no findings"
"$checkov" -f "$production" --framework cloudformation --compact --quiet --skip-download
echo "checkov: $production has no findings"

must_fail_production() {
  local name=$1 expr=$2
  sed "$expr" "$production" >"$tmp/broken-production.yaml"
  if cmp -s "$production" "$tmp/broken-production.yaml"; then
    echo "lint.sh: the '$name' breakage no longer applies to $production; update lint.sh" >&2
    exit 1
  fi
  if "$cfn_lint" "$tmp/broken-production.yaml" >/dev/null 2>&1; then
    echo "lint.sh: cfn-lint accepted a deliberately broken $production ($name)" >&2
    exit 1
  fi
  echo "cfn-lint: rejects a production-account template with $name"
}
must_fail_production "a misspelt IAM action" 's/iam:PutRolePolicy/iam:PutRolPolicy/'
must_fail_production "a session longer than IAM allows" 's/MaxSessionDuration: 3600/MaxSessionDuration: 86400/'
must_fail_production "an unknown condition" 's/CreateTarget$/CreateTargett/'

# checkov must still see a wildcard write to IAM in this template.
sed 's|Resource: !Sub .arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${TargetRoleName}.$|Resource: "*"|' \
  "$production" >"$tmp/wide-production.yaml"
if cmp -s "$production" "$tmp/wide-production.yaml"; then
  echo "lint.sh: the wildcard breakage no longer applies to $production; update lint.sh" >&2
  exit 1
fi
if "$checkov" -f "$tmp/wide-production.yaml" --framework cloudformation --compact --quiet --skip-download >/dev/null 2>&1; then
  echo "lint.sh: checkov passed a production-account template writing IAM on every role" >&2
  exit 1
fi
echo "checkov: reports a production-account template writing IAM on every role"

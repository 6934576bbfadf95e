#!/usr/bin/env bash
# Lints template.yaml, then proves that the pinned linter still catches the
# mistakes we rely on it for: a linter that passes everything proves nothing.
set -euo pipefail
lint=${1:-cfn-lint}
cd "$(dirname "$0")/../.."

"$lint" template.yaml
echo "cfn-lint: template.yaml has no findings"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
must_fail() {
  local name=$1 expr=$2
  sed "$expr" template.yaml >"$tmp/$name.yaml"
  if cmp -s template.yaml "$tmp/$name.yaml"; then
    echo "lint.sh: the '$name' breakage no longer applies to template.yaml; update lint.sh" >&2
    exit 1
  fi
  if "$lint" "$tmp/$name.yaml" >/dev/null 2>&1; then
    echo "lint.sh: cfn-lint accepted a deliberately broken template ($name)" >&2
    exit 1
  fi
  echo "cfn-lint: rejects a template with $name"
}
must_fail "an unknown runtime" 's/provided\.al2023/provided.al2099/'
must_fail "a malformed schedule" 's/rate(1 minute)/rate(1 minutes)/'

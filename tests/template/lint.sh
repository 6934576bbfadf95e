#!/usr/bin/env bash
# Lints template.yaml with cfn-lint (as written, and after the SAM transform,
# where cfn-lint also checks IAM action names) and checkov, checks what the
# stack deploys for each RequestSources value (with Automation alone, nothing
# needs Change Manager), and lints templates/production-account.yaml with
# both linters; then proves that the pinned linters and the check still catch
# the mistakes we rely on them for: a linter that passes everything proves
# nothing.
#
# Each tool takes seconds to start, so each runs once over all the templates
# it judges, clean and deliberately broken, rather than once per template:
#   1. sed writes each broken copy of the two templates (each sed must still
#      change its template, or the proof built on it would prove nothing);
#   2. sam_transform.py expands template.yaml and its broken copies while
#      sources_check.py judges template.yaml and its three broken copies
#      (each in one process); then cfn-lint (both templates as written, those
#      expansions, the broken production-account copies) and checkov (its
#      four templates) run concurrently, writing JSON;
#   3. findings.py checks that each linter's output accounts for its exit
#      status and names only files it was given, and counts the findings in
#      each file; then each template gets its verdict, in the order of the
#      messages below: a clean template must have no finding, each broken
#      copy at least one.
# A broken copy of template.yaml counts as caught by cfn-lint if it fails the
# SAM transform or has a finding as written or after the transform. Its
# expansion is linted in the main run, the copy as written only if the
# expansion has no finding (in a second run; today each expansion has one).
#
# usage: lint.sh VENV CHECKOV_VENV    (make lint passes .venv and .venv-checkov)
set -euo pipefail
venv=${1:-.venv}
checkov_venv=${2:-.venv-checkov}
cd "$(dirname "$0")/../.."
cfn_lint="$venv/bin/cfn-lint"
python="$venv/bin/python"
checkov="$checkov_venv/bin/checkov"
production=templates/production-account.yaml

tmp=$(mktemp -d)
background=()  # pids of the linters still running
cleanup() {
  if ((${#background[@]})); then
    kill "${background[@]}" 2>/dev/null || true
    wait "${background[@]}" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
  echo "lint.sh: $*" >&2
  exit 1
}

# --- 1. The templates to judge -------------------------------------------

# broken_copy NAME TEMPLATE SED-EXPR OUT: OUT is TEMPLATE broken by SED-EXPR,
# which must still change it (or the proof built on it would prove nothing).
broken_copy() {
  sed "$3" "$2" >"$4"
  if cmp -s "$2" "$4"; then
    fail "the '$1' breakage no longer applies to $2; update lint.sh"
  fi
}

# cfn-lint must reject each of these copies of template.yaml.
sam_names=() sam_files=()
sam_breakage() {
  local out="$tmp/template-broken-${#sam_files[@]}.yaml"
  broken_copy "$1" template.yaml "$2" "$out"
  sam_names+=("$1") sam_files+=("$out")
}
sam_breakage "an unknown runtime" 's/provided\.al2023/provided.al2099/'
sam_breakage "a malformed schedule" 's/rate(1 minute)/rate(1 minutes)/'
sam_breakage "a misspelt IAM action" 's/iam:DeleteUserPolicy/iam:DeleteUsrPolicy/'

# Without its suppression, a known finding must come back (checkov).
broken_copy "unsuppressed CKV_AWS_117" template.yaml 's/- id: CKV_AWS_117/- id: CKV_AWS_UNSUPPRESSED/' "$tmp/unsuppressed.yaml"

# The sources check must notice a Change Manager resource left unconditional.
sources_names=() sources_files=()
sources_breakage() {
  local out="$tmp/sources-broken-${#sources_files[@]}.yaml"
  broken_copy "$1" template.yaml "$2" "$out"
  sources_names+=("$1") sources_files+=("$out")
}
sources_breakage "an unconditional change template" '/^  ChangeTemplate:$/,/^    Condition: UseChangeManager$/{/^    Condition: UseChangeManager$/d}'
sources_breakage "an unconditional Change Manager rule" '/^  GrantChangeRequestStatusRule:$/,/^    Condition: UseChangeManager$/{/^    Condition: UseChangeManager$/d}'
sources_breakage "a change template that allows auto-approval" 's/^          autoApprovable: false$/          autoApprovable: true/'

# The production-account stack: plain CloudFormation (no transform), so
# cfn-lint checks its IAM actions as written.
production_names=() production_files=()
production_breakage() {
  local out="$tmp/production-broken-${#production_files[@]}.yaml"
  broken_copy "$1" "$production" "$2" "$out"
  production_names+=("$1") production_files+=("$out")
}
production_breakage "a misspelt IAM action" 's/iam:PutRolePolicy/iam:PutRolPolicy/'
production_breakage "a session longer than IAM allows" 's/MaxSessionDuration: 3600/MaxSessionDuration: 86400/'
production_breakage "an unknown condition" 's/CreateTarget$/CreateTargett/'

# checkov must still see a wildcard write to IAM in this template.
broken_copy "wildcard" "$production" \
  's|Resource: !Sub .arn:${AWS::Partition}:iam::${AWS::AccountId}:role/${TargetRoleName}.$|Resource: "*"|' \
  "$tmp/wide-production.yaml"

# --- 2. The runs ----------------------------------------------------------

run() {  # NAME COMMAND...: start COMMAND in the background, output in $tmp/NAME.{out,err}
  local name=$1
  shift
  "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
  background+=($!)
  pids[$name]=$!
}
declare -A pids status
finish() {  # NAME: wait for it; its exit status goes to status[NAME]
  local pid=${pids[$1]} p rest=()
  status[$1]=0
  wait "$pid" || status[$1]=$?
  for p in "${background[@]}"; do [[ $p == "$pid" ]] || rest+=("$p"); done
  background=("${rest[@]}")
}
tool() { case $1 in cfn-lint*) echo cfn-lint ;; *) echo "$1" ;; esac; }  # NAME: the tool run NAME ran

# First the SAM transform (cfn-lint, the longest run, needs its output) and,
# beside it, the sources check; then both linters.
run sources "$python" tests/template/sources_check.py template.yaml "${sources_files[@]}"
# cfn-lint skips its IAM action check on templates that use the SAM transform,
# so the expanded templates are linted too. A template that fails the
# transform gets no expanded file.
expanded() { echo "$tmp/expanded/$(basename "${1%.*}").json"; }
"$python" tests/template/sam_transform.py --to "$tmp/expanded" template.yaml "${sam_files[@]}" \
  2>"$tmp/transform.err" || true
expanded_files=()
for f in template.yaml "${sam_files[@]}"; do
  if [[ -f $(expanded "$f") ]]; then expanded_files+=("$(expanded "$f")"); fi
done

# Both linters write JSON, judged below.
cfn_lint_files=(template.yaml "${expanded_files[@]}" "$production" "${production_files[@]}")
run cfn-lint "$cfn_lint" --format json "${cfn_lint_files[@]}"
checkov_files=(template.yaml "$tmp/unsuppressed.yaml" "$production" "$tmp/wide-production.yaml")
checkov_args=()
for f in "${checkov_files[@]}"; do checkov_args+=(-f "$f"); done
run checkov "$checkov" "${checkov_args[@]}" --framework cloudformation --compact --skip-download -o json
finish sources  # its exit status is 1 (the broken copies): the verdicts are in its output

# counted NAME FILE...: check the run's output accounts for its exit status
# and names only FILE... (else print its stderr and stop), and write the number
# of findings in each FILE to $tmp/NAME.counts.
counted() {
  local name=$1 which
  which=$(tool "$1")
  shift
  finish "$name"
  if ! "$python" tests/template/findings.py "$which" "$tmp/$name.out" "${status[$name]}" "$@" >"$tmp/$name.counts"; then
    cat "$tmp/$name.err" >&2
    fail "cannot tell what $which found in each template (see above)"
  fi
}
counted cfn-lint "${cfn_lint_files[@]}"
counted checkov "${checkov_files[@]}"

# findings NAME FILE: how many findings run NAME has in FILE (empty if it did
# not lint FILE).
findings() { awk -F '\t' -v f="$2" '$2 == f { print $1 }' "$tmp/$1.counts"; }
none() { [[ $(findings "$@") == 0 ]]; }
some() { [[ $(findings "$@") =~ ^[1-9][0-9]*$ ]]; }
# show NAME FILE...: the findings themselves.
show() { "$python" tests/template/findings.py "$(tool "$1")" "$tmp/$1.out" show "${@:2}" >&2; }
# lines_for FILE LOG: LOG's lines about FILE (those prefixed "FILE: ").
lines_for() { awk -v p="$1: " 'index($0, p) == 1 { print substr($0, length(p) + 1) }' "$2"; }
# sources_verdict FILE: accepted or rejected, as sources_check.py said.
sources_verdict() { awk -v f="$1" '$0 == "accepted " f || $0 == "rejected " f { print $1 }' "$tmp/sources.out"; }

# Only if an expanded broken copy of template.yaml got past cfn-lint: lint
# those copies as written, in one more run.
raw_files=()
for f in "${sam_files[@]}"; do
  if [[ -f $(expanded "$f") ]] && ! some cfn-lint "$(expanded "$f")"; then raw_files+=("$f"); fi
done
if ((${#raw_files[@]})); then
  run cfn-lint-raw "$cfn_lint" --format json "${raw_files[@]}"
  counted cfn-lint-raw "${raw_files[@]}"
fi

# --- 3. Verdicts, template by template -----------------------------------

if [[ ! -f $(expanded template.yaml) ]]; then
  lines_for template.yaml "$tmp/transform.err" >&2
  fail "the SAM transform failed on template.yaml"
fi
if ! none cfn-lint template.yaml || ! none cfn-lint "$(expanded template.yaml)"; then
  show cfn-lint template.yaml "$(expanded template.yaml)"
  fail "cfn-lint has findings in template.yaml (above; as written or after the SAM transform)"
fi
echo "cfn-lint: template.yaml has no findings (as written and after the SAM transform)"
if ! none checkov template.yaml; then
  show checkov template.yaml
  fail "checkov has findings in template.yaml (above)"
fi
echo "checkov: no findings (each suppression in template.yaml carries its reason)"
case $(sources_verdict template.yaml) in
  accepted) ;;
  rejected)
    lines_for template.yaml "$tmp/sources.err" >&2
    fail "sources_check.py found problems in template.yaml (above)" ;;
  *)
    cat "$tmp/sources.err" >&2
    fail "sources_check.py gave no verdict on template.yaml" ;;
esac
echo "sources: Automation alone deploys no change template and no Change Manager rule; each source gets its own"

for i in "${!sam_files[@]}"; do
  f=${sam_files[$i]}
  # Caught if it fails the transform or has a finding expanded or as written.
  if [[ -f $(expanded "$f") ]] && ! some cfn-lint "$(expanded "$f")" && ! some cfn-lint-raw "$f"; then
    fail "cfn-lint accepted a deliberately broken template (${sam_names[$i]})"
  fi
  echo "cfn-lint: rejects a template with ${sam_names[$i]}"
done

some checkov "$tmp/unsuppressed.yaml" \
  || fail "checkov passed a template with an unsuppressed finding"
echo "checkov: reports a finding once its suppression is gone"

for i in "${!sources_files[@]}"; do
  case $(sources_verdict "${sources_files[$i]}") in
    rejected) ;;
    accepted) fail "sources_check.py accepted a deliberately broken template (${sources_names[$i]})" ;;
    *)
      cat "$tmp/sources.err" >&2
      fail "sources_check.py gave no verdict on a deliberately broken template (${sources_names[$i]})" ;;
  esac
  echo "sources: rejects a template with ${sources_names[$i]}"
done

if ! none cfn-lint "$production"; then
  show cfn-lint "$production"
  fail "cfn-lint has findings in $production (above)"
fi
echo "cfn-lint: $production has no findings"
if ! none checkov "$production"; then
  show checkov "$production"
  fail "checkov has findings in $production (above)"
fi
echo "checkov: $production has no findings"

for i in "${!production_files[@]}"; do
  some cfn-lint "${production_files[$i]}" \
    || fail "cfn-lint accepted a deliberately broken $production (${production_names[$i]})"
  echo "cfn-lint: rejects a production-account template with ${production_names[$i]}"
done

some checkov "$tmp/wide-production.yaml" \
  || fail "checkov passed a production-account template writing IAM on every role"
echo "checkov: reports a production-account template writing IAM on every role"

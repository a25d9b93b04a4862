#!/usr/bin/env bash
# The test command: sets up .venv if needed, then runs the default suite followed by the marked
# suites that CI also runs, each after its own set-up step. Extra arguments go to the default pytest
# run (e.g. -k webshop) and skip the marked suites. HARNESS_CI_SUITES picks other marked suites, e.g.
#   HARNESS_CI_SUITES=alfworld_full bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# The marked suites CI runs, in this order, and the set-up each needs beyond scripts/setup.sh (run
# just before the suite; a failed set-up fails the run). A suite not in the table needs none.
CI_SUITES="alfworld_full vllm containers ray"
declare -A SETUP=(
  [alfworld_full]=""
  [vllm]="bash scripts/setup_vllm.sh"
  [containers]="bash scripts/setup_containers.sh --images webshop alfworld vllm"
  [ray]="bash scripts/setup_ray.sh"
)

summary=()
# timed LABEL CMD...: runs CMD, prints (and keeps for the summary) its elapsed seconds; returns its status.
timed() {
  local label=$1 start=$SECONDS rc=0
  shift
  "$@" || rc=$?
  summary+=("$(printf '%-28s %5d s  exit %d' "$label" $((SECONDS - start)) "$rc")")
  echo "[test] $label: $((SECONDS - start)) s, exit $rc"
  return "$rc"
}

finish() {
  echo "[test] summary:"
  printf '[test]   %s\n' "${summary[@]}"
  [ "$1" = 0 ] && echo "[test] passed" || echo "[test] FAILED (exit $1)" >&2
  exit "$1"
}

status=0
timed "setup" bash scripts/setup.sh || finish $?
export PYTHONHASHSEED=0 TOKENIZERS_PARALLELISM=false
timed "suite default" .venv/bin/python -m pytest "$@" || status=$?
# pytest exits 5 when a selection collects no tests: for a -k/-m the caller chose, not a failure.
[ "$status" = 5 ] && status=0
if [ "$status" != 0 ]; then
  echo "[test] the default suite failed: the marked suites are not run" >&2
  finish "$status"
fi
[ "$#" = 0 ] || finish 0

for suite in ${HARNESS_CI_SUITES:-$CI_SUITES}; do
  setup=${SETUP[$suite]:-}
  if [ -n "$setup" ]; then
    echo "[test] set-up for marked suite $suite: $setup"
    if ! timed "setup $suite" bash -c "$setup"; then
      echo "[test] FAILED: the set-up of marked suite '$suite' ($setup) failed; the suite was not run" >&2
      status=1
      continue
    fi
  fi
  echo "[test] marked suite: $suite"
  rc=0
  timed "suite $suite" .venv/bin/python -m pytest -m "$suite" || rc=$?
  # Here no tests means a misspelt suite or a lost marker, not a pass.
  [ "$rc" = 5 ] && echo "[test] FAILED: marked suite '$suite' selected no tests" >&2
  [ "$rc" = 0 ] || status=$rc
done
finish "$status"

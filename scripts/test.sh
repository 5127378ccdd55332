#!/usr/bin/env bash
# Set up (scripts/bootstrap.sh) and run every test: lint, unit tests, then the
# integration tests on a real Consul agent and real Envoy sidecars that the tests
# start themselves. Nothing is skipped: a missing part fails the run.
# Prints how long each phase took and the 25 slowest tests of each tier, so a test that
# blows the budget (tests/README.md) shows in the CI log.
set -euo pipefail
cd "$(dirname "$0")/.."

phases=() current="" started=0
phase() {  # phase NAME COMMAND...: run it, and keep its wall time for the summary
  current=$1 started=$SECONDS
  shift
  echo "== $current"
  "$@"
  phases+=("$(printf '%-12s %5d s' "$current" $((SECONDS - started)))")
  current=""
}
summary() {
  echo "== phase times"
  [ ${#phases[@]} -eq 0 ] || printf '%s\n' "${phases[@]}"
  [ -z "$current" ] || printf '%-12s %5d s (did not finish)\n' "$current" $((SECONDS - started))
  printf '%-12s %5d s\n' total "$SECONDS"
}
trap summary EXIT

phase bootstrap scripts/bootstrap.sh
phase lint .venv/bin/ruff check .
# No unit test needs a fixed port or a shared file, so they run on every core.
phase unit .venv/bin/python -m pytest tests/unit -q -n auto --durations=25
phase integration env LOADGEN_REQUIRE_ALL=1 .venv/bin/python -m pytest tests/integration -v --durations=25

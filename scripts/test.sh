#!/usr/bin/env bash
# Set up (scripts/bootstrap.sh) and run every test: lint, unit tests, then the
# integration tests on a real Consul agent and real Envoy sidecars that the tests
# start themselves. Nothing is skipped: a missing part fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/ruff check .
.venv/bin/python -m pytest tests/unit -q
LOADGEN_REQUIRE_ALL=1 .venv/bin/python -m pytest tests/integration -v --durations=25

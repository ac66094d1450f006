#!/usr/bin/env bash
# README command two: set up everything (idempotent), then lint and run the test suite.
#
#   bash scripts/test.sh            # what CI runs (.ci/run)
#   bash scripts/test.sh -m "not slow" -x   # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_env.sh
export PATH="$HOME/.local/bin:$PATH"
echo "[test] ruff check + ruff format --check"
uv run --frozen --no-sync ruff check .
uv run --frozen --no-sync ruff format --check .
echo "[test] pytest"
uv run --frozen --no-sync pytest "$@"

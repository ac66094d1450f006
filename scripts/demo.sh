#!/usr/bin/env bash
# README command one: set up everything (idempotent), then run the main job.
#
#   bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_env.sh
export PATH="$HOME/.local/bin:$PATH"
uv run --frozen --no-sync python scripts/smoke_stack.py "$@"

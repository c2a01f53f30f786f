#!/usr/bin/env bash
# Runs the whole test suite (and ruff) on a fresh machine: see README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"

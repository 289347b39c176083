#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh Debian machine, then run it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh requirements-dev.txt
exec .venv/bin/python -m pytest "$@"

#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh Debian machine, then run it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh requirements-dev.txt
# The browser tests drive Debian's chromium; install it when missing and we may (CI runs as root).
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium
fi
# The front tests run the server behind Debian's nginx, as the Docker image does.
if ! command -v nginx >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nginx
fi
# In CI the browser tests must run, not skip.
if [ "${CI:-}" = true ] && ! command -v chromium >/dev/null 2>&1; then
  echo "chromium is missing: the browser tests cannot run (install Debian's chromium)" >&2
  exit 1
fi
# Lint and format are part of the suite: CI fails on them like on a test.
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest "$@"

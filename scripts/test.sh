#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh Debian machine, then run it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh requirements-dev.txt
# The browser tests drive Debian's chromium, and the mysql tests start a throwaway MariaDB from
# Debian's mariadb-server (never as a service: the tests run mariadbd on a temp folder). Install
# what is missing when we may (CI runs as root).
has_mariadbd() { command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ]; }
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
has_mariadbd || missing+=(mariadb-server)
if [ "${#missing[@]}" -gt 0 ] && [ "$(id -u)" = 0 ]; then
  apt-get update -q
  # A policy-rc.d for the install: mariadb-server must not start a server of the system's.
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    policy=/usr/sbin/policy-rc.d
  fi
  status=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" || status=$?
  [ -z "$policy" ] || rm -f "$policy"
  [ "$status" = 0 ] || exit "$status"
fi
# The front tests run the server behind Debian's nginx, as the Docker image does.
if ! command -v nginx >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nginx
fi
# In CI the browser and mysql tests must run, not skip.
if [ "${CI:-}" = true ] && ! command -v chromium >/dev/null 2>&1; then
  echo "chromium is missing: the browser tests cannot run (install Debian's chromium)" >&2
  exit 1
fi
if [ "${CI:-}" = true ] && ! has_mariadbd; then
  echo "mariadbd is missing: the mysql tests cannot run (install Debian's mariadb-server)" >&2
  exit 1
fi
# The browser tests inject axe-core into every page: npm installs the pinned version (npm ci).
if [ ! -f tests/support/axe/node_modules/axe-core/axe.min.js ]; then
  if ! command -v npm >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends npm
  fi
  if command -v npm >/dev/null 2>&1; then
    npm ci --prefix tests/support/axe --no-audit --no-fund --loglevel=error
  elif [ "${CI:-}" = true ]; then
    echo "npm is missing: the accessibility checks cannot run (install Debian's npm)" >&2
    exit 1
  fi
fi
# Lint, format and type check are part of the suite: CI fails on them like on a test.
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"

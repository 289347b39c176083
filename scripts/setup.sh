#!/usr/bin/env bash
# Create .venv and install the pinned requirements (skipped when they are already installed).
set -euo pipefail
cd "$(dirname "$0")/.."
requirements="${1:-requirements-dev.txt}"
python="${PYTHON:-python3}"
# Debian's python3 needs python3-venv for venvs with pip; install it when we may (as root).
if ! "$python" -c "import ensurepip" >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv
fi
# A venv left without pip by an earlier failed attempt is made again.
if ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
  rm -rf .venv
  "$python" -m venv .venv
fi
hash="$(cat requirements*.txt | sha256sum | cut -c1-16)"
stamp=".venv/.installed-$hash-$(basename "$requirements")"
# requirements-dev.txt installs requirements.txt too: its stamp covers both.
if [ ! -f "$stamp" ] && [ ! -f ".venv/.installed-$hash-requirements-dev.txt" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements"
  touch "$stamp"
fi

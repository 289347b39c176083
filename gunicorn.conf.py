"""gunicorn settings: `gunicorn -c gunicorn.conf.py` serves the app, in Docker and in the demo.

The master syncs the index once (in a child process, so it never imports torch before forking);
each worker then loads the model and index.csv, and serves. Tunables come from the environment.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

wsgi_app = "backend:create_app()"
bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
threads = int(os.environ.get("THREADS", "4"))
worker_class = "gthread"
# Loading the model and a large index.csv in a worker takes a while on a small machine.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
graceful_timeout = 30
keepalive = 5
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")
# No control socket: it would live in a shared place ($HOME) and nothing here uses it.
control_socket_disable = True

# Several inferences may run at once (threads, workers); split the cores between workers
# instead of letting each worker's torch use all of them. Read by torch when it loads.
os.environ.setdefault("OMP_NUM_THREADS", str(max((os.cpu_count() or 1) // workers, 1)))

# Every worker must sign and verify with the same key; one per server start when unset.
_generated_secret = "SECRET_KEY" not in os.environ
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(32))

# /metrics adds up every worker's counts from files in this folder (prometheus_client's
# multiprocess mode); set before any worker imports prometheus_client. A private temp folder
# per server start when unset.
_made_metrics_dir = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _made_metrics_dir:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="prometheus-")


def on_starting(server) -> None:
    """Sync index.csv before any worker starts, or stop with the reason."""
    _clear_metrics_dir()
    if _generated_secret:
        server.log.warning(
            "SECRET_KEY is not set: using a random key until the server restarts "
            "(refining a search after a restart then asks for the image again)"
        )
    server.log.info("syncing the index before starting the workers")
    done = subprocess.run([sys.executable, "-m", "backend.boot"], check=False)
    if done.returncode != 0:
        server.log.error("the index could not be synced (see above); not starting")
        on_exit(server)
        sys.exit(1)


def post_worker_init(worker) -> None:
    """Load the model and the index into this worker before it accepts requests."""
    from backend.boot import load_worker
    from backend.errors import SearchAppError

    worker.wsgi.debug = False  # never the debugger in production, whatever FLASK_DEBUG says
    try:
        load_worker(worker.wsgi)
    except SearchAppError as error:
        worker.log.error("worker cannot start: %s", error.message)
        sys.exit(3)  # gunicorn's "worker failed to boot": the master stops instead of retrying


def child_exit(server, worker) -> None:
    """Keep a dead worker's counts, but drop its gauges from /metrics."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:
    if _made_metrics_dir:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


def _clear_metrics_dir() -> None:
    """Counts of an earlier server run would be added to this one's: start from none."""
    folder = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()

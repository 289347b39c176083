"""gunicorn settings: `gunicorn -c gunicorn.conf.py` serves the app, in Docker and in the demo.

The master syncs the index once (in a child process, so it never imports torch before forking);
each worker then loads the model and index.csv, and serves. With a front (FRONT, nginx by
default when installed) nginx listens on HOST:PORT and buffers each whole request, and gunicorn
listens on a private unix socket, so slow clients cannot hold its threads (backend/serving/front.py).
Tunables come from the environment, read and checked as backend/config/server.py declares them
(docs/configuration.md#server-settings): a bad one stops the server with one line naming it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path


def _choose_front(kind: str, host: str, port: int, upstream_timeout: int):
    """The buffering front FRONT asks for (see backend/serving/front.py), or None."""
    from backend.config import Settings, load_settings
    from backend.errors import ConfigError
    from backend.serving.front import FrontError, choose_front

    try:
        settings = load_settings()
    except ConfigError:
        settings = Settings()  # the index sync reports the bad setting and stops the server
    try:
        return choose_front(kind, host, port, settings, upstream_timeout)
    except FrontError as error:
        sys.exit(f"cannot start: {error}")


def _server_settings():
    """The server's settings, or stop with the bad one named (never the app's: see above)."""
    from backend.config.server import load_server_settings
    from backend.errors import ConfigError

    try:
        return load_server_settings()
    except ConfigError as error:
        sys.exit(f"cannot start: {error}")


_server = _server_settings()
wsgi_app = "backend:create_app()"
_host, _port = _server.host, _server.port
workers = _server.web_concurrency
threads = _server.threads
worker_class = "gthread"
# Loading the model and a large index.csv in a worker takes a while on a small machine.
timeout = _server.gunicorn_timeout
graceful_timeout = 30
keepalive = 5
_front = _choose_front(_server.front, _host, _port, timeout)
bind = f"unix:{_front.socket}" if _front else f"{_host}:{_port}"
accesslog = "-"
# The path without its query string, and no referrer (a page's address with its query): a
# shopper's pasted image URL, a token or a name in a query string stays out of the log. With a
# front, the client's address as nginx saw it (gunicorn's peer is nginx's socket).
_client = "%({x-real-ip}i)s" if _front else "%(h)s"
access_log_format = _client + ' %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(a)s"'
errorlog = "-"
loglevel = _server.log_level
# No control socket: it would live in a shared place ($HOME) and nothing here uses it.
control_socket_disable = True

# Several inferences may run at once (threads, workers); split the cores between workers
# instead of letting each worker's torch use all of them. Read by torch when it loads.
os.environ.setdefault("OMP_NUM_THREADS", str(max((os.cpu_count() or 1) // workers, 1)))

# Every worker must sign and verify with the same key; one per server start when unset.
_generated_secret = _server.secret_key is None
if _generated_secret:
    os.environ["SECRET_KEY"] = secrets.token_urlsafe(32)

# /metrics adds up every worker's counts from files in this folder (prometheus_client's
# multiprocess mode); set before any worker imports prometheus_client. A private temp folder
# per server start when unset.
_made_metrics_dir = _server.prometheus_multiproc_dir is None
_metrics_dir = _server.prometheus_multiproc_dir or tempfile.mkdtemp(prefix="prometheus-")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


def on_starting(server) -> None:
    """Sync index.csv before any worker starts, or stop with the reason."""
    _clear_metrics_dir()
    if _generated_secret:
        server.log.warning(
            "SECRET_KEY is not set: using a random key until the server restarts "
            "(refining a search after a restart then asks for the image again)"
        )
    server.log.info("syncing the index before starting the workers")
    done = subprocess.run([sys.executable, "-m", "backend.serving.boot"], check=False)
    if done.returncode != 0:
        server.log.error("the index could not be synced (see above); not starting")
        on_exit(server)
        sys.exit(1)


def when_ready(server) -> None:
    """Start the front once gunicorn listens on its socket; stop everything if it dies."""
    if _front is None:
        server.log.warning(
            "no buffering front (FRONT=%s%s): slow clients can hold request threads; "
            "expose this server only behind a proxy that buffers requests",
            _server.front,
            ", nginx is not installed" if _server.front == "auto" else "",
        )
        return
    _front.start()
    server.log.info("nginx front on %s:%s, gunicorn on %s", _host, _port, _front.socket)

    def front_stopped(code: int) -> None:
        server.log.error("the nginx front stopped (exit status %s); stopping", code)
        os.kill(os.getpid(), signal.SIGTERM)

    _front.watch(front_stopped)


def pre_request(worker, req) -> None:
    """Close the connection after a request whose body the app refuses unread (413)."""
    limit = worker.wsgi.config.get("MAX_CONTENT_LENGTH")
    length = next((value for name, value in req.headers if name == "CONTENT-LENGTH"), "")
    if limit and length.isdigit() and int(length) > limit:
        # Else the answer says keep-alive while the unread body is still arriving.
        req.must_close = True


def post_worker_init(worker) -> None:
    """Load the model and the index into this worker before it accepts requests."""
    from backend.errors import SearchAppError
    from backend.images.budget import return_large_blocks_to_the_system
    from backend.serving.boot import load_worker

    worker.wsgi.debug = False  # never the debugger in production, whatever FLASK_DEBUG says
    return_large_blocks_to_the_system()  # decoded images, freed, must not stay in the worker
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
    """Stop the nginx front and remove the metrics folder this server made."""
    if _front is not None:
        _front.stop()
    if _made_metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)


def _clear_metrics_dir() -> None:
    """Counts of an earlier server run would be added to this one's: start from none."""
    folder = Path(_metrics_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()

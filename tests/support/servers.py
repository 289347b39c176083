"""The app served for real in tests: in a thread (`serve_app`), or as the Docker image runs it
(`gunicorn`, the Dockerfile's exact CMD), with the JSON requests and readiness wait they share."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from werkzeug.serving import make_server

from tests.support.catalogs import TEST_MODEL, write_catalog

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


@contextlib.contextmanager
def serve_app(app) -> Iterator[str]:
    """The app on a real HTTP server on 127.0.0.1, in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def instructions(name: str) -> list[str]:
    return [args for instruction, args in dockerfile() if instruction == name]


def image_command() -> list[str]:
    """The Docker image's CMD."""
    (command,) = instructions("CMD")
    return json.loads(command)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(tmp_path: Path, port: int, **extra: str) -> dict[str, str]:
    """The environment of a gunicorn server on a small shop under `tmp_path` (TEST_MODEL with
    random weights). Everything it writes is under `tmp_path`, its temporary folders (the
    front's, the metrics') too: another server on this machine (a demo) never shares them."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("SECRET_KEY", "MODEL_WEIGHTS", "PROMETHEUS_MULTIPROC_DIR")
    }
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir(parents=True, exist_ok=True)
    return (
        env
        | {
            "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
            "PORT": str(port),
            "HOST": "127.0.0.1",
            "WEB_CONCURRENCY": "1",
            "THREADS": "2",
            "MODEL": TEST_MODEL,
            "MODEL_WEIGHTS": "random",
            "CATALOG_PATH": str(write_catalog(tmp_path / "shop")),
            "INDEX_PATH": str(tmp_path / "data" / "index.csv"),
            "CACHE_DIR": str(tmp_path / "data" / "cache"),
            "TMPDIR": str(private_tmp),
        }
        | extra
    )


@contextlib.contextmanager
def running(
    command: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT
) -> Iterator[subprocess.Popen]:
    """Run a command in its own process group, output to `log`; stop the group afterwards."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def gunicorn(env: dict[str, str], log: Path):
    """Run the image's exact CMD from the repository root; stop it (and its workers) afterwards."""
    return running(image_command(), env, log)


def request_json(
    url: str, data: bytes | None = None, headers: dict | None = None, timeout: float = 30
) -> tuple[int, dict]:
    """(status, JSON body) of a GET, or of a POST when `data` is given; 4xx/5xx included."""
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, data=data, headers=headers or {}), timeout=timeout
        ) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.load(error)


def wait_ready(base: str, process: subprocess.Popen, log: Path, seconds: float = 120) -> dict:
    """Poll /readyz until it answers 200 (its body is returned); fail if the server exits."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the server exited:\n{log.read_text()}"
        try:
            status, body = request_json(f"{base}/readyz", timeout=5)
        except OSError:
            status = None
        if status == 200:
            return body
        time.sleep(0.3)
    raise AssertionError(f"not ready in {seconds} s:\n{log.read_text()}")

"""Schemathesis against the public and the admin API, over real HTTP: whatever it generates from
the OpenAPI document (valid and invalid data), the server never answers 5xx, and every answer
is one the document describes (status, content type, headers, body schema); invalid data is
refused.

The app runs in a real HTTP server on 127.0.0.1 with the admin API enabled; a WSGI wrapper
records every response of status 500 or more. Every check runs and any failure fails the test,
but one: a request the schema allows may still be refused (400), for what no JSON Schema can
say: an image URL that cannot be fetched, bytes that are not an image, a category the catalog
does not have, min_price above max_price. A short pass runs with the fast tests, a long one is
slow.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from backend import create_app
from backend.extensions import get_service
from tests.support.catalogs import make_app_config, write_catalog

TOKEN = "s3cret-admin-token-for-tests"
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
# Valid by the schema yet refused: the world decides (see the module's docstring).
NOT_CHECKED = "positive_data_acceptance"


class ServerErrors:
    """WSGI wrapper: passes every request on, keeping (method, path, status) of each 5xx."""

    def __init__(self, app) -> None:
        self.app = app
        self.seen: list[tuple[str, str, str]] = []
        self.requests = 0

    def __call__(self, environ, start_response):
        def record(status, headers, *args):
            self.requests += 1
            if status[:1] == "5":
                self.seen.append((environ["REQUEST_METHOD"], environ["PATH_INFO"], status))
            return start_response(status, headers, *args)

        return self.app(environ, record)


@pytest.fixture(scope="module")
def api(tmp_path_factory) -> Iterator[tuple[str, ServerErrors]]:
    root = tmp_path_factory.mktemp("schemathesis")
    # The colour histogram (no torch) serves the same API and starts in a moment.
    config = make_app_config(root, write_catalog(root / "shop")) | {"model": "color_histogram"}
    # Not TESTING: an unhandled error must become the 500 a client would get, not a traceback.
    app = create_app(config | {"TESTING": False, "admin_token": TOKEN})
    get_service(app).sync()
    recorder = ServerErrors(app)
    server = make_server("127.0.0.1", 0, recorder, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def run_schemathesis(base: str, cwd: Path, examples: int, phases: str) -> str:
    command = [
        str(SCHEMATHESIS),
        "run",
        f"{base}/api/openapi.json",
        "--checks",
        "all",
        "--exclude-checks",
        NOT_CHECKED,
        "--header",
        f"Authorization: Bearer {TOKEN}",
        "--max-examples",
        str(examples),
        "--phases",
        phases,
        "--seed",
        "20251",
        "--generation-database",
        "none",
        "--request-timeout",
        "30",
        "--no-color",
    ]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=900)
    print(done.stdout[-6000:], done.stderr[-2000:])
    assert "API Operations:" in done.stdout, done.stdout + done.stderr  # it ran
    # Any failure of any check (a 5xx, an undocumented status, content type or header, a body
    # off its schema, invalid data accepted) makes schemathesis exit non-zero.
    assert done.returncode == 0, done.stdout[-12000:]
    return done.stdout


def check_the_api_keeps_its_document(api, tmp_path, examples: int, phases: str) -> None:
    base, recorder = api
    before = recorder.requests
    output = run_schemathesis(base, tmp_path, examples, phases)
    assert recorder.requests - before > 20, output  # a pass of a few requests proves nothing
    assert recorder.seen == []
    assert "Server error" not in output


# Slow: a subprocess of its own, about 4 s; the fast suite checks answers in test_openapi.py.
@pytest.mark.slow
def test_a_short_schemathesis_pass_finds_the_api_as_documented(api, tmp_path):
    check_the_api_keeps_its_document(api, tmp_path, examples=5, phases="examples,fuzzing")


@pytest.mark.slow
def test_a_long_schemathesis_pass_finds_the_api_as_documented(api, tmp_path):
    check_the_api_keeps_its_document(
        api, tmp_path, examples=100, phases="examples,coverage,fuzzing,stateful"
    )

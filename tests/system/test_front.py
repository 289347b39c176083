"""The server as the Docker image runs it, behind its nginx front: slow clients cannot starve
it, early refusals close the connection, and every answer carries the security headers."""

from __future__ import annotations

import os
import shutil
import socket
import time

import pytest
import requests

from bench.slow_clients import Trickle
from tests.support.catalogs import draw_image, image_bytes
from tests.support.servers import free_port, gunicorn, server_env, wait_ready

pytestmark = pytest.mark.slow

if shutil.which("nginx") is None:
    if os.environ.get("CI") == "true":
        raise RuntimeError("nginx is missing: the front tests cannot run (install Debian's nginx)")
    pytest.skip("nginx is not installed (scripts/test.sh installs it)", allow_module_level=True)

TENT = image_bytes(draw_image("yellow", "triangle"))
CSP = "Content-Security-Policy"


@pytest.fixture(scope="module", params=["nginx", "none"])
def server(request, tmp_path_factory):
    """The image's command with FRONT=nginx (the default where nginx is installed), and without."""
    tmp_path = tmp_path_factory.mktemp(f"front-{request.param}")
    port = free_port()
    env = server_env(tmp_path, port, FRONT=request.param, THREADS="4", MAX_UPLOAD_MB="1")
    log = tmp_path / "gunicorn.log"
    with gunicorn(env, log) as process:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, process, log)
        fronts = list((tmp_path / "tmp").glob("search-front-*/nginx.pid"))
        assert len(fronts) == (request.param == "nginx")  # its own, not another server's
        yield request.param, port, base, log
    # The front stopped with the server: its folder (in the server's own TMPDIR) has no pid file.
    assert not list((tmp_path / "tmp").glob("search-front-*/nginx.pid"))


def search_seconds(base: str) -> float:
    started = time.monotonic()
    response = requests.post(base + "/api/search", files={"file": ("t.png", TENT)}, timeout=20)
    assert response.status_code == 200 and response.json()["results"][0]["id"] == "p5"
    return time.monotonic() - started


def test_fifty_slow_clients_leave_the_search_answering(server):
    front, port, base, _ = server
    if front == "none":
        pytest.skip("without a front, four slow clients hold every thread (bench.slow_clients)")
    attacks = [Trickle.headers(port, 25), Trickle.bodies(port, 25)]
    try:
        time.sleep(2)
        assert requests.get(base + "/healthz", timeout=5).status_code == 200
        # Without the front this times out (see bench.slow_clients); 1 s on an idle machine.
        assert min(search_seconds(base) for _ in range(3)) < 3
    finally:
        for attack in attacks:
            attack.close()


def raw(port: int, request: bytes) -> bytes:
    """Send bytes on a fresh connection and return what comes back until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:  # closed with our unread bytes pending: after its answer
            assert answer, "reset before any answer"
    return answer


def test_an_early_413_closes_the_connection(server):
    _, port, _, _ = server
    head = (b"POST /api/search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; "
            b"boundary=x\r\nContent-Length: 50000000\r\n\r\n")  # fmt: skip
    answer = raw(port, head + b"a" * 1000)  # the rest of the body never comes
    status, _, rest = answer.partition(b"\r\n")
    assert status.split()[1] == b"413"
    headers = rest.split(b"\r\n\r\n")[0].lower()
    assert b"connection: close" in headers and b"content-security-policy" in headers
    # raw() returned: the server closed the connection after answering, as it said it would.


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
        b"NOT A REQUEST\r\n\r\n",
    ],
    ids=["uri-too-long", "header-too-large", "malformed"],
)
def test_the_servers_own_error_pages_carry_the_security_headers(server, request_bytes):
    front, port, _, _ = server
    answer = raw(port, request_bytes)
    status = answer.split(b"\r\n", 1)[0]
    assert status.split()[1][:1] == b"4", status
    if front == "none":
        pytest.skip("gunicorn's own error pages have no security headers: serve behind the front")
    assert b"content-security-policy: default-src 'self'" in answer.lower()
    assert b"x-frame-options: deny" in answer.lower()


def test_the_front_logs_each_request_and_passes_the_app_headers_once(server):
    front, _, base, log = server
    response = requests.get(base + "/healthz", timeout=5)
    assert response.headers[CSP].count("default-src") == 1  # not the app's and nginx's
    if front == "nginx":
        time.sleep(0.5)
        assert '"GET /healthz HTTP/1.1" 200' in log.read_text()

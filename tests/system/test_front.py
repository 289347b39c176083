"""The server as the Docker image runs it, behind its nginx front: slow clients cannot starve
it, early refusals close the connection, and every answer carries the security headers."""

from __future__ import annotations

import contextlib
import html
import http.client
import json
import os
import shutil
import socket
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from backend.serving.front import CONNECTIONS_PER_CLIENT, REQUEST_BURST
from backend.web.security import FORM_OVERHEAD_BYTES
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
LIMIT = 1024 * 1024  # MAX_UPLOAD_MB=1
TOO_LARGE = "the upload is larger than the 1 MB limit; choose a smaller image"


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
    head = (
        b"POST /api/search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; "
        b"boundary=x\r\nContent-Length: 50000000\r\n\r\n"
    )
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


# ---------------------------------------------------------------- uploads over the limit
def multipart(data: bytes) -> tuple[bytes, dict[str, str]]:
    head = (
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n"
    )
    return head + data + b"\r\n--b--\r\n", {"Content-Type": "multipart/form-data; boundary=b"}


def assert_too_large(response: requests.Response, page: bool) -> None:
    assert response.status_code == 413, response.text[:300]
    if page:  # the site's own error page, not nginx's bare one
        assert response.headers["Content-Type"].startswith("text/html")
        page_text = html.unescape(response.text).lower()
        assert TOO_LARGE.lower() in page_text and 'rel="stylesheet"' in page_text
    else:
        assert response.json() == {"error": "too_large", "message": TOO_LARGE}
    assert response.headers[CSP].count("default-src") == 1


@pytest.mark.parametrize(
    "file_bytes",
    [LIMIT + 1, LIMIT + FORM_OVERHEAD_BYTES + 1, LIMIT + FORM_OVERHEAD_BYTES + 512 * 1024],
    ids=["just-over-the-upload-limit", "just-over-the-request-limit", "half-a-mb-over"],
)
def test_100_concurrent_uploads_over_the_limit_all_get_the_apps_413(server, file_bytes):
    _, _, base, _ = server
    body, headers = multipart(b"\xff" * file_bytes)

    def send(_: int) -> requests.Response:
        return requests.post(base + "/api/search", data=body, headers=headers, timeout=60)

    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(send, range(100)))
    statuses = [response.status_code for response in responses]
    assert statuses == [413] * 100  # a 502 in 7 of 100 when the app refused a body unread
    for response in responses:
        assert_too_large(response, page=False)


@pytest.mark.parametrize("megabytes", [3, 12])
@pytest.mark.parametrize("endpoint", ["form", "api"])
def test_a_large_upload_gets_the_apps_413_page_or_json(server, endpoint, megabytes):
    _, _, base, _ = server
    body, headers = multipart(b"\xff" * megabytes * 1024 * 1024)
    path, accept = ("/search", "text/html") if endpoint == "form" else ("/api/search", "*/*")
    response = requests.post(
        base + path, data=body, headers=headers | {"Accept": accept}, timeout=60
    )
    assert_too_large(response, page=endpoint == "form")


# ---------------------------------------------------------------- what the access log keeps
def test_the_access_log_keeps_the_path_without_its_query_string(server):
    _, _, base, log = server
    secret = "pasted-token-4f2a9c"
    response = requests.get(
        f"{base}/healthz?image_url=https://cdn.example/x.png%3Ftoken%3D{secret}&t={secret}",
        headers={"Referer": f"{base}/search?image_url={secret}"},
        timeout=5,
    )
    assert response.status_code == 200
    time.sleep(0.5)
    text = log.read_text()
    assert '"GET /healthz HTTP/1.1" 200' in text
    assert secret not in text


# ---------------------------------------------------------------- slow-body flood, per client
def connect(port: int, source: str, timeout: float = 10) -> socket.socket:
    """A connection from one loopback address (all of 127/8 is this machine)."""
    return socket.create_connection(("127.0.0.1", port), timeout, source_address=(source, 0))


def served(port: int, source: str, method: str, path: str, data: bytes | None = None) -> int:
    """The status of one whole request from `source`, 0 if it was not answered."""
    connection = http.client.HTTPConnection("127.0.0.1", port, 10, source_address=(source, 0))
    try:
        headers = multipart(data)[1] if data else {}
        connection.request(method, path, multipart(data)[0] if data else None, headers)
        response = connection.getresponse()
        body = response.read()
        if path == "/api/search" and response.status == 200:
            assert json.loads(body)["results"][0]["id"] == "p5"
        return response.status
    except OSError:
        return 0
    finally:
        connection.close()


def open_count(sockets: list[socket.socket]) -> int:
    """Connections the server has not closed: a read that would block means still open."""
    still_open = 0
    for sock in sockets:
        sock.setblocking(False)
        try:
            while sock.recv(65536):  # an answer (429, 408) may come before the close
                pass
        except BlockingIOError:
            still_open += 1
        except OSError:
            pass
    return still_open


class FromAddress(requests.adapters.HTTPAdapter):
    """A requests adapter whose connections come from one loopback address."""

    def __init__(self, source: str) -> None:
        self.source = source
        super().__init__()

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, source_address=(self.source, 0), **kwargs)


class SlowBodies:
    """`count` connections from `source` sending whole headers, then a byte every `every` s."""

    HEAD = (
        b"POST /api/search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000\r\n\r\n"
    )

    def __init__(self, port: int, source: str, count: int, every: float) -> None:
        self.sockets = []
        for _ in range(count):
            sock = connect(port, source)
            sock.sendall(self.HEAD)
            self.sockets.append(sock)
        self.every, self.stop = every, threading.Event()
        self.thread = threading.Thread(target=self.drip, daemon=True)
        self.thread.start()

    def drip(self) -> None:
        while not self.stop.wait(self.every):
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.send(b" ")

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        for sock in self.sockets:
            sock.close()


def test_a_slow_body_flood_of_1100_connections_leaves_other_clients_served(server):
    front, port, _, _ = server
    if front == "none":
        pytest.skip("without a front, four slow clients hold every thread")
    # More than nginx's 1,024 slots of before; a byte every 2 s, within the body timeout, so only
    # the per-client limit stops them.
    flood = SlowBodies(port, "127.0.0.2", 1100, every=2)
    try:
        time.sleep(6)
        assert served(port, "127.0.0.3", "GET", "/healthz") == 200
        assert served(port, "127.0.0.3", "POST", "/api/search", TENT) == 200
        # The flooding address keeps only its share; the rest were refused (429) and closed.
        assert open_count(flood.sockets) <= CONNECTIONS_PER_CLIENT
        assert served(port, "127.0.0.2", "GET", "/healthz") == 429
        refused = requests.Session()
        refused.mount("http://", FromAddress("127.0.0.2"))
        response = refused.post(f"http://127.0.0.1:{port}/api/search", files={"file": TENT})
        assert response.status_code == 429 and response.json()["error"] == "too_many_requests"
        assert response.headers[CSP].count("default-src") == 1
    finally:
        flood.close()


def test_a_byte_every_5_seconds_is_cut_off(server):
    front, port, _, _ = server
    if front == "none":
        pytest.skip("gunicorn alone waits for a slow body as long as its worker timeout")
    bodies = SlowBodies(port, "127.0.0.4", 10, every=5)
    headers = [connect(port, "127.0.0.4") for _ in range(10)]
    for sock in headers:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # and nothing more
    try:
        time.sleep(12)
        assert open_count(bodies.sockets) == 0 and open_count(headers) == 0
    finally:
        bodies.close()
        for sock in headers:
            sock.close()


def test_one_address_past_its_request_rate_gets_429_and_others_do_not(server):
    front, port, _, _ = server
    if front == "none":
        pytest.skip("gunicorn alone has no per-client limits")
    with ThreadPoolExecutor(16) as pool:
        statuses = Counter(
            pool.map(lambda _: served(port, "127.0.0.5", "GET", "/healthz"), range(400))
        )
    # A page of 100 thumbnails at once is served; 400 requests at once are not.
    assert statuses[200] >= REQUEST_BURST and statuses[429] > 0
    assert set(statuses) == {200, 429}
    assert served(port, "127.0.0.6", "GET", "/healthz") == 200

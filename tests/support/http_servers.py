"""Real HTTP servers on 127.0.0.1 for tests: one route per kind of answer, hostile ones included."""

from __future__ import annotations

import gzip
import io
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 3), (200, 30, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


PNG = png_bytes()


class ImageServer(ThreadingHTTPServer):
    """A local server with one route per kind of answer; records (path, Host) of each request.

    `routes` adds to or overrides ROUTES; a key ending in "/" answers every path under it.
    """

    daemon_threads = True
    request_queue_size = 64  # the default backlog of 5 drops connects under the concurrent test

    def __init__(self, routes: dict[str, Route] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.routes = {**ROUTES, **(routes or {})}
        self.seen: list[tuple[str, str]] = []
        self.sni: list[str | None] = []  # TLS server names asked for, HTTPS only
        self.stopping = threading.Event()

    def handle_error(self, request, client_address) -> None:
        pass  # clients hang up mid-answer on purpose here

    @property
    def port(self) -> int:
        return self.server_address[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


class Handler(BaseHTTPRequestHandler):
    timeout = 5

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.seen.append((self.path, self.headers.get("Host", "")))
        routes = self.server.routes
        route = routes.get(self.path) or routes.get(self.path.rsplit("/", 1)[0] + "/")
        with suppress(OSError):  # the fetcher hangs up, as it should on the hostile routes
            route(self) if route else self.reply(404, "text/plain", b"no such route")

    def reply(self, status: int, content_type: str | None, body: bytes, **headers: str) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", headers.pop("length", str(len(body))))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, location: str) -> None:
        self.reply(302, "text/plain", b"", Location=location)

    def raw(self, head: str) -> None:
        """Write a status line and headers by hand, for answers send_response cannot make."""
        self.close_connection = True
        self.wfile.write(head.replace("\n", "\r\n").encode() + b"\r\n")

    def dribble(self, data: bytes) -> None:
        """Send data one byte at a time, until the client hangs up or the server stops."""
        for byte in data:
            if self.server.stopping.wait(0.05):
                return
            self.wfile.write(bytes([byte]))
            self.wfile.flush()

    def stream(self, chunk: bytes, encode: Callable[[bytes], bytes] = lambda b: b) -> None:
        """Send chunks until the client hangs up; bounded so a bug cannot spin forever."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not self.server.stopping.is_set():
            self.wfile.write(encode(chunk))


Route = Callable[[Handler], None]
ROUTES: dict[str, Route] = {
    "/cat.png": lambda h: h.reply(200, "image/png", PNG),
    "/cat-with-params.png": lambda h: h.reply(200, "Image/PNG; charset=binary", PNG),
    "/redirect": lambda h: h.redirect("/cat.png"),
    "/hop/": lambda h: h.redirect(f"/hop/{int(h.path.rsplit('/', 1)[1]) + 1}"),
    "/loop-a": lambda h: h.redirect("/loop-b"),
    "/loop-b": lambda h: h.redirect("/loop-a"),
    "/to-private": lambda h: h.redirect("http://10.0.0.5/cat.png"),
    "/to-metadata": lambda h: h.redirect("http://169.254.169.254/latest/meta-data/"),
    "/to-file": lambda h: h.redirect("file:///etc/passwd"),
    "/missing": lambda h: h.reply(404, "image/png", PNG),
    "/page": lambda h: h.reply(200, "text/html; charset=utf-8", b"<html>not a picture</html>"),
    "/untyped": lambda h: h.reply(200, None, PNG),
    "/gzip": lambda h: h.reply(200, "image/png", gzip.compress(PNG), Content_Encoding="gzip"),
    "/huge": lambda h: (
        h.reply(200, "image/png", b"", length=str(10**12)),
        h.server.stopping.wait(3),
    ),
    "/drip": lambda h: (h.reply(200, "image/png", b"", length="100000"), h.dribble(b"x" * 100)),
    "/drip-headers": lambda h: (
        h.raw("HTTP/1.0 200 OK\nContent-Type: image/png"),
        h.dribble(b"X-Slow: " + b"a" * 100),
    ),
    "/endless": lambda h: (
        h.raw("HTTP/1.0 200 OK\nContent-Type: image/png\n"),
        h.stream(b"\0" * 16384),
    ),
    "/endless-chunked": lambda h: (
        h.raw("HTTP/1.1 200 OK\nContent-Type: image/png\nTransfer-Encoding: chunked\n"),
        h.stream(b"\0" * 16384, lambda b: b"%x\r\n%s\r\n" % (len(b), b)),
    ),
}


def serve(server: ImageServer) -> Iterator[ImageServer]:
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(5)

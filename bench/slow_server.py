"""A local image server that answers every request after a fixed delay, like a distant CDN."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class SlowImageServer:
    """Serve `root/images/*` on 127.0.0.1 with `latency` s added to each response.

    Bounded: at most `max_concurrent` requests are answered at once (the rest wait), and the
    server shuts itself down after `lifetime` s even if the caller never stops it.
    """

    def __init__(
        self, root: Path, latency: float = 0.1, lifetime: float = 1800, max_concurrent: int = 64
    ) -> None:
        self.root = root.resolve()
        self.latency = latency
        self.requests = 0
        self.in_flight = 0
        self.peak = 0  # most requests answered at once
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._timer = threading.Timer(lifetime, self.stop)
        self._timer.daemon = True

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def url(self, relative: str) -> str:
        return f"http://127.0.0.1:{self.port}/{relative}"

    def __enter__(self) -> SlowImageServer:
        self._thread.start()
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._timer.cancel()
        if self._thread.is_alive():
            self._httpd.shutdown()
        self._httpd.server_close()

    def _file(self, url_path: str) -> Path | None:
        candidate = (self.root / url_path.lstrip("/")).resolve()
        images = self.root / "images"
        return candidate if candidate.is_relative_to(images) and candidate.is_file() else None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                with server._slots:
                    with server._lock:
                        server.requests += 1
                        server.in_flight += 1
                        server.peak = max(server.peak, server.in_flight)
                    try:
                        self._answer()
                    finally:
                        with server._lock:
                            server.in_flight -= 1

            def _answer(self) -> None:
                time.sleep(server.latency)
                path = server._file(self.path.split("?")[0])
                body = path.read_bytes() if path else b"not found"
                self.send_response(200 if path else 404)
                self.send_header("Content-Type", "image/jpeg" if path else "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass  # quiet: thousands of requests

        return Handler

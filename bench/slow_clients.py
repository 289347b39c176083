"""Time to answer under slow-client and slow-upstream attacks, with and without the nginx front.

    .venv/bin/python -m bench.slow_clients [--connections 50] [--drips 4] [--front none nginx]
                                           [--root PATH] [--samples 5]

For each front (`FRONT=none`: gunicorn alone, as the Docker image ran before; `FRONT=nginx`:
nginx buffering whole requests in front of gunicorn), starts the server as the Docker image
does (`gunicorn --config gunicorn.conf.py`, demo catalog, MODEL_WEIGHTS=random, 127.0.0.1, a
free port) and measures `GET /healthz` and a photo search (`POST /api/search`, 640x480 JPEG):

- idle;
- while N connections trickle their request headers, one byte a second each;
- while N connections send whole headers, then trickle a 100 kB body one byte a second;
- while K clients keep pasting image URLs of a local server that drips one byte a second.

Each figure is the slowest of `--samples` requests (seconds; "timeout" past 15 s), plus the
server's resident memory (gunicorn master, worker and nginx, summed). `--root` runs another
checkout's server (to measure a version before a change). Nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench.api_latency import free_port, multipart, query_jpeg

ROOT = Path(__file__).resolve().parent.parent
WORK_DIR = ROOT / "bench" / "data" / "slow_clients"  # git-ignored: index and logs
TIMEOUT = 15.0


class Trickle:
    """N connections that each send one more byte a second and never finish their request."""

    def __init__(self, port: int, connections: int, head: bytes, then: bytes) -> None:
        self.sockets: list[socket.socket] = []
        for _ in range(connections):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(head)
            self.sockets.append(sock)
        self._then = then
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drip, daemon=True)
        self._thread.start()

    @classmethod
    def headers(cls, port: int, connections: int) -> Trickle:
        """Requests whose header lines arrive a byte at a time (a "slowloris")."""
        return cls(port, connections, b"GET /healthz HTTP/1.1\r\n", b"X-Slow: " + b"a" * 4000)

    @classmethod
    def bodies(cls, port: int, connections: int) -> Trickle:
        """Whole headers announcing a 100 kB body that then arrives a byte at a time."""
        head = (
            b"POST /api/search HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
        )
        return cls(port, connections, head, b'{"image_url": "' + b"a" * 99_000)

    def _drip(self) -> None:
        for index in range(len(self._then)):
            if self._stop.wait(1.0):
                return
            for sock in list(self.sockets):
                try:
                    sock.send(self._then[index : index + 1])
                except OSError:
                    self.sockets.remove(sock)  # the server gave up on it: fine
                    sock.close()

    def close(self) -> None:
        self._stop.set()
        for sock in self.sockets:
            sock.close()


class DripImages:
    """A local image host answering every request at one byte a second, and K clients that
    keep pasting its URL into searches, each starting again as soon as it is answered."""

    def __init__(self, port: int, clients: int) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _DripHandler)
        self.server.daemon_threads = True
        self.stopping = threading.Event()
        self.server.stopping = self.stopping
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{self.server.server_address[1]}/drip.jpg"
        body = json.dumps({"image_url": url}).encode()
        self.threads = [
            threading.Thread(target=self._search, args=(port, body), daemon=True)
            for _ in range(clients)
        ]
        for thread in self.threads:
            thread.start()

    def _search(self, port: int, body: bytes) -> None:
        while not self.stopping.is_set():
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            try:
                connection.request(
                    "POST", "/api/search", body, {"Content-Type": "application/json"}
                )
                connection.getresponse().read()
            except (OSError, http.client.HTTPException):
                pass
            finally:
                connection.close()
            self.stopping.wait(0.5)  # then paste it again

    def close(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


class _DripHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", "100000")
        self.end_headers()
        for _ in range(100_000):
            if self.server.stopping.wait(1.0):
                return
            try:
                self.wfile.write(b"x")
                self.wfile.flush()
            except OSError:
                return

    def log_message(self, *args: object) -> None:
        pass


def timed(port: int, method: str, path: str, body: bytes | None, headers: dict) -> float | None:
    """Seconds until the whole answer (any status but 5xx) arrived, or None past TIMEOUT."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        connection.request(method, path, body, headers)
        response = connection.getresponse()
        response.read()
        if response.status >= 500:
            return None
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()
    return time.perf_counter() - started


def probe(port: int, samples: int) -> dict[str, float | None]:
    """The slowest of `samples` health checks and of `samples` photo searches (None: timeout)."""
    photo, content_type = multipart(query_jpeg())
    kinds: dict[str, Callable[[], float | None]] = {
        "healthz": lambda: timed(port, "GET", "/healthz", None, {}),
        "search": lambda: timed(port, "POST", "/api/search", photo, {"Content-Type": content_type}),
    }
    worst: dict[str, float | None] = {}
    for name, ask in kinds.items():
        times = [ask() for _ in range(samples)]
        worst[name] = None if None in times else max(times)
    return worst


def server_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MB."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo += children.get(current, [])
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        total += next(
            (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0
        )
    return total / 1024


def start_server(root: Path, front: str, port: int, log: Path) -> subprocess.Popen:
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    env = os.environ | {
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "FRONT": front,
        "MODEL": "resnet18",
        "MODEL_WEIGHTS": "random",
        "INDEX_PATH": str(WORK_DIR / f"index-{hashlib.sha1(bytes(root)).hexdigest()[:8]}.csv"),
        "CACHE_DIR": str(WORK_DIR / "cache"),
        "SECRET_KEY": "bench",
        # UNSAFE outside tests: lets the app fetch from the local dripping image host.
        "FETCH_ALLOW_LOOPBACK": "true",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("CATALOG_PATH", None)
    with log.open("wb") as output:
        return subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "--config", "gunicorn.conf.py"],
            cwd=root,
            env=env,
            stdout=output,
            stderr=output,
            start_new_session=True,
        )


def wait_ready(port: int, server: subprocess.Popen, log: Path, seconds: float = 600) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited; see {log}")
        if timed(port, "GET", "/readyz", None, {}) is not None:
            return
        time.sleep(0.5)
    raise SystemExit(f"the server was not ready in time; see {log}")


def measure(root: Path, front: str, args: argparse.Namespace) -> list[dict]:
    port = free_port()
    log = WORK_DIR / f"gunicorn-{front}.log"
    server = start_server(root, front, port, log)
    rows = []
    try:
        wait_ready(port, server, log)
        attacks: dict[str, Callable[[], object]] = {
            "idle": lambda: None,
            f"{args.connections} slow headers": lambda: Trickle.headers(port, args.connections),
            f"{args.connections} slow bodies": lambda: Trickle.bodies(port, args.connections),
            f"{args.drips} slow image URLs": lambda: DripImages(port, args.drips),
        }
        for name, start in attacks.items():
            attack = start()
            time.sleep(3)  # let the attack take hold of what it can
            rows.append(
                {
                    "front": front,
                    "attack": name,
                    **probe(port, args.samples),
                    "rss_mb": server_rss_mb(server.pid),
                }
            )
            if attack is not None:
                attack.close()
            time.sleep(1)
            print(format_row(rows[-1]), flush=True)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    return rows


def format_row(row: dict) -> str:
    def seconds(value: float | None) -> str:
        return "timeout" if value is None else f"{value:.3f}"

    return (
        f"{row['front']:<6} {row['attack']:<22} {seconds(row['healthz']):>9} "
        f"{seconds(row['search']):>9} {row['rss_mb']:>8.0f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--drips", type=int, default=4, help="clients pasting dripping URLs")
    parser.add_argument("--front", nargs="+", default=["none", "nginx"])
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to serve")
    parser.add_argument("--samples", type=int, default=5)
    args = parser.parse_args(argv)
    print(
        f"slowest of {args.samples} answers, seconds (target: search within 1 s); "
        f"{os.cpu_count()} CPUs; server {args.root}"
    )
    print(f"{'front':<6} {'attack':<22} {'healthz':>9} {'search':>9} {'RSS MB':>8}")
    rows = [row for front in args.front for row in measure(args.root.resolve(), front, args)]
    slow = [row for row in rows if row["front"] != "none" and (row["search"] or TIMEOUT) > 1]
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())

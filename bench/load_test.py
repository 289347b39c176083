"""Load test: concurrent clients send mixed traffic to gunicorn for a fixed time, over loopback.

    .venv/bin/python -m bench.load_test [--clients 16] [--duration 60] [--timeout 300]

Starts the server as the Docker image does (`gunicorn --config gunicorn.conf.py`) on the demo
catalog with MODEL_WEIGHTS=random, bound to 127.0.0.1 on a free port, and waits for /readyz
(the server of bench.api_latency: its index and gunicorn.log are under bench/data/api_latency).
Then each client loops over a weighted mix until the time is up: photo searches (JSON API and
form), searches by URL (from a local image server), "more like this" (JSON and page), catalog
pages and images, and bad inputs (corrupt or non-image uploads, a blocked URL, an oversized
body, an out-of-range option, an unknown product). Every answer must have the status its kind
expects. Prints the count and p50/p99 latency of each kind and overall, then stops the server.
Exits 1 on any 5xx, unexpected status or broken connection. Nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import os
import random
import select
import signal
import socket
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.api_latency import WORK_DIR as SERVER_DIR
from bench.api_latency import free_port, multipart, query_jpeg, start_server, wait_ready
from bench.slow_server import SlowImageServer

ROOT = Path(__file__).resolve().parent.parent
WORK_DIR = ROOT / "bench" / "data" / "load_test"  # git-ignored: the image served by URL
DEMO_CATALOG = ROOT / "backend" / "data" / "products.csv"
JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Kind:
    """One kind of request: how often it is sent, and the status it must get."""

    name: str
    weight: int
    expect: int


KINDS = [
    Kind("search upload (API)", 6, 200),
    Kind("search upload (form)", 2, 200),
    Kind("search by URL (API)", 2, 200),
    Kind("more like this (API)", 6, 200),
    Kind("more like this (page)", 2, 200),
    Kind("catalog page", 2, 200),
    Kind("catalog image", 2, 200),
    Kind("bad: truncated JPEG", 1, 400),
    Kind("bad: HTML as image", 1, 400),
    Kind("bad: blocked URL", 1, 400),
    Kind("bad: oversized body", 1, 413),
    Kind("bad: k out of range", 1, 400),
    Kind("bad: unknown product", 1, 404),
]


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {k.name: [] for k in KINDS})
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: Kind, status: int | None, elapsed_ms: float, detail: str) -> None:
        with self.lock:
            self.latencies[kind.name].append(elapsed_ms)
            if status != kind.expect:
                self.failures.append(f"{kind.name}: expected {kind.expect}, got {status} {detail}")


class Requests:
    """The request bodies, built once and shared by all clients."""

    def __init__(self, image_url: str) -> None:
        with DEMO_CATALOG.open(encoding="utf-8-sig", newline="") as handle:
            self.product_ids = [row["id"] for row in csv.DictReader(handle)]
        photo = query_jpeg()
        self.upload = multipart(photo)
        self.truncated = multipart(photo[: len(photo) // 3])
        self.html = multipart(b"<html><script>alert(1)</script></html>")
        self.oversized = multipart(os.urandom(11 * 1024 * 1024))  # over the 10 MB limit
        self.url = json.dumps({"image_url": image_url}).encode()
        self.blocked = json.dumps(
            {"image_url": "http://169.254.169.254/latest/meta-data/"}
        ).encode()

    def build(self, kind: Kind, rng: random.Random) -> tuple[str, str, bytes | None, dict]:
        """(method, path, body, headers) for one request of this kind."""
        product = rng.choice(self.product_ids)
        form = {"Content-Type": self.upload[1]}
        table = {
            "search upload (API)": ("POST", "/api/search", self.upload[0], form),
            "search upload (form)": ("POST", "/search", self.upload[0], form),
            "search by URL (API)": ("POST", "/api/search", self.url, JSON),
            "more like this (API)": ("GET", f"/api/products/{product}/similar?k=12", None, {}),
            "more like this (page)": ("GET", f"/products/{product}/similar", None, {}),
            "catalog page": ("GET", f"/products?page={rng.randint(1, 5)}", None, {}),
            "catalog image": ("GET", f"/images/{product}", None, {}),
            "bad: truncated JPEG": (
                "POST",
                "/api/search",
                self.truncated[0],
                {"Content-Type": self.truncated[1]},
            ),
            "bad: HTML as image": (
                "POST",
                "/api/search",
                self.html[0],
                {"Content-Type": self.html[1]},
            ),
            "bad: blocked URL": ("POST", "/api/search", self.blocked, JSON),
            "bad: oversized body": (
                "POST",
                "/api/search",
                self.oversized[0],
                {"Content-Type": self.oversized[1]},
            ),
            "bad: k out of range": ("GET", f"/api/products/{product}/similar?k=1000", None, {}),
            "bad: unknown product": ("GET", "/api/products/no-such-id/similar", None, {}),
        }
        return table[kind.name]


def send_watching(
    port: int, method: str, path: str, body: bytes, headers: dict
) -> tuple[int | None, str]:
    """Send on a fresh connection, stopping as soon as the server answers: it may refuse an
    oversized body after its headers and close without reading the rest, as a browser expects."""
    head = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        view, sent = memoryview(body), 0
        while sent < len(view) and not select.select([sock], [], [], 0)[0]:
            try:
                sent += sock.send(view[sent : sent + 65536])
            except OSError:
                break  # closed by the server: its answer is already on the way
        answer = sock.recv(4096).decode("latin-1")
    status = answer.split(" ", 2)[1] if answer.startswith("HTTP/") else ""
    return (int(status) if status.isdigit() else None), answer[answer.find("\r\n\r\n") + 4 :][:160]


def send_keepalive(
    connection: http.client.HTTPConnection,
    method: str,
    path: str,
    body: bytes | None,
    headers: dict,
) -> tuple[int, str]:
    connection.request(method, path, body, headers)
    response = connection.getresponse()
    detail = response.read()[:160].decode(errors="replace")
    if response.will_close:
        connection.close()
    return response.status, detail


def client(port: int, requests: Requests, tally: Tally, stop_at: float, seed: int) -> None:
    """Send weighted random requests on one keep-alive connection until stop_at."""
    rng = random.Random(seed)
    weights = [kind.weight for kind in KINDS]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        while time.monotonic() < stop_at:
            kind = rng.choices(KINDS, weights)[0]
            method, path, body, headers = requests.build(kind, rng)
            started = time.perf_counter()
            try:
                if kind.expect == 413:
                    status, detail = send_watching(port, method, path, body, headers)
                else:
                    status, detail = send_keepalive(connection, method, path, body, headers)
            except (OSError, http.client.HTTPException) as error:
                status, detail = None, f"connection error: {error!r}"
                connection.close()
            tally.record(kind, status, (time.perf_counter() - started) * 1000, detail)
    finally:
        connection.close()


def percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def report(tally: Tally, ready: dict, args: argparse.Namespace, wall: float) -> None:
    print(
        f"{args.clients} clients for {args.duration:g} s against gunicorn "
        f"(WEB_CONCURRENCY={os.environ.get('WEB_CONCURRENCY', '1')}, "
        f"THREADS={os.environ.get('THREADS', '4')}), {ready['indexed']} products, "
        f"model {ready['model']}, {os.cpu_count()} CPUs"
    )
    print(f"{'kind':<24} {'count':>6} {'p50 ms':>8} {'p99 ms':>8}")
    every = []
    for kind in KINDS:
        values = tally.latencies[kind.name]
        every += values
        print(
            f"{kind.name:<24} {len(values):>6} {percentile(values, 50):>8.1f} {percentile(values, 99):>8.1f}"
        )
    print(
        f"{'all':<24} {len(every):>6} {percentile(every, 50):>8.1f} {percentile(every, 99):>8.1f}"
        f"   ({len(every) / wall:.1f} requests/s)"
    )
    server_errors = [failure for failure in tally.failures if " got 5" in failure]
    print(
        f"5xx answers: {len(server_errors)}; other unexpected answers: "
        f"{len(tally.failures) - len(server_errors)}"
    )
    for failure in tally.failures[:10]:
        print("  " + failure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=60, help="seconds of load")
    parser.add_argument(
        "--timeout", type=float, default=300, help="give up after this many seconds"
    )
    args = parser.parse_args(argv)
    deadline = time.monotonic() + args.timeout
    (WORK_DIR / "images").mkdir(parents=True, exist_ok=True)
    (WORK_DIR / "images" / "query.jpg").write_bytes(query_jpeg())
    SERVER_DIR.mkdir(parents=True, exist_ok=True)
    # UNSAFE outside tests: lets the app fetch from the local image server started here.
    os.environ["FETCH_ALLOW_LOOPBACK"] = "true"
    port = free_port()
    server = start_server(port, SERVER_DIR / "gunicorn.log")
    # A timer, not a check between phases: a stuck phase must not outlive the deadline.
    watchdog = threading.Timer(args.timeout, lambda: server.send_signal(signal.SIGTERM))
    watchdog.daemon = True
    watchdog.start()
    tally = Tally()
    try:
        with SlowImageServer(WORK_DIR, latency=0.0, lifetime=args.timeout) as images:
            ready = wait_ready(port, server, deadline)
            requests = Requests(images.url("images/query.jpg"))
            stop_at = time.monotonic() + args.duration
            started = time.perf_counter()
            threads = [
                threading.Thread(target=client, args=(port, requests, tally, stop_at, seed))
                for seed in range(args.clients)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - started
    finally:
        watchdog.cancel()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    report(tally, ready, args, wall)
    return 1 if tally.failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""End-to-end POST /api/search latency: gunicorn on the demo catalog, over loopback.

    .venv/bin/python -m bench.api_latency [--requests 200] [--concurrency 1,4]
                                          [--model resnet18] [--runtime onnx]

Starts the server exactly as the Docker image does (`gunicorn --config gunicorn.conf.py`, bound
to 127.0.0.1 on a free port; MODEL_WEIGHTS=random for the torchvision backbones, the real
weights for efficientnet_lite0), waits for /readyz, then sends a 640x480 JPEG N times from 1 and
from 4 concurrent clients (one keep-alive connection each) and prints p50 / p95 latency and
requests per second. It stops the server when done, and gives up after --timeout seconds in
all. Target (1 client, 2 cores, efficientnet_lite0 on ONNX Runtime): p50 <= 15 ms.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

from PIL import Image

from .common import DATA_DIR, MODEL_DIR, model_weights

ROOT = Path(__file__).resolve().parent.parent
DEMO_PHOTO = ROOT / "backend" / "static" / "catalog" / "100004.jpg"
TARGET_P50_MS = 15.0


def query_jpeg() -> bytes:
    """A 640x480 photo-like JPEG (a demo catalog photo, enlarged), as a phone upload would be."""
    image = Image.open(DEMO_PHOTO).convert("RGB").resize((640, 480), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def multipart(data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="query.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    return (
        head + data + f"\r\n--{boundary}--\r\n".encode(),
        f"multipart/form-data; boundary={boundary}",
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def work_dir(model: str, runtime: str) -> Path:
    """Git-ignored; each model and runtime keeps its index between runs."""
    return DATA_DIR / "api_latency" / f"{model}-{runtime}"


# Where a resnet18 server on ONNX Runtime (the script's default --model) keeps its index.
WORK_DIR = work_dir("resnet18", "onnx")


def start_server(
    port: int, log_path: Path, model: str = "resnet18", runtime: str = "onnx"
) -> subprocess.Popen:
    folder = work_dir(model, runtime)
    env = os.environ | {
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "MODEL": model,
        "MODEL_RUNTIME": runtime,
        "MODEL_DIR": str(MODEL_DIR),
        "INDEX_PATH": str(folder / "index.csv"),
        "CACHE_DIR": str(folder / "cache"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    weights = model_weights(model)
    if weights:
        env["MODEL_WEIGHTS"] = weights
    else:
        env.pop("MODEL_WEIGHTS", None)
    env.pop("CATALOG_PATH", None)  # the bundled demo catalog
    with log_path.open("wb") as log:
        return subprocess.Popen(
            ["gunicorn", "--config", "gunicorn.conf.py"], cwd=ROOT, env=env, stdout=log, stderr=log
        )


def wait_ready(
    port: int, server: subprocess.Popen, deadline: float, log: Path = WORK_DIR / "gunicorn.log"
) -> dict:
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited; see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                return json.load(response)
        except OSError:
            time.sleep(0.5)
    raise SystemExit("the server was not ready in time")


def run_clients(port: int, body: bytes, content_type: str, total: int, clients: int) -> dict:
    """Send `total` searches from `clients` threads; return latency figures in ms."""
    latencies: list[float] = []
    errors: list[str] = []
    remaining = iter(range(total))
    lock = threading.Lock()

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            while True:
                with lock:
                    if next(remaining, None) is None:
                        return
                started = time.perf_counter()
                connection.request("POST", "/api/search", body, {"Content-Type": content_type})
                response = connection.getresponse()
                payload = response.read()
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    latencies.append(elapsed)
                    if response.status != 200 or b'"results"' not in payload:
                        errors.append(f"HTTP {response.status}: {payload[:200]!r}")
        finally:
            connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if errors:
        raise SystemExit(f"{len(errors)} failed requests, e.g. {errors[0]}")
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "clients": clients,
        "requests": len(latencies),
        "p50_ms": round(statistics.median(latencies), 1),
        "p95_ms": round(cuts[94], 1),
        "max_ms": round(max(latencies), 1),
        "requests_per_s": round(len(latencies) / wall, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="searches per concurrency level")
    parser.add_argument("--warmup", type=int, default=10, help="searches before measuring")
    parser.add_argument("--concurrency", default="1,4", help="comma-separated client counts")
    parser.add_argument(
        "--timeout", type=float, default=600, help="give up after this many seconds"
    )
    parser.add_argument("--model", default="resnet18", help="MODEL to serve")
    parser.add_argument(
        "--runtime", default="onnx", choices=("onnx", "torch"), help="MODEL_RUNTIME"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    levels = [int(level) for level in args.concurrency.split(",")]
    deadline = time.monotonic() + args.timeout
    log = work_dir(args.model, args.runtime) / "gunicorn.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = start_server(port, log, args.model, args.runtime)
    # A timer, not a check between rounds: a stuck round must not outlive the deadline.
    watchdog = threading.Timer(args.timeout, lambda: server.send_signal(signal.SIGTERM))
    watchdog.daemon = True
    watchdog.start()
    try:
        ready = wait_ready(port, server, deadline, log)
        body, content_type = multipart(query_jpeg())
        run_clients(port, body, content_type, args.warmup, 1)
        rows = [run_clients(port, body, content_type, args.requests, level) for level in levels]
    finally:
        watchdog.cancel()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    report(rows, ready, args.json)
    return 0


def report(rows: list[dict], ready: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"server": ready, "rows": rows}, indent=2))
        return
    print(
        f"POST /api/search, 640x480 JPEG, {ready['indexed']} products, model {ready['model']}, "
        f"{os.cpu_count()} CPUs, WEB_CONCURRENCY={os.environ.get('WEB_CONCURRENCY', '1')} "
        f"THREADS={os.environ.get('THREADS', '4')}"
    )
    print(f"{'clients':>7} {'requests':>8} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'req/s':>7}")
    for row in rows:
        print(
            f"{row['clients']:>7} {row['requests']:>8} {row['p50_ms']:>8} {row['p95_ms']:>8} "
            f"{row['max_ms']:>8} {row['requests_per_s']:>7}"
        )
    single = next((row for row in rows if row["clients"] == 1), None)
    if single:
        met = single["p50_ms"] <= TARGET_P50_MS
        print(
            f"target (1 client, ONNX Runtime): p50 <= {TARGET_P50_MS:g} ms: "
            f"{'met' if met else 'NOT met'}"
        )


if __name__ == "__main__":
    sys.exit(main())

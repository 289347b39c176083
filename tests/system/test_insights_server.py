"""The real gunicorn command with two workers: /metrics adds every worker up, a killed worker's
counts stay, and both workers write their searches to the one search log."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.catalogs import draw_image, image_bytes
from tests.support.servers import free_port, gunicorn, server_env, wait_ready

METRICS_TOKEN = "scraper-token-0123456789"
ADMIN_TOKEN = "owner-token-0123456789"
SIMILAR = "/api/products/<path:product_id>/similar"

pytestmark = pytest.mark.slow


def fetch(url: str, token: str, data: bytes | None = None, headers: dict | None = None) -> bytes:
    request = urllib.request.Request(
        url, data=data, headers={"Authorization": f"Bearer {token}", **(headers or {})}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read()


def requests_counted(base: str) -> dict[tuple[str, str], float]:
    """(route, status) -> requests, as /metrics adds them up over every worker."""
    text = fetch(f"{base}/metrics", METRICS_TOKEN).decode()
    counts: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "image_search_http_requests_total":
                key = (sample.labels["route"], sample.labels["status"])
                counts[key] = counts.get(key, 0) + sample.value
    return counts


def workers_of(master: int) -> set[int]:
    """The master's gunicorn workers (its other child is the nginx front)."""
    path = Path(f"/proc/{master}/task/{master}/children")
    children = {int(pid) for pid in path.read_text().split()}
    return {pid for pid in children if _command(pid) != "nginx"}


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def upload_body() -> tuple[bytes, str]:
    boundary = "insights-test-boundary"
    png = image_bytes(draw_image("red", "circle"))
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="q.png"\r\n'
            f"Content-Type: image/png\r\n\r\n"
        ).encode()
        + png
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def test_two_workers_share_metrics_and_the_search_log(tmp_path):
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"left over from an earlier run")
    port = free_port()
    env = server_env(
        tmp_path,
        port,
        WEB_CONCURRENCY="2",
        THREADS="4",
        METRICS_TOKEN=METRICS_TOKEN,
        ADMIN_TOKEN=ADMIN_TOKEN,
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "gunicorn.log"
    with gunicorn(env, log) as process:
        wait_ready(base, process, log)
        deadline = time.monotonic() + 60
        while len(workers_of(process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        workers = workers_of(process.pid)
        assert len(workers) == 2
        body, content_type = upload_body()
        for _ in range(3):
            fetch(f"{base}/api/search", "", body, {"Content-Type": content_type})
        similar = 0

        def more_like_this(_: int) -> None:
            fetch(f"{base}/api/products/p1/similar?k=3", "")

        # Many short requests from several clients, until both workers have answered some.
        with ThreadPoolExecutor(8) as pool:
            while time.monotonic() < deadline:
                list(pool.map(more_like_this, range(24)))
                similar += 24
                answered = {int(p.stem.rsplit("_", 1)[1]) for p in metrics_dir.glob("counter_*.db")}
                if workers <= answered:
                    break
        assert workers <= answered, "one worker answered every request"

        for _ in range(4):  # whichever worker answers the scrape, it counts both
            counts = requests_counted(base)
            assert counts[("/api/search", "200")] == 3
            assert counts[(SIMILAR, "200")] == similar

        # Both workers log to one file: the export sees every search (writes take milliseconds).
        searches: list = []
        while len(searches) < 3 + similar and time.monotonic() < deadline + 30:
            searches = json.loads(fetch(f"{base}/insights/searches.json?days=1", ADMIN_TOKEN))
            time.sleep(0.2)
        assert len(searches) == 3 + similar
        assert sorted({row["kind"] for row in searches}) == ["similar", "upload"]

        killed = min(workers)
        os.kill(killed, signal.SIGKILL)  # gunicorn starts another; its counts must stay
        while time.monotonic() < deadline + 60:
            now = workers_of(process.pid)
            if killed not in now and len(now) == 2:
                break
            time.sleep(0.2)
        counts = requests_counted(base)
        assert counts[("/api/search", "200")] == 3
        assert counts[(SIMILAR, "200")] == similar
    text = log.read_text()
    assert "Traceback" not in text
    assert not metrics_dir.exists() or not list(metrics_dir.glob("counter_1.db"))

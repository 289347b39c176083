"""A real server under hostile uploads: the worker's peak memory, and /healthz under CPU bombs.

    .venv/bin/python -m bench.upload_load [--front none] [--clients 8] [--rounds 3]
                                          [--bombers 4] [--seconds 20] [--root PATH]

Starts the server as the Docker image does (`gunicorn --config gunicorn.conf.py`, one worker of
four threads, the demo catalog, MODEL_WEIGHTS=random, 127.0.0.1, a free port), then:

- memory: `--clients` concurrent clients each send every worst-case upload `--rounds` times
  (40-megapixel WebP, PNG, JPEG and progressive JPEG of a few hundred kB, and the largest WebP
  and PNG still accepted) to `POST /api/search`. Prints the worker's resident memory before and
  its peak (VmHWM) after, the answers by status, and whether the worker survived (same pid);
- CPU: `--bombers` clients loop progressive JPEG scan bombs (scans hidden behind a junk byte or
  a restart marker, and the costliest JPEG still accepted) for `--seconds`, while /healthz is
  asked every 0.25 s. Prints the slowest and median /healthz, and the worker's CPU seconds per
  bomb.

`--root` runs another checkout's server (to measure a version before a change).
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import signal
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from PIL import Image

from bench.api_latency import free_port, multipart
from bench.slow_clients import WORK_DIR, start_server, timed, wait_ready
from tests.images.test_decode import hide_scans, scan_bomb

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60.0


def encoded(size: tuple[int, int], mode: str, fmt: str, **options: object) -> bytes:
    """A large gradient: a picture of many pixels in a small file, as a bomb is."""
    buffer = io.BytesIO()
    Image.linear_gradient("L").resize(size).convert(mode).save(buffer, fmt, **options)
    return buffer.getvalue()


def memory_uploads() -> dict[str, bytes]:
    forty = (7300, 5479)
    return {
        "WebP 40 MP": encoded(forty, "RGB", "WEBP"),
        "PNG 40 MP": encoded(forty, "RGB", "PNG"),
        "JPEG 40 MP": encoded(forty, "RGB", "JPEG"),
        "JPEG 40 MP progressive": encoded(forty, "RGB", "JPEG", progressive=True),
        "WebP 5.8 MP (largest accepted)": encoded((2900, 2000), "RGB", "WEBP"),
        "JPEG 30 MP progressive (accepted)": encoded((6300, 4750), "RGB", "JPEG", progressive=True),
        "PNG 24 MP (largest accepted)": encoded((6000, 4000), "RGB", "PNG"),
    }


def cpu_uploads() -> dict[str, bytes]:
    return {
        "4 MP, 2,000 scans behind a junk byte": hide_scans(
            scan_bomb((2000, 2000), 2000), "junk-byte"
        ),
        "4 MP, 2,000 scans behind RST0": hide_scans(
            scan_bomb((2000, 2000), 2000), "restart-marker"
        ),
        "36 MP, 300 scans behind a junk byte": hide_scans(
            scan_bomb((6000, 6000), 300), "junk-byte"
        ),
        "30 MP, 13 scans (costliest accepted)": scan_bomb((6300, 4750), 13),
    }


def upload(port: int, data: bytes) -> int:
    """POST one upload to /api/search; its status, or 0 when the connection failed."""
    body, content_type = multipart(data)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        connection.request("POST", "/api/search", body, {"Content-Type": content_type})
        response = connection.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return 0
    finally:
        connection.close()


def worker_pid(master: int) -> int:
    """The gunicorn worker: the master's child that is not nginx."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if ppid == master and b"nginx" not in command:
            return int(stat.parent.name)
    raise SystemExit("no worker process found")


def status_mb(pid: int, field: str) -> float:
    """VmRSS or VmHWM (peak) of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def in_threads(count: int, work) -> None:
    threads = [threading.Thread(target=work, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def memory_phase(port: int, master: int, clients: int, rounds: int) -> None:
    uploads = list(memory_uploads().items())
    for name, data in uploads:
        print(f"  {name:<30} {len(data):>9,} bytes")
    pid = worker_pid(master)
    before = status_mb(pid, "VmRSS")
    statuses: Counter[str] = Counter()

    def client(index: int) -> None:
        for step in range(rounds * len(uploads)):
            name, data = uploads[(index + step) % len(uploads)]
            statuses[f"{name}: {upload(port, data)}"] += 1

    started = time.monotonic()
    in_threads(clients, client)
    alive = worker_pid(master) == pid
    peak = status_mb(pid, "VmHWM") if alive else float("nan")
    print(
        f"{clients} clients x {rounds} rounds in {time.monotonic() - started:.1f} s: worker RSS "
        f"{before:.0f} MB before, peak {peak:.0f} MB; worker survived: {alive}"
    )
    for key, count in sorted(statuses.items()):
        print(f"  {key:<40} x{count}")


def cpu_phase(port: int, master: int, bombers: int, seconds: float) -> None:
    uploads = list(cpu_uploads().items())
    for name, data in uploads:
        print(f"  {name:<38} {len(data):>9,} bytes")
    pid = worker_pid(master)
    cpu_before, sent, statuses = cpu_seconds(pid), Counter(), Counter()
    stop = time.monotonic() + seconds

    def bomber(index: int) -> None:
        step = index
        while time.monotonic() < stop:
            name, data = uploads[step % len(uploads)]
            statuses[f"{name}: {upload(port, data)}"] += 1
            sent[0] += 1
            step += 1

    threads = [threading.Thread(target=bomber, args=(i,)) for i in range(bombers)]
    for thread in threads:
        thread.start()
    health: list[float] = []
    while time.monotonic() < stop:
        answered = timed(port, "GET", "/healthz", None, {})
        health.append(answered if answered is not None else float("inf"))
        time.sleep(0.25)
    for thread in threads:
        thread.join()
    used = cpu_seconds(pid) - cpu_before
    print(
        f"{bombers} bomb loops for {seconds:g} s: {sent[0]} uploads, worker CPU "
        f"{used:.1f} s = {used / max(sent[0], 1):.3f} CPU-s per upload; /healthz slowest "
        f"{max(health):.3f} s, median {statistics.median(health):.3f} s "
        f"({len(health)} checks); worker survived: {worker_pid(master) == pid}"
    )
    for key, count in sorted(statuses.items()):
        print(f"  {key:<48} x{count}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--front", default="none", choices=["none", "nginx"])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bombers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to measure")
    args = parser.parse_args(argv)
    port = free_port()
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    log = WORK_DIR / f"upload-load-{args.front}.log"
    print(f"code: {args.root}; FRONT={args.front}; {os.cpu_count()} CPUs; log {log}")
    server = start_server(args.root.resolve(), args.front, port, log)
    try:
        wait_ready(port, server, log)
        print("memory: worst-case uploads, all at once")
        memory_phase(port, server.pid, args.clients, args.rounds)
        print("CPU: JPEG scan bombs in a loop")
        cpu_phase(port, server.pid, args.bombers, args.seconds)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the search log adds to a search: the same requests with logging on and off, interleaved.

    .venv/bin/python -m bench.search_log [--rounds 60] [--block 10] [--model color_histogram]

Two apps over the bundled demo catalog share one index; one logs
(SEARCH_LOG_DAYS=90, a fresh SQLite file), the other does not (SEARCH_LOG_DAYS=0). Each round
sends a block of requests to one app, then to the other, through Flask's whole request path
(test client: parsing, search, metrics, log, JSON), so both see the same machine load:

- `GET /api/products/<id>/similar` ("more like this": no image, about a millisecond), where any
  overhead of the log shows most;
- `POST /api/search` with a 640x480 JPEG (decode, embed, rank).

It prints the p50 of each with logging off and on, their difference, and the cost of one
`SearchLog.record` call and the CPU per logged search. Target: logging adds at most 1 ms to a
search's p50. What logging does is the same whatever the model, but an image search through a
CNN varies by far more than 1 ms from one request to the next on a busy machine, which would
hide the difference: so the apps use the colour-histogram model (a few milliseconds) unless
`--model resnet18` (random weights) is given.
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import sys
import time
from pathlib import Path

from .common import Context, Figure

ROOT = Path(__file__).resolve().parent.parent
DEMO_PHOTO = ROOT / "backend" / "static" / "catalog" / "100004.jpg"
TARGET_MS = 1.0


def make_apps(folder: Path, catalog_path: Path | None = None, model: str = "color_histogram"):
    """(app without log, app with log) over the demo catalog (or another), index synced once."""
    from backend import create_app
    from backend.extensions import get_service

    base = {
        "index_path": folder / "index.csv",
        "cache_dir": folder / "cache",
        "model": model,
        "model_weights": "random",
        "_similarity_threshold": 0.5,
    }
    if catalog_path is not None:
        base["catalog_path"] = catalog_path
    off = create_app(base | {"search_log_days": 0})
    on = create_app(base | {"search_log_days": 90, "search_log_path": folder / "searches.sqlite"})
    get_service(off).sync()
    get_service(on).load_index()
    return off, on


def query_jpeg() -> bytes:
    from PIL import Image

    image = Image.open(DEMO_PHOTO).convert("RGB").resize((640, 480), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def requests(app, jpeg: bytes, product_id: str):
    """name -> a function that sends one request and returns its time in ms."""
    client = app.test_client()

    def similar() -> float:
        started = time.perf_counter()
        response = client.get(f"/api/products/{product_id}/similar?k=12")
        elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, response.get_data(as_text=True)
        return elapsed

    def upload() -> float:
        data = {"file": (io.BytesIO(jpeg), "query.jpg")}
        started = time.perf_counter()
        response = client.post("/api/search", data=data)
        elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, response.get_data(as_text=True)
        return elapsed

    return {"similar": similar, "upload": upload}


def measure(
    rounds: int,
    block: int,
    folder: Path,
    catalog_path: Path | None = None,
    model: str = "color_histogram",
) -> dict:
    """p50 in ms of each request kind, logging off and on, interleaved block by block."""
    from backend.extensions import get_service
    from backend.web.telemetry import get_search_log

    off, on = make_apps(folder, catalog_path, model)
    product_id = next(iter(get_service(off).catalog.products))
    jpeg = query_jpeg()
    senders = {"off": requests(off, jpeg, product_id), "on": requests(on, jpeg, product_id)}
    for kind in ("similar", "upload"):  # warm both: first inferences and first writes are slow
        for name in senders:
            for _ in range(3):
                senders[name][kind]()
    times = {(name, kind): [] for name in senders for kind in ("similar", "upload")}
    for round_ in range(rounds):
        order = ("off", "on") if round_ % 2 == 0 else ("on", "off")
        for kind, count in (("similar", block * 4), ("upload", block)):
            for name in order:
                times[(name, kind)] += [senders[name][kind]() for _ in range(count)]
    search_log = get_search_log(on)
    search_log.flush(30)
    return {
        "p50": {
            f"{kind}_{name}": statistics.median(values) for (name, kind), values in times.items()
        },
        "samples": {f"{kind}_{name}": len(values) for (name, kind), values in times.items()},
        "logged": search_log.written,
        "lost": search_log.dropped + search_log.failed,
        **record_cost(folder),
    }


def record_cost(folder: Path, calls: int = 20_000) -> dict[str, float]:
    """Median microseconds of one `SearchLog.record` call (queueing only), and the process CPU
    microseconds per record of queueing and writing it (the writer thread's work included)."""
    import resource

    from backend.insights.log import SearchLog
    from backend.insights.records import SearchRecord

    def cpu_seconds() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    search_log = SearchLog(folder / "record-cost.sqlite", 90)
    record = SearchRecord(
        at=time.time(),
        channel="api",
        kind="upload",
        ref=None,
        category=None,
        min_price=None,
        max_price=None,
        k=12,
        threshold=0.5,
        top=tuple((f"p{i}", 0.9) for i in range(10)),
        shown=10,
        hidden=2,
        took_ms=30.0,
        stages_ms={"decode": 2, "embed": 25, "rank": 3},
        model="resnet18/random",
    )
    search_log.record(record)
    search_log.flush(30)  # the file exists: what follows is the steady state
    durations = []
    cpu_before = cpu_seconds()
    for _ in range(calls):
        started = time.perf_counter()
        search_log.record(record)
        durations.append((time.perf_counter() - started) * 1e6)
        if len(durations) % 1000 == 0:
            search_log.flush(30)  # keep the queue from filling: every call is a real queueing
    search_log.flush(30)
    cpu_us = (cpu_seconds() - cpu_before) / calls * 1e6
    return {"record_us": statistics.median(durations), "cpu_us": cpu_us}


def figures(result: dict) -> list[Figure]:
    p50 = result["p50"]
    found = []
    for kind, what in (
        ("similar", '"more like this" (GET /api/products/<id>/similar)'),
        ("upload", "image search (POST /api/search, 640x480 JPEG)"),
    ):
        added = p50[f"{kind}_on"] - p50[f"{kind}_off"]
        found.append(
            Figure(
                key=f"search_log_overhead_{kind}",
                section="Search log",
                what=f"p50 added by logging to a {what}",
                value=added,
                unit="ms",
                baseline="logging off",
                baseline_value=p50[f"{kind}_off"],
                target=f"<= {TARGET_MS:g} ms",
                met=added <= TARGET_MS,
                note=f"p50 off {p50[f'{kind}_off']:.2f} ms, on {p50[f'{kind}_on']:.2f} ms, "
                f"{result['samples'][f'{kind}_on']} requests each, interleaved",
            )
        )
    found.append(
        Figure(
            key="search_log_record_us",
            section="Search log",
            what="one SearchLog.record call (the only work on the request's path)",
            value=result["record_us"],
            unit="µs",
        )
    )
    found.append(
        Figure(
            key="search_log_cpu_us",
            section="Search log",
            what="CPU per logged search, queueing and the writer thread's work together",
            value=result["cpu_us"],
            unit="µs",
        )
    )
    return found


def run(ctx: Context) -> list[Figure]:
    folder = ctx.folder("search_log")
    return figures(measure(15 if ctx.quick else 60, 10, folder))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.search_log",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--block", type=int, default=10, help="image searches per app per round")
    parser.add_argument(
        "--model", default="color_histogram", help="MODEL of both apps (random weights for a CNN)"
    )
    args = parser.parse_args(argv)
    folder = ROOT / "bench" / "data" / "search_log"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    result = measure(args.rounds, args.block, folder, model=args.model)
    print(f"model {args.model}; searches logged: {result['logged']}, lost: {result['lost']}")
    print(
        f"SearchLog.record: {result['record_us']:.1f} µs per call (median); "
        f"CPU per logged search, writer included: {result['cpu_us']:.0f} µs"
    )
    ok = True
    for figure in figures(result)[:2]:
        ok &= bool(figure.met)
        print(
            f"{figure.what}: {figure.value:+.3f} ms ({figure.note}); target {figure.target}: "
            f"{'met' if figure.met else 'MISSED'}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

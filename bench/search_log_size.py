"""A flood of searches against the search log's size limit: the file's size and the CPU cost.

    .venv/bin/python -m bench.search_log_size [--searches 150000] [--max-mb 16]

Writes the same flood of search records (each with ten results, as a real search logs them)
twice through `SearchLog`, the server's writer: once without a size limit (`SEARCH_LOG_MAX_MB=0`,
as before the limit existed: only the age bounds the log) and once with `--max-mb`. The flood is
several times the limit. It prints, for each, the largest the log got on disk (file and WAL,
sampled after every 1,000 records), the rows left and deleted, the bytes a row takes, and the
process CPU per logged search (queueing and the writer thread's work together). Target: with
the limit, the file never exceeds it by more than one batch and the WAL's own bound (8 MB).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sqlite3
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_EVERY = 1000  # records between two flushes and size samples
MB = 1024 * 1024


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def on_disk(path: Path) -> tuple[int, int]:
    """The log's bytes on disk: its file, and its WAL (the -shm index is a fixed 32 KB)."""
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size, wal.stat().st_size if wal.exists() else 0


def record(number: int):
    from backend.insights.records import SearchRecord

    return SearchRecord(
        at=time.time(),
        channel="api",
        kind="similar",
        ref=f"{100000 + number % 5000}",
        category="Milk" if number % 3 else None,
        min_price=None,
        max_price=None,
        k=12,
        threshold=0.35,
        top=tuple((f"{100000 + (number + i) % 5000}", 0.9 - i / 50) for i in range(10)),
        shown=10,
        hidden=2,
        took_ms=1.234,
        stages_ms={"rank": 0.8},
        model="efficientnet_lite0",
    )


def flood(path: Path, searches: int, max_mb: float) -> dict:
    from backend.insights.log import SearchLog

    search_log = SearchLog(path, 90, max_bytes=int(max_mb * MB) or None)
    records = [record(number) for number in range(SAMPLE_EVERY)]
    largest = largest_file = largest_wal = 0
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    for _ in range(searches // SAMPLE_EVERY):
        for item in records:
            search_log.record(item)
        search_log.flush(60)
        file, wal = on_disk(path)
        largest, largest_file = max(largest, file + wal), max(largest_file, file)
        largest_wal = max(largest_wal, wal)
    cpu = cpu_seconds() - cpu_before
    wall = time.perf_counter() - started
    conn = sqlite3.connect(path)
    try:
        (rows,) = conn.execute("SELECT COUNT(*) FROM searches").fetchone()
        pages, free, page_size = (
            conn.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("page_count", "freelist_count", "page_size")
        )
    finally:
        conn.close()
    return {
        "max_mb": max_mb,
        "written": search_log.written,
        "lost": search_log.dropped + search_log.failed,
        "rows": rows,
        "pruned": search_log.pruned["size"],
        "largest_bytes": largest,
        "largest_file": largest_file,
        "largest_wal": largest_wal,
        "final_bytes": sum(on_disk(path)),
        "bytes_per_row": (pages - free) * page_size / max(rows, 1),
        "cpu_us": cpu / search_log.written * 1e6,
        "wall_s": wall,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.search_log_size",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--searches", type=int, default=150_000)
    parser.add_argument("--max-mb", type=float, default=16.0)
    args = parser.parse_args(argv)
    folder = ROOT / "bench" / "data" / "search_log_size"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    ok = True
    for max_mb in (0.0, args.max_mb):
        result = flood(folder / f"limit-{max_mb:g}.sqlite", args.searches, max_mb)
        limit = f"SEARCH_LOG_MAX_MB={max_mb:g}" + (" (no size limit)" if not max_mb else "")
        print(
            f"{limit}: {result['written']} searches logged ({result['lost']} lost) in "
            f"{result['wall_s']:.1f} s; largest on disk {result['largest_bytes'] / MB:.1f} MB "
            f"(file {result['largest_file'] / MB:.1f} MB, WAL {result['largest_wal'] / MB:.1f} "
            f"MB), at the end {result['final_bytes'] / MB:.1f} MB; {result['rows']} rows kept, "
            f"{result['pruned']} deleted for size; {result['bytes_per_row']:.0f} bytes a row; "
            f"CPU per logged search {result['cpu_us']:.1f} µs"
        )
        if max_mb:
            met = (
                result["largest_file"] <= max_mb * MB + 256 * 1024  # one batch over it
                and result["largest_wal"] <= 8 * MB + 256 * 1024
            )
            ok &= met
            print(
                f"  largest file {result['largest_file'] / MB:.1f} MB <= {max_mb:g} MB (+ one "
                f"batch), largest WAL {result['largest_wal'] / MB:.1f} MB <= 8 MB (+ one "
                f"batch): {'met' if met else 'MISSED'}"
            )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

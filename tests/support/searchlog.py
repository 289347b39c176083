"""Search log records made by hand, for tests that seed a log with known figures."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from backend.insights.records import INSERT, SearchRecord, connect

NOON = dt.time(12, 0)


def at(day: dt.date, hour: int = 12, minute: int = 0) -> float:
    """Unix time of a UTC day and hour."""
    return dt.datetime.combine(day, dt.time(hour, minute), dt.UTC).timestamp()


def make_record(when: float, **fields) -> SearchRecord:
    """A logged search: an API upload with one shown result unless fields say otherwise."""
    values = {
        "at": when,
        "channel": "api",
        "kind": "upload",
        "ref": None,
        "category": None,
        "min_price": None,
        "max_price": None,
        "k": 12,
        "threshold": 0.5,
        "top": (("p1", 0.9), ("p2", 0.4)),
        "shown": 1,
        "hidden": 1,
        "took_ms": 40.0,
        "stages_ms": {"decode": 2.0, "embed": 35.0, "rank": 3.0},
        "model": "resnet18/random-seed0/p1",
    }
    return SearchRecord(**(values | fields))


def seed(path: Path, records: list[SearchRecord]) -> None:
    """Write records straight into a log file (created if needed)."""
    conn = connect(path)
    try:
        conn.execute("BEGIN")
        conn.executemany(INSERT, [record.row() for record in records])
        conn.execute("COMMIT")
    finally:
        conn.close()

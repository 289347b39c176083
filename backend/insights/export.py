"""The search log and result lists as CSV or JSON, streamed, safe to open in a spreadsheet.

A text cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return would be run as a
formula by Excel, LibreOffice or Google Sheets; it gets a leading `'`, which they show as text
(OWASP's advice for CSV injection). Numbers the app writes itself are left as numbers.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from .aggregates import Window

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CHUNK_ROWS = 500  # CSV lines per chunk of a streamed download
LOG_FIELDS = (
    "time", "channel", "kind", "query", "category", "min_price", "max_price", "k", "threshold",
    "shown", "hidden", "best_id", "best_similarity", "top", "took_ms", "decode_ms", "embed_ms",
    "rank_ms", "model",
)  # fmt: skip
_LOG_COLUMNS = (
    "at, channel, kind, ref, category, min_price, max_price, k, threshold, shown, hidden, "
    "best_id, best_similarity, top, took_ms, decode_ms, embed_ms, rank_ms, model"
)


def neutralise(value: Any) -> Any:
    """A cell value that no spreadsheet runs as a formula; non-text values are unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_lines(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """CSV text in chunks of CHUNK_ROWS lines, every text cell neutralised."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([neutralise(name) for name in header])
    for number, values in enumerate(rows, start=1):
        writer.writerow([neutralise(value) for value in values])
        if number % CHUNK_ROWS == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def json_array(items: Iterable[Any]) -> Iterator[str]:
    """A JSON array, one element per chunk, so a long log is never held whole in memory."""
    yield "["
    for number, item in enumerate(items):
        yield ("," if number else "") + "\n" + json.dumps(item, ensure_ascii=False)
    yield "\n]\n"


def log_rows(conn: sqlite3.Connection | None, window: Window) -> Iterator[tuple[Any, ...]]:
    """The logged searches of the window, oldest first, as the values of LOG_FIELDS."""
    if conn is None:
        return
    for row in conn.execute(
        f"SELECT {_LOG_COLUMNS} FROM searches WHERE at >= ? AND at < ? ORDER BY at, id",
        (window.since, window.until),
    ):
        yield (iso_time(row[0]), *row[1:])


def log_objects(conn: sqlite3.Connection | None, window: Window) -> Iterator[dict[str, Any]]:
    """The logged searches of the window as JSON objects, `top` as a list of {id, similarity}."""
    for row in log_rows(conn, window):
        item = dict(zip(LOG_FIELDS, row, strict=True))
        item["top"] = [{"id": pid, "similarity": sim} for pid, sim in json.loads(item["top"])]
        yield item


def iso_time(timestamp: float) -> str:
    """A Unix time as ISO 8601 UTC to the millisecond, e.g. 2026-05-01T12:30:00.250Z."""
    moment = dt.datetime.fromtimestamp(timestamp, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

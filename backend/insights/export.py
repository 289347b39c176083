"""The search log and result lists as CSV or JSON, streamed, safe to open in a spreadsheet.

A text cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return would be run as a
formula by Excel, LibreOffice or Google Sheets; it gets a `'` before that character, which they
show as text (OWASP's advice against CSV injection). So does such a character after a `,`, `;`,
tab or line break inside a cell (spaces and quotes between them too): a spreadsheet that splits
lines on another separator than ours (`;` where the comma is the decimal mark) starts a new cell
there, whatever our quotes. Every text cell is quoted. Numbers stay numbers: those the app writes
(prices, similarities, times) are never touched, and a text that is just a number (`-15`, a
product id) is left readable, since a spreadsheet reads it as a number, which runs nothing.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import json
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from .aggregates import Window
from .records import COLUMNS

# A formula character at the start of the cell or of what a spreadsheet may take for a cell:
# after a separator, past any spaces and quotes. Not a plain number, which runs nothing.
_FORMULA = re.compile(
    r"(?:^|(?<=[,;\t\r\n]))([ \"']*)(?=[=+\-@\t\r])"
    r"(?![+-](?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\]*(?:[,;\t\r\n]|\Z))"
)
CHUNK_ROWS = 500  # CSV lines per chunk of a streamed download
# The download's names for the log's columns: `time` for `at`, `query` for `ref`, the others
# as stored, in the table's order.
_DOWNLOAD_NAMES = {"at": "time", "ref": "query"}
LOG_FIELDS = tuple(_DOWNLOAD_NAMES.get(column, column) for column in COLUMNS)
_LOG_COLUMNS = ", ".join(COLUMNS)


def neutralise(value: Any) -> Any:
    """A cell value that no spreadsheet runs as a formula; non-text values are unchanged."""
    if isinstance(value, str):
        return _FORMULA.sub(r"\1'", value)
    return value


def csv_lines(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """CSV text in chunks of CHUNK_ROWS lines, every text cell neutralised and quoted."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_NONNUMERIC)
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


def started(rows: Iterator[Any]) -> Iterator[Any]:
    """The same rows, the first already read: the query has run, and any error it raises is
    raised here, before a download has sent anything."""
    first = next(rows, None)
    return rows if first is None else itertools.chain((first,), rows)


def log_objects(conn: sqlite3.Connection | None, window: Window) -> Iterator[dict[str, Any]]:
    """The logged searches of the window as JSON objects, `top` as a list of {id, similarity}."""
    return as_objects(log_rows(conn, window))


def as_objects(rows: Iterable[tuple[Any, ...]]) -> Iterator[dict[str, Any]]:
    """Rows of LOG_FIELDS as JSON objects, `top` as a list of {id, similarity}."""
    for row in rows:
        item = dict(zip(LOG_FIELDS, row, strict=True))
        item["top"] = [{"id": pid, "similarity": sim} for pid, sim in json.loads(item["top"])]
        yield item


def iso_time(timestamp: float) -> str:
    """A Unix time as ISO 8601 UTC to the millisecond, e.g. 2026-05-01T12:30:00.250Z."""
    moment = dt.datetime.fromtimestamp(timestamp, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

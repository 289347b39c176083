"""Downloads: a result list as CSV (pages and API, `format=csv`), the search log as CSV or JSON."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from flask import Response

from ..errors import InvalidInput
from ..insights.aggregates import Window
from ..insights.export import LOG_FIELDS, as_objects, csv_lines, json_array
from ..parsing import blank
from ..search import SearchResult
from .serializers import image_link

RESULT_FIELDS = ("rank", "id", "name", "category", "price", "similarity", "match", "image_url")
FORMATS = ("csv", "json", "html")  # json and html: the channel's usual answer


def wants_csv(values: Mapping[str, Any]) -> bool:
    """Whether the request asks for its results as CSV (`format=csv`)."""
    raw = values.get("format")
    if blank(raw):
        return False
    if raw not in FORMATS:
        raise InvalidInput(f"format={raw!s:.20} must be csv, or left out")
    return raw == "csv"


def results_csv(result: SearchResult, filename: str = "search-results.csv") -> Response:
    """The results shown (at or above the threshold), best first, as a CSV download."""
    rows = [
        (
            rank,
            hit.product.id,
            hit.product.name,
            hit.product.category,
            hit.product.price,
            round(hit.similarity, 6),
            "" if hit.match is None else hit.match,
            image_link(hit.product.id),
        )
        for rank, hit in enumerate(result.shown, start=1)
    ]
    return download(csv_lines(RESULT_FIELDS, rows), "text/csv", filename)


def log_download(
    conn: sqlite3.Connection | None, rows: Iterator[tuple[Any, ...]], window: Window, fmt: str
) -> Response:
    """The window's logged searches (`rows`, read from `conn`, which the response closes),
    oldest first, streamed as CSV or JSON."""
    filename = f"searches-{window.first.isoformat()}-to-{window.last.isoformat()}.{fmt}"
    if fmt == "csv":
        response = download(csv_lines(LOG_FIELDS, rows), "text/csv", filename)
    else:
        response = download(json_array(as_objects(rows)), "application/json", filename)
    if conn is not None:
        response.call_on_close(conn.close)
    return response


def download(chunks: Iterable[str], mimetype: str, filename: str) -> Response:
    response = Response(chunks, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response

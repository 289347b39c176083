"""What every search through the pages or the API leaves behind: a search log record and metrics.

Recording never fails nor slows a search: the log only queues the record (see
`backend.insights.log`), and any error here is logged and swallowed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from flask import Flask, Request, current_app

from ..config import Settings
from ..extensions import get_service
from ..insights.log import SearchLog
from ..insights.records import SearchRecord, top_results, url_host
from ..search import SearchResult
from .metrics import get_metrics, init_metrics

log = logging.getLogger(__name__)

EXTENSION_KEY = "search_log"


def init_app(app: Flask, settings: Settings) -> None:
    """Open the search log (unless SEARCH_LOG_DAYS=0) and the metrics."""
    counters = init_metrics(app)
    path = settings.search_log_file
    app.extensions[EXTENSION_KEY] = (
        None
        if path is None
        else SearchLog(
            path,
            settings.search_log_days,
            max_bytes=settings.search_log_max_bytes,
            on_lost=counters.count_lost,
            on_pruned=counters.count_pruned,
        )
    )


def get_search_log(app: Flask | None = None) -> SearchLog | None:
    """The app's search log, or None when logging is off."""
    return (app or current_app).extensions[EXTENSION_KEY]


def describe_query(request: Request, values: Mapping[str, Any]) -> tuple[str, str | None]:
    """The kind of an image query and what the log keeps of it: an upload wins over a URL, of
    which only the host is kept; with neither, the page refined an earlier query."""
    upload = request.files.get("file")
    if upload is not None and upload.filename:
        return "upload", None
    url = values.get("image_url")
    if isinstance(url, str) and url.strip():
        return "url", url_host(url.strip())
    return "refine", None


def record_search(result: SearchResult, channel: str, kind: str, ref: str | None = None) -> None:
    """Count the search in the metrics and queue it for the search log; never raises."""
    try:
        get_metrics().observe_search(result, channel, kind)
        search_log = get_search_log()
        if search_log is not None:
            search_log.record(make_record(result, channel, kind, ref))
    except Exception:  # the shopper's results matter more than our bookkeeping
        log.exception("could not record a search")


def make_record(result: SearchResult, channel: str, kind: str, ref: str | None) -> SearchRecord:
    options = result.options
    shown = len(result.shown)
    return SearchRecord(
        at=time.time(),
        channel=channel,
        kind=kind,
        ref=ref,
        category=options.category,
        min_price=options.min_price,
        max_price=options.max_price,
        k=options.k,
        threshold=options.threshold,
        top=top_results([(hit.product.id, hit.similarity) for hit in result.hits]),
        shown=shown,
        hidden=len(result.hits) - shown,
        took_ms=result.took_ms,
        stages_ms=dict(result.stages_ms),
        model=get_service().embedder.identity,
    )

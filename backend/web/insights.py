"""The shop owner's insights: what shoppers search for, charts of it, and the log's exports.

Behind ADMIN_TOKEN, like the admin API: a browser signs in with HTTP Basic, any user name and
the token as the password; a script sends `Authorization: Bearer <token>`. Unset ADMIN_TOKEN
turns the pages off (403).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from flask import Blueprint, current_app, render_template, request
from markupsafe import Markup

from ..errors import InvalidInput, SearchLogUnreadable
from ..extensions import get_service
from ..insights.aggregates import SIMILARITY_BINS, Insights, Window, log_size, summarize
from ..insights.export import log_rows, started
from ..insights.log import SearchLog
from ..insights.records import open_for_reading
from ..parsing import blank
from .charts import Frame, bar_list, column_chart, line_chart
from .exports import log_download
from .security import require_token
from .telemetry import get_search_log

bp = Blueprint("insights", __name__, url_prefix="/insights")

DEFAULT_DAYS = 30
MAX_PAGE_DAYS = 366  # one bar per day: a year still reads
MAX_EXPORT_DAYS = 3660
FLUSH_SECONDS = 1.0  # this process's latest searches show at once, without waiting long
EARLIEST_DAY = dt.date(1970, 1, 1)  # searches are logged in Unix time
require_token(
    bp,
    "admin_token",
    realm="Shop insights",
    off="shop insights are off; set ADMIN_TOKEN on the server to turn them on",
    how=(
        "sign in with the admin token as the password (any user name), or send the header "
        "`Authorization: Bearer <token>`"
    ),
    basic=True,
)


@bp.app_context_processor
def insights_context() -> dict[str, Any]:
    return {"insights_enabled": bool(current_app.config["SETTINGS"].admin_token)}


@bp.get("")
def page():
    window = parse_window(request.args, MAX_PAGE_DAYS)
    search_log = get_search_log()
    if search_log is not None:
        search_log.flush(FLUSH_SECONDS)
    threshold = current_app.config["SETTINGS"].similarity_floor
    with reading(search_log) as conn:
        insights = summarize(conn, window, threshold)
        size = log_size(conn)
    catalog = get_service().catalog
    names = {pid: product.name for pid in product_ids(insights) if (product := catalog.get(pid))}
    return render_template(
        "insights.html",
        insights=insights,
        names=names,
        charts=charts(insights, names, threshold),
        threshold=threshold,
        search_log=search_log,
        log_size=size,
        days_choices=(7, 30, 90),
    )


@bp.get("/searches.<any(csv, json):fmt>")
def export(fmt: str):
    """The logged searches of a date range (from, to; default the last 30 days), oldest first."""
    window = parse_window(request.args, MAX_EXPORT_DAYS)
    search_log = get_search_log()
    if search_log is not None:
        search_log.flush(FLUSH_SECONDS)
    conn = None
    try:
        conn = open_for_reading(search_log.path) if search_log is not None else None
        rows = started(log_rows(conn, window))  # a log that cannot be read fails here, not mid-body
    except sqlite3.DatabaseError as error:
        if conn is not None:
            conn.close()
        raise unreadable(search_log, error) from error
    return log_download(conn, rows, window, fmt)


@contextmanager
def reading(search_log: SearchLog | None) -> Iterator[sqlite3.Connection | None]:
    """A query-only connection to the log (None: logging off or nothing logged yet); a log
    that SQLite cannot read (a damaged file, another file in its place) is a 503 that says so."""
    conn = None
    try:
        conn = open_for_reading(search_log.path) if search_log is not None else None
        yield conn
    except sqlite3.DatabaseError as error:
        raise unreadable(search_log, error) from error
    finally:
        if conn is not None:
            conn.close()


def unreadable(search_log: SearchLog | None, error: sqlite3.DatabaseError) -> SearchLogUnreadable:
    name = search_log.path.name if search_log is not None else "searches.sqlite"
    if "locked" in str(error):  # another process held it past the busy timeout: it passes
        advice = "Try again in a moment."
    else:
        advice = (
            "Searches go on, but none is logged while it stays so: restore the file from a "
            "backup, or move it away and the server starts a new log at the next search."
        )
    return SearchLogUnreadable(
        f"The search log ({name}) cannot be read: {error}. {advice}",
        detail=str(search_log.path if search_log is not None else name),
    )


def parse_window(values: Mapping[str, Any], max_days: int) -> Window:
    """UTC days `from`-`to` (ISO dates, both included), or the last `days`; default 30 days.

    A range is cut to the days a search can have been logged on, from EARLIEST_DAY to today:
    the calendar's ends (year 1, 9999) are a 400 here rather than an overflow in the middle of
    a page or a download."""
    today = dt.datetime.now(dt.UTC).date()
    if blank(values.get("from")) and blank(values.get("to")):
        days = _whole(values.get("days"), "days", DEFAULT_DAYS)
        if not 1 <= days <= max_days:
            raise InvalidInput(f"days={days} must be from 1 to {max_days}")
        return Window.last_days(days, today)
    last = _date(values.get("to"), "to", today)
    first = _date(values.get("from"), "from", _days_before(last, DEFAULT_DAYS - 1))
    if first > last:
        raise InvalidInput(f"from={first} must not be after to={last}")
    clamped = Window(max(first, EARLIEST_DAY), min(last, today))
    if clamped.first > clamped.last:
        raise InvalidInput(
            f"the range {first} to {last} holds no day with searches: the log's days run "
            f"from {EARLIEST_DAY} to today, {today} (UTC)"
        )
    if (clamped.last - clamped.first).days + 1 > max_days:
        raise InvalidInput(
            f"the range {clamped.first} to {clamped.last} is longer than {max_days} days"
        )
    return clamped


def _days_before(day: dt.date, days: int) -> dt.date:
    return day - dt.timedelta(days=days) if day.toordinal() > days else dt.date.min


def _date(raw: Any, name: str, default: dt.date) -> dt.date:
    if blank(raw):
        return default
    try:
        return dt.date.fromisoformat(str(raw).strip()[:10])
    except ValueError:
        raise InvalidInput(f"{name}={raw!s:.20} must be a date like 2026-05-01") from None


def _whole(raw: Any, name: str, default: int) -> int:
    if blank(raw):
        return default
    text = str(raw).strip()
    if not (text.isascii() and text.isdecimal()) or len(text) > 6:
        raise InvalidInput(f"{name}={raw!s:.20} must be a whole number of days")
    return int(text)


def product_ids(insights: Insights) -> set[str]:
    ids: set[str | None] = {pid for pid, _ in insights.top_products}
    for row in insights.unserved:
        ids |= {row.best_id} | ({row.ref} if row.kind == "similar" else set())
    return {pid for pid in ids if pid is not None}


def product_label(pid: str, names: Mapping[str, str]) -> str:
    return f"{names[pid]} ({pid})" if pid in names else f"{pid} (no longer in the catalog)"


def day_label(day: dt.date) -> str:
    return f"{day:%b} {day.day}"


def charts(insights: Insights, names: Mapping[str, str], threshold: float) -> dict[str, Markup]:
    """The page's six charts as inline SVG, each with a one-sentence summary."""
    days = insights.days
    labels = [day_label(day.day) for day in days]
    busiest = max(days, key=lambda day: day.searches)
    summary = f"{insights.searches} searches from {insights.window.first} to {insights.window.last}"
    share = insights.no_match_share
    p50, p95 = insights.latency.get("took", (None, None))
    return {
        "searches": column_chart(
            Frame(
                "chart-searches",
                "Searches per day",
                f"{summary}; the busiest day was {busiest.day} with {busiest.searches}.",
            ),
            labels,
            [day.searches for day in days],
            [f"{day.day}: {day.searches} searches" for day in days],
        ),
        "no_match": line_chart(
            Frame(
                "chart-no-match",
                "Searches with no result at or above their threshold",
                f"{_percent(share)} of the searches showed nothing, day by day on a 0 to "
                "100 percent scale; days without searches are gaps.",
            ),
            labels,
            [
                (
                    "no result",
                    [None if d.no_match_share is None else d.no_match_share * 100 for d in days],
                )
            ],
            top=100,
            value_label=lambda v: f"{v:.0f}%",
        ),
        "products": bar_list(
            Frame(
                "chart-products",
                "Products most often shown first",
                f"The {len(insights.top_products)} products most often the best match shown.",
            ),
            [(product_label(pid, names), count) for pid, count in insights.top_products],
        ),
        "categories": bar_list(
            Frame(
                "chart-categories",
                "Categories shoppers filter by",
                f"{insights.searches - insights.unfiltered} of {insights.searches} searches "
                "chose a category.",
            ),
            insights.categories,
        ),
        "similarity": column_chart(
            Frame(
                "chart-similarity",
                "Similarity of the best match",
                f"How many searches had their best match in each band of 0.05, from 0 to 1; "
                f"{insights.best_at_or_above} had it at or above the current threshold "
                f"{threshold:.2f}, marked by a line.",
            ),
            [f"{i / SIMILARITY_BINS:.2f}" for i in range(SIMILARITY_BINS)],
            insights.similarity_bins,
            [
                f"{i / SIMILARITY_BINS:.2f} to {(i + 1) / SIMILARITY_BINS:.2f}: {count} searches"
                for i, count in enumerate(insights.similarity_bins)
            ],
            marker=(threshold, f"threshold {threshold:.2f}"),
            axis_labels=[f"{i / 20:g}" if i % 4 == 0 else "" for i in range(21)],
        ),
        "latency": line_chart(
            Frame(
                "chart-latency",
                "Search time per day, median and 95th percentile",
                f"Over the period the median search took {_ms(p50)} and the 95th percentile "
                f"{_ms(p95)}.",
            ),
            labels,
            [("median", [day.p50_ms for day in days]), ("95th pct", [day.p95_ms for day in days])],
            value_label=_axis_ms,
        ),
    }


def _axis_ms(value: float) -> str:
    return f"{value:.0f} ms" if value < 1000 else f"{value / 1000:g} s"


def _percent(share: float | None) -> str:
    return "None" if share is None else f"{share * 100:.0f}%"


def _ms(value: float | None) -> str:
    return "no time yet" if value is None else f"{value:.0f} ms"

"""What the search log says over a window of days: the figures behind the insights page.

Days are UTC calendar days. Percentiles are nearest-rank (the smallest value with at least p% of
the values at or below it), computed in SQLite so that a large log is never loaded into memory.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field

from .records import PRUNED_FOR_SIZE, read_count, used_bytes

STAGES = ("took", "decode", "embed", "rank")  # "took": the whole search
SIMILARITY_BINS = 20  # of 0.05 over [0, 1]; below 0 counts in the first, 1 in the last
TOP_PRODUCTS = 10
TOP_CATEGORIES = 12
DEMAND_ROWS = 25


@dataclass(frozen=True)
class Window:
    """UTC days from `first` to `last`, both included."""

    first: dt.date
    last: dt.date

    @classmethod
    def last_days(cls, days: int, today: dt.date) -> Window:
        return cls(today - dt.timedelta(days=days - 1), today)

    @property
    def since(self) -> float:
        return _midnight(self.first)

    @property
    def until(self) -> float:
        return _midnight(self.last + dt.timedelta(days=1))

    @property
    def days(self) -> list[dt.date]:
        count = (self.last - self.first).days + 1
        return [self.first + dt.timedelta(days=offset) for offset in range(count)]


@dataclass(frozen=True)
class Day:
    day: dt.date
    searches: int
    no_match: int  # no result at or above the search's threshold
    p50_ms: float | None
    p95_ms: float | None

    @property
    def no_match_share(self) -> float | None:
        return self.no_match / self.searches if self.searches else None


@dataclass(frozen=True)
class Unserved:
    """A recent search that showed nothing, and what came closest."""

    at: dt.datetime
    channel: str
    kind: str
    ref: str | None
    category: str | None
    min_price: float | None
    max_price: float | None
    threshold: float
    best_id: str | None
    best_similarity: float | None


@dataclass(frozen=True)
class Insights:
    window: Window
    searches: int = 0
    no_match: int = 0
    days: list[Day] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)
    channels: dict[str, int] = field(default_factory=dict)
    top_products: list[tuple[str, int]] = field(default_factory=list)  # (id, times first)
    categories: list[tuple[str, int]] = field(default_factory=list)
    unfiltered: int = 0  # searches without a category filter
    similarity_bins: list[int] = field(default_factory=lambda: [0] * SIMILARITY_BINS)
    best_at_or_above: int = 0  # searches whose best match reached the given threshold
    latency: dict[str, tuple[float | None, float | None]] = field(
        default_factory=lambda: dict.fromkeys(STAGES, (None, None))
    )
    unserved: list[Unserved] = field(default_factory=list)

    @property
    def no_match_share(self) -> float | None:
        return self.no_match / self.searches if self.searches else None


def summarize(conn: sqlite3.Connection | None, window: Window, threshold: float) -> Insights:
    """Every figure of the insights page for the window (all zero when nothing was logged);
    `threshold`: the one the best matches are held to (the served default)."""
    if conn is None:
        return Insights(window, days=[Day(day, 0, 0, None, None) for day in window.days])
    span = (window.since, window.until)
    searches, no_match = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(shown = 0), 0) FROM searches WHERE at >= ? AND at < ?",
        span,
    ).fetchone()
    categories = _counts(conn, "category", span, "category IS NOT NULL", TOP_CATEGORIES)
    filtered, best_at_or_above = conn.execute(
        "SELECT COALESCE(SUM(category IS NOT NULL), 0), COALESCE(SUM(best_similarity >= ?), 0) "
        "FROM searches WHERE at >= ? AND at < ?",
        (threshold, *span),
    ).fetchone()
    return Insights(
        window,
        searches=searches,
        no_match=no_match,
        days=_days(conn, window),
        kinds=dict(_counts(conn, "kind", span)),
        channels=dict(_counts(conn, "channel", span)),
        top_products=_counts(conn, "best_id", span, "shown > 0", TOP_PRODUCTS),
        categories=categories,
        unfiltered=searches - filtered,
        similarity_bins=_similarity_bins(conn, span),
        best_at_or_above=best_at_or_above,
        latency={stage: _percentiles(conn, f"{stage}_ms", span) for stage in STAGES},
        unserved=list(_unserved(conn, span)),
    )


@dataclass(frozen=True)
class LogSize:
    """How full the log is, and what its size bound cost so far (every process's)."""

    used_bytes: int = 0
    pruned_for_size: int = 0  # the oldest searches deleted to stay within SEARCH_LOG_MAX_MB
    oldest: dt.datetime | None = None  # the oldest search kept


def log_size(conn: sqlite3.Connection | None) -> LogSize:
    """Cheap whatever the log's length: header fields, one count, the first entry of an index."""
    if conn is None:
        return LogSize()
    (oldest,) = conn.execute("SELECT MIN(at) FROM searches").fetchone()
    return LogSize(
        used_bytes=used_bytes(conn),
        pruned_for_size=read_count(conn, PRUNED_FOR_SIZE),
        oldest=None if oldest is None else dt.datetime.fromtimestamp(oldest, dt.UTC),
    )


def _midnight(day: dt.date) -> float:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()


def _counts(
    conn: sqlite3.Connection,
    column: str,
    span: tuple[float, float],
    where: str = "1",
    limit: int = 100,
) -> list[tuple[str, int]]:
    """(value, searches) of one column, most frequent first, ties by value."""
    return conn.execute(
        f"SELECT {column}, COUNT(*) AS n FROM searches WHERE at >= ? AND at < ? AND {where} "
        f"GROUP BY {column} ORDER BY n DESC, {column} LIMIT ?",
        (*span, limit),
    ).fetchall()


def _days(conn: sqlite3.Connection, window: Window) -> list[Day]:
    """One entry per day of the window, days without searches included."""
    counts = {
        day: (searches, no_match)
        for day, searches, no_match in conn.execute(
            "SELECT date(at, 'unixepoch') AS day, COUNT(*), SUM(shown = 0) FROM searches "
            "WHERE at >= ? AND at < ? GROUP BY day",
            (window.since, window.until),
        )
    }
    latency = _daily_percentiles(conn, window)
    days = []
    for day in window.days:
        key = day.isoformat()
        searches, no_match = counts.get(key, (0, 0))
        p50, p95 = latency.get(key, (None, None))
        days.append(Day(day, searches, no_match, p50, p95))
    return days


def _daily_percentiles(conn: sqlite3.Connection, window: Window) -> dict[str, tuple[float, float]]:
    """day -> (p50, p95) of took_ms, nearest-rank, in one pass with window functions."""
    rows = conn.execute(
        """
        SELECT day, rn, n, took_ms FROM (
            SELECT date(at, 'unixepoch') AS day, took_ms,
                   ROW_NUMBER() OVER (PARTITION BY date(at, 'unixepoch') ORDER BY took_ms) AS rn,
                   COUNT(*) OVER (PARTITION BY date(at, 'unixepoch')) AS n
            FROM searches WHERE at >= ? AND at < ?)
        WHERE rn = (n * 50 + 99) / 100 OR rn = (n * 95 + 99) / 100
        """,
        (window.since, window.until),
    ).fetchall()
    found: dict[str, tuple[int, dict[int, float]]] = {}
    for day, rank, n, took in rows:
        found.setdefault(day, (n, {}))[1][rank] = took
    return {
        day: (values[nearest_rank(n, 50)], values[nearest_rank(n, 95)])
        for day, (n, values) in found.items()
    }


def nearest_rank(n: int, percent: int) -> int:
    """The 1-based rank of the `percent`th percentile of n sorted values (n >= 1)."""
    return (n * percent + 99) // 100


def _percentiles(
    conn: sqlite3.Connection, column: str, span: tuple[float, float]
) -> tuple[float | None, float | None]:
    """(p50, p95) of one duration column over the window; None without values."""
    where = f"at >= ? AND at < ? AND {column} IS NOT NULL"
    n = conn.execute(f"SELECT COUNT(*) FROM searches WHERE {where}", span).fetchone()[0]
    if not n:
        return None, None
    pick = f"SELECT {column} FROM searches WHERE {where} ORDER BY {column} LIMIT 1 OFFSET ?"
    return tuple(
        conn.execute(pick, (*span, nearest_rank(n, percent) - 1)).fetchone()[0]
        for percent in (50, 95)
    )


def _similarity_bins(conn: sqlite3.Connection, span: tuple[float, float]) -> list[int]:
    bins = [0] * SIMILARITY_BINS
    for index, count in conn.execute(
        f"SELECT MIN(MAX(CAST(best_similarity * {SIMILARITY_BINS} AS INTEGER), 0), "
        f"{SIMILARITY_BINS - 1}) AS bin, COUNT(*) FROM searches "
        "WHERE at >= ? AND at < ? AND best_similarity IS NOT NULL GROUP BY bin",
        span,
    ):
        bins[index] = count
    return bins


def _unserved(conn: sqlite3.Connection, span: tuple[float, float]) -> Iterator[Unserved]:
    """The latest searches that showed no result at or above their threshold, newest first."""
    for row in conn.execute(
        "SELECT at, channel, kind, ref, category, min_price, max_price, threshold, best_id, "
        "best_similarity FROM searches WHERE at >= ? AND at < ? AND shown = 0 "
        "ORDER BY at DESC LIMIT ?",
        (*span, DEMAND_ROWS),
    ):
        yield Unserved(dt.datetime.fromtimestamp(row[0], dt.UTC), *row[1:])

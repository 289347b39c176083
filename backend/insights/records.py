"""What one logged search holds, and the SQLite schema that stores it.

Privacy by construction: no image, no IP address, no user agent; for an image URL only its
host is kept (a path or query string may carry a token or a person's name).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

TOP_LOGGED = 10  # results kept per search, best first: enough to see what came close
CHANNELS = ("page", "api")
KINDS = ("upload", "url", "similar", "refine", "example")  # example: a home-page shopper photo
SCHEMA_VERSION = 2  # 2: the `counts` table; a version 1 file gains it at the first write
READABLE_VERSIONS = (1, 2)
PRUNED_FOR_SIZE = "pruned_for_size"  # rows deleted, oldest first, to keep within the size bound
# The WAL file is cut back to this after a checkpoint: on disk, the log is its pages plus this.
JOURNAL_SIZE_LIMIT = 8 * 1024 * 1024
BUSY_TIMEOUT_SECONDS = 5.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS searches (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,          -- Unix time in seconds (UTC)
    channel TEXT NOT NULL,     -- page | api
    kind TEXT NOT NULL,        -- upload | url | similar | refine
    ref TEXT,                  -- url: the host only; similar: the product id; else NULL
    category TEXT,             -- the filters the shopper set (NULL: none)
    min_price REAL,
    max_price REAL,
    k INTEGER NOT NULL,
    threshold REAL NOT NULL,
    shown INTEGER NOT NULL,    -- results at or above the threshold
    hidden INTEGER NOT NULL,   -- of the k nearest, those below it
    best_id TEXT,              -- the nearest product, shown or not (NULL: no candidate)
    best_similarity REAL,
    top TEXT NOT NULL,         -- JSON [[id, similarity], ...], best first, at most 10
    took_ms REAL NOT NULL,
    decode_ms REAL,            -- stages; NULL where the search had none (e.g. "more like this")
    embed_ms REAL,
    rank_ms REAL,
    model TEXT NOT NULL        -- the model identity: similarities compare only within one
);
CREATE INDEX IF NOT EXISTS searches_at ON searches (at);
CREATE TABLE IF NOT EXISTS counts (
    name TEXT PRIMARY KEY,     -- pruned_for_size
    value INTEGER NOT NULL     -- since the log was created, by every process
);
"""

COLUMNS = (
    "at",
    "channel",
    "kind",
    "ref",
    "category",
    "min_price",
    "max_price",
    "k",
    "threshold",
    "shown",
    "hidden",
    "best_id",
    "best_similarity",
    "top",
    "took_ms",
    "decode_ms",
    "embed_ms",
    "rank_ms",
    "model",
)
INSERT = f"INSERT INTO searches ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


@dataclass(frozen=True)
class SearchRecord:
    """One search as the log keeps it."""

    at: float
    channel: str
    kind: str
    ref: str | None
    category: str | None
    min_price: float | None
    max_price: float | None
    k: int
    threshold: float
    top: tuple[tuple[str, float], ...]  # best first, at most TOP_LOGGED
    shown: int
    hidden: int
    took_ms: float
    stages_ms: dict[str, float]
    model: str

    def row(self) -> tuple[Any, ...]:
        """The values of COLUMNS, in order."""
        top = [(pid, round(sim, 6)) for pid, sim in self.top]
        best_id, best = top[0] if top else (None, None)
        stages = [_ms(self.stages_ms.get(stage)) for stage in ("decode", "embed", "rank")]
        return (
            self.at,
            self.channel,
            self.kind,
            self.ref,
            self.category,
            self.min_price,
            self.max_price,
            self.k,
            self.threshold,
            self.shown,
            self.hidden,
            best_id,
            best,
            json.dumps(top, ensure_ascii=False),
            _ms(self.took_ms),
            *stages,
            self.model,
        )


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def top_results(hits: Sequence[tuple[str, float]]) -> tuple[tuple[str, float], ...]:
    """The first TOP_LOGGED (id, similarity) pairs, as plain Python values."""
    return tuple((str(pid), float(sim)) for pid, sim in hits[:TOP_LOGGED])


def url_host(url: str) -> str | None:
    """The host of an image URL, lower case, without user, port, path or query."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return host.lower() if host else None


def connect(path: Path, *, busy_timeout: float = BUSY_TIMEOUT_SECONDS) -> sqlite3.Connection:
    """Open the log (creating it), in WAL mode so readers never wait for the writer."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoints, never corrupt
        conn.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
        if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            conn.executescript(SCHEMA + f"PRAGMA user_version = {SCHEMA_VERSION};")
    except BaseException:
        conn.close()
        raise
    return conn


def open_for_reading(path: Path) -> sqlite3.Connection | None:
    """A query-only connection to an existing log, or None when nothing was logged yet."""
    if not path.is_file():
        return None
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
    try:
        conn.execute("PRAGMA query_only=1")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except BaseException:  # e.g. another file in its place: the caller says so
        conn.close()
        raise
    if version not in READABLE_VERSIONS:
        conn.close()
        return None
    return conn


def used_bytes(conn: sqlite3.Connection) -> int:
    """What the log's pages hold, free pages left out: what its size bound counts. Cheap: the
    page counts are in the file's header, whatever the number of rows."""
    page_size, pages, free = (
        conn.execute(f"PRAGMA {name}").fetchone()[0]
        for name in ("page_size", "page_count", "freelist_count")
    )
    return (pages - free) * page_size


def add_count(conn: sqlite3.Connection, name: str, value: int) -> None:
    """Add to a count kept in the file (in the caller's transaction)."""
    conn.execute(
        "INSERT INTO counts (name, value) VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
        (name, value),
    )


def read_count(conn: sqlite3.Connection | None, name: str) -> int:
    """A count kept in the file; 0 without a log, or in a log of version 1 (no counts yet)."""
    if conn is None:
        return 0
    has_table = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'counts'"
    ).fetchone()
    if not has_table:
        return 0
    row = conn.execute("SELECT value FROM counts WHERE name = ?", (name,)).fetchone()
    return row[0] if row else 0


def delete_older_than(conn: sqlite3.Connection, cutoff: float, limit: int) -> int:
    """Delete up to `limit` rows logged before `cutoff` (epoch seconds); how many went."""
    return conn.execute(
        "DELETE FROM searches WHERE id IN (SELECT id FROM searches WHERE at < ? LIMIT ?)",
        (cutoff, limit),
    ).rowcount


def delete_oldest(conn: sqlite3.Connection, limit: int) -> int:
    """Delete the `limit` oldest rows (by id: the order they were written) and count them in
    the file as pruned for size, in one transaction; how many went."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        deleted = conn.execute(
            "DELETE FROM searches WHERE id IN (SELECT id FROM searches ORDER BY id LIMIT ?)",
            (limit,),
        ).rowcount
        add_count(conn, PRUNED_FOR_SIZE, deleted)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return deleted

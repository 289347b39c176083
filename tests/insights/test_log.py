"""The search log's writer: records land with their fields, failures never reach the caller,
old rows are pruned."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
import warnings
from pathlib import Path

import pytest

from backend.config import load_settings
from backend.errors import ConfigError
from backend.insights import log as log_module
from backend.insights.log import SearchLog
from backend.insights.records import (
    PRUNED_FOR_SIZE,
    SCHEMA_VERSION,
    connect,
    open_for_reading,
    read_count,
    url_host,
    used_bytes,
)
from tests.support.searchlog import make_record, seed

DAY = 86400
NOW = 1_800_000_000.0


def rows(path: Path) -> list[dict]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in conn.execute("SELECT * FROM searches ORDER BY id")]
    finally:
        conn.close()


def unwritable_path(tmp_path: Path) -> Path:
    """A log path no process can create: root ignores permissions, but not /proc's."""
    if os.geteuid() == 0:
        return Path("/proc/self/searches.sqlite")
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return folder / "searches.sqlite"


def test_a_record_is_written_with_every_field(tmp_path):
    path = tmp_path / "log" / "searches.sqlite"
    search_log = SearchLog(path, 90)
    search_log.record(
        make_record(
            NOW,
            channel="page",
            kind="url",
            ref="shop.example",
            category="toys",
            min_price=1.5,
            max_price=None,
            k=5,
            threshold=0.7,
            top=(("p3", 0.91234567), ("p1", 0.6)),
            shown=1,
            hidden=1,
            took_ms=41.23456,
        )
    )
    assert search_log.flush()
    (row,) = rows(path)
    assert row == {
        "id": 1,
        "at": NOW,
        "channel": "page",
        "kind": "url",
        "ref": "shop.example",
        "category": "toys",
        "min_price": 1.5,
        "max_price": None,
        "k": 5,
        "threshold": 0.7,
        "shown": 1,
        "hidden": 1,
        "best_id": "p3",
        "best_similarity": 0.912346,
        "top": json.dumps([["p3", 0.912346], ["p1", 0.6]]),
        "took_ms": 41.235,
        "decode_ms": 2.0,
        "embed_ms": 35.0,
        "rank_ms": 3.0,
        "model": "resnet18/random-seed0/p1",
    }
    assert (search_log.written, search_log.dropped, search_log.failed) == (1, 0, 0)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def test_many_records_from_many_threads_are_all_written(tmp_path):
    path = tmp_path / "searches.sqlite"
    search_log = SearchLog(path, 90)

    def searcher(offset: int) -> None:
        for number in range(100):
            search_log.record(make_record(NOW + offset * 1000 + number))

    threads = [threading.Thread(target=searcher, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert search_log.flush()
    assert len(rows(path)) == 400 == search_log.written


@pytest.mark.parametrize(
    "url, host",
    [
        ("https://Shop.Example/p/123.jpg?token=secret", "shop.example"),
        ("http://user:pass@cdn.example:8080/a.png", "cdn.example"),
        ("https://[2001:db8::1]/x.jpg", "2001:db8::1"),
        ("not a url", None),
        ("http://[broken/x", None),
    ],
)
def test_only_the_host_of_an_image_url_is_kept(url, host):
    assert url_host(url) == host


def test_an_unwritable_folder_loses_the_records_counts_them_and_says_so(tmp_path, caplog):
    lost: list[tuple[str, int]] = []
    search_log = SearchLog(unwritable_path(tmp_path), 90, on_lost=lambda *args: lost.append(args))
    with caplog.at_level(logging.WARNING, logger="backend.insights.log"):
        for number in range(3):
            search_log.record(make_record(NOW + number))  # returns at once, raises nothing
        assert search_log.flush()
    assert search_log.failed == 3 and search_log.written == 0
    assert sum(count for reason, count in lost if reason == "failed") == 3
    (warning,) = [r.getMessage() for r in caplog.records]  # once a minute at most
    assert "could not write" in warning and "searches are not affected" in warning


def test_a_locked_database_never_blocks_the_caller(tmp_path, monkeypatch):
    monkeypatch.setattr(log_module, "GATHER_SECONDS", 0.0)  # write the first record at once
    path = tmp_path / "searches.sqlite"
    connect(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    search_log = SearchLog(path, 90, queue_size=5, busy_timeout=30.0)
    try:
        search_log.record(make_record(NOW))
        time.sleep(0.5)  # the writer has taken it and waits for the lock
        started = time.monotonic()
        for number in range(1, 51):
            search_log.record(make_record(NOW + number))
        # Waiting for the lock would take 30 s; queueing takes microseconds.
        assert time.monotonic() - started < 5.0
        assert search_log.dropped == 45  # the queue holds 5
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert search_log.flush(timeout=30)
    assert search_log.written == 6 and search_log.failed == 0
    assert len(rows(path)) == 6


def test_a_database_locked_past_the_busy_timeout_fails_the_batch_then_recovers(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(log_module, "RETRY_OPEN_SECONDS", 0.0)
    path = tmp_path / "searches.sqlite"
    connect(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    search_log = SearchLog(path, 90, busy_timeout=0.2)
    search_log.record(make_record(NOW))
    assert search_log.flush()
    assert (search_log.written, search_log.failed) == (0, 1)
    holder.execute("ROLLBACK")
    holder.close()
    search_log.record(make_record(NOW + 1))
    assert search_log.flush()
    assert [row["at"] for row in rows(path)] == [NOW + 1]


def test_a_file_that_is_not_a_database_loses_records_without_raising(tmp_path):
    path = tmp_path / "searches.sqlite"
    path.write_bytes(b"this is not SQLite" * 100)
    search_log = SearchLog(path, 90)
    search_log.record(make_record(NOW))
    assert search_log.flush()
    assert search_log.failed == 1
    assert path.read_bytes() == b"this is not SQLite" * 100  # left alone


def test_retention_prunes_old_rows_in_chunks_and_keeps_recent_ones(tmp_path, monkeypatch):
    monkeypatch.setattr(log_module, "PRUNE_CHUNK", 100)
    path = tmp_path / "searches.sqlite"
    old = [make_record(NOW - 31 * DAY - number) for number in range(350)]
    recent = [make_record(NOW - 29 * DAY), make_record(NOW - DAY)]
    seed(path, old + recent)
    search_log = SearchLog(path, 30, clock=lambda: NOW)
    search_log.record(make_record(NOW))
    assert search_log.flush()
    assert [row["at"] for row in rows(path)] == [NOW - 29 * DAY, NOW - DAY, NOW]


def test_pruning_waits_for_waiting_searches(tmp_path, monkeypatch):
    """With searches queued, the writer writes them between pruning chunks."""
    monkeypatch.setattr(log_module, "PRUNE_CHUNK", 10)
    path = tmp_path / "searches.sqlite"
    seed(path, [make_record(NOW - 100 * DAY - number) for number in range(500)])
    search_log = SearchLog(path, 30, clock=lambda: NOW)
    for number in range(300):
        search_log.record(make_record(NOW + number))
    assert search_log.flush()
    assert search_log.written == 300
    for _ in range(3):  # pruning continues after each batch until the old rows are gone
        search_log.record(make_record(NOW))
        search_log.flush()
    assert all(row["at"] >= NOW for row in rows(path))


def test_an_idle_writer_ends_and_the_next_record_starts_another(tmp_path, monkeypatch):
    monkeypatch.setattr(log_module, "IDLE_SECONDS", 0.05)
    path = tmp_path / "searches.sqlite"
    search_log = SearchLog(path, 90)
    search_log.record(make_record(NOW))
    assert search_log.flush()
    deadline = time.monotonic() + 10
    while search_log._thread is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert search_log._thread is None
    search_log.record(make_record(NOW + 1))
    assert search_log.flush()
    assert len(rows(path)) == 2


def test_a_forked_process_writes_with_its_own_writer(tmp_path):
    path = tmp_path / "searches.sqlite"
    search_log = SearchLog(path, 90)
    search_log.record(make_record(NOW))  # the parent's writer thread is running
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() of a threaded process
        pid = os.fork()
    if pid == 0:  # the child: its own queue and writer, the parent's record is not its own
        before = search_log.written
        search_log.record(make_record(NOW + 1))
        os._exit(0 if search_log.flush() and search_log.written == before + 1 else 1)
    assert os.waitpid(pid, 0)[1] == 0
    assert search_log.flush()
    assert sorted(row["at"] for row in rows(path)) == [NOW, NOW + 1]


def file_bytes(path: Path) -> int:
    """The log on disk: its file and its WAL."""
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def test_a_size_bound_deletes_the_oldest_rows_and_counts_them(tmp_path, monkeypatch):
    monkeypatch.setattr(log_module, "PRUNE_CHUNK", 100)
    path = tmp_path / "searches.sqlite"
    bound = 256 * 1024
    pruned = []
    search_log = SearchLog(
        path, 90, max_bytes=bound, on_pruned=lambda reason, count: pruned.append((reason, count))
    )
    total = 3000  # about 1 MB of rows: four times the bound
    largest = 0
    for start in range(0, total, 200):
        for number in range(start, start + 200):
            search_log.record(make_record(NOW + number))
        assert search_log.flush()
        conn = sqlite3.connect(path)
        largest = max(largest, used_bytes(conn))
        conn.close()
    assert search_log.written == total and search_log.failed == 0
    assert largest <= bound + 200 * 1024  # at most one batch over it, between two checks
    kept = rows(path)
    gone = total - len(kept)
    assert 0 < len(kept) < total
    assert [row["at"] for row in kept] == [NOW + number for number in range(gone, total)]
    assert search_log.pruned == {"age": 0, "size": gone}
    assert {reason for reason, _ in pruned} == {"size"} and sum(c for _, c in pruned) == gone
    conn = open_for_reading(path)
    try:
        assert read_count(conn, PRUNED_FOR_SIZE) == gone  # in the file: every process's
        assert used_bytes(conn) <= bound
    finally:
        conn.close()
    assert path.stat().st_size <= bound + 200 * 1024  # freed pages are reused: no growth


def test_without_a_size_bound_nothing_is_pruned_for_size(tmp_path):
    path = tmp_path / "searches.sqlite"
    search_log = SearchLog(path, 90, max_bytes=None)
    for number in range(1000):
        search_log.record(make_record(NOW + number))
    assert search_log.flush()
    assert len(rows(path)) == 1000 and search_log.pruned["size"] == 0


def test_a_size_bound_counts_across_processes_and_versions(tmp_path):
    """Another writer's pruning adds to the same count; a version 1 file gains the count."""
    path = tmp_path / "searches.sqlite"
    seed(path, [make_record(NOW + number) for number in range(10)])
    conn = sqlite3.connect(path)
    conn.executescript("DROP TABLE counts; PRAGMA user_version = 1;")
    conn.close()
    reader = open_for_reading(path)
    assert reader is not None and read_count(reader, PRUNED_FOR_SIZE) == 0
    reader.close()
    for _ in range(2):
        search_log = SearchLog(path, 90, max_bytes=1)  # below any file: each write empties it
        search_log.record(make_record(NOW))
        assert search_log.flush()
    reader = open_for_reading(path)
    try:
        assert read_count(reader, PRUNED_FOR_SIZE) == 12
        assert reader.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        reader.close()


def test_the_size_bound_setting(tmp_path):
    assert load_settings({}).search_log_max_bytes == 500 * 1024 * 1024
    assert load_settings({"SEARCH_LOG_MAX_MB": "2.5"}).search_log_max_bytes == 2621440
    assert load_settings({"SEARCH_LOG_MAX_MB": "0"}).search_log_max_bytes is None
    for bad in ("0.5", "-1", "2000000"):
        with pytest.raises(ConfigError, match="SEARCH_LOG_MAX_MB=.* must be 0 .no size bound."):
            load_settings({"SEARCH_LOG_MAX_MB": bad})

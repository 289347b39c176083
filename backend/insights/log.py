"""The search log's writer: a bounded queue drained by one background thread per process.

A search only puts its record on the queue (a microsecond or two, never blocking); the thread
gathers records for up to a second and writes each batch in one SQLite transaction (WAL mode),
so it wakes rarely and takes little CPU and GIL time from the searches. When the queue is full the record is dropped, and when a
write fails (unwritable folder, locked or broken database) the batch is dropped: both are
counted and logged, and searches never notice. Several server processes share one file: each
writes in short transactions and waits up to the busy timeout for the others.

Two bounds keep the file from filling a disk: rows older than the retention go (hourly), and
when its pages hold more than `max_bytes` the oldest rows go, a chunk per transaction, until
they hold SHRINK_TO of it; SQLite reuses the freed pages, so the file stays near the bound. The
size is read from the file's header after each batch (microseconds, whatever its length).
"""

from __future__ import annotations

import atexit
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from pathlib import Path

from .records import (
    BUSY_TIMEOUT_SECONDS,
    INSERT,
    SearchRecord,
    connect,
    delete_older_than,
    delete_oldest,
    used_bytes,
)

log = logging.getLogger(__name__)

QUEUE_SIZE = 2000  # records waiting for the writer; more are dropped (a few hundred KB at most)
BATCH = 200  # records per transaction
GATHER_SECONDS = 1.0  # the writer waits this long for more records before writing a batch
RETRY_OPEN_SECONDS = 5.0  # after a failure, records arriving sooner are dropped as failed
PRUNE_EVERY_SECONDS = 3600.0
PRUNE_CHUNK = 2000  # rows per delete: each holds the write lock only briefly
SHRINK_TO = 0.9  # of max_bytes, once over it: the next pruning for size is far off
IDLE_SECONDS = 20.0  # an idle writer closes its file and ends; the next search starts another
WARN_EVERY_SECONDS = 60.0
DAY_SECONDS = 86400


class SearchLog:
    """Record searches without slowing them: `record` queues, a thread per process writes."""

    def __init__(
        self,
        path: Path,
        retention_days: int,
        *,
        max_bytes: int | None = None,
        queue_size: int = QUEUE_SIZE,
        busy_timeout: float = BUSY_TIMEOUT_SECONDS,
        on_lost: Callable[[str, int], None] | None = None,
        on_pruned: Callable[[str, int], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.retention_days = retention_days
        self.max_bytes = max_bytes or None  # None: no bound but the age
        self.queue_size = queue_size
        self.busy_timeout = busy_timeout
        self.clock = clock
        self._on_lost = on_lost
        self._on_pruned = on_pruned
        self._shrinking = False  # over max_bytes a moment ago: pruning on to SHRINK_TO of it
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._queue: deque[SearchRecord] = deque()
        self._pending = 0  # queued or being written: flush() waits for 0
        self._flushing = 0  # flush() calls waiting: the writer writes at once
        self._exit_hook = False
        self._thread: threading.Thread | None = None
        # A process forked from this one gets a fresh queue, lock and writer.
        own = weakref.ref(self)

        def reset_in_child() -> None:
            log = own()
            if log is not None:
                log._after_fork()

        os.register_at_fork(after_in_child=reset_in_child)
        self._next_open = 0.0
        self._next_prune = 0.0
        self._last_warning = -WARN_EVERY_SECONDS
        self.written = self.dropped = self.failed = 0
        self.pruned = {"age": 0, "size": 0}  # rows this process deleted, by reason

    def record(self, record: SearchRecord) -> None:
        """Queue one search for the writer; never blocks for I/O and never raises."""
        with self._lock:
            if len(self._queue) >= self.queue_size:
                self.dropped += 1
                lost = True
            else:
                self._queue.append(record)
                self._pending += 1
                lost = False
                if self._thread is None:
                    self._start_writer()
                elif len(self._queue) in (1, BATCH):  # wake an idle writer, or a full batch
                    self._changed.notify()
        if lost:
            self._lost("dropped", 1)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued record is written (or given up); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._flushing += 1
            self._changed.notify_all()
            try:
                while self._pending:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._changed.wait(remaining)
            finally:
                self._flushing -= 1
        return True

    def _after_fork(self) -> None:
        # The child has no writer thread, and the lock may have been held by it at the fork.
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._queue.clear()
        self._pending = self._flushing = 0
        self._thread = None

    def _start_writer(self) -> None:
        self._thread = threading.Thread(target=self._run, name="search-log-writer", daemon=True)
        self._thread.start()
        if not self._exit_hook:  # a worker that stops writes what it still holds
            self._exit_hook = True
            atexit.register(self.flush, 2.0)

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while True:
                prune_due = conn is not None and time.monotonic() >= self._next_prune
                batch = self._next_batch(wait=not prune_due)
                if batch is None:
                    return
                if batch:
                    conn = self._write(conn, batch)
                conn = self._bound_size(conn)
                conn = self._prune_if_due(conn)
                with self._lock:
                    self._pending -= len(batch)
                    self._changed.notify_all()
        finally:
            if conn is not None:
                conn.close()

    def _next_batch(self, wait: bool) -> list[SearchRecord] | None:
        """Up to BATCH records, gathered for up to GATHER_SECONDS; [] at once if not `wait`ing;
        None after IDLE_SECONDS idle."""
        with self._lock:
            idle_until = time.monotonic() + IDLE_SECONDS
            while not self._queue:
                if not wait:
                    return []
                remaining = idle_until - time.monotonic()
                if remaining <= 0:
                    self._thread = None  # under the lock: record() starts another if needed
                    return None
                self._changed.wait(remaining)
            gather_until = time.monotonic() + GATHER_SECONDS
            while wait and len(self._queue) < BATCH and not self._flushing:
                remaining = gather_until - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            count = min(len(self._queue), BATCH)
            return [self._queue.popleft() for _ in range(count)]

    def _write(
        self, conn: sqlite3.Connection | None, batch: list[SearchRecord]
    ) -> sqlite3.Connection | None:
        try:
            if conn is None:
                if time.monotonic() < self._next_open:
                    raise OSError("the log could not be opened a moment ago")
                conn = connect(self.path, busy_timeout=self.busy_timeout)
            rows = [record.row() for record in batch]
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(INSERT, rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self.written += len(batch)
            return conn
        except Exception as error:  # whatever it is, the batch is lost, counted, and logged
            self._failed(len(batch), error)
            if conn is not None:
                conn.close()
            self._next_open = time.monotonic() + RETRY_OPEN_SECONDS
            return None

    def _prune_if_due(self, conn: sqlite3.Connection | None) -> sqlite3.Connection | None:
        """Delete rows older than the retention, a chunk per transaction, searches first."""
        if conn is None or time.monotonic() < self._next_prune:
            return conn
        cutoff = self.clock() - self.retention_days * DAY_SECONDS
        try:
            while True:
                deleted = delete_older_than(conn, cutoff, PRUNE_CHUNK)
                self._pruned("age", deleted)
                if deleted < PRUNE_CHUNK:
                    self._next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
                    return conn
                with self._lock:
                    if self._queue:  # searches are waiting: write them, then prune on
                        return conn
        except Exception as error:  # pruning is housekeeping: never let it stop the writer
            self._warn(f"pruning the search log {self.path} failed: {error}")
            self._next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
            conn.close()
            return None

    def _bound_size(self, conn: sqlite3.Connection | None) -> sqlite3.Connection | None:
        """Over max_bytes, delete the oldest rows, a chunk per transaction, until the pages
        hold SHRINK_TO of it; searches waiting are written first, and pruning goes on after."""
        if conn is None or self.max_bytes is None:
            return conn
        try:
            if not self._shrinking and used_bytes(conn) <= self.max_bytes:
                return conn
            self._shrinking = True
            while used_bytes(conn) > self.max_bytes * SHRINK_TO:
                deleted = delete_oldest(conn, PRUNE_CHUNK)
                self._pruned("size", deleted)
                if not deleted:
                    break  # nothing left to delete: the bound is below an empty log's size
                with self._lock:
                    if self._queue:
                        return conn
            self._shrinking = False
            return conn
        except Exception as error:  # housekeeping again: the writer goes on
            self._warn(f"keeping the search log {self.path} within its size failed: {error}")
            conn.close()
            return None

    def _pruned(self, reason: str, count: int) -> None:
        if not count:
            return
        self.pruned[reason] += count
        if self._on_pruned is not None:
            try:
                self._on_pruned(reason, count)
            except Exception:  # as with on_lost: a metrics hook never breaks the log
                log.exception("the search log's on_pruned hook failed")

    def _failed(self, count: int, error: Exception) -> None:
        self.failed += count
        self._lost("failed", count)
        self._warn(
            f"could not write {count} search(es) to the log {self.path}: {error} "
            f"({self.failed} lost so far in this process; searches are not affected)"
        )

    def _lost(self, reason: str, count: int) -> None:
        if self._on_lost is not None:
            try:
                self._on_lost(reason, count)
            except Exception:  # a metrics hook must never break the log, let alone a search
                log.exception("the search log's on_lost hook failed")
        if reason == "dropped":
            self._warn(f"the search log's queue is full: {self.dropped} search(es) not logged")

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_warning >= WARN_EVERY_SECONDS:
            self._last_warning = now
            log.warning("%s", message)

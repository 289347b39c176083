"""Cross-process coordination around index.csv: the edit lock and the "sync completed" mark."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from ..atomic import atomic_write_bytes

SyncStamp = tuple[int, int]  # (inode, mtime) of the mark file


@contextlib.contextmanager
def edit_lock(index_path: Path) -> Iterator[None]:
    """Hold the lock that makes each read-modify-write of products.csv and index.csv whole.

    Every process that edits or syncs takes it (server workers, `flask product`, `flask index`),
    so that no edit is lost to another's write of the files it read before. It is released
    when the process dies.
    """
    lock_path = index_path.with_name(index_path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a lock per open file: threads of one process wait too
        yield
    finally:
        os.close(fd)


def publish_sync(index_path: Path) -> SyncStamp | None:
    """Mark index.csv as complete and new: checkpoints of a running build never touch the mark."""
    atomic_write_bytes(_sync_marker(index_path), f"{time.time_ns()}\n".encode())
    return sync_stamp(index_path)


def sync_stamp(index_path: Path) -> SyncStamp | None:
    """Which completed sync index.csv holds now (None before the first one)."""
    try:
        info = _sync_marker(index_path).stat()
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns


def _sync_marker(index_path: Path) -> Path:
    return index_path.with_name(index_path.name + ".synced")

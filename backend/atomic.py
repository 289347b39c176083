"""Crash-safe file replacement: write a temp file in the same folder, fsync, os.replace.

A writer killed mid-write leaves only its temp file (`.NAME.*.tmp`) behind, never a partial
NAME. Writers of one folder take an exclusive lock on it, so any temp file of NAME found while
holding the lock belongs to a dead writer: it is removed then, at the next write of NAME. The
lock dies with its process, so a killed writer never blocks the next one.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_writer(path: Path, mode: str = "w", **open_kwargs) -> Iterator[IO]:
    """Yield a file handle whose content replaces `path` only if the block completes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _folder_lock(path.parent):
        remove_stale_temps(path)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            # mkstemp makes the file 0600; keep the mode the file had, or the usual one for a new file.
            os.fchmod(fd, _mode_for(path))
            with os.fdopen(fd, mode, **open_kwargs) as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
        _fsync_dir(path.parent)


def _mode_for(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_writer(path, "wb") as handle:
        handle.write(data)


def temp_files(path: Path) -> list[Path]:
    """The temp files that writers of `path` create (complete or abandoned)."""
    return sorted(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))


def remove_stale_temps(path: Path) -> None:
    """Delete temp files left by killed writers of `path`; call only under the folder lock."""
    for stale in temp_files(path):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    # flock on the folder itself: no lock file to leave behind, released when the process dies.
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not supported everywhere, and harmless to skip there.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

"""Dot products of many rows with one query, on every free core, never waiting for a busy one.

numpy's BLAS splits a large matrix-vector product over a thread team that waits for its slowest
member; on a small server whose other core is busy (inference, another request, another
process) that wait is a scheduler time slice, 10-16 ms. Here numpy's BLAS runs on one thread
(set once per process) and the rows are cut into chunks that the calling thread and idle helper
threads take in turn: the caller never waits for a helper that has not started, and a chunk a
helper took but has not finished within about one chunk's time after the caller ran out of work
is redone by the caller. On an idle machine every core streams its share of the matrix; on a
busy one the caller does alone what the others cannot, at the speed of one core, instead of
stalling.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

CHUNK_BYTES = 4 << 20  # a chunk's share of the matrix: small enough that a redo costs little
ALIGN_ROWS = 64
MAX_TEAM = 4  # threads per product (caller included): memory bandwidth is shared beyond that


class ScoringTeam:
    """The caller plus `helpers` threads; one per process (see `team`)."""

    def __init__(self, helpers: int, chunk_bytes: int = CHUNK_BYTES) -> None:
        self.helpers = helpers
        self.chunk_bytes = chunk_bytes
        self._pool = (
            ThreadPoolExecutor(helpers, thread_name_prefix="scores") if helpers > 0 else None
        )

    def dot(self, vectors: np.ndarray, query: np.ndarray) -> np.ndarray:
        """vectors (M, D) @ query (D,) -> (M,) float32, shared with the idle helpers."""
        # Whole groups of 64 rows: BLAS kernels take rows in small groups, and a chunk that
        # starts mid-group would round its scores differently from one call over all rows.
        rows = max(
            ALIGN_ROWS, self.chunk_bytes // max(1, vectors.strides[0]) // ALIGN_ROWS * ALIGN_ROWS
        )
        if self._pool is None or len(vectors) < 2 * rows:
            return vectors @ query
        job = _Job(vectors, query, rows)
        for _ in range(self.helpers):
            self._pool.submit(job.work)
        started = time.perf_counter()
        done = job.work()
        return job.collect(grace=(time.perf_counter() - started) / max(done, 1))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


class _Job:
    """One product cut into chunks; whoever is free takes the next one."""

    def __init__(self, vectors: np.ndarray, query: np.ndarray, rows: int) -> None:
        self.vectors = vectors
        self.query = query
        # Chunk i is rows bounds[i]:bounds[i + 1]; the last one also takes the rows left over
        # (a lone row would go down another BLAS path and round differently).
        self.bounds = [*range(0, len(vectors) - rows + 1, rows)][: max(1, len(vectors) // rows)]
        self.bounds.append(len(vectors))
        self.parts: list[np.ndarray | None] = [None] * (len(self.bounds) - 1)
        self._next = itertools.count()  # next() on it is atomic under the GIL
        self._finished = threading.Condition()

    def work(self) -> int:
        """Take chunks until none is left; return how many this thread computed."""
        done = 0
        while (i := next(self._next)) < len(self.parts):
            self.parts[i] = self._chunk(i)  # the product itself runs without the GIL
            done += 1
        if done:
            with self._finished:
                self._finished.notify_all()
        return done

    def _chunk(self, i: int) -> np.ndarray:
        return self.vectors[self.bounds[i] : self.bounds[i + 1]] @ self.query  # (rows,)

    def _complete(self) -> bool:
        return all(part is not None for part in self.parts)

    def collect(self, grace: float) -> np.ndarray:
        """Join the chunks; those still in a helper's hands after `grace` seconds are redone.

        A running helper finishes its chunk within about one chunk's time; one that is
        descheduled may not for a whole time slice, so the caller does not wait longer.
        """
        with self._finished:
            self._finished.wait_for(self._complete, timeout=grace)
        parts = [part if part is not None else self._chunk(i) for i, part in enumerate(self.parts)]
        return np.concatenate(parts)


_team: ScoringTeam | None = None
_team_pid = 0
_team_lock = threading.Lock()


def team() -> ScoringTeam:
    """This process's team, made on first use (again after a fork: threads do not survive one)."""
    global _team, _team_pid
    with _team_lock:
        if _team is None or _team_pid != os.getpid():
            single_threaded_blas()
            _team = ScoringTeam(min(usable_cores(), MAX_TEAM) - 1)
            _team_pid = os.getpid()
        return _team


def usable_cores() -> int:
    """Cores this process may run on, within a container's CPU quota."""
    if hasattr(os, "sched_getaffinity"):
        cores = len(os.sched_getaffinity(0))
    else:  # cpu_count() is None where the count is unknown: one core, as below
        cores = os.cpu_count() or 1
    try:  # cgroup v2: "max 100000" or "<quota> <period>"
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cores = min(cores, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return max(1, cores or 1)


def single_threaded_blas() -> None:
    """Make numpy's BLAS run every call on the calling thread (process-wide, for good).

    Set once, not around each product: threadpoolctl's limit is one global setting, and
    concurrent requests entering and leaving a temporary limit would restore each other's.
    Only numpy's OpenBLAS is limited; torch and FAISS keep their own thread pools.
    """
    from threadpoolctl import ThreadpoolController

    prefixes = numpy_blas()
    if prefixes:
        ThreadpoolController().select(prefix=prefixes).limit(limits=1)


def numpy_blas() -> list[str]:
    """The library prefixes of numpy's own BLAS (not torch's, not FAISS's)."""
    from threadpoolctl import threadpool_info

    return [
        lib["prefix"]
        for lib in threadpool_info()
        if lib["user_api"] == "blas" and f"{os.sep}numpy" in lib["filepath"]
    ]

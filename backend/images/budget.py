"""A per-process bound on the memory that decoded images hold at once.

Each worker thread may be decoding an upload; four large ones at a time took a worker past
700 MB. A decode first reserves the bytes its pixels will take; one that does not fit waits for
others to finish, and is turned away (429, retry) if that takes too long.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import Busy

# How long a decode waits for memory held by others: a large decode takes well under a second.
WAIT_SECONDS = 10.0
RETRY_AFTER_SECONDS = 2


class DecodeBudget:
    """Bytes of decoded pixels that may be held at once by this process's threads."""

    def __init__(self, capacity: int, wait: float = WAIT_SECONDS) -> None:
        self.capacity = capacity
        self.wait = wait
        self._used = 0
        self._changed = threading.Condition()

    @property
    def used(self) -> int:
        return self._used

    @contextmanager
    def reserve(self, nbytes: int) -> Iterator[None]:
        """Hold `nbytes` of the budget for the block; wait for room up to `self.wait` seconds."""
        if nbytes > self.capacity:
            raise ValueError(f"{nbytes} bytes can never fit a budget of {self.capacity}")
        with self._changed:
            if not self._changed.wait_for(lambda: self._used + nbytes <= self.capacity, self.wait):
                raise Busy(
                    "the server is decoding other large images; try again in a few seconds",
                    retry_after=RETRY_AFTER_SECONDS,
                )
            self._used += nbytes
        try:
            yield
        finally:
            with self._changed:
                self._used -= nbytes
                self._changed.notify_all()

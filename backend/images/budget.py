"""A per-process bound on the memory that decoded images hold at once.

Each worker thread may be decoding an upload; four large ones at a time took a worker past
700 MB. A decode first reserves the bytes its pixels will take; one that does not fit waits for
others to finish, and is turned away (429, retry) if that takes long: a waiting decode holds a
request thread, which /healthz and the next shopper need.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import Busy

# How long a decode waits for memory held by others: only decodes of tens of megapixels take
# enough to wait at all (a 12 MP phone JPEG reserves under 3 MB).
WAIT_SECONDS = 0.5
RETRY_AFTER_SECONDS = 2
# glibc's mallopt parameter, and the size from which a block is mapped on its own (and unmapped
# when freed). glibc raises it by itself up to 32 MB after the first large free, after which a
# freed decoded image stays in its thread's arena: four threads kept 560 MB for 100 MB in use.
_M_MMAP_THRESHOLD = -3
LARGE_BLOCK_BYTES = 1024 * 1024


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


def return_large_blocks_to_the_system() -> bool:
    """Fix glibc's mmap threshold, so large freed blocks (decoded pixels) leave the process."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: its allocator decides
        return bool(ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, LARGE_BLOCK_BYTES))
    return False

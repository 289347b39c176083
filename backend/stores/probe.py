"""Whether the vector store answers now: asked in the background with a deadline, for /readyz.

A readiness check must answer fast even when the database hangs: the store's `probe` runs in a
daemon thread, and an answer that takes longer than the deadline counts as "not answering".
One probe runs at a time; its answer is reused for a second, so a probe every few seconds from
a load balancer costs the database one cheap query at most.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from .base import StoreError

log = logging.getLogger(__name__)


class StoreProbe:
    """Run `check` (which raises when the store cannot answer) with a deadline; say why not."""

    def __init__(self, check: Callable[[], None], timeout: float = 2.0, every: float = 1.0):
        self.check = check
        self.timeout = timeout
        self.every = every
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._started = float("-inf")
        self._answer: tuple[str, str] | None = None

    def problem(self) -> tuple[str, str] | None:
        """None when the store answered; else (what anyone may read, what the operator may)."""
        with self._lock:
            stale = time.monotonic() - self._started > self.every
            if stale and (self._done.is_set() or self._started == float("-inf")):
                self._start()
            done, started = self._done, self._started
        if not done.wait(max(0.0, started + self.timeout - time.monotonic())):
            quiet = f"the vector store did not answer within {self.timeout:g} s"
            return quiet, quiet
        return self._answer

    def _start(self) -> None:
        self._done = done = threading.Event()
        self._started = time.monotonic()
        threading.Thread(target=self._run, args=(done,), name="store-probe", daemon=True).start()

    def _run(self, done: threading.Event) -> None:
        try:
            self.check()
            answer = None
        except StoreError as error:
            answer = (error.public_message, error.message)
        except Exception as error:  # noqa: BLE001 - whatever fails, the store cannot answer
            log.warning("vector store probe failed", exc_info=error)
            answer = (StoreError.public_message, f"{type(error).__name__}: {error}")
        self._answer = answer
        done.set()

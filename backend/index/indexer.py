"""Incremental sync of index.csv with the catalog: embed only what is new or changed."""

from __future__ import annotations

import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from ..catalog import Catalog, Product
from ..errors import ImageError, SearchAppError
from ..images.decode import decode_image
from ..images.sources import ImageLocator, file_signature
from ..model import Embedder
from .index_file import Entry, IndexTable, read_index, write_index

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (done, total)
T = TypeVar("T")
R = TypeVar("R")


@dataclass
class SyncReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def summary(self) -> str:
        return (
            f"{len(self.added)} added, {len(self.updated)} updated, {len(self.removed)} removed, "
            f"{self.unchanged} unchanged, {len(self.failed)} failed"
        )


@dataclass(frozen=True)
class Prepared:
    """One product's image, read and preprocessed, ready for a batch."""

    product: Product
    entry: Entry | None = None
    array: np.ndarray | None = None
    error: str | None = None


class Indexer:
    def __init__(
        self,
        locator: ImageLocator,
        embedder: Embedder,
        index_path: Path,
        *,
        batch_size: int = 32,
        checkpoint_every: int = 512,
        download_workers: int = 16,
        decode_workers: int = 2,
    ) -> None:
        self.locator = locator
        self.embedder = embedder
        self.index_path = index_path
        # A checkpoint can only fall between batches.
        self.batch_size = min(batch_size, checkpoint_every)
        self.checkpoint_every = checkpoint_every
        self.download_workers = download_workers
        self.decode_workers = decode_workers

    def sync(
        self, catalog: Catalog, progress: Progress | None = None
    ) -> tuple[IndexTable, SyncReport]:
        """Bring index.csv in line with the catalog; return the new table and what changed."""
        started = time.perf_counter()
        report = SyncReport()
        old = {entry.id: (entry, vector) for entry, vector in read_index(self.index_path).rows()}
        report.removed = [pid for pid in old if pid not in catalog.products]
        kept, todo, dirty = self._plan(catalog, old, report)
        new_rows = self._embed_all(todo, kept, old, report, progress)
        table = IndexTable.from_rows(kept + new_rows, self.embedder.dim)
        if dirty or report.changed or not self.index_path.is_file():
            write_index(self.index_path, table)
        report.seconds = time.perf_counter() - started
        return table, report

    def _plan(
        self, catalog: Catalog, old: dict, report: SyncReport
    ) -> tuple[list[tuple[Entry, np.ndarray]], list[Product], bool]:
        """Split products into kept rows and those to embed; `dirty` if kept rows changed."""
        kept: list[tuple[Entry, np.ndarray]] = []
        todo: list[Product] = []
        dirty = False
        for product in catalog.products.values():
            previous = old.get(product.id)
            entry = previous[0] if previous else None
            if (
                not entry
                or entry.model != self.embedder.identity
                or entry.source != product.image_url
            ):
                todo.append(product)
                continue
            if product.is_remote:
                kept.append(previous)
                continue
            refreshed = self._recheck_local(product, entry)
            if refreshed is None:
                todo.append(product)
            else:
                dirty |= refreshed != entry
                kept.append((refreshed, previous[1]))
        report.unchanged = len(kept)
        return kept, todo, dirty

    def _recheck_local(self, product: Product, entry: Entry) -> Entry | None:
        """The entry, refreshed, if the file's content is unchanged; None if it must be re-embedded."""
        try:
            signature = file_signature(self.locator.local_path(product.image_url))
        except Exception:  # noqa: BLE001 - embedding it again reports what is wrong
            return None
        if signature == entry.signature:
            return entry  # size and mtime unchanged: not even read
        try:
            data = self.locator.read(product)
        except Exception:  # noqa: BLE001 - embedding it again reports what is wrong
            return None
        if hashlib.sha256(data).hexdigest() != entry.fingerprint:
            return None
        return Entry(entry.id, entry.source, signature or "", entry.fingerprint, entry.model)

    def _embed_all(self, todo, kept, old, report, progress) -> list[tuple[Entry, np.ndarray]]:
        if not todo:
            return []
        # Downloads run ahead of decoding and inference, which wait only for their own image.
        downloads = ThreadPoolExecutor(self.download_workers, thread_name_prefix="download")
        try:
            pending = self.locator.start_downloads(todo, downloads)
            return self._embed_batches(todo, pending, kept, old, report, progress)
        finally:
            downloads.shutdown(cancel_futures=True)  # after an error, drop the queued ones

    def _embed_batches(
        self, todo, pending, kept, old, report, progress
    ) -> list[tuple[Entry, np.ndarray]]:
        rows: list[tuple[Entry, np.ndarray]] = []
        since_checkpoint = 0
        for done, batch in self._batches(todo, pending):
            ready = [item for item in batch if item.error is None]
            for item in batch:
                if item.error is not None:
                    report.failed[item.product.id] = item.error
            if ready:
                vectors = self.embedder.embed_arrays([item.array for item in ready])  # (B, D)
                for item, vector in zip(ready, vectors, strict=True):
                    rows.append((item.entry, vector))
                    (report.updated if item.product.id in old else report.added).append(
                        item.product.id
                    )
                since_checkpoint += len(ready)
            if since_checkpoint >= self.checkpoint_every:
                write_index(self.index_path, IndexTable.from_rows(kept + rows, self.embedder.dim))
                since_checkpoint = 0
            if progress:
                progress(done, len(todo))
        return rows

    def _batches(
        self, todo: list[Product], pending: dict[str, Future[str | None]]
    ) -> Iterator[tuple[int, list[Prepared]]]:
        """Read and preprocess in worker threads, overlapped with inference on the main thread."""

        def prepare(product: Product) -> Prepared:
            download = pending.get(product.id)
            error = download.result() if download else None
            if error:
                return Prepared(product, error=error)
            return self._prepare(product)

        with ThreadPoolExecutor(self.decode_workers, thread_name_prefix="decode") as pool:
            batch: list[Prepared] = []
            prepared = bounded_map(pool, prepare, todo, window=4 * self.batch_size)
            for done, item in enumerate(prepared, start=1):
                batch.append(item)
                if len(batch) == self.batch_size or done == len(todo):
                    yield done, batch
                    batch = []

    def embed_one(self, product: Product) -> tuple[Entry, np.ndarray]:
        """Embed one product's image now (a live catalog edit): its index.csv entry and vector (D,)."""
        prepared = self._prepare(product)
        if prepared.error is not None:
            raise ImageError(f"product {product.id!r}: {prepared.error}")
        return prepared.entry, self.embedder.embed_arrays([prepared.array])[0]

    def _prepare(self, product: Product) -> Prepared:
        try:
            data = self.locator.read(product)
            image = decode_image(data, min_size=self.embedder.min_decode_size)
            array = self.embedder.preprocess(image)
        except SearchAppError as error:
            return Prepared(product, error=error.message)
        except Exception as error:  # noqa: BLE001 - one product's failure never ends the run
            return Prepared(product, error=unexpected(product, error))
        path = self.locator.path_for(product)
        entry = Entry(
            id=product.id,
            source=product.image_url,
            signature=file_signature(path) or "",
            fingerprint=hashlib.sha256(data).hexdigest(),
            model=self.embedder.identity,
        )
        return Prepared(product, entry, array)


def unexpected(product: Product, error: Exception) -> str:
    """Log an unforeseen per-product error in full, and word it for the sync report."""
    log.warning("product %r failed", product.id, exc_info=error)
    return f"unexpected error: {type(error).__name__}: {error}"


def bounded_map(
    pool: Executor, fn: Callable[[T], R], items: Iterable[T], window: int
) -> Iterator[R]:
    """Like pool.map, in order, but with at most `window` results in flight (bounded memory)."""
    pending: deque = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()

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
from ..images.s3 import GONE
from ..images.sources import ImageLocator, file_signature
from ..model import Embedder
from .index_file import (
    Entry,
    IndexMeta,
    IndexTable,
    catalog_reference,
    read_index,
    write_index,
)

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
    skipped_rows: list[int] = field(default_factory=list)  # line numbers in products.csv
    seconds: float = 0.0
    # The catalog another index.csv was built from, when it was found and rebuilt.
    replaced_catalog: str | None = None
    # The model index.csv was built with, when it was another one (its images embedded again).
    replaced_model: str | None = None
    # Rows of index.csv found damaged (left out, their products embedded again).
    damaged_rows: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed or self.replaced_catalog)

    def summary(self) -> str:
        """One line: every count, with the failed ids and skipped row numbers (the first 10)."""
        failed = f"{len(self.failed)} failed" + _listed(list(self.failed))
        rows = "row" if len(self.skipped_rows) == 1 else "rows"
        skipped = f"{len(self.skipped_rows)} {rows} skipped" + _listed(
            [f"row {row}" for row in self.skipped_rows]
        )
        return (
            f"{len(self.added)} added, {len(self.updated)} updated, {len(self.removed)} removed, "
            f"{self.unchanged} unchanged, {failed}, {skipped}"
        )


def _listed(items: list[str], most: int = 10) -> str:
    if not items:
        return ""
    more = f", +{len(items) - most} more" if len(items) > most else ""
    return f" ({', '.join(items[:most])}{more})"


@dataclass(frozen=True)
class Prepared:
    """One product's image, read and preprocessed, ready for a batch."""

    product: Product
    entry: Entry
    array: np.ndarray


@dataclass(frozen=True)
class Unprepared:
    """One product whose image could not be read or preprocessed, and why."""

    product: Product
    error: str


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
        self._checkpoint_meta = IndexMeta()  # what a checkpoint of the running sync records

    def sync(
        self, catalog: Catalog, progress: Progress | None = None
    ) -> tuple[IndexTable, SyncReport]:
        """Bring index.csv in line with the catalog; return the new table and what changed."""
        started = time.perf_counter()
        report = SyncReport(skipped_rows=[skipped.row for skipped in catalog.skipped])
        reference = catalog_reference(catalog.path, self.index_path)
        previous = read_index(self.index_path)
        if previous.meta.catalog not in (None, reference):
            # Another catalog's vectors: its ids and paths may coincide with ours by chance.
            log.warning(
                "%s was built from catalog %s, not %s: rebuilding it",
                self.index_path,
                previous.meta.catalog,
                reference,
            )
            report.replaced_catalog = previous.meta.catalog
            previous = IndexTable()
        report.damaged_rows = previous.damaged
        built_with = previous.main_model()
        if built_with not in (None, self.embedder.identity):
            report.replaced_model = built_with
        old = {entry.id: (entry, vector) for entry, vector in previous.rows()}
        report.removed = [pid for pid in old if pid not in catalog.products]
        etags = self._s3_etags(catalog)
        kept, todo, dirty = self._plan(catalog, old, report, etags)
        self._checkpoint_meta = IndexMeta(reference)
        new_rows = self._embed_all(todo, kept, old, report, progress, etags)
        meta = IndexMeta.of(reference, report.failed)
        table = IndexTable.from_rows(kept + new_rows, self.embedder.dim, meta)
        if dirty or report.changed or meta != previous.meta or not self.index_path.is_file():
            write_index(self.index_path, table)
        report.seconds = time.perf_counter() - started
        return table, report

    def _s3_etags(self, catalog: Catalog) -> dict[str, str]:
        """{s3 URL: its object's ETag now, or GONE}, for the catalog's S3 images."""
        urls = [p.image_url for p in catalog.products.values() if p.is_s3]
        if not urls or self.locator.s3 is None:
            return {}
        return self.locator.s3.etags(urls)

    def _plan(
        self,
        catalog: Catalog,
        old: dict[str, tuple[Entry, np.ndarray]],
        report: SyncReport,
        etags: dict[str, str],
    ) -> tuple[list[tuple[Entry, np.ndarray]], list[Product], bool]:
        """Split products into kept rows and those to embed; `dirty` if kept rows changed."""
        kept: list[tuple[Entry, np.ndarray]] = []
        todo: list[Product] = []
        dirty = False
        for product in catalog.products.values():
            previous = old.get(product.id)
            if (
                previous is None
                or previous[0].model != self.embedder.identity
                or previous[0].source != product.image_url
            ):
                todo.append(product)
                continue
            entry, vector = previous
            if product.is_s3 and not _same_object(entry, etags.get(product.image_url)):
                todo.append(product)  # replaced, deleted or no longer readable
                continue
            if product.is_remote:
                kept.append(previous)
                continue
            refreshed = self._recheck_local(product, entry)
            if refreshed is None:
                todo.append(product)
            else:
                dirty |= refreshed != entry
                kept.append((refreshed, vector))
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

    def _embed_all(
        self, todo, kept, old, report, progress, etags
    ) -> list[tuple[Entry, np.ndarray]]:
        if not todo:
            return []
        # Downloads run ahead of decoding and inference, which wait only for their own image.
        downloads = ThreadPoolExecutor(self.download_workers, thread_name_prefix="download")
        try:
            pending = self.locator.start_downloads(todo, downloads, etags=etags)
            return self._embed_batches(todo, pending, kept, old, report, progress)
        finally:
            downloads.shutdown(cancel_futures=True)  # after an error, drop the queued ones

    def _embed_batches(
        self, todo, pending, kept, old, report, progress
    ) -> list[tuple[Entry, np.ndarray]]:
        rows: list[tuple[Entry, np.ndarray]] = []
        since_checkpoint = 0
        for done, batch in self._batches(todo, pending):
            ready = [item for item in batch if isinstance(item, Prepared)]
            for item in batch:
                if isinstance(item, Unprepared):
                    report.failed[item.product.id] = item.error
            if ready:
                vectors = self.embedder.embed_arrays([item.array for item in ready])  # (B, D)
                for item, vector in zip(ready, vectors, strict=True):
                    rows.append((item.entry, vector))
                    (report.updated if item.product.id in old else report.added).append(
                        item.product.id
                    )
                since_checkpoint += len(ready)
            # The last batch needs no checkpoint: the sync writes the whole index next.
            if since_checkpoint >= self.checkpoint_every and done < len(todo):
                table = IndexTable.from_rows(kept + rows, self.embedder.dim, self._checkpoint_meta)
                write_index(self.index_path, table)
                since_checkpoint = 0
            if progress:
                progress(done, len(todo))
        return rows

    def _batches(
        self, todo: list[Product], pending: dict[str, Future[str | None]]
    ) -> Iterator[tuple[int, list[Prepared | Unprepared]]]:
        """Read and preprocess in worker threads, overlapped with inference on the main thread."""

        def prepare(product: Product) -> Prepared | Unprepared:
            download = pending.get(product.id)
            error = download.result() if download else None
            if error:
                return Unprepared(product, error)
            return self._prepare(product)

        with ThreadPoolExecutor(self.decode_workers, thread_name_prefix="decode") as pool:
            batch: list[Prepared | Unprepared] = []
            prepared = bounded_map(pool, prepare, todo, window=4 * self.batch_size)
            for done, item in enumerate(prepared, start=1):
                batch.append(item)
                if len(batch) == self.batch_size or done == len(todo):
                    yield done, batch
                    batch = []

    def embed_one(self, product: Product) -> tuple[Entry, np.ndarray]:
        """Embed one product's image now (a live catalog edit): its index.csv entry and vector (D,)."""
        if product.is_s3:  # the object as it is now, not an older cached copy
            try:
                self.locator.download(product.image_url)
            except SearchAppError as error:
                raise ImageError(f"product {product.id!r}: {error.message}") from None
        prepared = self._prepare(product)
        if isinstance(prepared, Unprepared):
            raise ImageError(f"product {product.id!r}: {prepared.error}")
        return prepared.entry, self.embedder.embed_arrays([prepared.array])[0]

    def _prepare(self, product: Product) -> Prepared | Unprepared:
        try:
            data = self.locator.read(product)
            image = decode_image(data, min_size=self.embedder.min_decode_size)
            array = self.embedder.preprocess(image)
        except SearchAppError as error:
            return Unprepared(product, error.message)
        except Exception as error:  # noqa: BLE001 - one product's failure never ends the run
            return Unprepared(product, unexpected(product, error))
        path = self.locator.path_for(product)
        if product.is_s3:
            signature = s3_signature(self.locator.cached_etag(product.image_url) or "")
        else:
            signature = file_signature(path) or ""
        entry = Entry(
            id=product.id,
            source=product.image_url,
            signature=signature,
            fingerprint=hashlib.sha256(data).hexdigest(),
            model=self.embedder.identity,
        )
        return Prepared(product, entry, array)


def s3_signature(etag: str) -> str:
    """An S3 image's index.csv signature: its object's ETag (a new one for a replaced photo)."""
    return f"etag:{etag}"


def _same_object(entry: Entry, etag: str | None) -> bool:
    """The indexed S3 object is still there unchanged (also when S3 could not say: None)."""
    return etag is None or (etag != GONE and entry.signature == s3_signature(etag))


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

"""SearchService: joins catalog, embeddings and the model; usable with or without Flask."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic import atomic_write_bytes
from .catalog import Catalog, Product, load_catalog
from .config import Settings
from .errors import InvalidInput, NotFound
from .fetch import FetchPolicy, fetch
from .images import decode_image
from .sources import ImageLocator, read_limited

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hit:
    product: Product
    similarity: float


@dataclass(frozen=True)
class SearchResult:
    """The top-k matches, best first; those under the threshold are kept for the slider."""

    hits: list[Hit]
    threshold: float
    k: int
    category: str | None
    took_ms: float
    # The query embedding (D,), so a page can refine the same search without the image again.
    query: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def shown(self) -> list[Hit]:
        return [hit for hit in self.hits if hit.similarity >= self.threshold]

    @property
    def hidden_below_threshold(self) -> int:
        return len(self.hits) - len(self.shown)


class Snapshot:
    """An immutable view of catalog + vectors; replaced whole, so readers never see a mix."""

    def __init__(self, catalog: Catalog, ids: list[str], vectors: np.ndarray) -> None:
        from .vectors import VectorIndex

        self.catalog = catalog
        self.products = [catalog.products[pid] for pid in ids]
        self.row_of = {pid: row for row, pid in enumerate(ids)}
        self.index = VectorIndex(vectors, [p.category for p in self.products])


class SearchService:
    def __init__(self, settings: Settings, embedder=None) -> None:
        self.settings = settings
        self._embedder = embedder
        self._embedder_lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self.locator = ImageLocator(
            roots=(settings.catalog_path.parent, settings.static_dir),
            cache_dir=settings.cache_dir,
            max_bytes=settings.max_upload_bytes,
            fetch_policy=FetchPolicy(
                max_bytes=settings.max_upload_bytes, allow_loopback=settings.fetch_allow_loopback
            ),
        )
        self.snapshot: Snapshot | None = None
        # Which completed sync the snapshot reflects, so that a sync by another process
        # (another server worker, `flask index`) is noticed and loaded.
        self._sync_stamp: tuple[int, int] | None = None
        self._next_stamp_check = 0.0
        self.stamp_check_seconds = 2.0

    @property
    def embedder(self):
        """The model, loaded once on first use (torch is imported only then)."""
        if self._embedder is None:
            with self._embedder_lock:
                if self._embedder is None:
                    from .embedder import load_embedder

                    self._embedder = load_embedder(self.settings.model, self.settings.model_weights)
        return self._embedder

    def sync(self, progress=None):
        """Re-read the catalog, bring index.csv up to date and swap in the new vectors."""
        from .indexer import Indexer

        with self._sync_lock:
            catalog = load_catalog(self.settings.catalog_path)
            indexer = Indexer(
                self.locator,
                self.embedder,
                self.settings.index_path,
                checkpoint_every=self.settings.index_checkpoint_every,
                download_workers=self.settings.download_workers,
            )
            table, report = indexer.sync(catalog, progress)
            ids = [entry.id for entry in table.entries]
            self.snapshot = Snapshot(catalog, ids, table.vectors)
            self._sync_stamp = _publish_sync(self.settings.index_path)
            return catalog, report

    def load_index(self) -> Catalog:
        """Load the catalog and index.csv as they are, embedding nothing.

        For server processes whose index another process has just synced: rows of products no
        longer in the catalog, or of another model, are left out rather than re-embedded.
        """
        from .store import IndexTable, read_index

        with self._sync_lock:
            self._sync_stamp = _sync_stamp(self.settings.index_path)  # before reading: no gap
            catalog = load_catalog(self.settings.catalog_path)
            identity = self.embedder.identity
            rows = [
                (entry, vector)
                for entry, vector in read_index(self.settings.index_path).rows()
                if entry.id in catalog.products and entry.model == identity
            ]
            table = IndexTable.from_rows(rows, self.embedder.dim)
            self.snapshot = Snapshot(catalog, [entry.id for entry in table.entries], table.vectors)
            return catalog

    def reload_if_synced_elsewhere(self) -> bool:
        """Load index.csv again if another process completed a sync since ours (checked every 2 s)."""
        now = time.monotonic()
        if self.snapshot is None or now < self._next_stamp_check:
            return False
        self._next_stamp_check = now + self.stamp_check_seconds
        stamp = _sync_stamp(self.settings.index_path)
        if stamp is None or stamp == self._sync_stamp:
            return False
        log.info("index.csv was synced by another process; loading it")
        self.load_index()
        return True

    def _current(self) -> Snapshot:
        if self.snapshot is None:
            self.sync()
        return self.snapshot

    @property
    def catalog(self) -> Catalog:
        return self._current().catalog

    def indexed_count(self) -> int:
        return len(self._current().products)

    def search_bytes(self, data: bytes, **options) -> SearchResult:
        """Search with an uploaded image's bytes."""
        started = time.perf_counter()
        image = decode_image(data, min_size=self.embedder.min_decode_size)
        query = self.embedder.embed([image])[0]  # (D,)
        return self._rank(query, started, **options)

    def search_vector(self, query: np.ndarray, **options) -> SearchResult:
        """Search with a query embedding from an earlier search (same model)."""
        return self._rank(query, time.perf_counter(), **options)

    def search_path(self, path: Path, **options) -> SearchResult:
        return self.search_bytes(read_limited(path, self.settings.max_upload_bytes), **options)

    def search_url(self, url: str, **options) -> SearchResult:
        fetched = fetch(url, self.locator.fetch_policy)
        return self.search_bytes(fetched.content, **options)

    def search_similar(self, product_id: str, **options) -> SearchResult:
        """"More like this": the catalog items closest to one product, itself excluded."""
        started = time.perf_counter()
        snapshot = self._current()
        row = snapshot.row_of.get(product_id)
        if row is None:
            raise NotFound(f"product {product_id!r} is not in the index")
        # The same snapshot all the way: a re-index swapping in new rows must not shift `row`.
        return self._rank(
            snapshot.index.vectors[row], started, exclude_row=row, snapshot=snapshot, **options
        )

    def _rank(
        self,
        query: np.ndarray,
        started: float,
        *,
        k: int | None = None,
        threshold: float | None = None,
        category: str | None = None,
        exclude_row: int | None = None,
        snapshot: Snapshot | None = None,
    ) -> SearchResult:
        k = self.settings.top_k if k is None else k
        threshold = self.settings.similarity_threshold if threshold is None else threshold
        if not 1 <= k <= 100:
            raise InvalidInput(f"k={k} must be between 1 and 100")
        if not 0.0 <= threshold <= 1.0:
            raise InvalidInput(f"threshold={threshold} must be between 0 and 1")
        snapshot = snapshot or self._current()
        matches = snapshot.index.search(query, k, label=category or None, exclude_row=exclude_row)
        hits = [Hit(snapshot.products[m.row], m.score) for m in matches]
        took_ms = (time.perf_counter() - started) * 1000
        return SearchResult(hits, threshold, k, category or None, took_ms, query)

    def image_path(self, product_id: str) -> Path:
        """The local file to serve for a product's image (downloading a remote one once)."""
        product = self.catalog.get(product_id)
        if product is None:
            raise NotFound(f"product {product_id!r} does not exist")
        path = self.locator.path_for(product)
        if product.is_remote and not path.is_file():
            path = self.locator.download(product.image_url)
        return path


def _sync_marker(index_path: Path) -> Path:
    return index_path.with_name(index_path.name + ".synced")


def _publish_sync(index_path: Path) -> tuple[int, int] | None:
    """Mark index.csv as complete and new: checkpoints of a running build never touch the mark."""
    atomic_write_bytes(_sync_marker(index_path), f"{time.time_ns()}\n".encode())
    return _sync_stamp(index_path)


def _sync_stamp(index_path: Path) -> tuple[int, int] | None:
    try:
        info = _sync_marker(index_path).stat()
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns

"""SearchService: joins catalog, embeddings and the model; usable with or without Flask."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .atomic import atomic_write_bytes
from .catalog import Catalog, Product, edits, load_catalog
from .config import Settings
from .errors import Busy, FetchError, NotFound
from .images.decode import decode_image
from .images.fetch import FetchPolicy, fetch
from .images.sources import ImageLocator, read_limited, save_upload
from .index.index_file import Entry, IndexTable, read_index, write_index_row
from .index.indexer import Indexer, SyncReport
from .index.locks import edit_lock, publish_sync, sync_stamp
from .model import Embedder, load_embedder
from .options import SearchOptions
from .stores import Filters, VectorStore, item_version, open_store, sync_store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hit:
    product: Product
    similarity: float


@dataclass(frozen=True)
class SearchResult:
    """The top-k matches, best first; those under the threshold are kept for the slider."""

    hits: list[Hit]
    options: SearchOptions
    took_ms: float
    # The query embedding (D,), so a page can refine the same search without the image again.
    query: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def threshold(self) -> float:
        return self.options.threshold

    @property
    def k(self) -> int:
        return self.options.k

    @property
    def category(self) -> str | None:
        return self.options.category

    @property
    def shown(self) -> list[Hit]:
        return [hit for hit in self.hits if hit.similarity >= self.threshold]

    @property
    def hidden_below_threshold(self) -> int:
        return len(self.hits) - len(self.shown)


class Snapshot:
    """An immutable view of the catalog and of which products are indexed; replaced whole.

    The vectors themselves live in the vector store (`SearchService.store`).
    """

    def __init__(self, catalog: Catalog, ids: list[str]) -> None:
        self.catalog = catalog
        self.products = [catalog.products[pid] for pid in ids]
        self.row_of = {pid: row for row, pid in enumerate(ids)}


class SearchService:
    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self._embedder = embedder
        self._embedder_lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self.locator = ImageLocator(
            roots=(settings.catalog_path.parent, settings.static_dir),
            cache_dir=settings.cache_dir,
            max_bytes=settings.max_upload_bytes,
            fetch_policy=FetchPolicy(
                max_bytes=settings.max_upload_bytes,
                total_timeout=settings.fetch_timeout,
                allow_loopback=settings.fetch_allow_loopback,
            ),
        )
        # Shoppers' image URLs: their own deadline, and a few slots so slow hosts cannot hold
        # every request thread.
        self.query_fetch_policy = dataclasses.replace(
            self.locator.fetch_policy, total_timeout=settings.query_fetch_timeout
        )
        self._query_fetch_slots = threading.BoundedSemaphore(settings.query_fetch_slots)
        self.snapshot: Snapshot | None = None
        # Which completed sync the snapshot reflects, so that a sync by another process
        # (another server worker, `flask index`) is noticed and loaded.
        self._sync_stamp: tuple[int, int] | None = None
        self._next_stamp_check = 0.0
        self.stamp_check_seconds = 2.0
        self._store: VectorStore | None = None
        # Image URLs whose download failed, with when: /images/<id> answers 404 at once for a
        # while instead of tying up a request thread on the same dead URL at every view.
        self._failed_downloads: dict[str, float] = {}
        self._failed_downloads_lock = threading.Lock()
        self.retry_failed_download_seconds = 300.0

    @property
    def embedder(self) -> Embedder:
        """The model, loaded once on first use (torch is imported only then)."""
        if self._embedder is None:
            with self._embedder_lock:
                if self._embedder is None:
                    self._embedder = load_embedder(
                        self.settings.model,
                        self.settings.model_weights,
                        self.settings.model_head,
                        self.settings.model_precision,
                    )
        return self._embedder

    @property
    def store(self) -> VectorStore:
        """The configured vector store (VECTOR_BACKEND), opened on first use."""
        if self._store is None:
            dim = self.embedder.dim  # outside the lock: loading the model takes it too
            with self._embedder_lock:
                if self._store is None:
                    self._store = open_store(self.settings, dim)
        return self._store

    def close(self) -> None:
        """Release the vector store's connections (pgvector) or memory."""
        if self._store is not None:
            self._store.close()
            self._store = None

    def _indexer(self) -> Indexer:
        return Indexer(
            self.locator,
            self.embedder,
            self.settings.index_path,
            checkpoint_every=self.settings.index_checkpoint_every,
            download_workers=self.settings.download_workers,
        )

    def _publish(self, catalog: Catalog, table: IndexTable) -> None:
        """Push what changed into the vector store, then swap in the new snapshot."""
        sync_store(self.store, catalog, table)
        self.snapshot = Snapshot(catalog, [e.id for e in table.entries if e.id in catalog.products])

    def sync(self, progress=None) -> tuple[Catalog, SyncReport]:
        """Re-read the catalog, bring index.csv and the vector store up to date, swap them in."""
        with edit_lock(self.settings.index_path), self._sync_lock:
            store = self.store  # an unusable database fails now, before any embedding work
            catalog = load_catalog(self.settings.catalog_path)
            table, report = self._indexer().sync(catalog, progress)
            self._publish(catalog, table)
            store.flush()  # only a syncing process writes the store's files (FAISS)
            self._sync_stamp = publish_sync(self.settings.index_path)
            return catalog, report

    def load_index(self) -> Catalog:
        """Load the catalog and index.csv as they are, embedding nothing.

        For server processes whose index another process has just synced: rows of products no
        longer in the catalog, or of another model, are left out rather than re-embedded.
        """
        with self._sync_lock:
            self._sync_stamp = sync_stamp(self.settings.index_path)  # before reading: no gap
            catalog = load_catalog(self.settings.catalog_path)
            identity = self.embedder.identity
            table = read_index(self.settings.index_path)
            keep = [
                row
                for row, entry in enumerate(table.entries)
                if entry.id in catalog.products and entry.model == identity
            ]
            if len(keep) < len(table) or not keep:
                # Copied only when rows are left out: at 50k rows a copy is 100 MB more at peak.
                rows = [(table.entries[row], table.vectors[row]) for row in keep]
                table = IndexTable.from_rows(rows, self.embedder.dim)
            self._publish(catalog, table)
            return catalog

    def reload_if_synced_elsewhere(self) -> bool:
        """Load index.csv again if another process completed a sync since ours (checked every 2 s)."""
        now = time.monotonic()
        if self.snapshot is None or now < self._next_stamp_check:
            return False
        self._next_stamp_check = now + self.stamp_check_seconds
        stamp = sync_stamp(self.settings.index_path)
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

    def options(self, **changes: Any) -> SearchOptions:
        """The served default options (TOP_K, SIMILARITY_THRESHOLD) with `changes`, validated."""
        return self.settings.search_defaults.with_changes(**changes)

    def _resolve(self, options: SearchOptions | None, changes: dict[str, Any]) -> SearchOptions:
        base = self.settings.search_defaults if options is None else options
        return base.with_changes(**changes)

    def search_bytes(
        self, data: bytes, options: SearchOptions | None = None, **changes: Any
    ) -> SearchResult:
        """Search with an uploaded image's bytes; options default to the served ones."""
        started = time.perf_counter()
        options = self._resolve(options, changes)
        image = decode_image(data, min_size=self.embedder.min_decode_size)
        return self._search_image(image, options, started)

    def search_image(
        self, image: Image.Image, options: SearchOptions | None = None, **changes: Any
    ) -> SearchResult:
        """Search with an image already decoded by `decode_image` (limits checked)."""
        return self._search_image(image, self._resolve(options, changes), time.perf_counter())

    def _search_image(
        self, image: Image.Image, options: SearchOptions, started: float
    ) -> SearchResult:
        query = self.embedder.embed([image])[0]  # (D,)
        return self._rank(query, options, started)

    def search_vector(
        self, query: np.ndarray, options: SearchOptions | None = None, **changes: Any
    ) -> SearchResult:
        """Search with a query embedding from an earlier search (same model)."""
        return self._rank(query, self._resolve(options, changes), time.perf_counter())

    def search_path(
        self, path: Path, options: SearchOptions | None = None, **changes: Any
    ) -> SearchResult:
        data = read_limited(path, self.settings.max_upload_bytes)
        return self.search_bytes(data, options, **changes)

    def search_url(
        self, url: str, options: SearchOptions | None = None, **changes: Any
    ) -> SearchResult:
        return self.search_bytes(self.fetch_query_image(url), options, **changes)

    def fetch_query_image(self, url: str) -> bytes:
        """Download a shopper's image URL within QUERY_FETCH_TIMEOUT, in a free slot or not at all."""
        if not self._query_fetch_slots.acquire(blocking=False):
            raise Busy(
                "the server is busy downloading other image URLs; try again in a few seconds, "
                "or upload the image instead",
                retry_after=math.ceil(self.settings.query_fetch_timeout),
            )
        try:
            return fetch(url, self.query_fetch_policy).content
        finally:
            self._query_fetch_slots.release()

    def search_similar(
        self, product_id: str, options: SearchOptions | None = None, **changes: Any
    ) -> SearchResult:
        """ "More like this": the catalog items closest to one product, itself excluded."""
        started = time.perf_counter()
        options = self._resolve(options, changes)
        self._current()
        vector = self.store.vector(product_id)
        if vector is None:
            raise NotFound(f"product {product_id!r} is not in the index")
        return self._rank(vector, options, started, exclude_id=product_id)

    def _rank(
        self,
        query: np.ndarray,
        options: SearchOptions,
        started: float,
        exclude_id: str | None = None,
    ) -> SearchResult:
        self._current()
        k = options.k
        filters = Filters(options.category, options.min_price, options.max_price)
        # One more when a product is excluded ("more like this"), so k remain without it.
        found = self.store.search(query, k + (exclude_id is not None), filters=filters)
        hits = [Hit(f.product, f.score) for f in found if f.product.id != exclude_id][:k]
        took_ms = (time.perf_counter() - started) * 1000
        return SearchResult(hits, options, took_ms, query)

    def put_product(
        self, product_id: str, fields: Mapping[str, Any], image: bytes | None = None
    ) -> Product:
        """Add or replace one product now: products.csv, index.csv, then the vector store.

        The image is downloaded and embedded before the edit lock is taken, so a slow image
        URL holds up no other edit; under the lock only the files are written.
        """
        self._current()
        if image is not None:
            folder = self.settings.catalog_path.parent
            fields = {**fields, "image_url": save_upload(folder, image)}
        product = edits.product_from_fields(product_id, fields, self.catalog.get(product_id))
        embedded = {product.image_url: self._indexer().embed_one(product)}
        with self._editing():
            # Another edit may have changed the product meanwhile: apply these fields to it.
            product = edits.product_from_fields(product_id, fields, self.catalog.get(product_id))
            if product.image_url not in embedded:  # its image changed meanwhile: a local file
                embedded[product.image_url] = self._indexer().embed_one(product)
            entry, vector = embedded[product.image_url]
            self._write_edit(product.id, product, (entry, vector))
            version = item_version(entry.fingerprint, entry.model, product)
            self.store.upsert([product], vector[None, :], [version])
            self._edited(edits.with_product(self.snapshot.catalog, product), added=product.id)
        return product

    def delete_product(self, product_id: str) -> None:
        """Remove one product now from products.csv, index.csv and the vector store."""
        self._current()
        with self._editing():
            catalog = edits.without_product(self.snapshot.catalog, product_id)
            self._write_edit(product_id, None, None)
            self.store.delete([product_id])
            self._edited(catalog)

    def _write_edit(
        self, product_id: str, product: Product | None, row: tuple[Entry, np.ndarray] | None
    ) -> None:
        """products.csv (the record) first, then index.csv; if index.csv cannot be written,
        products.csv is put back as it was, so the files never disagree."""
        catalog_path, index_path = self.settings.catalog_path, self.settings.index_path
        with edits.catalog_writes():
            before = catalog_path.read_bytes()
            edits.write_catalog_row(catalog_path, product_id, product)
            try:
                write_index_row(index_path, product_id, row)
            except OSError:
                atomic_write_bytes(catalog_path, before)
                raise

    @contextlib.contextmanager
    def _editing(self) -> Iterator[None]:
        """Edit alone, across processes, on a snapshot that holds the other processes' edits."""
        with edit_lock(self.settings.index_path):
            if sync_stamp(self.settings.index_path) != self._sync_stamp:
                self.load_index()  # else our sync mark would hide their edit from us for good
            with self._sync_lock:
                yield

    def _edited(self, catalog: Catalog, added: str | None = None) -> None:
        indexed = [pid for pid in self.snapshot.row_of if pid in catalog.products]
        indexed += [added] if added is not None and added not in self.snapshot.row_of else []
        self.snapshot = Snapshot(catalog, indexed)
        # Other server processes notice the mark and load the edited files.
        self._sync_stamp = publish_sync(self.settings.index_path)

    def image_path(self, product_id: str) -> Path:
        """The local file to serve for a product's image (downloading a remote one once)."""
        product = self.catalog.get(product_id)
        if product is None:
            raise NotFound(f"product {product_id!r} does not exist")
        path = self.locator.path_for(product)
        if product.is_remote and not path.is_file():
            path = self._download(product.image_url)
        return path

    def _download(self, url: str) -> Path:
        now = time.monotonic()
        with self._failed_downloads_lock:
            failed_at = self._failed_downloads.get(url)
        if failed_at is not None and now - failed_at < self.retry_failed_download_seconds:
            raise NotFound("this image could not be downloaded a moment ago; try again later")
        try:
            return self.locator.download(url)
        except (FetchError, OSError):
            with self._failed_downloads_lock:
                self._failed_downloads[url] = time.monotonic()
            raise

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
from .catalog.examples import Example, load_examples
from .config import Settings
from .errors import Busy, CatalogReadOnly, ConfigError, FetchError, ImageError, NotFound
from .images.decode import decode_image
from .images.fetch import FetchPolicy, fetch
from .images.s3 import S3Reader
from .images.sources import ImageLocator, file_signature, read_limited, save_upload
from .index.index_file import (
    DAMAGED_ROW,
    Entry,
    IndexMeta,
    IndexTable,
    catalog_reference,
    read_index,
    read_meta,
    write_index_row,
)
from .index.indexer import Indexer, SyncReport
from .index.locks import edit_lock, publish_sync, sync_stamp
from .index.packed import (
    BadVectors,
    Packed,
    is_current,
    packed_path,
    read_packed,
    write_packed,
)
from .index.snapshot import Snapshot
from .model import Embedder, embed_query, load_embedder
from .model.adapter import CANDIDATES, bias_corrected
from .model.calibration import Calibration
from .options import MATCH_TOLERANCE, SearchOptions, match_percent, passes
from .stores import (
    ITEM_VERSION_SCHEME,
    Filters,
    VectorStore,
    item_version,
    open_store,
    row_versions,
    sync_store,
)
from .stores.bias import ItemBiases
from .stores.probe import StoreProbe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hit:
    product: Product
    similarity: float
    # The measured chance (whole percent) that this is the product in the photo; None when the
    # model has no calibration, or for "more like this" (catalogue photo against catalogue).
    match: int | None = None

    @property
    def percent(self) -> int:
        """The figure the threshold is compared with: the match, else the similarity in percent."""
        return self.match if self.match is not None else match_percent(self.similarity)


@dataclass(frozen=True)
class SearchResult:
    """The top-k matches, best first; those under the threshold are kept for the slider."""

    hits: list[Hit]
    options: SearchOptions
    took_ms: float
    # The query embedding (D,), so a page can refine the same search without the image again.
    query: np.ndarray | None = field(default=None, repr=False, compare=False)
    # Milliseconds per stage ("decode", "embed", "rank"), for the metrics and the search log.
    stages_ms: dict[str, float] = field(default_factory=dict, compare=False)
    # Whether the hits carry a match: the threshold is then a minimum match, else a similarity.
    calibrated: bool = False

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
        if self.calibrated:
            minimum = self.threshold * 100 - 100 * MATCH_TOLERANCE
            return [hit for hit in self.hits if hit.match >= minimum]
        # The tolerance keeps float32 rounding from hiding what is labelled "100 % match".
        return [hit for hit in self.hits if passes(hit.similarity, self.threshold)]

    @property
    def hidden_below_threshold(self) -> int:
        return len(self.hits) - len(self.shown)


def _matches(calibration: Calibration | None, scores: list[float]) -> list[int | None]:
    """Each score's match (whole percent), or None for every one without a calibration."""
    if calibration is None:
        return [None] * len(scores)
    return list(calibration.matches(np.asarray(scores, dtype=float)))


def _same_scheme(packed: Packed) -> list[str] | None:
    """The packed store versions, if computed the way this code computes them."""
    scheme, versions = packed.row_versions or (None, None)
    return versions if scheme == ITEM_VERSION_SCHEME else None


def model_name(identity: str) -> str:
    """The MODEL setting of a model identity ("name/weights/preprocessing/runtime")."""
    return identity.split("/", 1)[0]


class SearchService:
    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self._embedder = embedder
        self._embedder_lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self.locator = ImageLocator(
            roots=settings.image_roots,
            cache_dir=settings.cache_dir,
            max_bytes=settings.max_upload_bytes,
            fetch_policy=FetchPolicy(
                max_bytes=settings.max_upload_bytes,
                total_timeout=settings.fetch_timeout,
                allow_loopback=settings.fetch_allow_loopback,
            ),
            s3=S3Reader(
                settings.s3_endpoint_url,
                max_bytes=settings.max_upload_bytes,
                total_timeout=settings.fetch_timeout,
                workers=settings.download_workers,
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
        self._store_probe: StoreProbe | None = None
        # Why the index on disk was not loaded (another catalog's or model's), while that holds.
        self._refused: str | None = None
        self._biases: ItemBiases | None = None
        # Image URLs whose download failed, with when: /images/<id> answers 404 at once for a
        # while instead of tying up a request thread on the same dead URL at every view.
        self._failed_downloads: dict[str, float] = {}
        self._failed_downloads_lock = threading.Lock()
        self.retry_failed_download_seconds = 300.0

    @property
    def embedder(self) -> Embedder:
        """The model, loaded once on first use (torch is imported only to export it)."""
        if self._embedder is None:
            with self._embedder_lock:
                if self._embedder is None:
                    self._embedder = load_embedder(
                        self.settings.model,
                        self.settings.model_weights,
                        self.settings.model_head,
                        self.settings.model_runtime,
                        self.settings.model_export_dir,
                        self.settings.model_threads,
                        *self.settings.adapter_choice,
                    )
        return self._embedder

    @property
    def biases(self) -> ItemBiases:
        """The indexed items' score corrections for shoppers' photos (none without an adapter)."""
        if self._biases is None:
            self._biases = ItemBiases(getattr(self.embedder, "item_bias", None))
        return self._biases

    @property
    def calibration(self) -> Calibration | None:
        """The model's match calibration, if it was fitted on vectors of the model served."""
        calibration = self.settings.calibration
        if calibration is None or calibration.fits(self.embedder.identity):
            return calibration
        log.error("the match calibration was fitted for %s, not %s: results carry no match; "
                  "run `python -m bench.calibrate`", calibration.identity,
                  self.embedder.identity)  # fmt: skip
        return None

    @property
    def loaded_embedder(self) -> Embedder | None:
        """The model if it is loaded already (pages name it without loading it)."""
        return self._embedder

    @property
    def store(self) -> VectorStore:
        """The configured vector store (VECTOR_BACKEND), opened on first use."""
        if self._store is None:
            dim = self.embedder.dim  # outside the lock: loading the model takes it too
            identity = self.embedder.identity
            with self._embedder_lock:
                if self._store is None:
                    self._store = open_store(self.settings, dim, identity)
        return self._store

    def store_problem(self) -> tuple[str, str] | None:
        """Why the vector store could not answer a search now: (for anyone, for the operator);
        None when it can. Asked with a deadline; a store in this process is not asked."""
        store = self._store
        if store is None or not store.remote:
            return None
        if self._store_probe is None:
            self._store_probe = StoreProbe(store.probe)
        return self._store_probe.problem()

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

    def _publish(
        self,
        catalog: Catalog,
        table: IndexTable,
        failed: dict[str, str],
        problem: str | None = None,
        versions: list[str] | None = None,
        damaged: int = 0,
    ) -> None:
        """Push what changed into the vector store, then swap in the new snapshot."""
        sync_store(self.store, catalog, table, versions)
        self.biases.replace([entry.id for entry in table.entries], table.vectors)
        self.snapshot = Snapshot.of(catalog, table.entries, table.meta, failed, problem, damaged)

    def sync(self, progress=None) -> tuple[Catalog, SyncReport]:
        """Re-read the catalog, bring index.csv and the vector store up to date, swap them in."""
        with edit_lock(self.settings.index_path), self._sync_lock:
            store = self.store  # an unusable database fails now, before any embedding work
            catalog = self._load_catalog(fetch=True)
            table, report = self._indexer().sync(catalog, progress)
            self._publish(catalog, table, report.failed)
            self._refused = None
            store.flush()  # only a syncing process writes the store's files (FAISS)
            self._pack(catalog, table)
            self._sync_stamp = publish_sync(self.settings.index_path)
            return catalog, report

    def _pack(self, catalog: Catalog, table: IndexTable) -> None:
        """Pack what was just synced, so that server workers start without parsing it."""
        index_path, image_base = self.settings.index_path, self._image_base()
        if is_current(index_path, catalog.path, image_base):
            return
        versions = (ITEM_VERSION_SCHEME, row_versions(catalog, table))
        try:
            write_packed(index_path, catalog, table, image_base, versions)
        except OSError as error:  # only a slower start: workers parse the CSV files instead
            log.warning("cannot write %s: %s", packed_path(self.settings.index_path), error)

    def _image_base(self) -> str | None:
        """Where relative image paths of an s3:// catalog point: objects next to it."""
        url = self.settings.catalog_url
        return None if url is None else url.rsplit("/", 1)[0] + "/"

    def _load_catalog(self, fetch: bool) -> Catalog:
        """products.csv; for CATALOG_PATH=s3://..., its local copy (fetched again if `fetch`)."""
        url = self.settings.catalog_url
        if url is None:
            return load_catalog(self.settings.catalog_path)
        if fetch or not self.settings.catalog_path.is_file():
            try:
                self.locator.fetch_catalog(url, self.settings.catalog_path)
            except FetchError as error:
                raise ConfigError(f"cannot read the catalog {error.message}") from None
        # Relative image paths are objects next to the catalog, as files are next to a local one.
        return load_catalog(self.settings.catalog_path, image_base=self._image_base())

    def load_index(self) -> Catalog:
        """Load the catalog and index.csv as they are, embedding nothing.

        For server processes whose index another process has just synced: rows of products no
        longer in the catalog, or of another model, are left out rather than re-embedded. An
        index built from another catalog is never loaded: a server keeps what it has, and one
        that has nothing yet serves nothing and says why (`/readyz`). Damaged rows (a vector
        not finite or not of unit length) are never served: a server keeps the index it has, and
        one that has nothing yet serves the intact rows, not ready, saying why.
        """
        with self._sync_lock:
            self._sync_stamp = sync_stamp(self.settings.index_path)  # before reading: no gap
            identity = self.embedder.identity
            catalog, table, versions, note = self._read_synced()
            problem = self._unusable_index_problem(table)
            if problem is not None:
                return self._refuse_index(catalog, problem)
            self._refused = None
            damaged, damage = table.damaged, self._damage_problem(table)
            if damage is not None:
                note = damage if note is None else f"{note}; {damage}"
                if self.snapshot is not None:
                    self.snapshot = self.snapshot.with_problem(note)  # the last good index
                    return self.snapshot.catalog
            reasons = dict.fromkeys(table.damaged_ids & catalog.products.keys(), DAMAGED_ROW)
            keep = [
                row
                for row, entry in enumerate(table.entries)
                if entry.id in catalog.products and entry.model == identity
            ]
            if len(keep) < len(table) or not keep:
                # Copied only when rows are left out: at 50k rows a copy is 100 MB more at peak.
                rows = [(table.entries[row], table.vectors[row]) for row in keep]
                table = IndexTable.from_rows(rows, self.embedder.dim, table.meta)
                versions = None
            self._publish(catalog, table, reasons, note, versions, damaged)
            return catalog

    def _read_synced(self) -> tuple[Catalog, IndexTable, list[str] | None, str | None]:
        """The catalog, index.csv and the rows' store versions if known: from their pack when
        it is current and intact, else parsed; and why a pack was refused."""
        settings = self.settings
        name = packed_path(settings.index_path).name
        try:
            packed = read_packed(settings.index_path, settings.catalog_path, self._image_base())
        except BadVectors as error:
            note = f"{name} was refused ({error}); loaded {settings.index_path.name} instead"
            log.error("%s; the next `flask index` packs it again", note)
            catalog = self._load_catalog(fetch=False)
            return catalog, read_index(settings.index_path), None, note
        if packed is None:
            catalog = self._load_catalog(fetch=False)
            return catalog, read_index(settings.index_path), None, None
        log.info("loaded %s, packed by the last sync", name)
        return packed.catalog, packed.table, _same_scheme(packed), None

    def _damage_problem(self, table: IndexTable) -> str | None:
        if not table.damaged:
            return None
        rows = "row" if table.damaged == 1 else "rows"
        return (
            f"{self.settings.index_path.name} has {table.damaged} damaged {rows} (a vector not "
            "finite or not of unit length, a torn line or a repeated id), not served; run "
            "`flask index` to embed those products again"
        )

    def _foreign_catalog(self, meta: IndexMeta) -> str | None:
        """The other catalog index.csv was built from, or None when it is this one's."""
        recorded = meta.catalog
        expected = catalog_reference(self.settings.catalog_path, self.settings.index_path)
        return None if recorded in (None, expected) else recorded

    def _foreign_index_problem(self, foreign: str) -> str:
        log.error("%s was built from the catalog %s", self.settings.index_path, foreign)
        return (  # said by the public /readyz: the other catalog's path is in the log only
            f"{self.settings.index_path.name} was built from another catalog; run `flask index` "
            "with this server's CATALOG_PATH, or give each catalog its own INDEX_PATH"
        )

    def _unusable_index_problem(self, table: IndexTable) -> str | None:
        """Why this server cannot search with index.csv (another catalog's or another model's)."""
        foreign = self._foreign_catalog(table.meta)
        if foreign is not None:
            return self._foreign_index_problem(foreign)
        built_with = table.main_model()
        served = self.embedder.identity
        if built_with is None or built_with == served:
            return None
        kept = "kept the index it has" if self.snapshot is not None else "serving nothing"
        return (
            f"{self.settings.index_path.name} on disk was built with model {built_with}; this "
            f"server runs model {served}: {kept}; restart with MODEL={model_name(built_with)} "
            f"or re-index with MODEL={model_name(served)}"
        )

    def _refuse_index(self, catalog: Catalog, problem: str) -> Catalog:
        """Keep answering from what was loaded before, saying why (or serve nothing yet)."""
        log.error("not loading %s: %s", self.settings.index_path, problem)
        self._refused = problem
        if self.snapshot is not None:
            self.snapshot = self.snapshot.with_problem(problem)
            return self.snapshot.catalog
        self._publish(catalog, IndexTable.from_rows([], self.embedder.dim), {}, problem)
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

    def current(self) -> Snapshot:
        """The snapshot searches are answered from (the index is synced on first use)."""
        if self.snapshot is None:
            self.sync()
        return self.snapshot

    @property
    def catalog(self) -> Catalog:
        return self.current().catalog

    def indexed_count(self) -> int:
        return len(self.current().products)

    def image_version(self, product_id: str) -> str | None:
        """The content version of a product's indexed image, for its cache-safe URL."""
        return self.current().image_version(product_id)

    def is_indexed_image(self, product_id: str, version: str, path: Path) -> bool:
        """Whether `path` still holds the image of that version (unchanged since indexing)."""
        snapshot = self.current()
        entry = snapshot.entries.get(product_id)
        if entry is None or version != snapshot.image_version(product_id):
            return False
        return bool(entry.signature) and file_signature(path) == entry.signature

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
        self,
        image: Image.Image,
        options: SearchOptions | None = None,
        *,
        decoding_started: float | None = None,
        **changes: Any,
    ) -> SearchResult:
        """Search with an image already decoded by `decode_image` (limits checked).

        `decoding_started` (a `time.perf_counter()` taken before decoding) times the decode stage.
        """
        started = time.perf_counter() if decoding_started is None else decoding_started
        return self._search_image(image, self._resolve(options, changes), started)

    def _search_image(
        self, image: Image.Image, options: SearchOptions, started: float
    ) -> SearchResult:
        decoded = time.perf_counter()
        query = embed_query(self.embedder, image)  # (D,)
        stages = {"decode": decoded - started, "embed": time.perf_counter() - decoded}
        return self._rank(query, options, started, stages=stages, shopper=True)

    def search_vector(
        self, query: np.ndarray, options: SearchOptions | None = None, **changes: Any
    ) -> SearchResult:
        """Search with a query embedding from an earlier search by image (same model)."""
        options = self._resolve(options, changes)
        return self._rank(query, options, time.perf_counter(), shopper=True)

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
        self.current()
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
        stages: dict[str, float] | None = None,
        shopper: bool = False,
    ) -> SearchResult:
        """The k nearest; `shopper`: the query is a shopper's photo, re-ranked with each item's
        bias when an adapter is served, and figured by the calibration (fitted on such photos,
        not on catalogue photos against each other)."""
        self.current()
        k = options.k
        filters = Filters(options.category, options.min_price, options.max_price)
        ranking = time.perf_counter()
        # One more when a product is excluded ("more like this"), so k remain without it.
        wanted = k + (exclude_id is not None)
        correct = shopper and self.biases.active
        # A shopper's photo: the store's nearest by cosine, re-ranked with each item's bias.
        found = self.store.search(query, max(wanted, CANDIDATES) if correct else wanted,
                                  filters=filters)  # fmt: skip
        if correct:
            found = self.biases.rerank(found, bias_corrected)
        found = [f for f in found if f.product.id != exclude_id][:k]
        calibration = self.calibration if shopper else None
        matches = _matches(calibration, [f.score for f in found])
        hits = [Hit(f.product, f.score, m) for f, m in zip(found, matches, strict=True)]
        done = time.perf_counter()
        seconds = {**(stages or {}), "rank": done - ranking}
        stages_ms = {stage: value * 1000 for stage, value in seconds.items()}
        return SearchResult(
            hits, options, (done - started) * 1000, query, stages_ms, calibration is not None
        )

    def put_product(
        self, product_id: str, fields: Mapping[str, Any], image: bytes | None = None
    ) -> Product:
        """Add or replace one product now: products.csv, index.csv, then the vector store.

        The image is downloaded and embedded before the edit lock is taken, so a slow image
        URL holds up no other edit; under the lock only the files are written.
        """
        self._refuse_edits_of_a_read_only_catalog()
        self.current()
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
            self.biases.put(product.id, vector)
            self._edited(edits.with_product(self.snapshot.catalog, product), added=entry)
        return product

    def delete_product(self, product_id: str) -> None:
        """Remove one product now from products.csv, index.csv and the vector store."""
        self._refuse_edits_of_a_read_only_catalog()
        self.current()
        with self._editing():
            catalog = edits.without_product(self.snapshot.catalog, product_id)
            self._write_edit(product_id, None, None)
            self.store.delete([product_id])
            self.biases.drop(product_id)
            self._edited(catalog)

    def _refuse_edits_of_a_read_only_catalog(self) -> None:
        if self.settings.catalog_url is not None:
            raise CatalogReadOnly(
                f"the catalog is read from {self.settings.catalog_url}; change products.csv "
                "there, then re-index (POST /api/admin/reindex or `flask index`)"
            )

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
            foreign = self._foreign_catalog(read_meta(self.settings.index_path))
            if foreign is not None:  # our row must not go into another catalog's index
                raise ConfigError(self._foreign_index_problem(foreign))
            if sync_stamp(self.settings.index_path) != self._sync_stamp:
                self.load_index()  # else our sync mark would hide their edit from us for good
            if self._refused is not None:  # our model's row must not go into another's index
                raise ConfigError(self._refused)
            with self._sync_lock:
                yield

    def _edited(self, catalog: Catalog, added: Entry | None = None) -> None:
        old = self.snapshot
        entries = {pid: entry for pid, entry in old.entries.items() if pid in catalog.products}
        if added is not None:
            entries[added.id] = added
        failed = {pid: why for pid, why in old.failed.items() if pid in catalog.products}
        failed.pop(added.id if added else "", None)
        self.snapshot = Snapshot(catalog, entries, failed)
        # Other server processes notice the mark and load the edited files.
        self._sync_stamp = publish_sync(self.settings.index_path)

    def examples(self) -> list[Example]:
        """The shopper photos to try (examples.csv next to the catalog), or none."""
        return load_examples(self.settings.catalog_path)

    def example(self, example_id: str) -> tuple[Example, Path]:
        """One shopper photo and its file (confined to the catalog and static folders)."""
        example = next((e for e in self.examples() if e.id == example_id), None)
        if example is None:
            raise NotFound(f"there is no example photo {example_id!r}")
        try:
            return example, self.locator.local_path(example.image_url)
        except ImageError:
            raise NotFound(f"the example photo {example_id!r} is not available") from None

    def search_example(
        self, example_id: str, options: SearchOptions | None = None, **changes: Any
    ) -> tuple[bytes, SearchResult]:
        """Search with one of the shopper photos; returns its bytes and the result."""
        _, path = self.example(example_id)
        data = read_limited(path, self.settings.max_upload_bytes)
        return data, self.search_bytes(data, options, **changes)

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

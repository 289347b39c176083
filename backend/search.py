"""SearchService: joins catalog, embeddings and the model; usable with or without Flask.

A facade over the parts in `backend/service/`: the runtime (settings, the lazily built model and
store, the state the parts share), the index's lifecycle, the rankings, the images and the live
edits. Each method hands its call to the part that owns it; the few that join two calls
(`search_path`, `search_url`, `search_example`) or read the snapshot (`catalog`, `indexed_count`,
`image_version`) are written here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .catalog import Catalog, Product
from .catalog.examples import Example
from .config import Settings
from .images.sources import ImageLocator, read_limited
from .index.indexer import SyncReport
from .index.snapshot import Snapshot
from .model import Embedder
from .model.calibration import Calibration
from .options import SearchOptions
from .service.edits import Edits
from .service.lifecycle import Lifecycle, model_name
from .service.media import Media
from .service.ranking import Ranking
from .service.results import Hit, SearchResult
from .service.runtime import Runtime
from .stores import VectorStore
from .stores.bias import ItemBiases

__all__ = ["Hit", "SearchResult", "SearchService", "model_name"]


class SearchService:
    """Search a catalog by image, keep its index in sync, edit its products: the Python API that
    the web pages, the JSON API, the commands and the benchmarks share."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self._runtime = runtime = Runtime(settings, embedder)
        self._lifecycle = lifecycle = Lifecycle(runtime)
        self._media = Media(runtime, lifecycle)
        self._ranking = Ranking(runtime, lifecycle)
        self._edits = Edits(runtime, lifecycle)

    # The runtime: settings, model, store and the snapshot searches are answered from.

    @property
    def settings(self) -> Settings:
        return self._runtime.settings

    @property
    def locator(self) -> ImageLocator:
        return self._runtime.locator

    @property
    def snapshot(self) -> Snapshot | None:
        """What searches are answered from; None until the index is synced or loaded."""
        return self._runtime.snapshot

    @property
    def embedder(self) -> Embedder:
        """The model, loaded once on first use (torch is imported only to export it)."""
        return self._runtime.embedder

    @property
    def loaded_embedder(self) -> Embedder | None:
        """The model if it is loaded already (pages name it without loading it)."""
        return self._runtime.loaded_embedder

    @property
    def biases(self) -> ItemBiases:
        """The indexed items' score corrections for shoppers' photos (none without an adapter)."""
        return self._runtime.biases

    @property
    def calibration(self) -> Calibration | None:
        """The model's match calibration, if it was fitted on vectors of the model served."""
        return self._runtime.calibration

    @property
    def store(self) -> VectorStore:
        """The configured vector store (VECTOR_BACKEND), opened on first use."""
        return self._runtime.store

    def store_problem(self) -> tuple[str, str] | None:
        """Why the vector store could not answer a search now: (for anyone, for the operator);
        None when it can. Asked with a deadline; a store in this process is not asked."""
        return self._runtime.store_problem()

    def close(self) -> None:
        """Release the vector store's connections (pgvector) or memory."""
        self._runtime.close()

    # The index's lifecycle: sync, load, reload.

    @property
    def stamp_check_seconds(self) -> float:
        """How often a request looks for another process's completed sync."""
        return self._lifecycle.stamp_check_seconds

    @stamp_check_seconds.setter
    def stamp_check_seconds(self, seconds: float) -> None:
        self._lifecycle.stamp_check_seconds = seconds

    def sync(self, progress=None) -> tuple[Catalog, SyncReport]:
        """Re-read the catalog, bring index.csv and the vector store up to date, swap them in."""
        return self._lifecycle.sync(progress)

    def load_index(self) -> Catalog:
        """Load the catalog and index.csv as they are, embedding nothing (`Lifecycle.load_index`)."""
        return self._lifecycle.load_index()

    def reload_if_synced_elsewhere(self) -> bool:
        """Load index.csv again if another process completed a sync since ours (checked every 2 s)."""
        return self._lifecycle.reload_if_synced_elsewhere()

    def current(self) -> Snapshot:
        """The snapshot searches are answered from (the index is synced on first use)."""
        return self._lifecycle.current()

    @property
    def catalog(self) -> Catalog:
        return self.current().catalog

    def indexed_count(self) -> int:
        return len(self.current().products)

    def image_version(self, product_id: str) -> str | None:
        """The content version of a product's indexed image, for its cache-safe URL."""
        return self.current().image_version(product_id)

    # Searches.

    def options(self, **changes: Any) -> SearchOptions:
        """The served default options (TOP_K, SIMILARITY_THRESHOLD) with `changes`, validated."""
        return self._ranking.resolve(None, changes)

    def search_bytes(
        self, data: bytes, options: SearchOptions | None = None, **changes: Any
    ) -> SearchResult:
        """Search with an uploaded image's bytes; options default to the served ones."""
        return self._ranking.search_bytes(data, options, changes)

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
        return self._ranking.search_image(image, options, changes, decoding_started)

    def search_vector(
        self, query: np.ndarray, options: SearchOptions | None = None, **changes: Any
    ) -> SearchResult:
        """Search with a query embedding from an earlier search by image (same model)."""
        return self._ranking.search_vector(query, options, changes)

    def search_path(
        self, path: Path, options: SearchOptions | None = None, **changes: Any
    ) -> SearchResult:
        data = read_limited(path, self.settings.max_upload_bytes)
        return self.search_bytes(data, options, **changes)

    def search_url(
        self, url: str, options: SearchOptions | None = None, **changes: Any
    ) -> SearchResult:
        return self.search_bytes(self.fetch_query_image(url), options, **changes)

    def search_similar(
        self, product_id: str, options: SearchOptions | None = None, **changes: Any
    ) -> SearchResult:
        """ "More like this": the catalog items closest to one product, itself excluded."""
        return self._ranking.search_similar(product_id, options, changes)

    # Images: shoppers' URLs, example photos, product images.

    @property
    def retry_failed_download_seconds(self) -> float:
        """How long a product image whose download failed answers 404 without a new try."""
        return self._media.retry_failed_download_seconds

    @retry_failed_download_seconds.setter
    def retry_failed_download_seconds(self, seconds: float) -> None:
        self._media.retry_failed_download_seconds = seconds

    def fetch_query_image(self, url: str) -> bytes:
        """Download a shopper's image URL within QUERY_FETCH_TIMEOUT, in a free slot or not at all."""
        return self._media.fetch_query_image(url)

    def examples(self) -> list[Example]:
        """The shopper photos to try (examples.csv next to the catalog), or none."""
        return self._media.examples()

    def example(self, example_id: str) -> tuple[Example, Path]:
        """One shopper photo and its file (confined to the catalog and static folders)."""
        return self._media.example(example_id)

    def search_example(
        self, example_id: str, options: SearchOptions | None = None, **changes: Any
    ) -> tuple[bytes, SearchResult]:
        """Search with one of the shopper photos; returns its bytes and the result."""
        _, path = self.example(example_id)
        data = read_limited(path, self.settings.max_upload_bytes)
        return data, self.search_bytes(data, options, **changes)

    def image_path(self, product_id: str) -> Path:
        """The local file to serve for a product's image (downloading a remote one once)."""
        return self._media.image_path(product_id)

    def is_indexed_image(self, product_id: str, version: str, path: Path) -> bool:
        """Whether `path` still holds the image of that version (unchanged since indexing)."""
        return self._media.is_indexed_image(product_id, version, path)

    # Live edits.

    def put_product(
        self, product_id: str, fields: Mapping[str, Any], image: bytes | None = None
    ) -> Product:
        """Add or replace one product now: products.csv, index.csv, then the vector store."""
        return self._edits.put_product(product_id, fields, image)

    def delete_product(self, product_id: str) -> None:
        """Remove one product now from products.csv, index.csv and the vector store."""
        self._edits.delete_product(product_id)

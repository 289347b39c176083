"""The bottom of the service: settings, the image locator, the model and the vector store (each
built once, on first use), and the state the other parts share."""

from __future__ import annotations

import logging
import threading

from ..config import Settings
from ..images.fetch import FetchPolicy
from ..images.s3 import S3Reader
from ..images.sources import ImageLocator
from ..index.indexer import Indexer
from ..index.locks import SyncStamp
from ..index.snapshot import Snapshot
from ..model import Embedder, load_embedder
from ..model.calibration import Calibration
from ..stores import VectorStore, open_store
from ..stores.bias import ItemBiases
from ..stores.probe import StoreProbe

# The service's one logger name, whichever part logs: log lines and filters name `backend.search`.
log = logging.getLogger("backend.search")


def image_locator(settings: Settings) -> ImageLocator:
    """Where product images are read from: local roots, the download cache, HTTP and S3."""
    return ImageLocator(
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


class Runtime:
    """What every part of the service reads: the settings, the model, the store, the snapshot."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self._embedder = embedder
        # Builds the model, then opens the store: each once, whichever thread asks first.
        self._embedder_lock = threading.Lock()
        # Held while the snapshot is replaced: by a sync, a load, and an edit's writes.
        self.sync_lock = threading.Lock()
        self.locator = image_locator(settings)
        self.snapshot: Snapshot | None = None
        # Which completed sync the snapshot reflects, so that a sync by another process
        # (another server worker, `flask index`) is noticed and loaded.
        self.sync_stamp: SyncStamp | None = None
        # Why the index on disk was not loaded (another catalog's or model's), while that holds.
        self.refused: str | None = None
        self._store: VectorStore | None = None
        self._store_probe: StoreProbe | None = None
        self._biases: ItemBiases | None = None

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
    def loaded_embedder(self) -> Embedder | None:
        """The model if it is loaded already (pages name it without loading it)."""
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
        log.error(
            "the match calibration was fitted for %s, not %s: results carry no match; "
            "run `python -m bench.calibrate`",
            calibration.identity,
            self.embedder.identity,
        )
        return None

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

    def indexer(self) -> Indexer:
        """Embeds the catalog's images into index.csv (all that changed, or one product)."""
        return Indexer(
            self.locator,
            self.embedder,
            self.settings.index_path,
            checkpoint_every=self.settings.index_checkpoint_every,
            download_workers=self.settings.download_workers,
        )

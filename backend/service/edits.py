"""Live edits of one product: products.csv, index.csv, then the vector store, under the edit lock
shared with every other process, on a snapshot that holds their edits."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from ..atomic import atomic_write_bytes
from ..catalog import Catalog, Product, edits
from ..errors import CatalogReadOnly, ConfigError
from ..images.sources import save_upload
from ..index.index_file import Entry, read_meta, write_index_row
from ..index.locks import edit_lock, publish_sync, sync_stamp
from ..index.snapshot import Snapshot
from ..stores import item_version
from .lifecycle import Lifecycle, foreign_catalog, foreign_index_problem
from .runtime import Runtime


class Edits:
    """Add, replace or delete one product now, in the files and the store alike."""

    def __init__(self, runtime: Runtime, lifecycle: Lifecycle) -> None:
        self.runtime = runtime
        self.lifecycle = lifecycle
        self.settings = runtime.settings

    def put_product(
        self, product_id: str, fields: Mapping[str, Any], image: bytes | None = None
    ) -> Product:
        """Add or replace one product now: products.csv, index.csv, then the vector store.

        The image is downloaded and embedded before the edit lock is taken, so a slow image
        URL holds up no other edit; under the lock only the files are written.
        """
        self._refuse_edits_of_a_read_only_catalog()
        runtime, lifecycle = self.runtime, self.lifecycle
        lifecycle.current()
        if image is not None:
            folder = self.settings.catalog_path.parent
            fields = {**fields, "image_url": save_upload(folder, image)}
        catalog = lifecycle.current().catalog
        product = edits.product_from_fields(product_id, fields, catalog.get(product_id))
        embedded = {product.image_url: runtime.indexer().embed_one(product)}
        with self._editing():
            # Another edit may have changed the product meanwhile: apply these fields to it.
            catalog = lifecycle.current().catalog
            product = edits.product_from_fields(product_id, fields, catalog.get(product_id))
            if product.image_url not in embedded:  # its image changed meanwhile: a local file
                embedded[product.image_url] = runtime.indexer().embed_one(product)
            entry, vector = embedded[product.image_url]
            self._write_edit(product.id, product, (entry, vector))
            version = item_version(entry.fingerprint, entry.model, product)
            runtime.store.upsert([product], vector[None, :], [version])
            runtime.biases.put(product.id, vector)
            self._edited(edits.with_product(lifecycle.current().catalog, product), added=entry)
        return product

    def delete_product(self, product_id: str) -> None:
        """Remove one product now from products.csv, index.csv and the vector store."""
        self._refuse_edits_of_a_read_only_catalog()
        self.lifecycle.current()
        runtime = self.runtime
        with self._editing():
            catalog = edits.without_product(self.lifecycle.current().catalog, product_id)
            self._write_edit(product_id, None, None)
            runtime.store.delete([product_id])
            runtime.biases.drop(product_id)
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
        index_path = self.settings.index_path
        with edit_lock(index_path):
            foreign = foreign_catalog(self.settings, read_meta(index_path))
            if foreign is not None:  # our row must not go into another catalog's index
                raise ConfigError(foreign_index_problem(index_path, foreign))
            if sync_stamp(index_path) != self.runtime.sync_stamp:
                self.lifecycle.load_index()  # else our sync mark would hide their edit from us for good
            if self.runtime.refused is not None:  # our model's row must not go into another's index
                raise ConfigError(self.runtime.refused)
            with self.runtime.sync_lock:
                yield

    def _edited(self, catalog: Catalog, added: Entry | None = None) -> None:
        old = self.lifecycle.current()  # under the sync lock: the snapshot just edited
        entries = {pid: entry for pid, entry in old.entries.items() if pid in catalog.products}
        if added is not None:
            entries[added.id] = added
        failed = {pid: why for pid, why in old.failed.items() if pid in catalog.products}
        failed.pop(added.id if added else "", None)
        self.runtime.snapshot = Snapshot(catalog, entries, failed)
        # Other server processes notice the mark and load the edited files.
        self.runtime.sync_stamp = publish_sync(self.settings.index_path)

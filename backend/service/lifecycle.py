"""The index a server answers from: synced, loaded, reloaded after another process's sync, packed
for the workers, and refused while it is another catalog's or another model's."""

from __future__ import annotations

import time
from pathlib import Path
from typing import cast

from ..catalog import Catalog, load_catalog
from ..config import Settings
from ..errors import ConfigError, FetchError
from ..index.index_file import DAMAGED_ROW, IndexMeta, IndexTable, catalog_reference, read_index
from ..index.indexer import SyncReport
from ..index.locks import edit_lock, publish_sync, sync_stamp
from ..index.packed import BadVectors, Packed, is_current, packed_path, read_packed, write_packed
from ..index.snapshot import Snapshot
from ..stores import ITEM_VERSION_SCHEME, row_versions, sync_store
from .runtime import Runtime, log


def model_name(identity: str) -> str:
    """The MODEL setting of a model identity ("name/weights/preprocessing/runtime")."""
    return identity.split("/", 1)[0]


def foreign_catalog(settings: Settings, meta: IndexMeta) -> str | None:
    """The other catalog index.csv was built from, or None when it is this one's."""
    recorded = meta.catalog
    expected = catalog_reference(settings.catalog_path, settings.index_path)
    return None if recorded in (None, expected) else recorded


def foreign_index_problem(index_path: Path, foreign: str) -> str:
    log.error("%s was built from the catalog %s", index_path, foreign)
    return (  # said by the public /readyz: the other catalog's path is in the log only
        f"{index_path.name} was built from another catalog; run `flask index` "
        "with this server's CATALOG_PATH, or give each catalog its own INDEX_PATH"
    )


def damage_problem(index_path: Path, table: IndexTable) -> str | None:
    if not table.damaged:
        return None
    rows = "row" if table.damaged == 1 else "rows"
    return (
        f"{index_path.name} has {table.damaged} damaged {rows} (a vector not "
        "finite or not of unit length, a torn line or a repeated id), not served; run "
        "`flask index` to embed those products again"
    )


def _same_scheme(packed: Packed) -> list[str] | None:
    """The packed store versions, if computed the way this code computes them."""
    scheme, versions = packed.row_versions or (None, None)
    return versions if scheme == ITEM_VERSION_SCHEME else None


class Lifecycle:
    """Sync, load and reload the index, swapping in each new snapshot under the sync lock."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self._next_stamp_check = 0.0
        self.stamp_check_seconds = 2.0

    def current(self) -> Snapshot:
        """The snapshot searches are answered from (the index is synced on first use)."""
        if self.runtime.snapshot is None:
            self.sync()
        return cast(Snapshot, self.runtime.snapshot)  # a sync always publishes one

    def sync(self, progress=None) -> tuple[Catalog, SyncReport]:
        """Re-read the catalog, bring index.csv and the vector store up to date, swap them in."""
        runtime = self.runtime
        with edit_lock(self.settings.index_path), runtime.sync_lock:
            store = runtime.store  # an unusable database fails now, before any embedding work
            catalog = self._load_catalog(fetch=True)
            table, report = runtime.indexer().sync(catalog, progress)
            self._publish(catalog, table, report.failed)
            runtime.refused = None
            store.flush()  # only a syncing process writes the store's files (FAISS)
            self._pack(catalog, table)
            runtime.sync_stamp = publish_sync(self.settings.index_path)
            return catalog, report

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
        runtime = self.runtime
        sync_store(runtime.store, catalog, table, versions)
        runtime.biases.replace([entry.id for entry in table.entries], table.vectors)
        runtime.snapshot = Snapshot.of(catalog, table.entries, table.meta, failed, problem, damaged)

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
                self.runtime.locator.fetch_catalog(url, self.settings.catalog_path)
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
        runtime = self.runtime
        with runtime.sync_lock:
            runtime.sync_stamp = sync_stamp(self.settings.index_path)  # before reading: no gap
            identity = runtime.embedder.identity
            catalog, table, versions, note = self._read_synced()
            problem = self._unusable_index_problem(table, identity)
            if problem is not None:
                return self._refuse_index(catalog, problem)
            runtime.refused = None
            damaged, damage = table.damaged, damage_problem(self.settings.index_path, table)
            if damage is not None:
                note = damage if note is None else f"{note}; {damage}"
                if runtime.snapshot is not None:
                    runtime.snapshot = runtime.snapshot.with_problem(note)  # the last good index
                    return runtime.snapshot.catalog
            reasons = dict.fromkeys(table.damaged_ids & catalog.products.keys(), DAMAGED_ROW)
            keep = [
                row
                for row, entry in enumerate(table.entries)
                if entry.id in catalog.products and entry.model == identity
            ]
            if len(keep) < len(table) or not keep:
                # Copied only when rows are left out: at 50k rows a copy is 100 MB more at peak.
                rows = [(table.entries[row], table.vectors[row]) for row in keep]
                table = IndexTable.from_rows(rows, runtime.embedder.dim, table.meta)
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

    def _unusable_index_problem(self, table: IndexTable, served: str) -> str | None:
        """Why this server cannot search with index.csv (another catalog's or another model's)."""
        foreign = foreign_catalog(self.settings, table.meta)
        if foreign is not None:
            return foreign_index_problem(self.settings.index_path, foreign)
        built_with = table.main_model()
        if built_with is None or built_with == served:
            return None
        kept = "kept the index it has" if self.runtime.snapshot is not None else "serving nothing"
        return (
            f"{self.settings.index_path.name} on disk was built with model {built_with}; this "
            f"server runs model {served}: {kept}; restart with MODEL={model_name(built_with)} "
            f"or re-index with MODEL={model_name(served)}"
        )

    def _refuse_index(self, catalog: Catalog, problem: str) -> Catalog:
        """Keep answering from what was loaded before, saying why (or serve nothing yet)."""
        runtime = self.runtime
        log.error("not loading %s: %s", self.settings.index_path, problem)
        runtime.refused = problem
        if runtime.snapshot is not None:
            runtime.snapshot = runtime.snapshot.with_problem(problem)
            return runtime.snapshot.catalog
        self._publish(catalog, IndexTable.from_rows([], runtime.embedder.dim), {}, problem)
        return catalog

    def reload_if_synced_elsewhere(self) -> bool:
        """Load index.csv again if another process completed a sync since ours (checked every 2 s)."""
        now = time.monotonic()
        if self.runtime.snapshot is None or now < self._next_stamp_check:
            return False
        self._next_stamp_check = now + self.stamp_check_seconds
        stamp = sync_stamp(self.settings.index_path)
        if stamp is None or stamp == self.runtime.sync_stamp:
            return False
        log.info("index.csv was synced by another process; loading it")
        self.load_index()
        return True

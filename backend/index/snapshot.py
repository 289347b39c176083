"""What a server answers from: the catalog, which of its products are searchable, and why not."""

from __future__ import annotations

import functools

from ..catalog import Catalog, Product
from .index_file import Entry, IndexMeta

VERSION_CHARS = 16  # of an image's SHA-256: what its URL carries so that browsers cache it for good


class Snapshot:
    """An immutable view of the catalog and of which products are indexed; replaced whole.

    The vectors themselves live in the vector store (`SearchService.store`).
    """

    def __init__(
        self,
        catalog: Catalog,
        entries: dict[str, Entry],
        failed: dict[str, str] | None = None,
        problem: str | None = None,
        damaged: int = 0,
    ) -> None:
        self.catalog = catalog
        self.entries = entries  # product id -> its index.csv entry, for the indexed products only
        self.products = [catalog.products[pid] for pid in entries]
        self.row_of = {pid: row for row, pid in enumerate(entries)}
        self.failed = failed or {}  # product id -> why its image could not be indexed
        self.problem = problem  # why the index on disk could not be (wholly) loaded
        self.damaged = damaged  # rows of index.csv left out as damaged: not ready

    @classmethod
    def of(
        cls,
        catalog: Catalog,
        entries: list[Entry],
        meta: IndexMeta,
        failed: dict[str, str],
        problem: str | None = None,
        damaged: int = 0,
    ) -> Snapshot:
        """The snapshot of a table: failure reasons from its meta line and from `failed`."""
        indexed = {entry.id: entry for entry in entries if entry.id in catalog.products}
        reasons = {
            pid: why
            for pid, why in (meta.failed | failed).items()
            if pid in catalog.products and pid not in indexed
        }
        return cls(catalog, indexed, reasons, problem, damaged)

    def with_problem(self, problem: str | None) -> Snapshot:
        """The same view, saying `problem` (why a newer index was not loaded)."""
        copy = Snapshot.__new__(Snapshot)
        copy.__dict__.update(self.__dict__, problem=problem)
        return copy

    @functools.cached_property
    def searchable(self) -> list[Product]:
        """The indexed products, in the catalog's order: what the catalog pages show."""
        return [product for pid, product in self.catalog.products.items() if pid in self.row_of]

    @functools.cached_property
    def categories(self) -> list[str]:
        """The categories that have searchable products: what the menus offer."""
        return sorted({product.category for product in self.searchable if product.category})

    @functools.cached_property
    def unsearchable(self) -> dict[str, str]:
        """Every catalog product that is not searchable, with the reason when one is known."""
        unknown = "not in index.csv; run `flask index` to see why"
        return {
            pid: self.failed.get(pid, unknown)
            for pid in self.catalog.products
            if pid not in self.row_of
        }

    def image_version(self, product_id: str) -> str | None:
        """A short hash of the indexed image's content, or None for a product not indexed."""
        entry = self.entries.get(product_id)
        return entry.fingerprint[:VERSION_CHARS] if entry and entry.fingerprint else None

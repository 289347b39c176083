"""The default backend: exact numpy search over the vectors of index.csv, all in memory."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from functools import cached_property

import numpy as np

from ..catalog import Product
from .base import NO_FILTERS, Filters, StoreHit, VectorStore, cut, exact_top_k, prepare_batch


class _State:
    """One immutable generation of the store; an update builds the next and swaps it in."""

    def __init__(self, products: list[Product], vectors: np.ndarray, versions: list[str]) -> None:
        if vectors.ndim != 2 or len(vectors) != len(products):
            raise ValueError("vectors must be (N, D) with one product per row")
        self.products = products
        self.versions = versions
        self.row_of = {product.id: row for row, product in enumerate(products)}
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)  # (N, D)
        self.vectors.setflags(write=False)

    @cached_property
    def prices(self) -> np.ndarray:
        return np.array(
            [np.nan if p.price is None else p.price for p in self.products], dtype=np.float64
        )

    @cached_property
    def rows_by_category(self) -> dict[str, np.ndarray]:
        groups: dict[str, list[int]] = {}
        for row, product in enumerate(self.products):
            groups.setdefault(product.category, []).append(row)
        return {category: np.asarray(rows) for category, rows in groups.items()}

    def rows_matching(self, filters: Filters) -> np.ndarray | None:
        """The rows a filtered search ranks (None: every row)."""
        if not filters.active:
            return None
        if filters.category is not None:
            rows = self.rows_by_category.get(filters.category, np.zeros(0, dtype=np.int64))
            return rows[filters.price_mask(self.prices)[rows]] if filters.has_price else rows
        return np.flatnonzero(filters.price_mask(self.prices))  # a price filter alone


class MemoryStore(VectorStore):
    """Exact search over one (N, D) matrix; nothing persists, a sync fills it from index.csv."""

    name = "memory"

    def __init__(self, dim: int | None = None) -> None:
        self.dim = dim
        self._state = _State([], np.zeros((0, dim or 0), dtype=np.float32), [])
        self._write_lock = threading.Lock()

    def upsert(
        self, products: Sequence[Product], vectors: np.ndarray, versions: Sequence[str]
    ) -> None:
        self.apply([], products, vectors, versions)

    def apply(
        self,
        delete_ids: Sequence[str],
        products: Sequence[Product],
        vectors: np.ndarray,
        versions: Sequence[str],
    ) -> int:
        """One new generation: searches see all of a sync's changes or none of them."""
        products, vectors, versions = prepare_batch(products, vectors, versions, self.dim)
        if not products:
            return self.delete(delete_ids)
        doomed = set(delete_ids)
        gone = doomed | {product.id for product in products}
        with self._write_lock:
            old = self._state
            keep = [row for row, product in enumerate(old.products) if product.id not in gone]
            removed = sum(1 for product in old.products if product.id in doomed)
            self._state = self._merged(old, keep, products, vectors, versions)
            self.dim = vectors.shape[1]
        return removed

    def delete(self, ids: Iterable[str]) -> int:
        gone = set(ids)
        with self._write_lock:
            old = self._state
            keep = [row for row, product in enumerate(old.products) if product.id not in gone]
            removed = len(old.products) - len(keep)
            if removed:
                self._state = self._merged(
                    old, keep, [], np.zeros((0, self.dim or 0), np.float32), []
                )
            return removed

    @staticmethod
    def _merged(
        old: _State,
        keep: list[int],
        products: list[Product],
        vectors: np.ndarray,
        versions: list[str],
    ) -> _State:
        if not keep:
            return _State(products, vectors, versions)  # no copy: the caller's array is used as is
        return _State(
            [old.products[row] for row in keep] + products,
            np.concatenate([old.vectors[keep], vectors]),  # (N', D)
            [old.versions[row] for row in keep] + versions,
        )

    def count(self) -> int:
        return len(self._state.products)

    def versions(self) -> dict[str, str]:
        state = self._state
        return {
            product.id: version
            for product, version in zip(state.products, state.versions, strict=True)
        }

    def vector(self, product_id: str) -> np.ndarray | None:
        state = self._state
        row = state.row_of.get(product_id)
        return None if row is None else state.vectors[row]

    def search(
        self,
        query: np.ndarray,
        k: int,
        *,
        threshold: float | None = None,
        filters: Filters = NO_FILTERS,
    ) -> list[StoreHit]:
        state = self._state  # one generation for the whole query
        rows, scores = exact_top_k(state.vectors, state.rows_matching(filters), query, k)
        hits = [
            StoreHit(state.products[row], float(s)) for row, s in zip(rows, scores, strict=True)
        ]
        return cut(hits, threshold)

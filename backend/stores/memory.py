"""The default backend: exact numpy search over the vectors of index.csv, all in memory."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from functools import cached_property

import numpy as np

from ..catalog import Product
from ..vectors import VectorIndex
from .base import Filters, StoreHit, VectorStore, cut, exact_top_k, prepare_batch


class _State:
    """One immutable generation of the store; an update builds the next and swaps it in."""

    def __init__(self, products: list[Product], vectors: np.ndarray, versions: list[str]) -> None:
        self.products = products
        self.versions = versions
        self.row_of = {product.id: row for row, product in enumerate(products)}
        self.index = VectorIndex(vectors, [product.category for product in products])

    @cached_property
    def prices(self) -> np.ndarray:
        return np.array([np.nan if p.price is None else p.price for p in self.products], dtype=np.float64)

    @cached_property
    def category_codes(self) -> tuple[dict[str, int], np.ndarray]:
        names, codes = np.unique([p.category for p in self.products], return_inverse=True)
        return {name: code for code, name in enumerate(names.tolist())}, codes

    def rows_matching(self, filters: Filters) -> np.ndarray:
        mask = filters.price_mask(self.prices)
        if filters.category is not None:
            code_of, codes = self.category_codes
            mask &= codes == code_of.get(filters.category, -1)
        return np.flatnonzero(mask)


class MemoryStore(VectorStore):
    """Exact search (vectors.VectorIndex); nothing persists, a sync fills it from index.csv."""

    name = "memory"

    def __init__(self, dim: int | None = None) -> None:
        self.dim = dim
        self._state = _State([], np.zeros((0, dim or 0), dtype=np.float32), [])
        self._write_lock = threading.Lock()

    def upsert(self, products: Sequence[Product], vectors: np.ndarray, versions: Sequence[str]) -> None:
        self.apply([], products, vectors, versions)

    def apply(
        self, delete_ids: Sequence[str], products: Sequence[Product], vectors: np.ndarray,
        versions: Sequence[str],
    ) -> int:  # fmt: skip
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
                self._state = self._merged(old, keep, [], np.zeros((0, self.dim or 0), np.float32), [])
            return removed

    @staticmethod
    def _merged(
        old: _State, keep: list[int], products: list[Product], vectors: np.ndarray, versions: list[str]
    ) -> _State:
        if not keep:
            return _State(products, vectors, versions)  # no copy: the caller's array is used as is
        return _State(
            [old.products[row] for row in keep] + products,
            np.concatenate([old.index.vectors[keep], vectors]),  # (N', D)
            [old.versions[row] for row in keep] + versions,
        )

    def count(self) -> int:
        return len(self._state.products)

    def versions(self) -> dict[str, str]:
        state = self._state
        return {product.id: version for product, version in zip(state.products, state.versions)}

    def vector(self, product_id: str) -> np.ndarray | None:
        state = self._state
        row = state.row_of.get(product_id)
        return None if row is None else state.index.vectors[row]

    def search(
        self,
        query: np.ndarray,
        k: int,
        *,
        threshold: float | None = None,
        filters: Filters = Filters(),
    ) -> list[StoreHit]:
        state = self._state  # one generation for the whole query
        if filters.has_price:
            rows, scores = exact_top_k(state.index.vectors, state.rows_matching(filters), query, k)
            hits = [StoreHit(state.products[row], float(s)) for row, s in zip(rows, scores)]
        else:
            matches = state.index.search(query, k, label=filters.category)
            hits = [StoreHit(state.products[m.row], m.score) for m in matches]
        return cut(hits, threshold)

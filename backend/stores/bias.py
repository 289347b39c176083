"""Per-item score corrections kept beside the vector store: the shopper adapter's item bias.

The stores rank by cosine; a hub (a catalog item close to every phone photo) would head many
results. Its bias, computed once per indexed vector, is subtracted from the cosines of a bounded
set of the store's nearest candidates (CSLS), so every backend keeps working unchanged.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np

from .base import StoreHit

BiasFunction = Callable[[np.ndarray], np.ndarray]


class ItemBiases:
    """{product id: bias} for the indexed vectors, replaced on sync and updated on edits."""

    def __init__(self, compute: BiasFunction | None) -> None:
        self.compute = compute  # None: no correction (a model without an adapter)
        self._biases: dict[str, float] = {}
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return self.compute is not None

    def replace(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        if self.compute is None:
            return
        values = self.compute(vectors) if len(ids) else np.zeros(0)
        biases = dict(zip(ids, values.tolist(), strict=True))
        with self._lock:
            self._biases = biases

    def put(self, product_id: str, vector: np.ndarray) -> None:
        if self.compute is not None:
            value = float(self.compute(vector[None, :])[0])
            with self._lock:
                self._biases = {**self._biases, product_id: value}

    def drop(self, product_id: str) -> None:
        with self._lock:
            if product_id in self._biases:
                self._biases = {k: v for k, v in self._biases.items() if k != product_id}

    def rerank(
        self, hits: list[StoreHit], correct: Callable[[np.ndarray, np.ndarray], np.ndarray]
    ) -> list[StoreHit]:
        """The hits re-scored by `correct(cosines, biases)`, best first (stable for ties)."""
        if not hits:
            return hits
        biases = self._biases  # replaced whole, never mutated: a consistent read without the lock
        cosines = np.array([hit.score for hit in hits], dtype=np.float32)
        own = np.array([biases.get(hit.product.id, 0.0) for hit in hits], dtype=np.float32)
        scores = correct(cosines, own)
        order = np.argsort(-scores, kind="stable")
        return [StoreHit(hits[i].product, float(scores[i])) for i in order]

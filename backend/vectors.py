"""Vectors in memory and exact cosine top-k search (numpy, no loop over rows)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Match:
    row: int
    score: float


class VectorIndex:
    """An immutable (N, D) unit-vector matrix with a label per row for pre-filtering."""

    def __init__(self, vectors: np.ndarray, labels: list[str]) -> None:
        if vectors.ndim != 2 or len(vectors) != len(labels):
            raise ValueError("vectors must be (N, D) with one label per row")
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.vectors.setflags(write=False)
        groups: dict[str, list[int]] = {}
        for row, label in enumerate(labels):
            groups.setdefault(label, []).append(row)
        self._rows_by_label = {label: np.asarray(rows) for label, rows in groups.items()}

    def __len__(self) -> int:
        return len(self.vectors)

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def search(
        self,
        query: np.ndarray,
        k: int,
        label: str | None = None,
    ) -> list[Match]:
        """Return the k best rows by cosine similarity, best first, optionally within one label."""
        if len(self) == 0 or k <= 0:
            return []
        rows = None if label is None else self._rows_by_label.get(label)
        if label is not None and rows is None:
            return []
        candidates = self.vectors if rows is None else self.vectors[rows]
        scores = cosine_scores(candidates, query)  # (M,)
        top = top_k_indices(scores, k)
        chosen = top if rows is None else rows[top]
        return [Match(int(row), float(scores[i])) for row, i in zip(chosen, top)]


def cosine_scores(vectors: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Dot product of each unit row with the query, (M, D) x (D,) -> (M,) float32, on one core.

    einsum, not `vectors @ query`: numpy's BLAS splits a large product over a team of threads
    that all wait for the slowest, and on a small server whose other core is busy (inference,
    another request) that wait is a scheduler time slice: 10-16 ms for 10,000 vectors on a
    loaded 2-core machine, against under 1 ms on one core. On an idle machine the team is
    faster (up to ~1.4x at 50,000 vectors), but a server is rarely idle while it answers.
    """
    return np.einsum("ij,j->i", vectors, query.astype(np.float32, copy=False))


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest scores, best first (argpartition, then sort only those k)."""
    k = min(k, len(scores))
    if k == len(scores):
        part = np.arange(len(scores))
    else:
        part = np.argpartition(-scores, k - 1)[:k]
    # Stable order for equal scores: by score, then by row.
    return part[np.lexsort((part, -scores[part]))]

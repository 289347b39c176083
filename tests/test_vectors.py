"""Exact cosine top-k: ordering, ties, label pre-filter, exclusion."""

from __future__ import annotations

import numpy as np
import pytest

from backend.vectors import VectorIndex, top_k_indices


def unit(*values: float) -> np.ndarray:
    vector = np.asarray(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


@pytest.fixture
def index() -> VectorIndex:
    vectors = np.stack([unit(1, 0, 0), unit(1, 1, 0), unit(0, 1, 0), unit(1, 0, 1), unit(-1, 0, 0)])
    return VectorIndex(vectors, ["a", "b", "a", "b", "a"])


def test_best_first_with_cosine_scores(index):
    matches = index.search(unit(1, 0, 0), k=3)
    assert [m.row for m in matches] == [0, 1, 3]
    assert matches[0].score == pytest.approx(1.0)
    assert matches[1].score == pytest.approx(np.sqrt(0.5))


def test_k_larger_than_index_returns_everything(index):
    assert [m.row for m in index.search(unit(1, 0, 0), k=50)] == [0, 1, 3, 2, 4]


def test_label_filter_ranks_only_that_label_and_still_returns_k(index):
    matches = index.search(unit(1, 0, 0), k=3, label="a")
    assert [m.row for m in matches] == [0, 2, 4]


def test_unknown_label_returns_nothing(index):
    assert index.search(unit(1, 0, 0), k=3, label="zzz") == []


def test_ties_are_broken_by_row_order():
    scores = np.array([0.5, 0.9, 0.5, 0.9, 0.1], dtype=np.float32)
    assert top_k_indices(scores, 3).tolist() == [1, 3, 0]


def test_empty_index_and_zero_k():
    empty = VectorIndex(np.zeros((0, 3), dtype=np.float32), [])
    assert empty.search(unit(1, 0, 0), k=5) == []
    assert VectorIndex(np.eye(3, dtype=np.float32), ["a"] * 3).search(unit(1, 0, 0), k=0) == []


def test_matches_a_brute_force_ranking():
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((2000, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    query = vectors[7] + 0.1 * rng.standard_normal(64).astype(np.float32)
    expected = sorted(range(2000), key=lambda i: -float(vectors[i] @ query))[:10]
    assert [m.row for m in VectorIndex(vectors, ["x"] * 2000).search(query, 10)] == expected

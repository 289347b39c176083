"""Exact cosine top-k (the one every backend uses): ordering, ties, row subsets, empty cases."""

from __future__ import annotations

import numpy as np
import pytest

from backend.catalog import Product
from backend.stores import Filters
from backend.stores.base import exact_top_k, top_k_indices
from backend.stores.memory import MemoryStore


def unit(*values: float) -> np.ndarray:
    vector = np.asarray(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


VECTORS = np.stack([unit(1, 0, 0), unit(1, 1, 0), unit(0, 1, 0), unit(1, 0, 1), unit(-1, 0, 0)])


def test_best_first_with_cosine_scores():
    rows, scores = exact_top_k(VECTORS, None, unit(1, 0, 0), k=3)
    assert rows.tolist() == [0, 1, 3]
    assert scores[0] == pytest.approx(1.0)
    assert scores[1] == pytest.approx(np.sqrt(0.5))


def test_k_larger_than_the_candidates_returns_them_all():
    assert exact_top_k(VECTORS, None, unit(1, 0, 0), k=50)[0].tolist() == [0, 1, 3, 2, 4]


def test_a_row_subset_ranks_only_those_rows_and_answers_in_row_numbers():
    rows, _ = exact_top_k(VECTORS, np.array([0, 2, 4]), unit(1, 0, 0), k=3)
    assert rows.tolist() == [0, 2, 4]


def test_ties_are_broken_by_row_order():
    scores = np.array([0.5, 0.9, 0.5, 0.9, 0.1], dtype=np.float32)
    assert top_k_indices(scores, 3).tolist() == [1, 3, 0]


def test_empty_candidates_and_zero_k():
    assert exact_top_k(np.zeros((0, 3), np.float32), None, unit(1, 0, 0), k=5)[0].size == 0
    assert exact_top_k(VECTORS, np.zeros(0, np.int64), unit(1, 0, 0), k=5)[0].size == 0
    assert exact_top_k(VECTORS, None, unit(1, 0, 0), k=0)[0].size == 0


def test_matches_a_brute_force_ranking():
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((2000, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    query = vectors[7] + 0.1 * rng.standard_normal(64).astype(np.float32)
    expected = sorted(range(2000), key=lambda i: -float(vectors[i] @ query))[:10]
    assert exact_top_k(vectors, None, query, 10)[0].tolist() == expected


def test_memory_store_filters_by_category_and_price_and_still_returns_k():
    products = [
        Product(str(i), f"p{i}", "a" if i % 2 else "b", float(i), f"{i}.jpg") for i in range(5)
    ]
    store = MemoryStore(3)
    store.upsert(products, VECTORS, ["v"] * 5)
    query = unit(1, 0, 0)
    assert [h.product.id for h in store.search(query, 2, filters=Filters(category="b"))] == [
        "0",
        "2",
    ]
    in_range = store.search(query, 3, filters=Filters(min_price=1, max_price=3))
    assert [h.product.id for h in in_range] == ["1", "3", "2"]
    assert store.search(query, 3, filters=Filters(category="zzz")) == []

"""Pure retrieval metrics over ranked relevance flags: P@K, R@K, AP@K, threshold counts, and
what a shopper sees of the top k at each threshold.

Conventions, fixed here once:
- `ranked` is a (Q, N) boolean array: row q holds query q's candidates in rank order, True where
  the candidate is relevant; `n_relevant` (Q,) counts all relevant candidates of each query.
- Ties in score are broken against the model (non-relevant first), so a degenerate model that
  scores everything alike cannot look good because of the catalog's row order.
- Empty cases are explicit: no candidates, or no relevant ones, give 0.0; the mean of nothing is 0.0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def rank_by_score(scores: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """Reorder relevance flags by score, best first; ties put non-relevant candidates first."""
    scores = np.atleast_2d(scores)
    relevant = np.atleast_2d(relevant).astype(bool)
    # lexsort's last key is the primary one: descending score, then False before True.
    order = np.lexsort((relevant, -scores), axis=-1)  # (Q, N)
    return np.take_along_axis(relevant, order, axis=-1)


def hits_at_k(ranked: np.ndarray, k: int) -> np.ndarray:
    """How many of the top k candidates are relevant; (Q,) int."""
    ranked = np.atleast_2d(ranked)
    return ranked[:, :k].sum(axis=1)


def precision_at_k(ranked: np.ndarray, k: int) -> np.ndarray:
    """Share of the top k that is relevant; missing ranks (fewer than k candidates) count as misses."""
    if k < 1:
        raise ValueError("k must be at least 1")
    return hits_at_k(ranked, k) / k


def recall_at_k(ranked: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Share of all relevant candidates found in the top k; 0.0 where nothing is relevant."""
    if k < 1:
        raise ValueError("k must be at least 1")
    return _divide(hits_at_k(ranked, k), n_relevant)


def average_precision(
    ranked: np.ndarray, n_relevant: np.ndarray, k: int | None = None
) -> np.ndarray:
    """AP@k: mean of P@i over the relevant ranks i <= k, divided by min(k, n_relevant).

    With k=None every rank counts and the divisor is n_relevant (plain AP, whose mean is mAP).
    """
    ranked = np.atleast_2d(ranked)
    n_relevant = np.asarray(n_relevant, dtype=float).reshape(-1)
    top = ranked if k is None else ranked[:, :k]
    if top.shape[1] == 0:
        return np.zeros(len(top))
    precision_at_rank = np.cumsum(top, axis=1) / np.arange(1, top.shape[1] + 1)  # (Q, K)
    summed = (precision_at_rank * top).sum(axis=1)
    divisor = n_relevant if k is None else np.minimum(n_relevant, k)
    return _divide(summed, divisor)


def mean(values: np.ndarray) -> float:
    """The mean, or 0.0 for no values."""
    values = np.asarray(values, dtype=float)
    return float(values.mean()) if values.size else 0.0


def counts_at_or_above(
    scores: np.ndarray, relevant: np.ndarray, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each threshold, how many scores (and how many relevant ones) are >= it; additive."""
    thresholds = np.asarray(thresholds, dtype=float)
    if np.any(np.diff(thresholds) <= 0):
        raise ValueError("thresholds must be strictly increasing")
    scores = np.asarray(scores, dtype=float).reshape(-1)
    relevant = np.asarray(relevant, dtype=bool).reshape(-1)
    # bucket b = how many thresholds are <= the score, so score >= thresholds[j] iff b > j.
    bucket = np.searchsorted(thresholds, scores, side="right")
    size = len(thresholds) + 1
    every = np.bincount(bucket, minlength=size)
    hits = np.bincount(bucket[relevant], minlength=size)
    # Suffix sums from bucket j+1 upwards: (T,)
    return np.cumsum(every[::-1])[::-1][1:], np.cumsum(hits[::-1])[::-1][1:]


@dataclass(frozen=True)
class SweepPoint:
    threshold: float
    precision: float
    recall: float
    f1: float
    mean_results: float  # per query, at or above the threshold (before any top-k cut)


def threshold_sweep(
    thresholds: np.ndarray,
    above: np.ndarray,
    relevant_above: np.ndarray,
    total_relevant: int,
    n_queries: int,
) -> list[SweepPoint]:
    """Pooled precision, recall and F1 over all query-candidate pairs, per threshold."""
    precision = _divide(relevant_above, above)  # nothing shown: 0.0
    recall = _divide(relevant_above, np.full(len(above), total_relevant))
    f1 = _divide(2 * precision * recall, precision + recall)
    shown = _divide(above, np.full(len(above), n_queries))
    return [
        SweepPoint(float(t), float(p), float(r), float(f), float(s))
        for t, p, r, f, s in zip(thresholds, precision, recall, f1, shown, strict=True)
    ]


@dataclass(frozen=True)
class TopKPoint:
    """What a shopper sees at one threshold when the page shows at most k results."""

    threshold: float
    shown: float  # mean results shown per query (0 to k)
    relevant_share: float  # of the results shown, the share that is relevant (0.0: none shown)
    none_share: float  # share of the queries left with no result at all


def top_k(scores: np.ndarray, relevant: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each query's k best scores and their relevance flags, best first; (Q, min(k, N))."""
    scores = np.atleast_2d(scores)
    relevant = np.atleast_2d(relevant).astype(bool)
    k = min(k, scores.shape[1])
    if k == 0:
        return np.zeros((len(scores), 0)), np.zeros((len(scores), 0), dtype=bool)
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]  # (Q, k), unordered
    order = np.lexsort(
        (relevant[np.arange(len(scores))[:, None], part], -np.take_along_axis(scores, part, 1)),
        axis=-1,
    )
    chosen = np.take_along_axis(part, order, 1)
    return np.take_along_axis(scores, chosen, 1), np.take_along_axis(relevant, chosen, 1)


def top_k_sweep(
    thresholds: np.ndarray,
    shown: np.ndarray,
    relevant_shown: np.ndarray,
    queries_with_any: np.ndarray,
    n_queries: int,
) -> list[TopKPoint]:
    """Per threshold: mean shown per query, the relevant share of them, queries with none.

    `shown` and `relevant_shown` count, over all queries, the top-k results at or above each
    threshold; `queries_with_any` counts the queries whose best result is at or above it.
    """
    per_query = _divide(shown, np.full(len(shown), n_queries))
    share = _divide(relevant_shown, shown)
    none = 1.0 - _divide(queries_with_any, np.full(len(shown), n_queries))
    if n_queries == 0:
        none = np.zeros(len(shown))
    return [
        TopKPoint(float(t), float(s), float(r), float(n))
        for t, s, r, n in zip(thresholds, per_query, share, none, strict=True)
    ]


def best_f1(points: list[SweepPoint]) -> SweepPoint | None:
    """The point with the highest F1 (the lowest threshold among equals); None for no points."""
    if not points:
        return None
    return max(points, key=lambda point: (point.f1, -point.threshold))


def _divide(numerator, denominator) -> np.ndarray:
    numerator = np.asarray(numerator, dtype=float)
    denominator = np.asarray(denominator, dtype=float)
    out = np.zeros(np.broadcast(numerator, denominator).shape)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out

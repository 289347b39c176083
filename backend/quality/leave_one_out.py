"""Leave-one-out retrieval quality of a set of embeddings: every labelled item queries the rest."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from . import metrics

# The app's threshold range, in steps of 0.001 (untrained models crowd into a narrow band).
THRESHOLDS = np.round(np.linspace(0.0, 1.0, 1001), 3)
CHUNK_ROWS = 256  # queries per similarity block: (256, N) float32 stays small for any catalog
TOP_K = 12  # results a page shows by default (TOP_K): the top-k view of the threshold


@dataclass(frozen=True)
class LabelScore:
    label: str
    items: int
    precision: dict[int, float]
    recall: dict[int, float]
    average_precision: float  # mean AP over this label's queries


@dataclass
class Evaluation:
    model: str
    ks: list[int]
    queries: int
    candidates: int
    skipped_singletons: int  # labelled items with no other item of their label
    unlabelled: int
    precision: dict[int, float] = field(default_factory=dict)
    recall: dict[int, float] = field(default_factory=dict)
    map_at_k: dict[int, float] = field(default_factory=dict)
    map: float = 0.0
    per_label: list[LabelScore] = field(default_factory=list)  # worst first
    sweep: list[metrics.SweepPoint] = field(default_factory=list)
    best: metrics.SweepPoint | None = None
    top_k: int = TOP_K
    # At each threshold, of the top_k results a shopper would get: how many are shown, the
    # share of them that is relevant, and the share of queries left with none.
    top_k_sweep: list[metrics.TopKPoint] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Accumulator:
    """Per-query metric values and pooled threshold counts, filled chunk by chunk."""

    ks: list[int]
    per_query: dict[str, list[np.ndarray]] = field(default_factory=dict)
    above: np.ndarray = field(default_factory=lambda: np.zeros(len(THRESHOLDS), dtype=np.int64))
    relevant_above: np.ndarray = field(
        default_factory=lambda: np.zeros(len(THRESHOLDS), dtype=np.int64)
    )
    total_relevant: int = 0
    shown: np.ndarray = field(default_factory=lambda: np.zeros(len(THRESHOLDS), dtype=np.int64))
    relevant_shown: np.ndarray = field(
        default_factory=lambda: np.zeros(len(THRESHOLDS), dtype=np.int64)
    )
    queries_with_any: np.ndarray = field(
        default_factory=lambda: np.zeros(len(THRESHOLDS), dtype=np.int64)
    )

    def add(self, name: str, values: np.ndarray) -> None:
        self.per_query.setdefault(name, []).append(values)

    def column(self, name: str) -> np.ndarray:
        return np.concatenate(self.per_query.get(name, [np.zeros(0)]))


def evaluate_vectors(
    vectors: np.ndarray,
    labels: Sequence[str | None],
    ks: Sequence[int],
    model: str = "",
    progress: Callable[[int, int], None] | None = None,
    top_k: int = TOP_K,
) -> Evaluation:
    """Score every labelled row against all other rows; unlabelled rows are distractors only."""
    ks = sorted(set(ks))
    codes, names = _encode(labels)
    sizes = np.bincount(codes[codes >= 0], minlength=len(names))
    labelled = np.flatnonzero(codes >= 0)
    queries = labelled[sizes[codes[labelled]] >= 2]
    result = Evaluation(
        model,
        ks,
        len(queries),
        max(len(vectors) - 1, 0),
        skipped_singletons=len(labelled) - len(queries),
        unlabelled=len(codes) - len(labelled),
        top_k=top_k,
    )
    acc = _Accumulator(ks)
    for start in range(0, len(queries), CHUNK_ROWS):
        _score_chunk(vectors, codes, sizes, queries[start : start + CHUNK_ROWS], acc, top_k)
        if progress:
            progress(min(start + CHUNK_ROWS, len(queries)), len(queries))
    _summarise(result, acc, codes[queries], names)
    return result


def _encode(labels: Sequence[str | None]) -> tuple[np.ndarray, list[str]]:
    """Labels -> integer codes (-1 for unlabelled) and the sorted label names."""
    names = sorted({label for label in labels if label})
    index = {name: code for code, name in enumerate(names)}
    return np.array(
        [index.get(label, -1) if label else -1 for label in labels], dtype=np.int64
    ), names


def _score_chunk(vectors, codes, sizes, rows: np.ndarray, acc: _Accumulator, top_k: int) -> None:
    scores = vectors[rows] @ vectors.T  # (C, N)
    relevant = codes[None, :] == codes[rows][:, None]  # (C, N)
    own = (np.arange(len(rows)), rows)
    scores[own], relevant[own] = -np.inf, False  # leave the query itself out
    n_relevant = sizes[codes[rows]] - 1
    ranked = metrics.rank_by_score(scores, relevant)[:, :-1]  # self sorts last: drop it
    for k in acc.ks:
        acc.add(f"p{k}", metrics.precision_at_k(ranked, k))
        acc.add(f"r{k}", metrics.recall_at_k(ranked, n_relevant, k))
        acc.add(f"ap{k}", metrics.average_precision(ranked, n_relevant, k))
    acc.add("ap", metrics.average_precision(ranked, n_relevant))
    above, relevant_above = metrics.counts_at_or_above(scores, relevant, THRESHOLDS)
    acc.above += above
    acc.relevant_above += relevant_above
    acc.total_relevant += int(n_relevant.sum())
    _count_top_k(scores, relevant, top_k, acc)


def _count_top_k(scores: np.ndarray, relevant: np.ndarray, k: int, acc: _Accumulator) -> None:
    """Add the chunk's top-k results at or above each threshold (the query itself is -inf)."""
    best_scores, best_relevant = metrics.top_k(scores, relevant, k)  # (C, k)
    best_relevant &= np.isfinite(best_scores)
    shown, relevant_shown = metrics.counts_at_or_above(best_scores, best_relevant, THRESHOLDS)
    acc.shown += shown
    acc.relevant_shown += relevant_shown
    if best_scores.shape[1]:
        first = best_scores[:, 0]
        acc.queries_with_any += metrics.counts_at_or_above(
            first, np.ones(len(first), bool), THRESHOLDS
        )[0]


def _summarise(
    result: Evaluation, acc: _Accumulator, query_codes: np.ndarray, names: list[str]
) -> None:
    for k in result.ks:
        result.precision[k] = metrics.mean(acc.column(f"p{k}"))
        result.recall[k] = metrics.mean(acc.column(f"r{k}"))
        result.map_at_k[k] = metrics.mean(acc.column(f"ap{k}"))
    ap = acc.column("ap")
    result.map = metrics.mean(ap)
    for code in np.unique(query_codes):
        mine = query_codes == code
        result.per_label.append(
            LabelScore(
                names[code],
                int(mine.sum()),
                {k: metrics.mean(acc.column(f"p{k}")[mine]) for k in result.ks},
                {k: metrics.mean(acc.column(f"r{k}")[mine]) for k in result.ks},
                metrics.mean(ap[mine]),
            )
        )
    result.per_label.sort(key=lambda score: (score.average_precision, score.label))
    result.sweep = metrics.threshold_sweep(
        THRESHOLDS, acc.above, acc.relevant_above, acc.total_relevant, result.queries
    )
    result.best = metrics.best_f1(result.sweep)
    result.top_k_sweep = metrics.top_k_sweep(
        THRESHOLDS, acc.shown, acc.relevant_shown, acc.queries_with_any, result.queries
    )

"""Shopper-photo evaluation: photos of products (taken in a shop, at home) searched against the
catalog through the served search, as POST /api/search answers them.

QUERIES.csv has the columns `image,label`: `image` a path relative to the CSV or an http(s) URL
(fetched by the app's safe fetcher), `label` the product it shows: a product id, or a label of
LABELS.csv (`id,label`) when one is given. A result is right when it is that product.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..options import MAX_K, passes
from .labels import read_pairs

Progress = Callable[[int, int], None]
RANKS = (1, 5, 12)
BAND_WIDTH = 10  # points of the figure on a card per reliability band


@dataclass(frozen=True)
class Query:
    image: str  # a local path (resolved) or an http(s) URL
    label: str


@dataclass(frozen=True)
class Band:
    low: int  # the figure on the card, low..low + BAND_WIDTH - 1
    count: int  # results shown with a figure in the band
    right: int  # of which are the photo's own product

    @property
    def fraction_right(self) -> float:
        return self.right / self.count if self.count else 0.0


@dataclass
class ShopperEvaluation:
    model: str
    queries: int
    threshold: float  # the served similarity threshold
    top_k: int  # results per page, the reliability table's depth
    found_at: dict[int, float] = field(default_factory=dict)  # K -> share with own product in top K
    mrr: float = 0.0
    empty_at_threshold: int = 0  # queries that show "0 matches" with the served defaults
    bands: list[Band] = field(default_factory=list)
    unfound: int = 0  # queries whose product is not in the top MAX_K at all

    def to_dict(self) -> dict:
        out = asdict(self)
        out["bands"] = [{**asdict(b), "fraction_right": b.fraction_right} for b in self.bands]
        return out


def load_queries(path: Path) -> list[Query]:
    """Read QUERIES.csv (`image,label`); relative image paths are taken from the CSV's folder."""
    queries = []
    for line, image, label in read_pairs(path, "image", "label"):
        if not image or not label:
            raise ConfigError(f"{path.name} row {line}: image and label are required")
        remote = image.lower().startswith(("http://", "https://"))
        queries.append(Query(image if remote else str(path.parent / image), label))
    if not queries:
        raise ConfigError(f"{path.name} has no queries")
    return queries


def card_figure(hit) -> int:
    """The figure a card shows: the calibrated `match` where results carry one, else the
    similarity as a percentage."""
    match = getattr(hit, "match", None)
    if match is not None:
        return int(match)
    return max(0, min(100, math.floor(100 * hit.similarity + 1e-6)))


def evaluate_queries(
    service,
    queries: Sequence[Query],
    labels: dict[str, str] | None,
    progress: Progress | None = None,
) -> ShopperEvaluation:
    """Search the catalog with every query photo through the served pipeline and score it."""
    served = service.options()
    ranks, empties, figures, rights = [], 0, [], []
    for number, query in enumerate(queries, 1):
        data = read_query(service, query.image)
        result = service.search_bytes(data, k=MAX_K, threshold=0.0)
        right = [is_right(hit.product.id, query.label, labels) for hit in result.hits]
        ranks.append(right.index(True) + 1 if True in right else math.inf)
        page = result.hits[: served.k]
        empties += not any(passes(hit.similarity, served.threshold) for hit in page)
        figures += [card_figure(hit) for hit in page]
        rights += right[: served.k]
        if progress:
            progress(number, len(queries))
    evaluation = summarise(np.array(ranks, dtype=float), np.array(figures), np.array(rights))
    evaluation.model = service.embedder.identity
    evaluation.threshold, evaluation.top_k = served.threshold, served.k
    evaluation.empty_at_threshold = empties
    return evaluation


def read_query(service, image: str) -> bytes:
    if image.lower().startswith(("http://", "https://")):
        return service.fetch_query_image(image)
    from ..images.sources import read_limited

    return read_limited(Path(image), service.settings.max_upload_bytes)


def is_right(product_id: str, label: str, labels: dict[str, str] | None) -> bool:
    return product_id == label or (labels is not None and labels.get(product_id) == label)


def summarise(ranks: np.ndarray, figures: np.ndarray, rights: np.ndarray) -> ShopperEvaluation:
    """Ranks of each query's own product (inf: not found), and every card's figure and rightness."""
    evaluation = ShopperEvaluation(model="", queries=len(ranks), threshold=0.0, top_k=0)
    if len(ranks):
        evaluation.found_at = {k: float(np.mean(ranks <= k)) for k in RANKS}
        evaluation.mrr = float(np.mean(1.0 / ranks))
        evaluation.unfound = int(np.isinf(ranks).sum())
    evaluation.bands = reliability(figures, rights)
    return evaluation


def reliability(figures: np.ndarray, rights: np.ndarray) -> list[Band]:
    """Cards per band of their figure (0-9, ..., 90-100) and how many were right."""
    bands = np.minimum(np.asarray(figures, dtype=int) // BAND_WIDTH, 100 // BAND_WIDTH - 1)
    rights = np.asarray(rights, dtype=bool)
    return [
        Band(low * BAND_WIDTH, int((bands == low).sum()), int(rights[bands == low].sum()))
        for low in range(100 // BAND_WIDTH)
    ]


def combine(parts: Sequence[ShopperEvaluation]) -> ShopperEvaluation:
    """One evaluation of several runs' queries (e.g. folds), weighted by their query counts."""
    total = sum(part.queries for part in parts)
    first = parts[0]
    out = ShopperEvaluation(first.model, total, first.threshold, first.top_k)
    weight = [part.queries / total if total else 0.0 for part in parts]
    out.found_at = {
        k: sum(w * part.found_at.get(k, 0.0) for w, part in zip(weight, parts, strict=True))
        for k in RANKS
    }
    out.mrr = sum(w * part.mrr for w, part in zip(weight, parts, strict=True))
    out.empty_at_threshold = sum(part.empty_at_threshold for part in parts)
    out.unfound = sum(part.unfound for part in parts)
    out.bands = [
        Band(band.low, sum(p.bands[n].count for p in parts), sum(p.bands[n].right for p in parts))
        for n, band in enumerate(first.bands)
    ]
    return out

"""Searches: the options resolved, the query embedded, the store's nearest re-ranked with the
adapter's item biases, figured by the calibration and timed per stage."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from PIL import Image

from ..errors import NotFound
from ..images.decode import decode_image
from ..model import embed_query
from ..model.adapter import CANDIDATES, bias_corrected
from ..model.calibration import Calibration
from ..options import SearchOptions
from ..stores import Filters
from .lifecycle import Lifecycle
from .results import Hit, SearchResult
from .runtime import Runtime


def _matches(calibration: Calibration | None, scores: list[float]) -> list[int | None]:
    """Each score's match (whole percent), or None for every one without a calibration."""
    if calibration is None:
        return [None] * len(scores)
    return list(calibration.matches(np.asarray(scores, dtype=float)))


class Ranking:
    """Search by image, by query vector or by product; `changes` override the options."""

    def __init__(self, runtime: Runtime, lifecycle: Lifecycle) -> None:
        self.runtime = runtime
        self.lifecycle = lifecycle

    def resolve(self, options: SearchOptions | None, changes: dict[str, Any]) -> SearchOptions:
        """`options` (default: the served ones, TOP_K and the threshold) with `changes`, validated."""
        base = self.runtime.settings.search_defaults if options is None else options
        return base.with_changes(**changes)

    def search_bytes(
        self, data: bytes, options: SearchOptions | None, changes: dict[str, Any]
    ) -> SearchResult:
        started = time.perf_counter()
        options = self.resolve(options, changes)
        image = decode_image(data, min_size=self.runtime.embedder.min_decode_size)
        return self._search_image(image, options, started)

    def search_image(
        self,
        image: Image.Image,
        options: SearchOptions | None,
        changes: dict[str, Any],
        decoding_started: float | None,
    ) -> SearchResult:
        started = time.perf_counter() if decoding_started is None else decoding_started
        return self._search_image(image, self.resolve(options, changes), started)

    def _search_image(
        self, image: Image.Image, options: SearchOptions, started: float
    ) -> SearchResult:
        decoded = time.perf_counter()
        query = embed_query(self.runtime.embedder, image)  # (D,)
        stages = {"decode": decoded - started, "embed": time.perf_counter() - decoded}
        return self._rank(query, options, started, stages=stages, shopper=True)

    def search_vector(
        self, query: np.ndarray, options: SearchOptions | None, changes: dict[str, Any]
    ) -> SearchResult:
        options = self.resolve(options, changes)
        return self._rank(query, options, time.perf_counter(), shopper=True)

    def search_similar(
        self, product_id: str, options: SearchOptions | None, changes: dict[str, Any]
    ) -> SearchResult:
        started = time.perf_counter()
        options = self.resolve(options, changes)
        self.lifecycle.current()
        vector = self.runtime.store.vector(product_id)
        if vector is None:
            raise NotFound(f"product {product_id!r} is not in the index")
        return self._rank(vector, options, started, exclude_id=product_id)

    def _rank(
        self,
        query: np.ndarray,
        options: SearchOptions,
        started: float,
        exclude_id: str | None = None,
        stages: dict[str, float] | None = None,
        shopper: bool = False,
    ) -> SearchResult:
        """The k nearest; `shopper`: the query is a shopper's photo, re-ranked with each item's
        bias when an adapter is served, and figured by the calibration (fitted on such photos,
        not on catalogue photos against each other)."""
        self.lifecycle.current()
        runtime = self.runtime
        k = options.k
        filters = Filters(options.category, options.min_price, options.max_price)
        ranking = time.perf_counter()
        # One more when a product is excluded ("more like this"), so k remain without it.
        wanted = k + (exclude_id is not None)
        correct = shopper and runtime.biases.active
        # A shopper's photo: the store's nearest by cosine, re-ranked with each item's bias.
        found = runtime.store.search(
            query, max(wanted, CANDIDATES) if correct else wanted, filters=filters
        )
        if correct:
            found = runtime.biases.rerank(found, bias_corrected)
        found = [f for f in found if f.product.id != exclude_id][:k]
        calibration = runtime.calibration if shopper else None
        matches = _matches(calibration, [f.score for f in found])
        hits = [Hit(f.product, f.score, m) for f, m in zip(found, matches, strict=True)]
        done = time.perf_counter()
        seconds = {**(stages or {}), "rank": done - ranking}
        stages_ms = {stage: value * 1000 for stage, value in seconds.items()}
        return SearchResult(
            hits, options, (done - started) * 1000, query, stages_ms, calibration is not None
        )

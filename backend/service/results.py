"""What a search returns: the hits, best first, with the options they were found with."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..catalog import Product
from ..options import MATCH_TOLERANCE, SearchOptions, match_percent, passes


@dataclass(frozen=True)
class Hit:
    product: Product
    similarity: float
    # The measured chance (whole percent) that this is the product in the photo; None when the
    # model has no calibration, or for "more like this" (catalogue photo against catalogue).
    match: int | None = None

    @property
    def percent(self) -> int:
        """The figure the threshold is compared with: the match, else the similarity in percent."""
        return self.match if self.match is not None else match_percent(self.similarity)


@dataclass(frozen=True)
class SearchResult:
    """The top-k matches, best first; those under the threshold are kept for the slider."""

    hits: list[Hit]
    options: SearchOptions
    took_ms: float
    # The query embedding (D,), so a page can refine the same search without the image again.
    query: np.ndarray | None = field(default=None, repr=False, compare=False)
    # Milliseconds per stage ("decode", "embed", "rank"), for the metrics and the search log.
    stages_ms: dict[str, float] = field(default_factory=dict, compare=False)
    # Whether the hits carry a match: the threshold is then a minimum match, else a similarity.
    calibrated: bool = False

    @property
    def threshold(self) -> float:
        return self.options.threshold

    @property
    def k(self) -> int:
        return self.options.k

    @property
    def category(self) -> str | None:
        return self.options.category

    @property
    def shown(self) -> list[Hit]:
        if self.calibrated:
            minimum = self.threshold * 100 - 100 * MATCH_TOLERANCE
            return [hit for hit in self.hits if hit.percent >= minimum]  # calibrated: the match
        # The tolerance keeps float32 rounding from hiding what is labelled "100 % match".
        return [hit for hit in self.hits if passes(hit.similarity, self.threshold)]

    @property
    def hidden_below_threshold(self) -> int:
        return len(self.hits) - len(self.shown)

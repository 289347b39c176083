"""Fitting the match calibration: raw scores of shopper-photo searches -> the chance of being right.

A logistic (Platt) fit of "this result is the photo's product" on the result's score, checked
on folds over products: the products a fold is judged on are never among those it was fitted
on. Measured on the grocery benchmark (docs/quality.md#the-figure-on-a-card), it beat
isotonic regression on the score, whose few high scores made it overconfident at the top, and
logistic fits that also take the rank and the gap to the best result: sharper on average, but
off by 0.2 to 0.4 in some bands on some splits of the products.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.calibration import Calibration, match_percent

TOLERANCE = 0.15  # the most a band's fraction right may differ from its mean figure
BAND = 10  # percentage points per reliability band
MIN_BAND_RESULTS = 30  # bands with fewer results are listed but not held to TOLERANCE
# The served default minimum match hides at most this share of the right results, and leaves
# at most this share of the searches with nothing to show.
MAX_RIGHT_HIDDEN = 0.05
MAX_EMPTY = 0.01


@dataclass(frozen=True)
class Searches:
    """The top-k results of many searches: scores (Q, K) best first, whether each is the photo's
    product (Q, K), and the product of each query (Q,), by which folds are cut. A search with
    fewer than K results has -inf scores in the empty places."""

    scores: np.ndarray
    right: np.ndarray
    products: np.ndarray

    def flat(self, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Scores and right flags of every result (of the given queries), as two (N,) arrays."""
        scores = self.scores if rows is None else self.scores[rows]
        right = self.right if rows is None else self.right[rows]
        present = np.isfinite(scores)
        return scores[present].astype(float), right[present].astype(float)


def fit_logistic(scores: np.ndarray, right: np.ndarray, steps: int = 50) -> tuple[float, float]:
    """Slope and intercept of the logistic fit of `right` (0/1) on `scores` (Newton's method).

    Deterministic. At least one right and one wrong result are needed (else the best fit
    is a slope of infinity or of zero); a fit whose slope is not positive is refused.
    """
    x, y = np.asarray(scores, dtype=float), np.asarray(right, dtype=float)
    if len(x) == 0 or y.min(initial=1) == y.max(initial=0):
        raise ValueError("a calibration needs results both right and wrong to fit on")
    design = np.stack([x, np.ones_like(x)], axis=1)  # (N, 2)
    weights = np.zeros(2)
    for _ in range(steps):
        chance = 1.0 / (1.0 + np.exp(-(design @ weights)))  # (N,)
        gradient = design.T @ (chance - y)
        hessian = (design * (chance * (1 - chance))[:, None]).T @ design + 1e-9 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        weights -= step
        if np.abs(step).max() < 1e-10:
            break
    slope, intercept = float(weights[0]), float(weights[1])
    if not slope > 0:
        raise ValueError(f"the scores do not rise with being right (slope {slope:.3f})")
    return slope, intercept


def fit_calibration(
    searches: Searches, identity: str, provenance: dict | None = None
) -> Calibration:
    """The calibration fitted on every search, with its default minimum match."""
    scores, right = searches.flat()
    slope, intercept = fit_logistic(scores, right)
    draft = Calibration(identity, slope, intercept, 0)
    percents = np.array(draft.matches(scores))
    best = np.array(draft.matches(searches.scores[:, 0]))  # each search's best result
    minimum = default_min_match(percents, right, best)
    wrong, right_hidden = hidden_share(percents, right.astype(bool), minimum)
    hides = {"wrong": round(wrong, 4), "right": round(right_hidden, 4)}
    provenance = {**(provenance or {}), "results": len(scores), "default_hides": hides}
    return Calibration(identity, round(slope, 6), round(intercept, 6), minimum, provenance)


def default_min_match(percents: np.ndarray, right: np.ndarray, best: np.ndarray) -> int:
    """The highest whole percent that hides at most MAX_RIGHT_HIDDEN of the right results and
    leaves at most MAX_EMPTY of the searches (whose best results are `best`) with none; 0 if
    none does. Percents (N,) and right (N,) are every result's; best (Q,) in whole percents."""
    chosen = 0
    for minimum in range(1, 101):
        right_hidden = hidden_share(percents, right.astype(bool), minimum)[1]
        empty = float(np.mean(best < minimum)) if len(best) else 0.0
        if right_hidden > MAX_RIGHT_HIDDEN or empty > MAX_EMPTY:
            break
        chosen = minimum
    return chosen


def hidden_share(percents: np.ndarray, right: np.ndarray, minimum: int) -> tuple[float, float]:
    """At this minimum match: the share of wrong results hidden, and of right ones."""
    hidden = percents < minimum
    wrong_hidden = hidden[~right].mean() if (~right).any() else 0.0
    right_hidden = hidden[right].mean() if right.any() else 0.0
    return float(wrong_hidden), float(right_hidden)


@dataclass(frozen=True)
class BandRow:
    low: int  # the band holds figures from low to low + BAND - 1 (100 joins the last band)
    results: int
    mean_figure: float  # the mean shown figure, as a fraction
    fraction_right: float

    @property
    def checked(self) -> bool:
        return self.results >= MIN_BAND_RESULTS

    @property
    def gap(self) -> float:
        return abs(self.fraction_right - self.mean_figure)


@dataclass(frozen=True)
class Check:
    bands: list[BandRow]

    def within(self, tolerance: float) -> bool:
        return all(band.gap <= tolerance for band in self.bands if band.checked)


def reliability(percents: np.ndarray, right: np.ndarray) -> list[BandRow]:
    """Per 10-point band of the shown figure: results, mean figure and fraction right."""
    percents, right = np.asarray(percents, dtype=float), np.asarray(right, dtype=float)
    band = np.minimum(percents // BAND, 100 // BAND - 1).astype(int)
    rows = []
    for number in range(100 // BAND):
        inside = band == number
        if inside.any():
            rows.append(
                BandRow(
                    number * BAND,
                    int(inside.sum()),
                    float(percents[inside].mean() / 100),
                    float(right[inside].mean()),
                )
            )
    return rows


def product_folds(products: np.ndarray, folds: int, seed: int) -> list[np.ndarray]:
    """Query rows in `folds` groups cut by product (seeded): each product in exactly one."""
    unique = np.unique(products)
    if not 2 <= folds <= len(unique):
        raise ValueError(f"folds={folds} must be from 2 to the number of products, {len(unique)}")
    shuffled = np.random.default_rng(seed).permutation(unique)
    return [np.flatnonzero(np.isin(products, part)) for part in np.array_split(shuffled, folds)]


def cross_validate(searches: Searches, folds: int, seed: int) -> Check:
    """Fit on all folds but one, figure the held-out one's results; pooled reliability."""
    percents, rights = [], []
    everything = np.arange(len(searches.products))
    for held_out in product_folds(searches.products, folds, seed):
        train = np.setdiff1d(everything, held_out)
        slope, intercept = fit_logistic(*searches.flat(train))
        scores, right = searches.flat(held_out)
        percents.append(Calibration("", slope, intercept, 0).matches(scores))
        rights.append(right)
    return Check(reliability(np.concatenate(percents), np.concatenate(rights)))


def format_reliability(bands: list[BandRow]) -> str:
    lines = [
        "held-out reliability (folds over products):",
        "| match shown | results | mean figure | fraction right | gap |",
        "|---|---|---|---|---|",
    ]
    for band in bands:
        mark = "" if band.checked else " (under 30 results: not held to 0.15)"
        lines.append(
            f"| {band.low}-{band.low + BAND - 1 + (band.low == 100 - BAND)} % | {band.results} "
            f"| {band.mean_figure:.3f} | {band.fraction_right:.3f} | {band.gap:.3f}{mark} |"
        )
    return "\n".join(lines)


def format_threshold(searches: Searches, calibration: Calibration) -> str:
    scores, right = searches.flat()
    percents = np.array([match_percent(c) for c in calibration.chance(scores)])
    minimum = calibration.default_min_match
    wrong_hidden, right_hidden = hidden_share(percents, right.astype(bool), minimum)
    return (
        f"default minimum match {minimum} %: hides {wrong_hidden:.0%} of the wrong results "
        f"and {right_hidden:.0%} of the right ones"
    )

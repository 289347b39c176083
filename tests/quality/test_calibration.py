"""Fitting the match calibration: the logistic fit, folds over products, reliability bands and
the default minimum, against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from backend.quality.calibration import (
    BandRow,
    Searches,
    cross_validate,
    default_min_match,
    fit_calibration,
    fit_logistic,
    hidden_share,
    product_folds,
    reliability,
)


def test_the_logistic_fit_by_hand():
    """Two groups: at score 0 one of four is right, at score 1 three of four. The fit is exact
    there: chance 1/4 at 0 (intercept log(1/3)) and 3/4 at 1 (slope 2 log 3)."""
    scores = np.array([0, 0, 0, 0, 1, 1, 1, 1], dtype=float)
    right = np.array([1, 0, 0, 0, 1, 1, 1, 0], dtype=float)
    slope, intercept = fit_logistic(scores, right)
    assert intercept == pytest.approx(math.log(1 / 3), abs=1e-9)
    assert slope == pytest.approx(2 * math.log(3), abs=1e-9)


@pytest.mark.parametrize(
    ("scores", "right"),
    [
        ([], []),  # nothing to fit on
        ([0.2, 0.5], [1, 1]),  # never wrong
        ([0.2, 0.5], [0, 0]),  # never right
        ([0.2, 0.2, 0.8, 0.8], [1, 1, 0, 1]),  # lower scores are right more often
    ],
)
def test_no_fit_without_rising_evidence_of_both_kinds(scores, right):
    with pytest.raises(ValueError):
        fit_logistic(np.array(scores, dtype=float), np.array(right, dtype=float))


def test_reliability_bands_by_hand():
    percents = np.array([5, 15, 15, 95, 100, 100])
    right = np.array([0, 1, 0, 1, 1, 0])
    assert reliability(percents, right) == [
        BandRow(0, 1, 0.05, 0.0),
        BandRow(10, 2, 0.15, 0.5),
        BandRow(90, 3, (95 + 100 + 100) / 300, 2 / 3),  # 100 % joins the last band
    ]
    assert reliability(np.array([]), np.array([])) == []
    assert BandRow(10, 30, 0.15, 0.31).checked and not BandRow(10, 29, 0.15, 0.31).checked
    assert BandRow(10, 30, 0.15, 0.31).gap == pytest.approx(0.16)


def test_folds_are_cut_by_product_and_seeded():
    products = np.array(["a", "a", "b", "c", "c", "d", "e"])
    folds = product_folds(products, 3, seed=0)
    assert sorted(np.concatenate(folds).tolist()) == list(range(7))
    for fold in folds:  # a product's photos never straddle two folds
        for other in folds:
            if other is not fold:
                assert not set(products[fold]) & set(products[other])
    again = product_folds(products, 3, seed=0)
    assert [f.tolist() for f in again] == [f.tolist() for f in folds]
    with pytest.raises(ValueError, match="folds=6"):
        product_folds(products, 6, seed=0)
    with pytest.raises(ValueError, match="folds=1"):
        product_folds(products, 1, seed=0)


def test_the_default_minimum_hides_few_right_results_and_empties_few_searches():
    percents = np.array([1, 2, 3, 4, 10, 20, 30, 40, 50, 60])
    right = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1]).astype(bool)
    assert hidden_share(percents, right, 11) == (5 / 6, 0.0)
    assert hidden_share(percents, right, 31) == (1.0, 0.25)
    # Every right result is at 30 % or more: 30 hides none; no search is left empty up to 30.
    assert default_min_match(percents, right, np.array([30, 40, 50])) == 30
    # ...unless a search's best result is lower: one search of three left empty is too many.
    assert default_min_match(percents, right, np.array([4, 40, 50])) == 4
    assert default_min_match(percents, right, np.array([0, 40, 50])) == 0


def synthetic(products: int, per_product: int, seed: int) -> Searches:
    """Searches whose right flags are drawn with a known chance, 1 / (1 + e^-(8 s - 5))."""
    rng = np.random.default_rng(seed)
    scores = np.sort(rng.uniform(0.1, 0.95, (products * per_product, 12)), axis=1)[:, ::-1]
    right = rng.random(scores.shape) < 1 / (1 + np.exp(-(8 * scores - 5)))
    labels = np.repeat([f"p{i}" for i in range(products)], per_product)
    return Searches(scores, right, labels)


def test_a_fit_on_known_chances_recovers_them_and_its_held_out_figures_hold():
    searches = synthetic(40, 30, seed=1)
    fitted = fit_calibration(searches, "m/w/p/ort-fp32", {"queries": 1200, "catalog": 40})
    assert fitted.slope == pytest.approx(8, abs=0.6)
    assert fitted.intercept == pytest.approx(-5, abs=0.4)
    assert fitted.provenance["results"] == 1200 * 12
    assert set(fitted.provenance["default_hides"]) == {"wrong", "right"}
    check = cross_validate(searches, folds=5, seed=0)
    assert check.within(0.05)
    assert sum(band.results for band in check.bands) == 1200 * 12


def test_missing_results_are_left_out():
    scores = np.array([[0.9, 0.5, -np.inf], [0.8, 0.3, 0.2]])
    right = np.array([[True, False, False], [False, False, True]])
    searches = Searches(scores, right, np.array(["a", "b"]))
    flat_scores, flat_right = searches.flat()
    assert flat_scores.tolist() == [0.9, 0.5, 0.8, 0.3, 0.2]
    assert flat_right.tolist() == [1, 0, 0, 0, 1]

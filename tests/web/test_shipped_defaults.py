"""The pages and the API with the shipped defaults (`default_app`): the default model with its
real weights, its own threshold, no SECRET_KEY, as `docker run`, demo.sh and serve.sh start it."""

from __future__ import annotations

import csv
import io
import json

import pytest

from tests.conftest import OWNER_TOKEN
from tests.support.catalogs import draw_image, image_bytes

RED_BALL = image_bytes(draw_image("red", "circle"))  # p1's own picture
OWNER = {"Authorization": f"Bearer {OWNER_TOKEN}"}


@pytest.fixture(scope="module")
def client(default_app):
    return default_app.test_client()


@pytest.fixture(scope="module")
def threshold(default_app) -> float:
    """The served minimum: the default model is calibrated, so its calibration's minimum match."""
    settings = default_app.config["SETTINGS"]
    assert settings._similarity_threshold is None and settings.min_match is None  # nothing pinned
    assert settings.calibration is not None
    return settings.calibration.default_min_match / 100


def default_app_settings(client):
    return client.application.config["SETTINGS"]


def search_form(client, **fields):
    data = {"file": (io.BytesIO(RED_BALL), "query.png"), **fields}
    return client.post("/search", data=data, content_type="multipart/form-data")


def search_api(client, query: str = ""):
    data = {"file": (io.BytesIO(RED_BALL), "query.png")}
    return client.post(f"/api/search{query}", data=data, content_type="multipart/form-data")


def test_the_default_model_serves_with_its_real_weights(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.json
    assert response.json["model"].startswith("efficientnet_lite0/file-")
    assert response.json["random_weights"] is False
    assert response.json["indexed"] == response.json["catalog_size"] == 7


@pytest.mark.parametrize("url", ["/", "/products", "/products/p1/similar", "/healthz"])
def test_pages_answer(client, url):
    assert client.get(url).status_code == 200


def test_the_search_form_finds_the_product(client, threshold):
    response = search_form(client)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Red ball" in html
    assert f'value="{round(threshold * 100)}"' in html  # the slider starts at the default


def test_the_api_answers_with_the_model_default_threshold(client, threshold):
    response = search_api(client)
    assert response.status_code == 200, response.json
    assert response.json["threshold"] == threshold
    assert response.json["results"][0]["id"] == "p1"


def test_results_export_as_csv(client):
    for response in (search_api(client, "?format=csv"), search_form(client, format="csv")):
        assert response.status_code == 200
        rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
        assert rows[0]["id"] == "p1"


def test_the_insights_page_shows_the_served_threshold(client):
    search_api(client)
    response = client.get("/insights", headers=OWNER)
    assert response.status_code == 200
    # Best similarities are held to the default minimum as a score (the page shows it).
    floor = default_app_settings(client).similarity_floor
    assert f"{floor:.2f}" in response.get_data(as_text=True)


def test_the_search_log_exports(client):
    search_api(client)
    as_csv = client.get("/insights/searches.csv", headers=OWNER)
    assert as_csv.status_code == 200
    assert list(csv.DictReader(io.StringIO(as_csv.get_data(as_text=True))))
    as_json = client.get("/insights/searches.json", headers=OWNER)
    assert as_json.status_code == 200
    assert json.loads(as_json.get_data(as_text=True))

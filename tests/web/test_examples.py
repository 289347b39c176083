"""Shopper photos to try (examples.csv), the served model in the footer, the threshold's
meaning by the slider, and "100 % match" only for an identical image."""

from __future__ import annotations

import re

import pytest

from backend import create_app
from backend.options import match_percent
from tests.support.catalogs import draw_image, make_app_config, write_catalog


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """A catalog with two shopper photos listed in examples.csv, and one bad row."""
    root = tmp_path_factory.mktemp("examples")
    catalog_path = write_catalog(root / "shop")
    folder = catalog_path.parent / "shoppers"
    folder.mkdir()
    draw_image("red", "circle", (300, 260)).save(folder / "red.jpg")
    draw_image("blue", "stripes", (260, 300)).save(folder / "blue.jpg")
    (catalog_path.parent / "examples.csv").write_text(
        "id,product_id,image_url\n"
        "red-1,p1,shoppers/red.jpg\n"
        "blue-1,,shoppers/blue.jpg\n"
        "evil,p1,../../../etc/passwd\n"
        "bad id!,p1,shoppers/red.jpg\n",
        encoding="utf-8",
    )
    app = create_app(make_app_config(root, catalog_path) | {"SECRET_KEY": "test-secret"})
    return app.test_client()


def test_the_home_page_links_each_shopper_photo_to_a_search(shop):
    html = shop.get("/").get_data(as_text=True)
    links = re.findall(r'<a class="example" href="(/examples/[^"]+)">', html)
    assert links == ["/examples/red-1", "/examples/blue-1", "/examples/evil"]
    assert '<span class="example-name">Red ball</span>' in html  # named by its product
    assert '<span class="example-name">Shopper photo</span>' in html  # no product given
    assert 'src="/examples/red-1/image"' in html


def test_a_shopper_photo_runs_a_real_search_with_a_plain_link(shop):
    response = shop.get("/examples/red-1?threshold=0&k=3")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert '<h1 id="query-title" class="query-title">Shopper photo</h1>' in html
    assert "An in-store photo of <strong>Red ball</strong>, not in the catalog." in html
    titles = re.findall(r'<h3 class="card-title">(.*?)</h3>', html)
    assert len(titles) == 3 and titles[0] == "Red ball"  # the red circle is nearest
    assert 'src="/examples/red-1/image"' in html
    # The refine form is a GET of the same address: refined results are a link too.
    assert '<form class="refine" action="/examples/red-1" method="get" data-refine>' in html
    again = shop.get("/examples/red-1?k=2&threshold=0")
    assert len(re.findall(r'<h3 class="card-title">', again.get_data(as_text=True))) == 2


def test_the_shopper_photo_is_served_as_an_image(shop):
    with shop.get("/examples/blue-1/image") as response:
        assert response.status_code == 200 and response.mimetype == "image/jpeg"


@pytest.mark.parametrize(
    "url",
    [
        "/examples/nope",  # not listed
        "/examples/evil",  # listed, but its file leaves the catalog folder
        "/examples/evil/image",
        "/examples/nope/image",
    ],
)
def test_unknown_or_unsafe_shopper_photos_are_not_found(shop, url):
    response = shop.get(url)
    assert response.status_code == 404
    assert "root:" not in response.get_data(as_text=True)


def test_without_examples_csv_there_is_no_row(shared_client):
    html = shared_client.get("/").get_data(as_text=True)
    assert "example-row" not in html


def test_the_footer_names_the_model_serving(shared_client):
    shared_client.get("/")  # the first page loads the model
    html = shared_client.get("/").get_data(as_text=True)
    footer = html[html.index('<footer class="site-footer">') :]
    assert "MobileNetV3-Large" in footer and "(random weights)" in footer
    assert 'title="mobilenet_v3_large/random-seed0/' in footer


@pytest.mark.parametrize(
    "similarity, shown",
    [(1.0, 100), (0.99996, 100), (0.9999, 99), (0.996, 99), (0.875, 87), (0.5, 50), (0.0, 0)],
)
def test_100_percent_only_for_an_identical_image(similarity, shown):
    assert match_percent(similarity) == shown


@pytest.mark.slow  # exports EfficientNet-Lite0
def test_the_slider_says_what_the_threshold_means_for_uncalibrated_lite0(tmp_path, catalog_path):
    """Other weights than the calibrated ones: the measured cosine default, in plain words."""
    from backend.model import threshold_meaning

    config = make_app_config(tmp_path, catalog_path) | {"model": "efficientnet_lite0"}
    config.pop("_similarity_threshold")
    app = create_app(config)
    with app.test_request_context():
        from backend.extensions import get_service

        get_service(app).sync()
    html = app.test_client().get("/").get_data(as_text=True)
    meaning = threshold_meaning("efficientnet_lite0")
    assert meaning and meaning in html
    # The model's own default flows into the form, the API (OpenAPI) and the CLI alike.
    assert app.config["SETTINGS"].search_defaults.threshold == 0.35
    assert 'value="35"' in html
    parameters = (
        app.test_client()
        .get("/api/openapi.json")
        .json["paths"]["/api/products/{product_id}/similar"]["get"]["parameters"]
    )
    assert next(p for p in parameters if p["name"] == "threshold")["schema"]["default"] == 0.35


def test_each_model_has_its_own_default_threshold_unless_one_is_set():
    from backend.config import load_settings
    from backend.model.calibration import shipped_calibration

    lite0 = load_settings({}, {"model": "efficientnet_lite0"})
    assert lite0.threshold == shipped_calibration("efficientnet_lite0").default_min_match / 100
    assert load_settings({}, {}).threshold == lite0.threshold  # the default model: Lite0
    assert load_settings({"MIN_MATCH": "20", "MODEL": "efficientnet_lite0"}).threshold == 0.20
    # Without the bundled adapter there is no calibration: the score defaults apply.
    plain = {"model": "efficientnet_lite0", "model_adapter": "none"}
    assert load_settings({}, plain).search_defaults.threshold == 0.35
    assert load_settings({}, {"model": "resnet18"}).search_defaults.threshold == 0.70
    assert load_settings({}, {"model": "color_histogram"}).threshold == 0.70
    # Other weights have no calibration: the cosine default and setting apply.
    other = {"MODEL": "efficientnet_lite0", "MODEL_WEIGHTS": "random"}
    assert load_settings(other).threshold == 0.35
    assert load_settings(other | {"SIMILARITY_THRESHOLD": "0.55"}).threshold == 0.55
